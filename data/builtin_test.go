package data

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"
)

func TestStoriesDeterministic(t *testing.T) {
	a := strings.Join(GenerateStories(7, 300), "\x00")
	b := strings.Join(GenerateStories(7, 300), "\x00")
	c := strings.Join(GenerateStories(8, 300), "\x00")
	if a != b {
		t.Fatal("same seed gave different stories")
	}
	if a == c {
		t.Fatal("different seeds gave the same stories")
	}
	// Variety: many distinct stories and a real vocabulary of words.
	seen := map[string]bool{}
	words := map[string]bool{}
	for _, s := range GenerateStories(7, 300) {
		seen[s] = true
		for _, w := range strings.Fields(s) {
			words[strings.Trim(w, ".,!?\"'")] = true
		}
	}
	if len(seen) < 300 || len(words) < 250 {
		t.Fatalf("little variety: %d distinct stories, %d words", len(seen), len(words))
	}
}

func TestBuiltinCorpus(t *testing.T) {
	t0 := time.Now()
	c, err := Builtin(0)
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Tokenizer
	t.Logf("built-in: %d stories, %d text bytes, %d tokens, %.2f bytes/token, vocab %d, built in %v",
		c.Stories, c.TextBytes, len(c.Tokens), float64(c.TextBytes)/float64(len(c.Tokens)), tok.Vocab(), time.Since(t0))
	if tok.Vocab() != BuiltinVocab {
		t.Fatalf("vocab %d", tok.Vocab())
	}
	if c.TextBytes < 3<<20 {
		t.Fatalf("corpus only %d bytes", c.TextBytes)
	}
	if r := float64(c.TextBytes) / float64(len(c.Tokens)); r < 2 || r > 6 {
		t.Fatalf("compression %.2f bytes/token is not sane", r)
	}
	if tok.Pieces[0] != "<unk>" || tok.Pieces[BOS] != "\n<s>\n" || tok.Pieces[EOS] != "\n</s>\n" || tok.Pieces[ByteBase+255] != "<0xFF>" {
		t.Fatal("special pieces not in llama2.c positions")
	}
	for i, v := range c.Tokens {
		if int(v) >= tok.Vocab() {
			t.Fatalf("token %d at %d", v, i)
		}
	}
	// Determinism of the tokens, through a fresh build (bypassing the cache).
	c2, err := buildCorpus(BuiltinSeed, BuiltinStories, BuiltinVocab)
	if err != nil {
		t.Fatal(err)
	}
	if sumTokens(c.Tokens) != sumTokens(c2.Tokens) {
		t.Fatal("rebuilding the corpus gave different tokens")
	}
	// The whole stream decodes back to the stories.
	stories := GenerateStories(BuiltinSeed, BuiltinStories)
	ids := make([]int, len(c.Tokens))
	for i, v := range c.Tokens {
		ids[i] = int(v)
	}
	if got := tok.DecodeAll(ids); got != strings.Join(stories, "") {
		t.Fatal("decode(tokens) != corpus text")
	}
	// The fast chunked encoder must agree with llama2.c's whole-text
	// algorithm (Encode), which is what run.c would do with a prompt.
	off := 0
	for i, s := range stories[:40] {
		want := c.Tokens[off : off+len(tok.Encode(s, true, false))]
		got := tok.Encode(s, true, false)
		for j := range got {
			if int(want[j]) != got[j] {
				t.Fatalf("story %d: chunked and run.c encodings differ at token %d", i, j)
			}
		}
		off += len(got)
	}
	// Text outside the corpus alphabet still round-trips via byte fallback.
	odd := "Zoë ate 3 crêpes — ☃ {}~\ttab"
	if got := tok.DecodeAll(tok.Encode(odd, true, true)); got != odd {
		t.Fatalf("round trip %q -> %q", odd, got)
	}
}

func sumTokens(t []uint16) [32]byte {
	b := make([]byte, 2*len(t))
	for i, v := range t {
		b[2*i], b[2*i+1] = byte(v), byte(v>>8)
	}
	return sha256.Sum256(b)
}

func TestTrainBPESmall(t *testing.T) {
	tok, err := TrainBPE([]string{"the cat sat", "the hat"}, 300)
	if err != nil {
		t.Fatal(err)
	}
	padVocab(tok, 300)
	if tok.Vocab() != 300 {
		t.Fatalf("vocab %d", tok.Vocab())
	}
	// " the" is the most frequent word: it must come out as one piece.
	if got := tok.Encode("the", false, false); len(got) != 1 || tok.Pieces[got[0]] != " the" {
		t.Fatalf("Encode(the) = %v", got)
	}
	if _, err := TrainBPE([]string{"abc"}, 100); err == nil {
		t.Fatal("vocab below 259+chars accepted")
	}
}

func BenchmarkBuiltin(b *testing.B) {
	for i := 0; i < b.N; i++ {
		buildCorpus(BuiltinSeed, BuiltinStories, BuiltinVocab)
	}
}
