package checkpoint

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

var fixtureDir = filepath.Join("..", "model", "testdata", "torch-tiny")

// TestReadFixture reads the torch-tiny model.bin, written by llama2.c's
// export for PyTorch, and compares every tensor with the float64 copy
// PyTorch wrote to grads.ltns.
func TestReadFixture(t *testing.T) {
	p, err := ReadLlama2C(filepath.Join(fixtureDir, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want := model.Config{Dim: 32, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 8, Seq: 16, Vocab: 64,
		RopeTheta: 10000, NormEps: 1e-5, Tied: true}
	if p.Config != want {
		t.Fatalf("config %+v, want %+v", p.Config, want)
	}
	ts, err := ref.ReadLTNS(filepath.Join(fixtureDir, "grads.ltns"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range p.Tensors {
		w := ts["param/"+tn.Name]
		if len(w.F64) != tn.Size {
			t.Fatalf("%s: %d elements in the fixture, %d read", tn.Name, len(w.F64), tn.Size)
		}
		for i, x := range p.Data[tn.Offset : tn.Offset+tn.Size] {
			if float64(x) != w.F64[i] {
				t.Fatalf("%s[%d] = %v, PyTorch has %v", tn.Name, i, x, w.F64[i])
			}
		}
	}
}

// TestRoundTrip writes the fixture back: the weights are byte-identical and
// the RoPE tables agree with export.py's to float32 rounding; an untied GQA
// model survives write and read too.
func TestRoundTrip(t *testing.T) {
	path := filepath.Join(fixtureDir, "model.bin")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ReadLlama2C(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "model.bin")
	if err := WriteLlama2C(out, p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(orig) {
		t.Fatalf("wrote %d bytes, the original has %d", len(got), len(orig))
	}
	weights := 28 + 4*p.Config.NumParams()
	if !bytes.Equal(got[:weights], orig[:weights]) {
		t.Error("the header or weights differ from the original")
	}
	for i := weights; i < len(got); i += 4 {
		a := math.Float32frombits(binary.LittleEndian.Uint32(got[i:]))
		b := math.Float32frombits(binary.LittleEndian.Uint32(orig[i:]))
		if math.Abs(float64(a-b)) > 1e-5 {
			t.Fatalf("RoPE table entry %d: %v, export.py wrote %v", (i-weights)/4, a, b)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*tmp*"))
	if len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}

	c := model.Config{Dim: 24, Hidden: 40, Layers: 3, Heads: 6, KVHeads: 2, Seq: 8, Vocab: 19}
	u, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	u.Init(1)
	var buf bytes.Buffer
	if err := EncodeLlama2C(&buf, u); err != nil {
		t.Fatal(err)
	}
	if v := int32(binary.LittleEndian.Uint32(buf.Bytes()[20:])); v != -19 {
		t.Errorf("untied vocab_size written as %d, want -19", v)
	}
	back, err := DecodeLlama2C(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if back.Config != u.Config {
		t.Fatalf("config %+v, wrote %+v", back.Config, u.Config)
	}
	for i := range u.Data {
		if back.Data[i] != u.Data[i] {
			t.Fatalf("weight %d: %v, wrote %v", i, back.Data[i], u.Data[i])
		}
	}
	if &back.Classifier()[0] == &back.Embed()[0] || back.Classifier()[0] != u.Classifier()[0] {
		t.Error("untied classifier lost")
	}
}

func header(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// TestBadFiles checks that malformed files are refused with errors that say
// what is wrong and name the file.
func TestBadFiles(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(fixtureDir, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(off int, v float32) []byte {
		b := bytes.Clone(orig)
		binary.LittleEndian.PutUint32(b[off:], math.Float32bits(v))
		return b
	}
	c := model.Config{Dim: 32, Hidden: 64, Layers: 2, Heads: 4, Seq: 16, Vocab: 64, Tied: true}.Resolved()
	tables := 28 + 4*c.NumParams()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than llama2.c's 28-byte header"},
		{"truncated", orig[:len(orig)-4], "truncated"},
		{"extra", append(bytes.Clone(orig), 0, 0, 0, 0), "extra bytes"},
		{"v1 zero dims", append(header(0x616b3432, 1), make([]byte, 300)...), "dim is 0; it is not a llama2.c version-1"},
		{"zero dim", append(header(0, 64, 2, 4, 4, 64, 16), make([]byte, 8)...), "dim is 0"},
		{"negative heads", append(header(32, 64, 2, -4, 4, 64, 16), make([]byte, 8)...), "n_heads is -4"},
		{"heads", append(header(32, 64, 2, 5, 5, 64, 16), make([]byte, 8)...), "n_heads (5) does not divide dim (32)"},
		{"kv heads", append(header(32, 64, 2, 4, 3, 64, 16), make([]byte, 8)...), "KVHeads (3) must divide Heads (4)"},
		{"huge", append(header(1<<24, 1<<24, 1<<20, 1<<10, 1<<10, 1<<24, 1<<20), make([]byte, 8)...), "parameters"},
		{"nan", corrupt(28+4*100, float32(math.NaN())), "tok_embeddings.weight element 100 is NaN"},
		{"inf", corrupt(28+4*c.Offset(model.W2, 1), float32(math.Inf(1))), "layers.1.feed_forward.w2.weight element 0 is +Inf"},
		{"rope", corrupt(tables+4*3, 7), "RoPE table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusesLlama2C(t, tc.data, tc.want)
		})
	}
	if _, err := ReadLlama2C(filepath.Join(t.TempDir(), "missing.bin")); err == nil || !strings.Contains(err.Error(), "missing.bin") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ReadLlama2C(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

// TestWriteRefuses checks configs llama2.c's format cannot describe.
func TestWriteRefuses(t *testing.T) {
	base := model.Config{Dim: 32, Hidden: 64, Layers: 1, Heads: 4, Seq: 16, Vocab: 10, Tied: true}
	for _, tc := range []struct {
		mod  func(*model.Config)
		want string
	}{
		{func(c *model.Config) { c.HeadDim = 16 }, "head-width"},
		{func(c *model.Config) { c.RopeTheta = 1e6 }, "RoPE-base"},
		{func(c *model.Config) { c.NormEps = 1e-6 }, "norm-epsilon"},
	} {
		c := base
		tc.mod(&c)
		p, err := model.NewParams(c)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "m.bin")
		err = WriteLlama2C(path, p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error about the %s", c, err, tc.want)
		}
		if _, serr := os.Stat(path); serr == nil {
			t.Errorf("%+v: a file was written", c)
		}
	}
}

// FuzzDecodeLlama2C: no input may panic the reader or make it allocate
// beyond the input's size.
func FuzzDecodeLlama2C(f *testing.F) {
	orig, err := os.ReadFile(filepath.Join(fixtureDir, "model.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(orig[:200])
	f.Add(header(8, 16, 1, 2, 1, -5, 2))
	small := model.Config{Dim: 4, Hidden: 4, Layers: 1, Heads: 2, Seq: 2, Vocab: 3}
	p, _ := model.NewParams(small)
	p.Init(rand.Uint64())
	var buf bytes.Buffer
	if err := EncodeLlama2C(&buf, p); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeLlama2C(bytes.NewReader(b), int64(len(b)))
		if err == nil && 28+4*len(p.Data) > len(b) {
			t.Fatalf("decoded %d weights from %d bytes", len(p.Data), len(b))
		}
	})
}
