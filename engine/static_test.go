package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/model"
)

var staticCfg = model.Config{Dim: 64, Hidden: 128, Layers: 2, Heads: 2, KVHeads: 1, Seq: 32, Vocab: 48, Tied: true}

func staticBatch(c model.Config) (x, y []int32) {
	x, y = make([]int32, c.Seq), make([]int32, c.Seq)
	for i := range x {
		x[i], y[i] = int32(i*5%c.Vocab), int32((i*5+3)%c.Vocab)
	}
	return x, y
}

// TestStaticMatchesDynamic: the static pipeline, recompiling every layer's
// kernels with the new weights after each update, trains bit for bit as
// the dynamic one, and spends exactly 4·Layers compiles per update (plus
// the four shared kernels).
func TestStaticMatchesDynamic(t *testing.T) {
	const steps = 4
	x, y := staticBatch(staticCfg)
	run := func(static bool) (*Engine, ane.Device) {
		dev := openSim(t)
		e, err := New(Config{Model: staticCfg, Device: dev, Seed: 3, LR: 1e-2, Warmup: 1, Steps: steps, Static: static})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		for range steps {
			if _, err := e.Step(x, y); err != nil {
				t.Fatal(err)
			}
		}
		return e, dev
	}
	dyn, _ := run(false)
	st, dev := run(true)
	a, b := dyn.Params().Data, st.Params().Data
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("weight %d: dynamic %v, static %v", i, a[i], b[i])
		}
	}
	used, _ := dev.Budget()
	if want := 4 + 4*staticCfg.Layers*steps; used != want {
		t.Errorf("static pipeline used %d compiles over %d steps, want %d", used, steps, want)
	}
	if n := st.CompilesNeeded(); n != 4*staticCfg.Layers {
		t.Errorf("after an update CompilesNeeded = %d, want %d", n, 4*staticCfg.Layers)
	}
	if got := st.lastStats.Kernels[model.AttnFwd].Evals; got != int64(staticCfg.Layers) {
		t.Errorf("static step counted %d attn_fwd evals, want %d", got, staticCfg.Layers)
	}
}

// TestStaticBudget: the Runner stops cleanly, before the batch, when the
// next recompile would pass the budget; a budget too small for even one
// step is refused at New.
func TestStaticBudget(t *testing.T) {
	layers := staticCfg.Layers
	// Room for the shared kernels and two sets: two steps.
	dev, err := sim.New(ane.Options{Budget: 4 + 4*layers*2 + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	e, err := New(Config{Model: staticCfg, Device: dev, Seed: 3, Steps: 10, Static: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	batches := 0
	r := &Runner{Engine: e, Bus: NewBus(64), Batch: func(x, y []int32) error {
		batches++
		copy(x, make([]int32, len(x)))
		copy(y, make([]int32, len(y)))
		return nil
	}}
	err = r.Run(context.Background())
	if !errors.Is(err, ErrCompileBudget) {
		t.Fatalf("Run: %v, want ErrCompileBudget", err)
	}
	if e.StepN() != 2 || batches != 2 {
		t.Errorf("stopped after %d steps and %d batches, want 2 and 2", e.StepN(), batches)
	}

	small, err := sim.New(ane.Options{Budget: 4 + 4*layers - 1})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if _, err := New(Config{Model: staticCfg, Device: small, Seed: 3, Static: true}); err == nil || !strings.Contains(err.Error(), "static pipeline needs") {
		t.Errorf("New with a budget below one step's compiles: %v", err)
	}
}

// failingDevice is a device whose Compile fails for one kernel name.
type failingDevice struct {
	ane.Device
	fail string
}

func (d failingDevice) Compile(name string, p *mil.Program, w mil.Weights) (ane.Kernel, error) {
	if name == d.fail {
		return nil, fmt.Errorf("compile %s: %w: injected", name, ane.ErrInvalidProgram)
	}
	return d.Device.Compile(name, p, w)
}

// TestNewCompileFailure: the kernels compile concurrently; when one fails,
// New fails with that kernel's error (once, with its name once), and the
// others still compiled and counted.
func TestNewCompileFailure(t *testing.T) {
	dev := failingDevice{Device: openSim(t), fail: model.FFNBwd.String()}
	_, err := New(Config{Model: staticCfg, Device: dev, Seed: 1})
	if !errors.Is(err, ane.ErrInvalidProgram) || strings.Count(err.Error(), "compile ") != 1 || !strings.Contains(err.Error(), "compile ffn_bwd") {
		t.Fatalf("New with ffn_bwd failing: %v; want that one compile error", err)
	}
	if used, _ := dev.Budget(); used != len(model.Kernels)-1 {
		t.Errorf("budget used %d, want %d", used, len(model.Kernels)-1)
	}
}
