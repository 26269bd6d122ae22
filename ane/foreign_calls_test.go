package ane_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/model"
)

// Foreign calls per training step on the Neural Engine path (issue #5).
//
// The only earlier Go port lost 38 ms per step to purego crossings and paid
// 20–50 µs per IOSurface lock (peers.md §1.6); its fix brought 9 200
// crossings per step down to 400. These tests run real engine steps on the
// NeuralEngine device logic over the emulator-backed fake framework and count
// the crossings the device makes. In a steady-state step every crossing is
// one of five kinds — pool push, evaluate and pool pop per evaluation, and a
// lock and an unlock of a surface the CPU staged or read — each of which is exactly
// one foreign call in the darwin runtime as well (objc_autoreleasePoolPush/
// Pop, objc_msgSend of evaluateWithQoS:options:request:error:, IOSurfaceLock,
// IOSurfaceUnlock), so the counts here are what the hardware will count.
// The tests check that no other kind appears.

// crossingShape has Stories110M's layer count but tiny widths: foreign calls
// depend on the number of layers and windows, not on the widths, so the
// figure is Stories110M's while a step takes milliseconds.
func crossingShape(layers int) model.Config {
	return model.Config{Dim: 64, Hidden: 128, Layers: layers, Heads: 4, KVHeads: 4, Seq: 32, Vocab: 64, Tied: true}
}

// stepCalls is what one steady-state step cost.
type stepCalls struct {
	total int64
	kinds map[string]int64
	evals int64 // from the engine's own kernel statistics
	locks map[string]map[int]int64
}

// measureStep trains on a fresh NeuralEngine over the emulator, takes two
// warm-up steps (the first builds every _ANERequest; the second is the first
// to apply an update, whose restaging the steady state includes), then
// measures two more and checks they cost the same.
func measureStep(t *testing.T, c model.Config, accum int) stepCalls {
	t.Helper()
	dev := ane.NewEmulatedEngine(t, ane.Options{}, 64, sim.CompileTextOptions)
	e, err := engine.New(engine.Config{Model: c, Device: dev, Seed: 1, Accum: accum, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x, y := make([]int32, accum*c.Seq), make([]int32, accum*c.Seq)
	for i := range x {
		x[i], y[i] = int32(i*7%c.Vocab), int32((i*7+7)%c.Vocab)
	}
	step := func() engine.StepStats {
		st, err := e.Step(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if st.Skipped {
			// A skipped update restages nothing in the next step.
			t.Fatalf("step %d skipped its update (loss scale %v); the count would not be the steady state's", st.Step, st.LossScale)
		}
		return st
	}
	step()
	step()
	var got []stepCalls
	for range 2 {
		c0, k0, l0 := dev.ForeignCalls(), ane.EmulatedCallKinds(dev), ane.EmulatedStagingLocks(dev)
		st := step()
		m := stepCalls{total: dev.ForeignCalls() - c0, kinds: diffKinds(ane.EmulatedCallKinds(dev), k0),
			locks: map[string]map[int]int64{}}
		for _, kt := range st.Kernels {
			m.evals += kt.Evals
		}
		if st.ForeignCalls != m.total {
			t.Fatalf("StepStats.ForeignCalls = %d, the device counted %d", st.ForeignCalls, m.total)
		}
		for role, h := range ane.EmulatedStagingLocks(dev) {
			m.locks[role] = diffKinds(h, l0[role])
		}
		got = append(got, m)
	}
	if got[0].total != got[1].total || !maps.Equal(got[0].kinds, got[1].kinds) {
		t.Fatalf("%d layers: two steady-state steps cost differently: %d %v and %d %v",
			c.Layers, got[0].total, got[0].kinds, got[1].total, got[1].kinds)
	}
	return got[1]
}

func diffKinds[K comparable](now, before map[K]int64) map[K]int64 {
	d := map[K]int64{}
	for k, n := range now {
		if n -= before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

func formatKinds[K int | string](m map[K]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%v:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// checkStep checks what holds for any step whatever the layer count: the
// engine evaluated 4 kernels per layer per window; each evaluation cost the
// device exactly three crossings (its request cached, one autorelease pool
// around the evaluate message, no selector or class lookup, no new surface
// or request); every other crossing is a surface lock or its unlock, paired;
// and the counter agrees with the sum of its kinds.
func checkStep(t *testing.T, c model.Config, accum int, m stepCalls) {
	t.Helper()
	wantEvals := int64(int(model.NumKernels) * c.Layers * accum)
	if m.evals != wantEvals || m.kinds["eval"] != wantEvals {
		t.Errorf("%d layers × %d windows: %d evaluations by the engine's kernel stats, %d evaluate calls; want %d (4 kernels per layer per window)",
			c.Layers, accum, m.evals, m.kinds["eval"], wantEvals)
	}
	if m.kinds["poolPush"] != wantEvals || m.kinds["poolPop"] != wantEvals {
		t.Errorf("%d autorelease pool pushes and %d pops for %d evaluations; want one pool per evaluation and no other worker job",
			m.kinds["poolPush"], m.kinds["poolPop"], wantEvals)
	}
	if m.kinds["lockSurface"] != m.kinds["unlockSurface"] {
		t.Errorf("%d surface locks but %d unlocks", m.kinds["lockSurface"], m.kinds["unlockSurface"])
	}
	var sum int64
	for k, n := range m.kinds {
		sum += n
		switch k {
		case "eval", "poolPush", "poolPop", "lockSurface", "unlockSurface":
		default:
			t.Errorf("a steady-state step made %d %s calls; it should make none (requests and surfaces are built once)", n, k)
		}
	}
	if sum != m.total {
		t.Errorf("ForeignCalls grew by %d, the kinds add up to %d", m.total, sum)
	}
	// One lock pair per surface per stage-and-evaluate: since its previous
	// evaluation, every surface an evaluation binds was locked at most once,
	// however many staging passes the engine made (the update's weights
	// and the forward's activations, the forward's taps and the backward's
	// gradient): the device keeps the last lock and undoes it only before
	// the evaluation (hwSurface). So an evaluation costs at most 3 device
	// crossings + 2 for its input + 2 for its output.
	for role, h := range m.locks {
		for n, evals := range h {
			if n > 1 {
				t.Errorf("%d evaluations found their %s surface locked %d times since its previous evaluation; want at most 1",
					evals, role, n)
			}
		}
	}
	if m.total > 7*wantEvals {
		t.Errorf("%d foreign calls for %d evaluations; at most 7 per evaluation (3 + a lock pair on its input and on its output)",
			m.total, wantEvals)
	}
}

// TestForeignCallsPerStepAreLinearInLayers measures the crossings of a
// steady-state step at 1, 2, 3 and 5 layers and at Stories110M's 12, and
// checks calls/step = a + b·layers exactly: a and b come from the first two
// points and must predict the others to the call. It also checks that a
// second window per step adds exactly the per-window part again.
func TestForeignCallsPerStepAreLinearInLayers(t *testing.T) {
	s110, err := model.Preset("stories110m")
	if err != nil {
		t.Fatal(err)
	}
	layers := []int{1, 2, 3, 5, s110.Layers}
	calls := map[int]stepCalls{}
	for _, l := range layers {
		c := crossingShape(l)
		m := measureStep(t, c, 1)
		checkStep(t, c, 1, m)
		calls[l] = m
		t.Logf("%2d layers: %4d calls/step = %s; output locks since last eval %s; input %s",
			l, m.total, formatKinds(m.kinds), formatKinds(m.locks["out"]), formatKinds(m.locks["in"]))
	}
	b := calls[2].total - calls[1].total
	a := calls[1].total - b
	t.Logf("calls/step = %d + %d·layers (Accum 1)", a, b)
	for _, l := range layers {
		if want := a + b*int64(l); calls[l].total != want {
			t.Errorf("%d layers: %d calls/step, the line through 1 and 2 layers predicts %d", l, calls[l].total, want)
		}
	}

	// Two windows per step: the forward and backward run twice, the update
	// and its restaging once.
	c := crossingShape(2)
	m2 := measureStep(t, c, 2)
	checkStep(t, c, 2, m2)
	perWindow := m2.total - calls[2].total
	t.Logf("Accum 2 at 2 layers: %d calls/step, so %d per layer per window and %d per layer per update",
		m2.total, perWindow/2, (calls[2].total-perWindow)/2)
	if perWindow%2 != 0 || (calls[2].total-perWindow)%2 != 0 {
		t.Errorf("a window adds %d calls and the update %d at 2 layers: not a whole number per layer",
			perWindow, calls[2].total-perWindow)
	}

	// Stories110M: 12 layers × 4 kernels = 48 evaluations, each costing
	// the device 3 crossings (pool push, evaluate, pool pop) and at most
	// one lock pair on its input and one on its output: at most 7 × 48 =
	// 336 (checkStep). The issue asks for hundreds, not the thousands the
	// earlier Go port made (9 200, then 400 after batching; peers.md §1.6).
	got := calls[s110.Layers]
	t.Logf("Stories110M (%d layers, Accum 1): %d foreign calls per step: %d evaluations × 3 = %d device crossings, %d surface locks + %d unlocks",
		s110.Layers, got.total, got.evals, 3*got.evals, got.kinds["lockSurface"], got.kinds["unlockSurface"])
	if got.total < 100 || got.total >= 1000 {
		t.Errorf("Stories110M: %d foreign calls per step; want hundreds (100 ≤ n < 1000)", got.total)
	}
}
