package ref

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/model"
)

var fixtureDir = filepath.Join("..", "testdata", "torch-tiny")

// fixture loads the torch-tiny step: the model from model.bin (through the
// llama2.c reader) and the tensors PyTorch wrote.
func fixture(t *testing.T) (*model.Params, map[string]LTNS, []int, []int) {
	t.Helper()
	p, err := checkpoint.ReadLlama2C(filepath.Join(fixtureDir, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ReadLTNS(filepath.Join(fixtureDir, "grads.ltns"))
	if err != nil {
		t.Fatal(err)
	}
	ints := func(name string) []int {
		v := ts[name].F64
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = int(x)
		}
		return out
	}
	return p, ts, ints("inputs"), ints("targets")
}

// maxRel is max|a−b| / max|b|: an error relative to the tensor's scale, so
// that elements near zero do not dominate.
func maxRel(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num = math.Max(num, math.Abs(a[i]-b[i]))
		den = math.Max(den, math.Abs(b[i]))
	}
	if den == 0 {
		return num
	}
	return num / den
}

// TestTorchTiny checks the loss and every gradient against PyTorch's float64
// step, and one AdamW update against its after_step weights.
func TestTorchTiny(t *testing.T) {
	p, ts, in, tg := fixture(t)
	cfg := ts["config"].F64
	c := p.Config
	if want := []int{c.Dim, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.Vocab, c.Seq}; !equalInts(cfg, want) {
		t.Fatalf("config %v, model.bin says %v", cfg, want)
	}
	m := FromParams(p)
	for _, tn := range p.Tensors {
		want := ts["param/"+tn.Name].F64
		if got := m.W[tn.Offset : tn.Offset+tn.Size]; maxRel(got, want) != 0 {
			t.Fatalf("%s: model.bin differs from the fixture's param tensor", tn.Name)
		}
	}
	loss, grad, err := m.LossAndGrad(in, tg)
	if err != nil {
		t.Fatal(err)
	}
	wantLoss := ts["loss"].F64[0]
	t.Logf("loss %.15f, PyTorch %.15f", loss, wantLoss)
	if math.Abs(loss-wantLoss) > 1e-12 {
		t.Errorf("loss %.15f, want %.15f", loss, wantLoss)
	}
	worst := 0.0
	for _, tn := range p.Tensors {
		want := ts["grad/"+tn.Name].F64
		if len(want) != tn.Size {
			t.Fatalf("%s: fixture gradient has %d elements, want %d", tn.Name, len(want), tn.Size)
		}
		e := maxRel(grad[tn.Offset:tn.Offset+tn.Size], want)
		worst = math.Max(worst, e)
		if e > 1e-9 {
			t.Errorf("grad %s: max relative error %.3g > 1e-9", tn.Name, e)
		}
	}
	t.Logf("worst gradient error (max abs / max |grad|, per tensor): %.3g", worst)

	hp := ts["adamw"].F64
	opt := AdamW{LR: hp[0], Beta1: hp[1], Beta2: hp[2], Eps: hp[3], WeightDecay: hp[4]}
	if opt != DefaultAdamW {
		t.Logf("fixture AdamW %+v differs from DefaultAdamW %+v", opt, DefaultAdamW)
	}
	w := append([]float64(nil), m.W...)
	mm, vv := make([]float64, len(w)), make([]float64, len(w))
	if err := opt.Step(c, w, grad, mm, vv, 1); err != nil {
		t.Fatal(err)
	}
	worst = 0
	for _, tn := range p.Tensors {
		want := ts["after_step/"+tn.Name].F64
		for i, x := range w[tn.Offset : tn.Offset+tn.Size] {
			worst = math.Max(worst, math.Abs(x-want[i]))
		}
	}
	t.Logf("AdamW after one step: max abs difference %.3g", worst)
	if worst > 1e-12 {
		t.Errorf("AdamW step differs from PyTorch's by %.3g > 1e-12", worst)
	}
}

func equalInts(a []float64, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if int(a[i]) != b[i] {
			return false
		}
	}
	return true
}

// randomModel is a small model with random weights (norm gains too, so their
// gradients are exercised away from 1) and a random window.
func randomModel(t *testing.T, c model.Config, seed uint64) (*Model, []int, []int) {
	t.Helper()
	c = c.Resolved()
	rng := rand.New(rand.NewPCG(seed, 1))
	w := make([]float64, c.NumParams())
	for _, tn := range c.Tensors() {
		for i := tn.Offset; i < tn.Offset+tn.Size; i++ {
			if tn.Kind.Matrix() {
				w[i] = rng.NormFloat64() * 0.3
			} else {
				w[i] = 1 + 0.2*rng.NormFloat64()
			}
		}
	}
	m, err := New(c, w)
	if err != nil {
		t.Fatal(err)
	}
	in, tg := make([]int, c.Seq), make([]int, c.Seq)
	for i := range in {
		in[i], tg[i] = rng.IntN(c.Vocab), rng.IntN(c.Vocab)
	}
	return m, in, tg
}

// TestFiniteDifferences checks every gradient of small MHA, GQA (with a head
// width other than dim/heads) and untied models against central
// differences, and of two with a loss restricted to some ids (Scored).
func TestFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      model.Config
		scored bool
	}{
		{"mha-tied", model.Config{Dim: 8, Hidden: 12, Layers: 2, Heads: 2, Seq: 5, Vocab: 7, Tied: true}, false},
		{"gqa-untied", model.Config{Dim: 8, Hidden: 10, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, Seq: 6, Vocab: 9}, false},
		{"mqa", model.Config{Dim: 6, Hidden: 8, Layers: 1, Heads: 3, KVHeads: 1, HeadDim: 2, Seq: 4, Vocab: 5, Tied: true, RopeTheta: 100}, false},
		{"mha-tied-scored", model.Config{Dim: 8, Hidden: 12, Layers: 2, Heads: 2, Seq: 5, Vocab: 11, Tied: true}, true},
		{"gqa-untied-scored", model.Config{Dim: 8, Hidden: 10, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, Seq: 6, Vocab: 13}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, in, tg := randomModel(t, tc.c, 7)
			if tc.scored {
				// The targets and the even ids: some ids are left out.
				m.Scored = make([]bool, m.Config.Vocab)
				for j := range m.Scored {
					m.Scored[j] = j%2 == 0
				}
				for _, y := range tg {
					m.Scored[y] = true
				}
				if !slices.Contains(m.Scored, false) {
					t.Fatal("every id is scored")
				}
			}
			_, grad, err := m.LossAndGrad(in, tg)
			if err != nil {
				t.Fatal(err)
			}
			const h = 1e-5
			loss := func() float64 {
				p, err := m.Forward(in, tg)
				if err != nil {
					t.Fatal(err)
				}
				return p.Loss
			}
			worst := 0.0
			defer func() { t.Logf("worst relative error vs central differences: %.2g", worst) }()
			for _, tn := range m.Config.Tensors() {
				fd := make([]float64, tn.Size)
				for i := range fd {
					j := tn.Offset + i
					w0 := m.W[j]
					m.W[j] = w0 + h
					lp := loss()
					m.W[j] = w0 - h
					lm := loss()
					m.W[j] = w0
					fd[i] = (lp - lm) / (2 * h)
				}
				e := maxRel(grad[tn.Offset:tn.Offset+tn.Size], fd)
				worst = math.Max(worst, e)
				if e > 1e-6 {
					t.Errorf("%s: max relative error vs finite differences %.3g > 1e-6", tn.Name, e)
				}
			}
		})
	}
}

// TestAdamWDecay checks that weight decay applies to matrices only and that
// the first update moves every parameter by about lr (Adam's normalised
// step), independently of PyTorch.
func TestAdamWDecay(t *testing.T) {
	c := model.Config{Dim: 4, Hidden: 6, Layers: 1, Heads: 2, Seq: 2, Vocab: 3, Tied: true}.Resolved()
	n := c.NumParams()
	w, g := make([]float64, n), make([]float64, n)
	for i := range w {
		w[i], g[i] = 1, 0.5
	}
	opt := AdamW{LR: 0.01, Beta1: 0.9, Beta2: 0.95, Eps: 0, WeightDecay: 0.1}
	if err := opt.Step(c, w, g, make([]float64, n), make([]float64, n), 1); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.Tensors() {
		want := 1 - 0.01
		if tn.Kind.Matrix() {
			want = 1*(1-0.01*0.1) - 0.01
		}
		if got := w[tn.Offset]; math.Abs(got-want) > 1e-15 {
			t.Errorf("%s: %v after one step, want %v", tn.Name, got, want)
		}
	}
	if err := opt.Step(c, w[:1], g, g, g, 1); err == nil {
		t.Error("mismatched lengths accepted")
	}
}
