package engine

import (
	"testing"

	"github.com/anetop/anetop/model"
)

// TestStepAllocs pins issue #6's "no allocations in the steady-state step
// loop" (target 0–10 per step): a training step of a small GQA model with
// gradient accumulation, after two warm-up steps (the first update lands in
// the second), on whichever BLAS backend loads here; full and with a compacted
// vocabulary.
func TestStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items at random); the plain test run checks them")
	}
	c := model.Config{Dim: 64, Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, Seq: 32, Vocab: 64, Tied: true}
	// The compacted case scores the even ids, its targets among them.
	var even []int32
	for j := 0; j < c.Vocab; j += 2 {
		even = append(even, int32(j))
	}
	for _, compact := range []bool{false, true} {
		cfg := Config{Model: c, Device: openSim(t), Seed: 1, Accum: 2, Steps: 100}
		x, y := make([]int32, 2*c.Seq), make([]int32, 2*c.Seq)
		for i := range x {
			x[i], y[i] = int32(i*7%c.Vocab), int32((i*7+7)%c.Vocab)
			if compact {
				y[i] &^= 1
			}
		}
		if compact {
			cfg.CompactVocab = even
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		step := func() {
			if _, err := e.Step(x, y); err != nil {
				t.Fatal(err)
			}
		}
		step()
		step()
		if n := testing.AllocsPerRun(10, step); n > 10 {
			t.Errorf("compacted %v: %.1f allocations per step, want at most 10", compact, n)
		} else {
			t.Logf("compacted %v: %.1f allocations per step", compact, n)
		}
		e.Close()
	}
}
