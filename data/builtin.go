package data

import (
	"fmt"
	"strings"
	"sync"
)

// Built-in corpus parameters. Changing any of them changes the data every
// built-in run trains on, so checkpoints record BuiltinName.
const (
	BuiltinSeed    = 1
	BuiltinStories = 10000
	// BuiltinVocab is the default vocabulary: llama2.c's own small custom
	// vocabulary size (tok512), enough for whole common words in this corpus.
	BuiltinVocab = 512
	// BuiltinName identifies the corpus in checkpoints and logs.
	BuiltinName = "builtin-stories-v1"
)

// Corpus is the built-in data: its tokenizer and the token stream of every
// story, each story as llama2.c pretokenizes TinyStories (BOS, then the text
// encoded with the dummy-prefix space; no EOS).
type Corpus struct {
	Tokenizer *Tokenizer
	Tokens    []uint16
	Stories   int
	TextBytes int64
}

var builtinCache sync.Map // vocab -> *builtinEntry

type builtinEntry struct {
	once sync.Once
	c    *Corpus
	err  error
}

// Builtin returns the built-in corpus tokenized with a BPE vocabulary of
// vocab pieces (BuiltinVocab when vocab <= 0). It is built in memory on first
// use (a fraction of a second) and shared afterwards; callers must not modify it.
func Builtin(vocab int) (*Corpus, error) {
	if vocab <= 0 {
		vocab = BuiltinVocab
	}
	e, _ := builtinCache.LoadOrStore(vocab, &builtinEntry{})
	be := e.(*builtinEntry)
	be.once.Do(func() { be.c, be.err = buildCorpus(BuiltinSeed, BuiltinStories, vocab) })
	return be.c, be.err
}

func buildCorpus(seed uint64, n, vocab int) (*Corpus, error) {
	stories := GenerateStories(seed, n)
	tok, err := TrainBPE(stories, vocab)
	if err != nil {
		return nil, fmt.Errorf("built-in corpus: %w", err)
	}
	padVocab(tok, vocab)
	c := &Corpus{Tokenizer: tok, Stories: n}
	for _, s := range stories {
		c.TextBytes += int64(len(s))
	}
	c.Tokens = make([]uint16, 0, c.TextBytes/3)
	c.Tokens = tok.encodeChunked(c.Tokens, stories)
	return c, nil
}

// padVocab fills a vocabulary that ran out of merges (a tiny corpus) up to
// vocab with pieces no text can produce: the model's vocabulary size is fixed
// by the request, not by the corpus.
func padVocab(t *Tokenizer, vocab int) {
	for i := 0; len(t.Pieces) < vocab; i++ {
		p := fmt.Sprintf("<unused%d>", i)
		if _, ok := t.lookup[p]; ok {
			continue
		}
		t.Pieces = append(t.Pieces, p)
		t.Scores = append(t.Scores, -1e9)
		t.lookup[p] = len(t.Pieces) - 1
		t.MaxLen = max(t.MaxLen, len(p))
	}
	t.index()
}

// encodeChunked encodes each text as Encode(text, true, false) would, chunk
// by chunk with a memo: valid only for vocabularies whose pieces never span a
// splitChunks boundary, i.e. those TrainBPE makes.
func (t *Tokenizer) encodeChunked(dst []uint16, texts []string) []uint16 {
	memo := map[string][]int{}
	var buf []int
	for _, s := range texts {
		dst = append(dst, BOS)
		if s == "" {
			continue
		}
		splitChunks(" "+s, func(c string) {
			ids, ok := memo[c]
			if !ok {
				buf = t.merge(t.appendCodePoints(buf[:0], c))
				ids = append([]int(nil), buf...)
				memo[c] = ids
			}
			for _, id := range ids {
				dst = append(dst, uint16(id))
			}
		})
	}
	return dst
}

// BuiltinText returns the built-in stories themselves, joined by blank lines, for
// inspection (`anetop data show builtin`) and tests.
func BuiltinText() string {
	return strings.Join(GenerateStories(BuiltinSeed, BuiltinStories), "\n\n")
}
