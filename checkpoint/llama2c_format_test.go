package checkpoint

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anetop/anetop/model"
)

var updateFixtures = flag.Bool("update", false, "rewrite the hand-assembled llama2.c fixtures in testdata")

// fixtureShape is the shape of the hand-assembled model.bin fixtures: GQA
// (4 query heads, 2 key/value heads), head size 2, so every tensor is small
// and distinct.
type fixtureShape struct {
	dim, hidden, layers, heads, kvHeads, vocab, seq int
}

var fixShape = fixtureShape{dim: 8, hidden: 12, layers: 2, heads: 4, kvHeads: 2, vocab: 6, seq: 4}

// fixtureValue is the value stored at element i of the tensor with the
// given llama2.c name: distinct for every (tensor, element) and exact in
// float32, so a value in the wrong place is caught.
func fixtureValue(name string, i int) float32 {
	id := -1
	for j, a := range fixtureLayout(fixShape, 0, false) { // every name once
		if a.name == name {
			id = j
		}
	}
	v := float32(id+1) + float32(i)/4096
	if i%3 == 1 {
		v = -v
	}
	return v
}

// fixtureArray is one float array of the file, in file order.
type fixtureArray struct {
	name string // llama2.c name; "" for the RoPE tables
	n    int
}

// fixtureLayout lists the arrays of a model.bin of the given version,
// straight from the published layout (docs: llama2c-formats.md), without
// the package's tensor order.
func fixtureLayout(s fixtureShape, version int, tied bool) []fixtureArray {
	hs := s.dim / s.heads
	kv := s.kvHeads * hs
	var a []fixtureArray
	perLayer := func(field string, n int) {
		for l := range s.layers {
			a = append(a, fixtureArray{fmt.Sprintf("layers.%d.%s.weight", l, field), n})
		}
	}
	emb := fixtureArray{"tok_embeddings.weight", s.vocab * s.dim}
	if version == 0 {
		a = append(a, emb)
		perLayer("attention_norm", s.dim)
	} else {
		perLayer("attention_norm", s.dim)
		perLayer("ffn_norm", s.dim)
		a = append(a, fixtureArray{"norm.weight", s.dim}, emb)
	}
	perLayer("attention.wq", s.dim*s.dim)
	perLayer("attention.wk", kv*s.dim)
	perLayer("attention.wv", kv*s.dim)
	perLayer("attention.wo", s.dim*s.dim)
	if version == 0 {
		perLayer("ffn_norm", s.dim)
	}
	perLayer("feed_forward.w1", s.hidden*s.dim)
	perLayer("feed_forward.w2", s.dim*s.hidden)
	perLayer("feed_forward.w3", s.hidden*s.dim)
	if version == 0 {
		a = append(a, fixtureArray{"norm.weight", s.dim},
			fixtureArray{"", s.seq * hs / 2}, fixtureArray{"", s.seq * hs / 2})
	}
	if !tied {
		a = append(a, fixtureArray{"output.weight", s.vocab * s.dim})
	}
	return a
}

// assembleFixture builds a model.bin byte by byte following the published
// layout: a test-only encoder, independent of EncodeLlama2CVersion.
func assembleFixture(s fixtureShape, version int, tied bool) []byte {
	var b bytes.Buffer
	i32 := func(v int) { binary.Write(&b, binary.LittleEndian, int32(v)) }
	vocab := s.vocab
	if version == 0 {
		if !tied {
			vocab = -vocab
		}
		for _, v := range []int{s.dim, s.hidden, s.layers, s.heads, s.kvHeads, vocab, s.seq} {
			i32(v)
		}
	} else {
		b.Write([]byte("24ka")) // 0x616b3432 little-endian
		i32(version)
		for _, v := range []int{s.dim, s.hidden, s.layers, s.heads, s.kvHeads, vocab, s.seq} {
			i32(v)
		}
		if tied {
			b.WriteByte(1)
		} else {
			b.WriteByte(0)
		}
		b.Write(make([]byte, 256-b.Len()))
	}
	table := 0
	for _, a := range fixtureLayout(s, version, tied) {
		for i := range a.n {
			v := float32(0.5) // RoPE tables: any value in [-1, 1]
			if a.name != "" {
				v = fixtureValue(a.name, i)
			} else if table == 1 {
				v = -0.25
			}
			binary.Write(&b, binary.LittleEndian, v)
		}
		if a.name == "" {
			table++
		}
	}
	return b.Bytes()
}

var llama2cFixtures = []struct {
	file    string
	version int
	tied    bool
}{
	{"llama2c-v0-tied.bin", 0, true},
	{"llama2c-v0-untied.bin", 0, false},
	{"llama2c-v1-tied.bin", 1, true},
	{"llama2c-v1-untied.bin", 1, false},
}

// TestLlama2CFixtures reads the hand-assembled fixtures in testdata (version
// 0 and 1, tied and untied, GQA) and checks the config and every value.
// The committed files must equal what the test's own encoder assembles from
// the published layout (go test -run Fixtures -update rewrites them).
func TestLlama2CFixtures(t *testing.T) {
	s := fixShape
	for _, fx := range llama2cFixtures {
		t.Run(fx.file, func(t *testing.T) {
			path := filepath.Join("testdata", fx.file)
			want := assembleFixture(s, fx.version, fx.tied)
			if *updateFixtures {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s is not what the layout gives (run with -update if the layout changed)", path)
			}
			// The size formula of the research notes, independently.
			hs := s.dim / s.heads
			kv := s.kvHeads * hs
			floats := s.vocab*s.dim + s.layers*(2*s.dim+2*s.dim*s.dim+2*s.dim*kv+3*s.dim*s.hidden) + s.dim
			if !fx.tied {
				floats += s.vocab * s.dim
			}
			hdr := 256
			if fx.version == 0 {
				hdr = 28
				floats += s.seq * hs
			}
			if len(got) != hdr+4*floats {
				t.Fatalf("fixture is %d bytes, the layout says %d", len(got), hdr+4*floats)
			}

			p, err := ReadLlama2C(path)
			if err != nil {
				t.Fatal(err)
			}
			wantCfg := model.Config{Dim: 8, Hidden: 12, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 2, Seq: 4, Vocab: 6,
				RopeTheta: 10000, NormEps: 1e-5, Tied: fx.tied}
			if p.Config != wantCfg {
				t.Fatalf("config %+v, want %+v", p.Config, wantCfg)
			}
			checked := 0
			for _, a := range fixtureLayout(s, fx.version, fx.tied) {
				if a.name == "" {
					continue
				}
				d := p.Tensor(a.name)
				if len(d) != a.n {
					t.Fatalf("%s: %d elements, want %d", a.name, len(d), a.n)
				}
				for i, x := range d {
					if x != fixtureValue(a.name, i) {
						t.Fatalf("%s[%d] = %v, want %v", a.name, i, x, fixtureValue(a.name, i))
					}
				}
				checked += a.n
			}
			if checked != len(p.Data) {
				t.Fatalf("checked %d values of %d", checked, len(p.Data))
			}
			cls := p.Classifier()
			if fx.tied != (&cls[0] == &p.Embed()[0]) {
				t.Errorf("tied %v but the classifier sharing is %v", fx.tied, !fx.tied)
			}

			// Writing the same version back gives the same bytes, except
			// version 0's RoPE tables, which the writer computes.
			var buf bytes.Buffer
			if err := EncodeLlama2CVersion(&buf, p, fx.version); err != nil {
				t.Fatal(err)
			}
			if buf.Len() != len(got) {
				t.Fatalf("re-encoded to %d bytes, fixture has %d", buf.Len(), len(got))
			}
			if fx.version == 1 {
				if !bytes.Equal(buf.Bytes(), got) {
					t.Error("version 1 re-encoding differs from the fixture")
				}
				return
			}
			ropeAt := 28 + 4*(len(p.Data)-map[bool]int{true: 0, false: s.vocab * s.dim}[fx.tied])
			ropeEnd := ropeAt + 4*s.seq*hs
			if !bytes.Equal(buf.Bytes()[:ropeAt], got[:ropeAt]) || !bytes.Equal(buf.Bytes()[ropeEnd:], got[ropeEnd:]) {
				t.Error("version 0 re-encoding differs from the fixture outside the RoPE tables")
			}
		})
	}
}

// randomParams returns a model of config c with distinct random weights.
func randomParams(t testing.TB, c model.Config, seed uint64) *model.Params {
	t.Helper()
	p, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(seed)
	for i := range p.Data { // norms too, so no two tensors are alike
		p.Data[i] += float32(i%7) * 1e-3
	}
	return p
}

// TestLlama2CVersionRoundTrip writes and reads back versions 0 and 1, tied
// and untied, GQA: config and every weight bit-exact, through files.
func TestLlama2CVersionRoundTrip(t *testing.T) {
	for _, tied := range []bool{true, false} {
		for _, version := range []int{0, 1} {
			t.Run(fmt.Sprintf("v%d tied=%v", version, tied), func(t *testing.T) {
				c := model.Config{Dim: 24, Hidden: 40, Layers: 3, Heads: 6, KVHeads: 2, Seq: 8, Vocab: 19, Tied: tied}
				p := randomParams(t, c, uint64(7+version))
				path := filepath.Join(t.TempDir(), "model.bin")
				if err := WriteLlama2CVersion(path, p, version); err != nil {
					t.Fatal(err)
				}
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				isV1 := bytes.HasPrefix(raw, []byte("24ka"))
				if isV1 != (version == 1) {
					t.Fatalf("version %d file starts with %q", version, raw[:4])
				}
				back, err := ReadLlama2C(path)
				if err != nil {
					t.Fatal(err)
				}
				sameParams(t, back, p)
				if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
					t.Errorf("file mode: %v %v", fi.Mode(), err)
				}
				if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(m) > 0 {
					t.Errorf("temporary files left: %v", m)
				}
			})
		}
	}
	p := randomParams(t, model.Config{Dim: 8, Hidden: 8, Layers: 1, Heads: 2, Seq: 2, Vocab: 3}, 1)
	if err := WriteLlama2CVersion(filepath.Join(t.TempDir(), "m.bin"), p, 2); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("version 2 write: %v", err)
	}
}

// TestLlama2CBadV1 checks malformed and unsupported magic-headed files.
func TestLlama2CBadV1(t *testing.T) {
	good := assembleFixture(fixShape, 1, false)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	put := func(b []byte, off int, v uint32) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	nanAt := 256 + 4*(2*fixShape.layers*fixShape.dim+fixShape.dim+5) // tok_embeddings element 5
	v2 := append(header(0x616b3432, 2, 8, 12, 2, 4, 2, 6, 4), make([]byte, 256)...)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"v2", v2, "version-2 export (int8-quantized"},
		{"v2 says how", v2, "export.py --version 1"},
		{"v3", mod(func(b []byte) []byte { return put(b, 4, 3) }), "says it is version 3"},
		{"short header", good[:100], "shorter than the 256-byte header"},
		{"tiny", good[:12], "shorter than the 256-byte header"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"extra", append(bytes.Clone(good), 1, 2, 3, 4), "extra bytes"},
		{"negative n_kv_heads", mod(func(b []byte) []byte { return put(b, 24, uint32(0xfffffffe)) }), "n_kv_heads is -2"},
		{"flag", mod(func(b []byte) []byte { b[36] = 2; return b }), "shared_classifier byte is 2"},
		{"flag says tied", mod(func(b []byte) []byte { b[36] = 1; return b }), "extra bytes"},
		{"nan", mod(func(b []byte) []byte { return put(b, nanAt, math.Float32bits(float32(math.NaN()))) }), "tok_embeddings.weight element 5 is NaN"},
		{"heads", mod(func(b []byte) []byte { return put(b, 20, 3) }), "n_heads (3) does not divide dim (8)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusesLlama2C(t, tc.data, tc.want)
		})
	}
}

// TestLlama2CV1NegativeVocab: export.py negates vocab_size in place when
// it writes an untied model as version 0, so a version-1 export made after
// it in the same process has a negative vocab_size; the shared_classifier
// byte still says what the file holds, and the file reads the same.
func TestLlama2CV1NegativeVocab(t *testing.T) {
	good := assembleFixture(fixShape, 1, false)
	neg := bytes.Clone(good)
	binary.LittleEndian.PutUint32(neg[28:], uint32(0xfffffffa)) // -6
	a, err := DecodeLlama2C(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeLlama2C(bytes.NewReader(neg), int64(len(neg)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Config != b.Config || b.Config.Vocab != 6 || b.Config.Tied || !slices.Equal(a.Data, b.Data) {
		t.Errorf("negative vocab read as %+v", b.Config)
	}
}

// FuzzDecodeLlama2CV1: no version-1 input may panic the reader or make it
// allocate beyond the input's size.
func FuzzDecodeLlama2CV1(f *testing.F) {
	f.Add(assembleFixture(fixShape, 1, true))
	f.Add(assembleFixture(fixShape, 1, false)[:300])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeLlama2C(bytes.NewReader(b), int64(len(b)))
		if err == nil && 28+4*len(p.Data) > len(b) {
			t.Fatalf("decoded %d weights from %d bytes", len(p.Data), len(b))
		}
	})
}
