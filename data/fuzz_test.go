package data

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"testing"
)

// FuzzReadTokenizer: tokenizer.bin is user input. Whatever the bytes,
// ReadTokenizer returns a tokenizer or an error, never panics; a tokenizer it
// accepts writes back to bytes that read as the same tokenizer, and encodes
// any text to ids inside its vocabulary.
func FuzzReadTokenizer(f *testing.F) {
	fixture, err := os.ReadFile(tinyFixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture, "Once upon a time", 0)
	f.Add(fixture[:len(fixture)/2], "x", 0)
	f.Add(fixture, "\xff\xfe€ ünïcödé\x00", -1)
	bad := slices.Clone(fixture)
	binary.LittleEndian.PutUint32(bad[4+4:], 0xfffffff0) // first piece's length
	f.Add(bad, "a", 0)
	f.Fuzz(func(t *testing.T, b []byte, text string, vocab int) {
		tok, err := ReadTokenizer(bytes.NewReader(b), vocab%1024)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := tok.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		again, err := ReadTokenizer(&buf, tok.Vocab())
		if err != nil {
			t.Fatalf("an accepted tokenizer does not read back: %v", err)
		}
		if !slices.Equal(again.Pieces, tok.Pieces) || again.MaxLen != tok.MaxLen {
			t.Fatal("an accepted tokenizer reads back different")
		}
		ids := tok.Encode(text, true, true)
		if want := tok.encodeStrings(text, true, true); !slices.Equal(ids, want) {
			t.Fatalf("Encode(%q): fast path %v, string path %v", text, ids, want)
		}
		for _, id := range ids {
			if id < 0 || id >= tok.Vocab() {
				t.Fatalf("Encode(%q) gave id %d outside the vocabulary of %d", text, id, tok.Vocab())
			}
		}
		tok.DecodeAll(ids)
	})
}
