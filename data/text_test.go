package data

import (
	"os"
	"path/filepath"
	"reflect"
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
