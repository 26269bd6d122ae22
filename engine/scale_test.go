package engine

import (
	"slices"
	"testing"

	"github.com/anetop/anetop/model"
)

// TestDynamicLossScale starts with a scale so large that the device's fp16
// gradients overflow: those updates must be skipped (weights and moments
// untouched, scale halved) until the scale fits, after which updates apply
// and the scale doubles after every ScaleWindow clean updates.
func TestDynamicLossScale(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 2, Seq: 32, Vocab: 32, Tied: true}
	e, err := New(Config{Model: c, Device: openSim(t), Seed: 3, LossScale: MaxLossScale, ScaleWindow: 3, LR: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x, y := make([]int32, c.Seq), make([]int32, c.Seq)
	for i := range x {
		x[i], y[i] = int32(i%c.Vocab), int32((i+1)%c.Vocab)
	}
	skipped, applied := 0, 0
	var scales []float64
	for range 40 {
		before := slices.Clone(e.Params().Data)
		st, err := e.Step(x, y)
		if err != nil {
			t.Fatal(err)
		}
		scales = append(scales, st.LossScale)
		if st.Skipped {
			skipped++
			if applied > 0 {
				continue // a later overflow after growth is legitimate
			}
			if !slices.Equal(before, e.Params().Data) {
				t.Fatal("a skipped update changed the weights")
			}
			if e.LossScale() != st.LossScale/2 {
				t.Fatalf("scale %g after skipping at %g", e.LossScale(), st.LossScale)
			}
			for _, g := range e.grad {
				if g != 0 {
					t.Fatal("gradient not cleared after a skipped update")
				}
			}
		} else {
			applied++
			if slices.Equal(before, e.Params().Data) {
				t.Fatal("an applied update left the weights unchanged")
			}
		}
	}
	t.Logf("scales %v", scales)
	if skipped == 0 || applied == 0 {
		t.Fatalf("%d skipped, %d applied: expected overflow at 2^24 and recovery", skipped, applied)
	}
	grew := false
	for i := 1; i < len(scales); i++ {
		grew = grew || scales[i] == 2*scales[i-1]
	}
	if !grew {
		t.Error("the scale never doubled after clean updates")
	}
}
