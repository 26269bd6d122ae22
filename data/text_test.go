package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTokenizeTextFile(t *testing.T) {
	c, err := Builtin(0)
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Tokenizer
	dir := t.TempDir()
	p := filepath.Join(dir, "stories.txt")
	text := "Tom had a red ball.\n\n<|endoftext|>\r\n  Lily was happy.\n<|endoftext|>\n\n"
	os.WriteFile(p, []byte(text), 0o644)
	bin, err := TokenizeTextFile(p, tok)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := OpenTokens(bin, tok.Vocab())
	if err != nil {
		t.Fatal(err)
	}
	var want []uint16
	for _, d := range []string{"Tom had a red ball.", "Lily was happy."} {
		for _, id := range tok.Encode(d, true, false) {
			want = append(want, uint16(id))
		}
	}
	if !reflect.DeepEqual(tk.Shards[0].Tokens, want) {
		t.Fatalf("cached tokens %v, want %v", tk.Shards[0].Tokens, want)
	}
	tk.Close()
	// Reused while fresh: mark the cache so a rewrite would be visible.
	os.WriteFile(bin, []byte{1, 0}, 0o644)
	if _, err := TokenizeTextFile(p, tok); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(bin); len(b) != 2 {
		t.Fatal("fresh cache was rebuilt")
	}
	// Stale once the text is newer.
	future := time.Now().Add(time.Hour)
	os.Chtimes(p, future, future)
	if _, err := TokenizeTextFile(p, tok); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(bin); len(b) != 2*len(want) {
		t.Fatal("stale cache was reused")
	}
	// Another tokenizer gets its own cache file.
	other, _ := Builtin(1024)
	if CachePath(p, other.Tokenizer) == bin {
		t.Fatal("different tokenizers share a cache path")
	}
	if _, err := TokenizeTextFile(filepath.Join(dir, "none.txt"), tok); err == nil {
		t.Fatal("missing text accepted")
	}
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte("\n<|endoftext|>\n"), 0o644)
	if _, err := TokenizeTextFile(empty, tok); err == nil {
		t.Fatal("empty text accepted")
	}
	// No stray temp files.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name()[0] == '.' {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
}

// oldTokenizeBytes is what TokenizeTextFile wrote before it streamed: the
// whole text split by splitDocs, each document encoded with the string-keyed
// merge, as little-endian uint16.
func oldTokenizeBytes(tk *Tokenizer, text string) []byte {
	var b []byte
	for _, d := range splitDocs(text) {
		for _, id := range tk.encodeStrings(d, true, false) {
			b = binary.LittleEndian.AppendUint16(b, uint16(id))
		}
	}
	return b
}

func TestTokenizeTextFileMatchesWholeText(t *testing.T) {
	c, err := Builtin(0)
	if err != nil {
		t.Fatal(err)
	}
	tiny, err := LoadTokenizer(tinyFixture, 0)
	if err != nil {
		t.Fatal(err)
	}
	stories := GenerateStories(BuiltinSeed, BuiltinStories)
	n := len(stories)
	if testing.Short() {
		n = 500
	}
	joined := strings.Join(stories[:n], "\n"+DocSeparator+"\n") + "\n" + DocSeparator + "\n"
	few := strings.Join(stories[:40], "\n"+DocSeparator+"\n")
	long := strings.Repeat("Tom ran and ran. ", 20000) // 340 KB, one line
	// A "\r\n" cut between two reads: the line starts the file, so the
	// first ReadSlice ends at the buffer's last byte, the '\r'.
	crlfCut := strings.Repeat("x", textReadBufSize-1) + "\r\n" + DocSeparator + "\r\nnext"
	cases := map[string]string{
		"stories":          joined,
		"crlf":             strings.ReplaceAll(few, "\n", "\r\n"),
		"cr cr lf":         strings.ReplaceAll(few, "\n", "\r\r\n") + "\r",
		"spaced sep":       strings.ReplaceAll(few, "\n"+DocSeparator+"\n", "\n  \t"+DocSeparator+" \u00a0\r\n"),
		"not a sep":        "a\n" + DocSeparator + "x\nb\n x" + DocSeparator + "\n" + DocSeparator + DocSeparator + "\n",
		"empty docs":       "\n" + DocSeparator + "\n\n \t\n" + DocSeparator + "\n" + DocSeparator + "\nLily.\n" + DocSeparator + "\n   \n",
		"no separator":     strings.Join(stories[:40], "\n\n"),
		"no final eol":     few + "\n" + DocSeparator + "\nThe end.",
		"final sep no eol": few + "\n" + DocSeparator,
		"long line":        "Once.\n" + DocSeparator + "\n" + long + "\n" + DocSeparator + "\n" + long,
		"long sep line":    "a\n" + strings.Repeat(" ", 300000) + DocSeparator + strings.Repeat("\t", 5000) + "\nb",
		"crlf cut":         crlfCut,
		"invalid utf8":     "\xff\xfe a\x80b\n" + DocSeparator + "\n\xe2\x82 \u0085" + DocSeparator + "\u0085\nc",
	}
	dir := t.TempDir()
	for name, text := range cases {
		for _, tk := range []*Tokenizer{c.Tokenizer, tiny} {
			if name == "stories" && tk == tiny {
				continue
			}
			want := oldTokenizeBytes(tk, text)
			for _, workers := range []int{1, 3} {
				p := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.txt", strings.ReplaceAll(name, " ", "_"), tk.Vocab(), workers))
				if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				bin, err := TokenizeTextFileWith(p, tk, Options{Workers: workers})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, _ := os.ReadFile(bin)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s (vocab %d, %d workers): %d token bytes, want %d (the whole-text encoding)", name, tk.Vocab(), workers, len(got), len(want))
				}
			}
		}
	}
}

func TestTokenizeTextFileProgress(t *testing.T) {
	c, err := Builtin(0)
	if err != nil {
		t.Fatal(err)
	}
	stories := GenerateStories(3, 3000)
	for _, tc := range []struct{ name, text string }{
		{"stories", strings.Join(stories, "\n"+DocSeparator+"\n")},
		// One document is one job: its only report is at the end of the
		// stream, before the cache is in place.
		{"one document", strings.Join(stories, "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "s.txt")
			os.WriteFile(p, []byte(tc.text), 0o644)
			type call struct{ done, total int64 }
			var calls []call
			cached := false
			opt := Options{Progress: func(done, total int64) {
				calls = append(calls, call{done, total})
				if done == total {
					_, err := os.Stat(CachePath(p, c.Tokenizer))
					cached = err == nil
				}
			}}
			start := time.Now()
			if _, err := TokenizeTextFileWith(p, c.Tokenizer, opt); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			size := int64(len(tc.text))
			if len(calls) < 2 || calls[0] != (call{0, size}) || calls[len(calls)-1] != (call{size, size}) {
				t.Fatalf("progress calls %v: want first (0, %d) and last (%d, %d)", calls, size, size, size)
			}
			for i := 1; i < len(calls); i++ {
				if calls[i].done < calls[i-1].done || calls[i].total != size || calls[i].done > size {
					t.Fatalf("progress not monotone or out of range: %v", calls)
				}
				if calls[i].done == size && i != len(calls)-1 {
					t.Fatalf("done == total before the last call: %v", calls)
				}
			}
			if !cached {
				t.Error("the call with done == total came before the cache was in place")
			}
			if max := 3 + int(elapsed/progressEvery); len(calls) > max {
				t.Fatalf("%d progress calls in %v", len(calls), elapsed)
			}
			calls = nil
			if _, err := TokenizeTextFileWith(p, c.Tokenizer, opt); err != nil {
				t.Fatal(err)
			}
			if len(calls) != 0 {
				t.Fatalf("progress called when the cache was reused: %v", calls)
			}
		})
	}
}

func TestTokenizeTextFileErrors(t *testing.T) {
	c, err := Builtin(0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	os.WriteFile(p, []byte("hello\n"), 0o644)
	pieces := make([]string, 1<<16+1)
	for i := range pieces {
		pieces[i] = fmt.Sprintf("<p%d>", i)
	}
	big, err := NewTokenizer(pieces, make([]float32, len(pieces)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TokenizeTextFile(p, big); err == nil || !strings.Contains(err.Error(), "does not fit uint16") {
		t.Fatalf("vocab over 65536: %v", err)
	}
	// A directory stats and opens but does not read.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	if _, err := TokenizeTextFile(sub, c.Tokenizer); err == nil || !strings.HasPrefix(err.Error(), "text file: ") {
		t.Fatalf("unreadable text: %v", err)
	}
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	var calls int
	_, err = TokenizeTextFileWith(empty, c.Tokenizer, Options{Progress: func(int64, int64) { calls++ }})
	if err == nil || err.Error() != "text file "+empty+" holds no text: give a file with some" {
		t.Fatalf("empty file: %v", err)
	}
	if calls != 1 {
		t.Fatalf("progress called %d times for a failed tokenization, want once (the start)", calls)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name()[0] == '.' {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
}

// TestTextFileRefusesBinary: a token file not named .bin is refused as
// text, naming the fix, and nothing is cached; a text cache has the mode
// any file the user creates gets (not os.CreateTemp's private 0600).
func TestTextFileRefusesBinary(t *testing.T) {
	dir := t.TempDir()
	c, err := Builtin(BuiltinVocab)
	if err != nil {
		t.Fatal(err)
	}
	bin := make([]byte, 2*1000)
	for i, v := range c.Tokens[:1000] {
		bin[2*i], bin[2*i+1] = byte(v), byte(v>>8)
	}
	path := filepath.Join(dir, "tokens.dat")
	if err := os.WriteFile(path, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := TokenizeTextFile(path, c.Tokenizer); err == nil || !strings.Contains(err.Error(), "does not look like text") || !strings.Contains(err.Error(), ".bin") {
		t.Errorf("binary file: %v; want it refused as not text, naming .bin", err)
	}
	if _, err := os.Stat(CachePath(path, c.Tokenizer)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cache was written for a refused file: %v", err)
	}
	text := filepath.Join(dir, "s.txt")
	if err := os.WriteFile(text, []byte("Once upon a time.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := TokenizeTextFile(text, c.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := os.Create(filepath.Join(dir, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	plain.Close()
	pi, err := os.Stat(plain.Name())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != pi.Mode().Perm() {
		t.Errorf("cache %s: mode %v; want %v, a plain create's", out, fi.Mode().Perm(), pi.Mode().Perm())
	}
}
