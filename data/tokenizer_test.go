package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// tinyPieces is the vocabulary of testdata/tiny-tokenizer.bin: llama2.c's
// fixed first 259 pieces, then a handful of characters and merges whose
// scores make the hand-worked encodings below unambiguous.
func tinyPieces() ([]string, []float32) {
	p := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	for b := 0; b < 256; b++ {
		p = append(p, fmt.Sprintf("<0x%02X>", b))
	}
	s := make([]float32, len(p))
	extra := []struct {
		piece string
		score float32
	}{
		{" ", 0},     // 259
		{"a", 0},     // 260
		{"b", 0},     // 261
		{"c", 0},     // 262
		{"ab", -1},   // 263
		{"bc", -0.5}, // 264
		{" a", -2},   // 265
		{" ab", -3},  // 266
		{"abc", -4},  // 267
		{"é", 0},     // 268
		{"ca", -1},   // 269: ties with "ab"
	}
	for _, e := range extra {
		p = append(p, e.piece)
		s = append(s, e.score)
	}
	return p, s
}

// assembleTokenizer lays out tokenizer.bin by hand, field by field, from the
// published format, independently of Tokenizer.WriteTo.
func assembleTokenizer(pieces []string, scores []float32) []byte {
	maxLen := 0
	for _, p := range pieces {
		maxLen = max(maxLen, len(p))
	}
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(maxLen))
	for i, p := range pieces {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(scores[i]))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

const tinyFixture = "testdata/tiny-tokenizer.bin"

func TestTokenizerFixture(t *testing.T) {
	want := assembleTokenizer(tinyPieces())
	if os.Getenv("ANETOP_REGEN") != "" {
		os.WriteFile(tinyFixture, want, 0o644)
	}
	got, err := os.ReadFile(tinyFixture)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("fixture differs from the hand-assembled layout")
	}
	// The first record spelled out: max_token_length 6, score 0.0, len 5, "<unk>".
	head := []byte{6, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, '<', 'u', 'n', 'k', '>'}
	if !bytes.Equal(got[:len(head)], head) {
		t.Fatalf("header bytes % x", got[:len(head)])
	}
	tk, err := LoadTokenizer(tinyFixture, 270)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Vocab() != 270 || tk.MaxLen != 6 || tk.Pieces[BOS] != "\n<s>\n" || tk.Pieces[ByteBase+0x41] != "<0x41>" || tk.Scores[264] != -0.5 {
		t.Fatalf("loaded wrong: vocab %d maxlen %d", tk.Vocab(), tk.MaxLen)
	}
	var buf bytes.Buffer
	if _, err := tk.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), got) {
		t.Fatalf("WriteTo does not reproduce the fixture (%v)", err)
	}
	// Reading to EOF gives the same vocabulary.
	tk2, err := LoadTokenizer(tinyFixture, 0)
	if err != nil || tk2.Vocab() != 270 {
		t.Fatalf("vocab-less load: %v", err)
	}
	p := filepath.Join(t.TempDir(), "tok.bin")
	if err := WriteTokenizer(p, tk); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, got) {
		t.Fatal("WriteTokenizer output differs")
	}
}

func TestEncodeDecodeByHand(t *testing.T) {
	tk, err := LoadTokenizer(tinyFixture, 270)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text     string
		bos, eos bool
		want     []int
	}{
		// " a b c" -> "bc" (-0.5) beats "ab" (-1) and " a" (-2); then " a" beats "abc" (-4).
		{"abc", true, false, []int{1, 265, 264}},
		// " a b" -> "ab" (-1) then " ab" (-3).
		{"ab", false, false, []int{266}},
		{"aé", false, true, []int{265, 268, 2}},
		// No piece for "x": byte fallback 'x'+3.
		{"x", false, false, []int{259, 0x78 + 3}},
		// No piece for "ü": both UTF-8 bytes fall back.
		{"ü", false, false, []int{259, 0xC3 + 3, 0xBC + 3}},
		// Tie between "ca" and "ab" (-1 each): the leftmost pair wins.
		{"cab", false, false, []int{259, 269, 261}},
		{"", true, true, []int{1, 2}},
	}
	for _, c := range cases {
		got := tk.Encode(c.text, c.bos, c.eos)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if s := tk.DecodeAll([]int{1, 265, 264}); s != "abc" {
		t.Errorf("decode after BOS: %q", s)
	}
	if s := tk.DecodeAll([]int{259, 0xC3 + 3, 0xBC + 3}); s != " ü" {
		t.Errorf("byte pieces decode to %q", s)
	}
	if s := tk.Decode(BOS, 266); s != "ab" {
		t.Errorf("Decode(BOS, ' ab') = %q", s)
	}
	if s := tk.Decode(260, 266); s != " ab" {
		t.Errorf("Decode(a, ' ab') = %q", s)
	}
	if s := tk.Decode(0, 9999); s != "" {
		t.Errorf("out of range decodes to %q", s)
	}
}

func TestTokenizerBadFiles(t *testing.T) {
	good := assembleTokenizer(tinyPieces())
	dir := t.TempDir()
	cases := map[string][]byte{
		"short.bin":   good[:len(good)-3],
		"tiny.bin":    good[:2],
		"badlen.bin":  append(append([]byte{}, good[:8]...), 0xff, 0xff, 0xff, 0x7f),
		"toolong.bin": append(append([]byte{}, good...), 1, 2, 3),
	}
	for name, b := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		if _, err := LoadTokenizer(p, 270); err == nil {
			t.Errorf("%s accepted", name)
		} else if !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
	if _, err := LoadTokenizer(filepath.Join(dir, "nope.bin"), 0); err == nil {
		t.Error("missing file accepted")
	}
}
