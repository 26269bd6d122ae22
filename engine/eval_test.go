package engine

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

// TestEvaluatorMatchesReference compares the validation loss over two
// windows with the float64 reference's forward pass, for MHA and GQA, on
// weights trained away from their init (so every tensor matters).
func TestEvaluatorMatchesReference(t *testing.T) {
	for _, c := range []model.Config{
		{Dim: 64, Hidden: 160, Layers: 2, Heads: 4, Seq: 32, Vocab: 96, Tied: true},
		{Dim: 64, Hidden: 96, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 24, Seq: 32, Vocab: 80, Tied: false},
	} {
		c = c.Resolved()
		p, err := model.NewParams(c)
		if err != nil {
			t.Fatal(err)
		}
		p.Init(11)
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range p.Data {
			p.Data[i] += float32(rng.NormFloat64() * 0.05) // norms away from 1 too
		}
		x, y := make([]int32, 2*c.Seq), make([]int32, 2*c.Seq)
		for i := range x {
			x[i], y[i] = int32(rng.IntN(c.Vocab)), int32(rng.IntN(c.Vocab))
		}
		got, err := NewEvaluator(c).Loss(p, x, y)
		if err != nil {
			t.Fatal(err)
		}
		m := ref.FromParams(p)
		var want float64
		for w := range 2 {
			xi, yi := make([]int, c.Seq), make([]int, c.Seq)
			for i := range c.Seq {
				xi[i], yi[i] = int(x[w*c.Seq+i]), int(y[w*c.Seq+i])
			}
			pass, err := m.Forward(xi, yi)
			if err != nil {
				t.Fatal(err)
			}
			want += pass.Loss / 2
		}
		// float32 arithmetic over sums of a few hundred terms: 1e-5
		// relative is ~50 ulps of headroom.
		if math.Abs(got-want) > 1e-5*want {
			t.Errorf("%v: loss %.9f, reference %.9f", c, got, want)
		}
	}
}

func TestEvaluatorErrors(t *testing.T) {
	c := model.Config{Dim: 32, Hidden: 64, Layers: 1, Heads: 2, Seq: 32, Vocab: 16, Tied: true}.Resolved()
	p, _ := model.NewParams(c)
	p.Init(1)
	ev := NewEvaluator(c)
	ok := make([]int32, c.Seq)
	bad := make([]int32, c.Seq)
	bad[3] = 16
	for _, tc := range []struct {
		x, y []int32
		want string
	}{
		{ok[:5], ok[:5], "whole windows of 32"},
		{nil, nil, "whole windows"},
		{ok, bad, "outside the vocabulary"},
	} {
		if _, err := ev.Loss(p, tc.x, tc.y); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Loss(%d, %d tokens): %v, want an error containing %q", len(tc.x), len(tc.y), err, tc.want)
		}
	}
	other, _ := model.NewParams(model.Config{Dim: 64, Hidden: 64, Layers: 1, Heads: 2, Seq: 32, Vocab: 16, Tied: true})
	if _, err := ev.Loss(other, ok, ok); err == nil {
		t.Error("a model of another shape was evaluated")
	}
}
