package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenSource(t *testing.T) {
	s, err := Open("", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Vocab != BuiltinVocab || s.Tokenizer == nil || s.Tokens.Len() == 0 {
		t.Fatalf("builtin source: %+v", s)
	}
	train, val := s.Tokens.Split(0)
	sm, err := NewSampler(train, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]uint16, 65)
	sm.Next(buf)
	if val.Len() == 0 {
		t.Fatal("no validation tokens")
	}

	dir := t.TempDir()
	// Shards with a tokenizer.bin beside them: the tokenizer is found and
	// not mistaken for a shard.
	tiny, _ := os.ReadFile(tinyFixture)
	os.WriteFile(filepath.Join(dir, "tokenizer.bin"), tiny, 0o644)
	writeTokens(t, filepath.Join(dir, "data00.bin"), []uint16{1, 265, 264, 269})
	s2, err := Open(dir, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Vocab != 270 || len(s2.Tokens.Shards) != 1 || s2.Tokenizer == nil {
		t.Fatalf("dir source: vocab %d, %d shards", s2.Vocab, len(s2.Tokens.Shards))
	}
	s2.Close()
	os.Remove(filepath.Join(dir, "tokenizer.bin"))
	if _, err := Open(dir, "", 0); err == nil || !strings.Contains(err.Error(), "--vocab") {
		t.Fatalf("unknown vocab: %v", err)
	}
	// Text with an explicit tokenizer.
	txt := filepath.Join(dir, "t.txt")
	os.WriteFile(txt, []byte("abcab"), 0o644)
	p := filepath.Join(dir, "tok.model")
	os.WriteFile(p, tiny, 0o644)
	s3, err := Open(txt, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if got := s3.Tokens.Shards[0].Tokens; len(got) == 0 || got[0] != BOS {
		t.Fatalf("text tokens %v", got)
	}
}

func TestOpenWithProgress(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.txt")
	os.WriteFile(p, []byte("Tom had a ball.\n"+DocSeparator+"\nLily ran.\n"), 0o644)
	var calls [][2]int64
	opt := Options{Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }}
	src, err := OpenWith(p, "", 0, opt)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	if len(calls) < 2 || calls[len(calls)-1][0] != calls[len(calls)-1][1] {
		t.Fatalf("progress %v", calls)
	}
	calls = nil
	src, err = OpenWith(p, "", 0, opt)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	if len(calls) != 0 {
		t.Fatalf("progress on a fresh cache: %v", calls)
	}
}
