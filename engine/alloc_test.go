package engine

import (
	"testing"

	"github.com/anetop/anetop/model"
)

// TestStepAllocs pins issue #6's "no allocations in the steady-state step
// loop" (target 0–10 per step): a training step of a small GQA model with
// gradient accumulation, after two warm-up steps (the first update lands in
// the second), on whichever BLAS backend loads here.
func TestStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items at random); the plain test run checks them")
	}
	c := model.Config{Dim: 64, Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, Seq: 32, Vocab: 64, Tied: true}
	e, err := New(Config{Model: c, Device: openSim(t), Seed: 1, Accum: 2, Steps: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x, y := make([]int32, 2*c.Seq), make([]int32, 2*c.Seq)
	for i := range x {
		x[i], y[i] = int32(i*7%c.Vocab), int32((i*7+7)%c.Vocab)
	}
	step := func() {
		if _, err := e.Step(x, y); err != nil {
			t.Fatal(err)
		}
	}
	step()
	step()
	if n := testing.AllocsPerRun(10, step); n > 10 {
		t.Errorf("%.1f allocations per step, want at most 10", n)
	}
}
