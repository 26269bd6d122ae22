package model_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/model"
)

// TestStaticKernelsMatchDynamic fills each kernel's input with random
// activations and a layer's weights, and checks that the static kernel built
// from those weights gives bit-for-bit the dynamic kernel's output — and
// that it reads its weights from its constants, not from the input: with
// the input's weight blocks zeroed, the static output stays the same while
// the dynamic one changes.
func TestStaticKernelsMatchDynamic(t *testing.T) {
	for _, tc := range kernelConfigs {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.Resolved()
			r := newRig(t, c)
			l := r.l
			rng := rand.New(rand.NewPCG(3, 4))
			p, err := model.NewParams(c)
			if err != nil {
				t.Fatal(err)
			}
			p.Init(5)
			w := p.Layer(0)
			scratch := make([]float32, l.ScratchSize())
			ain, fin := r.in[&l.Attn.Packing], r.in[&l.FFN.Packing]
			l.StageAttnWeights(ain, w, scratch)
			l.StageFFNWeights(fin, w, scratch)
			// Activations of order one everywhere else.
			for _, pk := range []*model.Packing{&l.Attn.Packing, &l.FFN.Packing} {
				for _, b := range pk.Blocks {
					if b.Weight == model.NoWeight {
						x, _ := randn(rng, b.Size(), 0.5)
						b.Write(r.in[pk], x)
					}
				}
			}
			for _, id := range model.Kernels {
				prog, wts, err := l.BuildStatic(id, w)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(prog.Main().BlobPaths()); got < 1 {
					t.Fatalf("%v: the static kernel names %d weight files", id, got)
				}
				// Through the printed text, as a device compiles it.
				k, err := r.dev.Compile(id.String()+"_static", mustReparse(t, prog), wts)
				if err != nil {
					t.Fatalf("compile static %v: %v", id, err)
				}
				in := r.in[l.Input(id)]
				out, err := k.NewSurface(ane.Output, 0)
				if err != nil {
					t.Fatal(err)
				}
				evalStatic := func() []uint16 {
					if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err != nil {
						t.Fatal(err)
					}
					return bitsOf(out)
				}
				r.eval(t, id)
				dyn := bitsOf(r.out[id])
				st := evalStatic()
				if i := firstDiff(st, dyn); i >= 0 {
					t.Fatalf("%v: static output differs from dynamic at element %d of %d", id, i, len(dyn))
				}

				// Zero the input's weight blocks: only the dynamic kernel notices.
				saved := slices.Clone(in.Data())
				for _, b := range l.Input(id).Blocks {
					if b.Weight != model.NoWeight {
						b.Write(in, make([]float32, b.Size()))
					}
				}
				r.eval(t, id)
				if firstDiff(bitsOf(r.out[id]), dyn) < 0 {
					t.Fatalf("%v: zeroing the weights did not change the dynamic output; the check is void", id)
				}
				if i := firstDiff(evalStatic(), dyn); i >= 0 {
					t.Fatalf("%v: the static kernel read the input's weight blocks (element %d changed)", id, i)
				}
				copy(in.Data(), saved)
			}
		})
	}
}

func mustReparse(t *testing.T, p *mil.Program) *mil.Program {
	t.Helper()
	q, err := mil.Parse("static.mil", mil.Print(p))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func bitsOf(s *ane.Surface) []uint16 {
	out := make([]uint16, 0, s.Rows()*s.Cols())
	for r := range s.Rows() {
		for _, b := range s.Row(r)[:s.Cols()] {
			out = append(out, uint16(b))
		}
	}
	return out
}

// firstDiff is the first index where the fp16 bits of a and b differ, or -1.
func firstDiff(a, b []uint16) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
