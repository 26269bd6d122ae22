package model_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

// kernelConfigs cover the layouts' cases: MHA with Hidden > Dim (raw and
// transposed weights, FFN activations stacked), GQA with HeadDim ≠ Dim/Heads
// and QDim > Dim and Hidden < Dim (every weight orientation flipped), and
// GQA where k/v and wk/wv stack in one column strip (Qwen3's layout).
var kernelConfigs = []struct {
	name string
	c    model.Config
}{
	{"mha", model.Config{Dim: 64, Hidden: 176, Layers: 1, Heads: 4, Seq: 64, Vocab: 32, Tied: true}},
	{"gqa-wide-q", model.Config{Dim: 64, Hidden: 48, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 24, Seq: 32, Vocab: 32, Tied: true}},
	{"gqa-stacked", model.Config{Dim: 32, Hidden: 96, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 16, Seq: 32, Vocab: 32, Tied: true, RopeTheta: 1e6}},
}

// relTol is the per-tensor tolerance of a kernel against the float64
// reference, as relative L2 error ‖got − want‖/‖want‖. fp16 keeps 11
// significant bits (unit roundoff u = 2⁻¹¹ ≈ 4.9e-4); every op rounds its
// result once, and the inputs, weights and RoPE tables are rounded too. A
// tensor that passes through k roundings with errors that do not correlate
// carries about √k·u/√3 of relative L2 error; the longest chain (attn_bwd's
// dq: dattn, scores, softmax, dP, the centring subtraction, dS, dq, scale,
// inverse RoPE, the projection) is about 15 roundings, ≈ 1.1e-3, and the
// centring dP − rowsum(P⊙dP) cancels, which can amplify it a few times.
// 1e-2 leaves that margin while any real bug (a wrong head, a transposed
// weight, a missing term) gives errors of order 1.
const relTol = 1e-2

func relL2(got []float32, want []float64) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

// randn returns n normal values of std σ rounded to fp16, as float32 (for
// staging) and float64 (for the reference): both sides see the same numbers.
func randn(rng *rand.Rand, n int, std float64) ([]float32, []float64) {
	f32, f64 := make([]float32, n), make([]float64, n)
	for i := range f32 {
		f32[i] = fp16.Round(float32(rng.NormFloat64() * std))
		f64[i] = float64(f32[i])
	}
	return f32, f64
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// kernelRig compiles the four kernels of a layout on the emulator.
type kernelRig struct {
	l   *model.Layout
	dev *sim.Device
	k   [model.NumKernels]ane.Kernel
	in  map[*model.Packing]*ane.Surface
	out [model.NumKernels]*ane.Surface
}

func newRig(t testing.TB, c model.Config) *kernelRig {
	t.Helper()
	l, err := model.NewLayout(c)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := sim.New(ane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	r := &kernelRig{l: l, dev: dev, in: map[*model.Packing]*ane.Surface{}}
	for _, id := range model.Kernels {
		p, w, err := l.Build(id)
		if err != nil {
			t.Fatal(err)
		}
		k, err := dev.Compile(id.String(), p, w)
		if err != nil {
			t.Fatalf("compile %v: %v", id, err)
		}
		r.k[id] = k
		if !k.Inputs()[0].Shape.Equal(l.Input(id).Shape()) || !k.Outputs()[0].Shape.Equal(l.Output(id).Shape()) {
			t.Fatalf("%v: kernel %v → %v, layout %v → %v", id, k.Inputs()[0].Shape, k.Outputs()[0].Shape,
				l.Input(id).Shape(), l.Output(id).Shape())
		}
		// One input surface per packing, shared by the forward and backward
		// kernels as the engine shares them.
		if r.in[l.Input(id)] == nil {
			if r.in[l.Input(id)], err = k.NewSurface(ane.Input, 0); err != nil {
				t.Fatal(err)
			}
		}
		if r.out[id], err = k.NewSurface(ane.Output, 0); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *kernelRig) eval(t testing.TB, id model.KernelID) {
	t.Helper()
	if err := r.k[id].Eval([]*ane.Surface{r.in[r.l.Input(id)]}, []*ane.Surface{r.out[id]}); err != nil {
		t.Fatalf("eval %v: %v", id, err)
	}
}

func (r *kernelRig) read(id model.KernelID, b model.Block) []float32 {
	dst := make([]float32, b.Size())
	b.Read(r.out[id], dst)
	return dst
}

// TestKernelsAgainstReference runs one layer forward and backward through the
// four kernels on the emulator, moving the taps between surfaces as the
// engine will, and compares every output block with the float64 reference
// evaluated on the same fp16 values.
func TestKernelsAgainstReference(t *testing.T) {
	for _, tc := range kernelConfigs {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.Resolved()
			r := newRig(t, c)
			l := r.l
			rng := rand.New(rand.NewPCG(1, 2))
			d, h, s, qd, kvd := c.Dim, c.Hidden, c.Seq, c.QDim(), c.KVDim()
			// Weights scaled 1/√in keep activations of order 1, the regime
			// of RMSNorm'd inputs.
			w32 := model.LayerOf[float32]{}
			w64 := model.LayerOf[float64]{}
			for _, k := range []model.Kind{model.Wq, model.Wk, model.Wv, model.Wo, model.W1, model.W2, model.W3} {
				sh := c.Shape(k)
				a, b := randn(rng, sh[0]*sh[1], 1/math.Sqrt(float64(sh[1])))
				switch k {
				case model.Wq:
					w32.Wq, w64.Wq = a, b
				case model.Wk:
					w32.Wk, w64.Wk = a, b
				case model.Wv:
					w32.Wv, w64.Wv = a, b
				case model.Wo:
					w32.Wo, w64.Wo = a, b
				case model.W1:
					w32.W1, w64.W1 = a, b
				case model.W2:
					w32.W2, w64.W2 = a, b
				case model.W3:
					w32.W3, w64.W3 = a, b
				}
			}
			scratch := make([]float32, l.ScratchSize())
			ain, fin := r.in[&l.Attn.Packing], r.in[&l.FFN.Packing]
			l.StageAttnWeights(ain, w32, scratch)
			l.StageFFNWeights(fin, w32, scratch)
			check := func(what string, got []float32, want []float64) {
				t.Helper()
				e := relL2(got, want)
				t.Logf("%-22s rel L2 %.2e", what, e)
				if !(e <= relTol) {
					t.Errorf("%s: relative L2 error %.3g > %.0e", what, e, relTol)
				}
			}

			// Attention forward.
			x32, x64 := randn(rng, d*s, 1)
			l.Attn.X.Write(ain, x32)
			r.eval(t, model.AttnFwd)
			at := ref.AttnForward(c, x64, w64.Wq, w64.Wk, w64.Wv, w64.Wo)
			o := l.AttnFwdOut
			check("attn_fwd o", r.read(model.AttnFwd, o.O), at.O)
			check("attn_fwd attn", r.read(model.AttnFwd, o.Attn), at.Attn)
			check("attn_fwd q", r.read(model.AttnFwd, o.Q), at.Q)
			check("attn_fwd k", r.read(model.AttnFwd, o.K), at.K)
			check("attn_fwd v", r.read(model.AttnFwd, o.V), at.V)

			// FFN forward.
			x2, x2r := randn(rng, d*s, 1)
			l.FFN.X.Write(fin, x2)
			r.eval(t, model.FFNFwd)
			ft := ref.FFNForward(c, x2r, w64.W1, w64.W2, w64.W3)
			fo := l.FFNFwdOut
			check("ffn_fwd f", r.read(model.FFNFwd, fo.F), ft.F)
			check("ffn_fwd h1", r.read(model.FFNFwd, fo.H1), ft.H1)
			check("ffn_fwd h3", r.read(model.FFNFwd, fo.H3), ft.H3)
			check("ffn_fwd g", r.read(model.FFNFwd, fo.G), ft.G)

			// FFN backward, on the forward's own fp16 taps.
			model.CopyBlock(fin, l.FFN.H1, r.out[model.FFNFwd], fo.H1)
			model.CopyBlock(fin, l.FFN.H3, r.out[model.FFNFwd], fo.H3)
			df, dfr := randn(rng, d*s, 1)
			l.FFN.DF.Write(fin, df)
			r.eval(t, model.FFNBwd)
			h1, h3 := to64(r.read(model.FFNFwd, fo.H1)), to64(r.read(model.FFNFwd, fo.H3))
			fg := ref.FFNBackward(c, &ref.FFNTape{H1: h1, H3: h3, G: ref.SwiGLU(h1, h3)}, x2r, w64.W1, w64.W2, w64.W3, dfr)
			bo := l.FFNBwdOut
			check("ffn_bwd dx", r.read(model.FFNBwd, bo.DX), fg.DX)
			check("ffn_bwd dh1", r.read(model.FFNBwd, bo.DH1), fg.DH1)
			check("ffn_bwd dh3", r.read(model.FFNBwd, bo.DH3), fg.DH3)

			// Attention backward, on the forward's fp16 q, k, v taps.
			model.CopyBlock(ain, l.Attn.Q, r.out[model.AttnFwd], o.Q)
			model.CopyBlock(ain, l.Attn.K, r.out[model.AttnFwd], o.K)
			model.CopyBlock(ain, l.Attn.V, r.out[model.AttnFwd], o.V)
			do, dor := randn(rng, d*s, 1)
			l.Attn.DO.Write(ain, do)
			r.eval(t, model.AttnBwd)
			tp := &ref.AttnTape{Q: to64(r.read(model.AttnFwd, o.Q)), K: to64(r.read(model.AttnFwd, o.K)), V: to64(r.read(model.AttnFwd, o.V))}
			tp.P, tp.Attn = ref.Attention(c, tp.Q, tp.K, tp.V)
			ag := ref.AttnBackward(c, tp, x64, w64.Wq, w64.Wk, w64.Wv, w64.Wo, dor)
			ab := l.AttnBwdOut
			check("attn_bwd dx", r.read(model.AttnBwd, ab.DX), ag.DX)
			check("attn_bwd dq", r.read(model.AttnBwd, ab.DQ), ag.DQ)
			check("attn_bwd dk", r.read(model.AttnBwd, ab.DK), ag.DK)
			check("attn_bwd dv", r.read(model.AttnBwd, ab.DV), ag.DV)
			_, _, _ = h, qd, kvd
		})
	}
}

// TestKernelsRoundTrip checks that every kernel of every preset and test
// config prints, parses back to the same text and type-checks, and that its
// FLOPs, counted by the emulator from the program, equal the documented
// formula.
func TestKernelsRoundTrip(t *testing.T) {
	var cs []model.Config
	for _, n := range model.PresetNames() {
		c, err := model.Preset(n)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for _, tc := range kernelConfigs {
		cs = append(cs, tc.c)
	}
	for _, c := range cs {
		l, err := model.NewLayout(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range model.Kernels {
			p, w, err := l.Build(id)
			if err != nil {
				t.Fatal(err)
			}
			text := mil.Print(p)
			q, err := mil.Parse(id.String(), text)
			if err != nil {
				t.Fatalf("%v %v: parse: %v", c, id, err)
			}
			if err := q.Check(); err != nil {
				t.Fatalf("%v %v: check: %v", c, id, err)
			}
			if !bytes.Equal(mil.Print(q), text) {
				t.Fatalf("%v %v: print(parse(print(p))) differs from print(p)", c, id)
			}
			k, err := sim.CompileText(id.String(), text, w)
			if err != nil {
				t.Fatalf("%v %v: %v", c, id, err)
			}
			if got, want := k.FLOPs(), l.KernelFLOPs(id).Total(); got != want {
				t.Errorf("%v %v: the emulator counts %.0f FLOPs, the formula %.0f", c, id, got, want)
			}
		}
	}
}

// TestStagingAllocs checks that what the engine calls every step allocates
// nothing: parameter views, block staging and reads, tap copies, weight
// staging with a scratch buffer.
func TestStagingAllocs(t *testing.T) {
	c := kernelConfigs[1].c
	r := newRig(t, c)
	l := r.l
	p, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	scratch := make([]float32, l.ScratchSize())
	x := make([]float32, l.Attn.X.Size())
	ain, out := r.in[&l.Attn.Packing], r.out[model.AttnFwd]
	n := testing.AllocsPerRun(20, func() {
		w := p.Layer(0)
		l.StageAttnWeights(ain, w, scratch)
		l.StageFFNWeights(r.in[&l.FFN.Packing], w, scratch)
		l.Attn.X.Write(ain, x)
		l.AttnFwdOut.O.Read(out, x)
		model.CopyBlock(ain, l.Attn.Q, out, l.AttnFwdOut.Q)
		_ = model.Slice(c, p.Data, model.Embed, -1)
		_ = l.Input(model.AttnBwd)
	})
	if n != 0 {
		t.Errorf("%.0f allocations per staging pass, want 0", n)
	}
}
