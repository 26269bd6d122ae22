package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

// TestAccumulation checks that an update over two windows accumulates the
// mean of their gradients (the reference's two gradients averaged) and
// reports the mean loss.
func TestAccumulation(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 96, Layers: 1, Heads: 2, Seq: 32, Vocab: 40, Tied: true}.Resolved()
	p, _ := model.NewParams(c)
	p.Init(8)
	for _, tn := range p.Tensors {
		if tn.Kind.Matrix() {
			for i := tn.Offset; i < tn.Offset+tn.Size; i++ {
				p.Data[i] *= 4
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	x, y := make([]int32, 2*c.Seq), make([]int32, 2*c.Seq)
	xi, yi := make([]int, 2*c.Seq), make([]int, 2*c.Seq)
	for i := range x {
		xi[i], yi[i] = rng.IntN(c.Vocab), rng.IntN(c.Vocab)
		x[i], y[i] = int32(xi[i]), int32(yi[i])
	}
	m := ref.FromParams(p)
	want := make([]float64, len(p.Data))
	var wantLoss float64
	for w := range 2 {
		l, g, err := m.LossAndGrad(xi[w*c.Seq:(w+1)*c.Seq], yi[w*c.Seq:(w+1)*c.Seq])
		if err != nil {
			t.Fatal(err)
		}
		wantLoss += l / 2
		for i := range g {
			want[i] += g[i] / 2
		}
	}
	e, err := New(Config{Model: c, Device: openSim(t), Params: p, Accum: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var loss float64
	for w := range 2 {
		l, err := e.window(x[w*c.Seq:(w+1)*c.Seq], y[w*c.Seq:(w+1)*c.Seq])
		if err != nil {
			t.Fatal(err)
		}
		loss += l / 2
	}
	e.dw.wait()
	if math.Abs(loss-wantLoss)/wantLoss > 0.01 {
		t.Errorf("loss %.5f, reference %.5f", loss, wantLoss)
	}
	got := make([]float64, len(e.grad))
	for i, g := range e.grad {
		got[i] = float64(g) / e.lossScale
	}
	for _, tn := range p.Tensors {
		if r := relL2(got[tn.Offset:tn.Offset+tn.Size], want[tn.Offset:tn.Offset+tn.Size]); !(r <= 2e-2) {
			t.Errorf("%s: relative L2 error %.3g", tn.Name, r)
		}
	}
}
