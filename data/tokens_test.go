package data

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTokens(t *testing.T, path string, toks []uint16) {
	t.Helper()
	b := make([]byte, 2*len(toks))
	for i, v := range toks {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func seqTokens(n int, mod uint16) []uint16 {
	s := make([]uint16, n)
	for i := range s {
		s[i] = uint16(i) % mod
	}
	return s
}

func TestOpenTokensFileAndDir(t *testing.T) {
	dir := t.TempDir()
	writeTokens(t, filepath.Join(dir, "data01.bin"), []uint16{5, 6, 7})
	writeTokens(t, filepath.Join(dir, "data00.bin"), []uint16{1, 2, 3, 4})
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	tk, err := OpenTokens(dir, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if len(tk.Shards) != 2 || tk.Len() != 7 {
		t.Fatalf("got %d shards, %d tokens", len(tk.Shards), tk.Len())
	}
	// Byte order: 0x0102 must read as 258, not 513.
	one := filepath.Join(dir, "one.bin")
	os.WriteFile(one, []byte{0x02, 0x01}, 0o644)
	tk2, err := OpenTokens(one, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tk2.Close()
	if tk2.Shards[0].Tokens[0] != 258 {
		t.Fatalf("little-endian read gave %d", tk2.Shards[0].Tokens[0])
	}
	if filepath.Base(tk.Shards[0].Path) != "data00.bin" || tk.Shards[0].Tokens[3] != 4 {
		t.Fatalf("shards not sorted: %+v", tk.Shards[0])
	}
}

func TestOpenTokensErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	odd := filepath.Join(dir, "odd.bin")
	os.WriteFile(odd, []byte{1, 0, 2}, 0o644)
	big := filepath.Join(dir, "big.bin")
	writeTokens(t, big, []uint16{1, 2, 600, 3})
	zero := filepath.Join(dir, "zero.bin")
	os.WriteFile(zero, nil, 0o644)
	cases := []struct {
		path string
		want []string
	}{
		{filepath.Join(dir, "missing.bin"), []string{"missing.bin", "does not exist", "built-in"}},
		{empty, []string{"empty", "no *.bin"}},
		{odd, []string{"odd.bin", "odd byte count"}},
		{big, []string{"big.bin", "600", "position 2", "512"}},
		{zero, []string{"zero.bin", "empty"}},
	}
	for _, c := range cases {
		_, err := OpenTokens(c.path, 512)
		if err == nil {
			t.Errorf("%s: no error", c.path)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.path, err, w)
			}
		}
	}
}

func TestShortFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "short.bin")
	writeTokens(t, p, seqTokens(8, 100))
	tk, err := OpenTokens(p, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	train, _ := tk.Split(0.5)
	_, err = NewSampler(train, 8, 1)
	if err == nil || !strings.Contains(err.Error(), "short.bin") || !strings.Contains(err.Error(), "seq+1") {
		t.Fatalf("got %v", err)
	}
}

func TestSplit(t *testing.T) {
	dir := t.TempDir()
	writeTokens(t, filepath.Join(dir, "a.bin"), seqTokens(100, 50))
	tk, err := OpenTokens(filepath.Join(dir, "a.bin"), 50)
	if err != nil {
		t.Fatal(err)
	}
	train, val := tk.Split(0.1)
	if train.Len() != 90 || val.Len() != 10 {
		t.Fatalf("single-file split %d/%d", train.Len(), val.Len())
	}
	tk.Close()
	writeTokens(t, filepath.Join(dir, "b.bin"), seqTokens(60, 50))
	tk, err = OpenTokens(dir, 50)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	train, val = tk.Split(0)
	if train.Len() != 60 || val.Len() != 100 {
		t.Fatalf("sharded split %d/%d: llama2.c holds out the first shard", train.Len(), val.Len())
	}
}

func TestSamplerEpochAndResume(t *testing.T) {
	toks := seqTokens(1+4*50, 60000) // exactly 50 windows of seq 4
	tk, err := FromTokens("mem", toks, 0)
	if err != nil {
		t.Fatal(err)
	}
	sp := &Split{Name: "train", segs: []segment{{"mem", tk.Shards[0].Tokens}}}
	s, err := NewSampler(sp, 4, 42)
	if err != nil {
		t.Fatal(err)
	}
	if s.Windows() != 50 {
		t.Fatalf("windows %d", s.Windows())
	}
	seen := map[uint16]bool{}
	buf := make([]uint16, 5)
	var straight [][]uint16
	for i := 0; i < 130; i++ {
		if err := s.Next(buf); err != nil {
			t.Fatal(err)
		}
		if buf[0]%4 != 0 || buf[4] != buf[0]+4 {
			t.Fatalf("window not aligned/contiguous: %v", buf)
		}
		if i < 50 {
			seen[buf[0]] = true
		}
		straight = append(straight, append([]uint16(nil), buf...))
	}
	if len(seen) != 50 {
		t.Fatalf("epoch 0 visited %d of 50 windows", len(seen))
	}
	// Resume at a point in epoch 1 from the serialised state.
	s2, _ := NewSampler(sp, 4, 42)
	for i := 0; i < 77; i++ {
		s2.Next(buf)
	}
	st := s2.State()
	s3, _ := NewSampler(sp, 4, 42)
	if err := s3.Restore(st); err != nil {
		t.Fatal(err)
	}
	for i := 77; i < 130; i++ {
		s3.Next(buf)
		for j := range buf {
			if buf[j] != straight[i][j] {
				t.Fatalf("resumed stream differs at %d: %v vs %v", i, buf, straight[i])
			}
		}
	}
	// Different seed, different order; different seq refuses the state.
	s4, _ := NewSampler(sp, 4, 43)
	s4.Next(buf)
	s5, _ := NewSampler(sp, 5, 42)
	if err := s5.Restore(st); err == nil {
		t.Fatal("restore with another seq accepted")
	}
	if err := s5.Restore("garbage"); err == nil {
		t.Fatal("garbage state accepted")
	}
	x, y := make([]int32, 8), make([]int32, 8)
	if err := s.Batch(x, y); err != nil {
		t.Fatal(err)
	}
	if y[0] != x[1] || y[4] != x[5] {
		t.Fatalf("targets not shifted: %v %v", x, y)
	}
}

func TestSplitUsed(t *testing.T) {
	dir := t.TempDir()
	// Train shard b: tokens 7, 3, 40, 3; validation shard a (first): 9.
	writeTokens(t, filepath.Join(dir, "a.bin"), []uint16{9, 9, 9})
	writeTokens(t, filepath.Join(dir, "b.bin"), []uint16{7, 3, 40, 3})
	tk, err := OpenTokens(dir, 50)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	train, val := tk.Split(0)
	if got := train.Used(50); !slices.Equal(got, []int32{3, 7, 40}) {
		t.Errorf("train uses %v, want [3 7 40]", got)
	}
	if got := val.Used(50); !slices.Equal(got, []int32{9}) {
		t.Errorf("validation uses %v, want [9]", got)
	}
}
