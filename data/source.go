package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Source is a ready training source: tokens, and the tokenizer that reads
// them back as text (nil when none was given or found, e.g. bare .bin shards).
type Source struct {
	Name      string
	Tokens    *Tokens
	Tokenizer *Tokenizer
	Vocab     int
}

// Open resolves a --data argument:
//
//   - "" or "builtin": the built-in stories with a BPE vocabulary of vocab
//     (BuiltinVocab when vocab <= 0);
//   - a directory or .bin file: llama2.c pretokenized tokens, checked against
//     vocab (required: the tokens' vocabulary is not stored in them);
//   - any other file: UTF-8 text, tokenized with the tokenizer and cached
//     beside it (the built-in tokenizer when tokenizerPath is "").
//
// tokenizerPath names a llama2.c tokenizer.bin; when it is "" for .bin data,
// a tokenizer.bin in the data's directory is used if there is one.
func Open(path, tokenizerPath string, vocab int) (*Source, error) {
	return OpenWith(path, tokenizerPath, vocab, Options{})
}

// OpenWith is Open with Options for tokenizing a text file: opt.Progress is
// called only when a text file's token cache is (re)built (see Options).
func OpenWith(path, tokenizerPath string, vocab int, opt Options) (*Source, error) {
	var tok *Tokenizer
	if tokenizerPath != "" {
		t, err := LoadTokenizer(tokenizerPath, vocab)
		if err != nil {
			return nil, err
		}
		tok = t
		vocab = t.Vocab()
	}
	if path == "" || path == "builtin" {
		if tok != nil {
			return nil, errors.New("a tokenizer was given for the built-in data, which has its own: drop --tokenizer or pass --data")
		}
		c, err := Builtin(vocab)
		if err != nil {
			return nil, err
		}
		tk, err := FromTokens(BuiltinName, c.Tokens, c.Tokenizer.Vocab())
		if err != nil {
			return nil, err
		}
		return &Source{Name: BuiltinName, Tokens: tk, Tokenizer: c.Tokenizer, Vocab: c.Tokenizer.Vocab()}, nil
	}
	fi, err := os.Stat(path)
	if err == nil && !fi.IsDir() && !strings.EqualFold(filepath.Ext(path), ".bin") {
		if tok == nil {
			c, err := Builtin(vocab)
			if err != nil {
				return nil, err
			}
			tok = c.Tokenizer
		}
		bin, err := TokenizeTextFileWith(path, tok, opt)
		if err != nil {
			return nil, err
		}
		tk, err := OpenTokens(bin, tok.Vocab())
		if err != nil {
			return nil, err
		}
		return &Source{Name: path, Tokens: tk, Tokenizer: tok, Vocab: tok.Vocab()}, nil
	}
	if tok == nil {
		dir := path
		if err == nil && !fi.IsDir() {
			dir = filepath.Dir(path)
		}
		if cand := filepath.Join(dir, "tokenizer.bin"); fileExists(cand) {
			if t, terr := LoadTokenizer(cand, vocab); terr == nil {
				tok, vocab = t, t.Vocab()
			}
		}
	}
	if vocab <= 0 {
		return nil, fmt.Errorf("token data %s: its vocabulary size is unknown: pass --tokenizer or the model's --vocab", path)
	}
	tk, err := OpenTokens(path, vocab)
	if err != nil {
		return nil, err
	}
	return &Source{Name: path, Tokens: tk, Tokenizer: tok, Vocab: vocab}, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Close releases the token mappings.
func (s *Source) Close() error { return s.Tokens.Close() }
