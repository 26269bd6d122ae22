package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/anetop/anetop/model"
)

// TestOverlappedUpdateExact checks that the update applied during the next
// step's forward (launch: the looked-up embedding rows on the main
// goroutine, the rest on the dW worker) gives bit for bit the weights and
// moments of the update applied at once by the parallel pool (settle, the
// path every step took before the overlap), and that a run restored from a
// snapshot continues bit for bit — with a tied and an untied classifier,
// and two windows per update.
func TestOverlappedUpdateExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    model.Config
	}{
		// Sizes at which OpenBLAS splits sgemms over threads, so that a
		// thread count that depended on timing would show.
		{"tied", model.Config{Dim: 64, Hidden: 192, Layers: 2, Heads: 4, Seq: 64, Vocab: 512, Tied: true}},
		{"untied", model.Config{Dim: 64, Hidden: 96, Layers: 2, Heads: 4, KVHeads: 2, Seq: 32, Vocab: 80}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const steps, split = 6, 3
			cfg := Config{Model: tc.c, Seed: 4, LR: 3e-3, Warmup: 2, Steps: steps, Accum: 2}
			rng := rand.New(rand.NewPCG(2, 3))
			n := cfg.Accum * tc.c.Seq
			xs, ys := make([][]int32, steps), make([][]int32, steps)
			for i := range steps {
				xs[i], ys[i] = make([]int32, n), make([]int32, n)
				for j := range n {
					// Half the vocabulary only, so that many rows are
					// updated by the worker and some by launch.
					xs[i][j], ys[i][j] = int32(rng.IntN(tc.c.Vocab/2)), int32(rng.IntN(tc.c.Vocab))
				}
			}
			open := func() *Engine {
				c := cfg
				c.Device = openSim(t)
				e, err := New(c)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { e.Close() })
				return e
			}
			run := func(e *Engine, from, to int, sync bool) {
				for i := from; i < to; i++ {
					st, err := e.Step(xs[i], ys[i])
					if err != nil {
						t.Fatal(err)
					}
					if st.Skipped {
						t.Fatalf("step %d skipped", i)
					}
					if sync {
						e.Params() // settles the update now, on the pool
					}
				}
			}
			overlapped, synced, first, resumed := open(), open(), open(), open()
			run(overlapped, 0, steps, false)
			run(synced, 0, steps, true)
			run(first, 0, split, false)
			if err := resumed.Restore(first.Params().Data, first.State()); err != nil {
				t.Fatal(err)
			}
			run(resumed, split, steps, false)
			want, wantSt := synced.Params().Data, synced.State()
			for name, e := range map[string]*Engine{"overlapped": overlapped, "resumed": resumed} {
				got, st := e.Params().Data, e.State()
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) ||
						math.Float32bits(st.M[i]) != math.Float32bits(wantSt.M[i]) ||
						math.Float32bits(st.V[i]) != math.Float32bits(wantSt.V[i]) {
						t.Fatalf("%s: parameter %d: w, m, v = %v, %v, %v; synchronous update %v, %v, %v",
							name, i, got[i], st.M[i], st.V[i], want[i], wantSt.M[i], wantSt.V[i])
					}
				}
				if st.Updates != steps || st.Step != steps {
					t.Errorf("%s: %d updates in %d steps, want %d", name, st.Updates, st.Step, steps)
				}
			}
			// The weights moved: the comparison is not between untouched copies.
			p, _ := model.NewParams(synced.Model())
			p.Init(cfg.Seed)
			moved := 0
			for i := range want {
				if want[i] != p.Data[i] {
					moved++
				}
			}
			if moved < len(want)/2 {
				t.Errorf("only %d of %d weights changed in %d updates", moved, len(want), steps)
			}
		})
	}
}
