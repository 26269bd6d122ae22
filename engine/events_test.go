package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/anetop/anetop/model"
)

func kinds(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		switch ev := ev.(type) {
		case StepEvent:
			out = append(out, fmt.Sprintf("step%d", ev.Step))
		case StateEvent:
			out = append(out, ev.State)
		case SampleEvent:
			out = append(out, "sample")
		case CheckpointEvent:
			out = append(out, "checkpoint")
		case WarningEvent:
			out = append(out, "warning")
		case ErrorEvent:
			out = append(out, "error")
		}
	}
	return out
}

// TestRunnerCommands runs a short training loop with queued and in-flight
// commands and checks the events it publishes, in order.
func TestRunnerCommands(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 2, Seq: 32, Vocab: 32, Tied: true}
	e, err := New(Config{Model: c, Device: openSim(t), Seed: 1, Steps: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	bus := NewBus(100)
	sub, cancel := bus.Subscribe(1) // a slow subscriber: must not block the loop
	defer cancel()
	calls := 0
	r := &Runner{Engine: e, Bus: bus, SampleLen: 5,
		Save: func(*Engine) (string, error) { return "ckpt", nil },
		Batch: func(x, y []int32) error {
			calls++
			for i := range x {
				x[i], y[i] = int32(i%c.Vocab), int32((i+1)%c.Vocab)
			}
			return nil
		}}
	for _, cmd := range []Command{Sample, Pause, Checkpoint, Resume} {
		r.Send(cmd)
	}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(kinds(bus.History()))
	want := "[running sample paused checkpoint running step0 step1 step2 step3 finished]"
	if got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	if st, ok := bus.Latest(); !ok || st.Step != 3 {
		t.Errorf("latest step %v %v", st.Step, ok)
	}
	if len(sub) != 1 {
		t.Errorf("slow subscriber holds %d events, want 1 (the rest dropped)", len(sub))
	}

	// Restart and Stop sent from inside the loop.
	e2, err := New(Config{Model: c, Device: openSim(t), Seed: 1, Steps: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	bus2 := NewBus(4)
	n := 0
	var r2 *Runner
	r2 = &Runner{Engine: e2, Bus: bus2, Batch: func(x, y []int32) error {
		n++
		switch n {
		case 2:
			r2.Send(Restart)
		case 4:
			r2.Send(Stop)
		}
		return nil
	}}
	if err := r2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The ring keeps the last four events: two steps (0 and 1) restarted
	// at step 2, steps 0 and 1 again, then the stop.
	if got := fmt.Sprint(kinds(bus2.History())); got != "[restarted step0 step1 stopped]" {
		t.Errorf("events %s", got)
	}
	if e2.StepN() != 2 {
		t.Errorf("step %d after restart and two steps", e2.StepN())
	}
}

// TestRunnerStopsOnDivergence: with a learning rate that blows the weights
// up, the loss turns non-finite and the runner stops with ErrDiverged after
// DivergedSteps failed steps, instead of running to the end; a sane run of
// the same length does not.
func TestRunnerStopsOnDivergence(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 2, Seq: 32, Vocab: 32, Tied: true}
	run := func(lr float64) (StepStats, error) {
		e, err := New(Config{Model: c, Device: openSim(t), Seed: 1, Steps: 60, LR: lr, Warmup: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		var last StepStats
		bus := NewBus(1000)
		r := &Runner{Engine: e, Bus: bus, Batch: func(x, y []int32) error {
			for i := range x {
				x[i], y[i] = int32(i*5%c.Vocab), int32((i*5+3)%c.Vocab)
			}
			return nil
		}}
		err = r.Run(context.Background())
		for _, ev := range bus.History() {
			if s, ok := ev.(StepEvent); ok {
				last = s.StepStats
			}
		}
		return last, err
	}
	last, err := run(1e10)
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("lr 1e10: Run returned %v after step %d (loss %v); want ErrDiverged", err, last.Step, last.Loss)
	}
	if last.Step+1 >= 60 { // StepStats.Step counts from 0
		t.Errorf("lr 1e10: ran all %d steps before stopping", last.Step+1)
	}
	t.Logf("lr 1e10: %v", err)
	if last, err := run(3e-3); err != nil {
		t.Errorf("lr 3e-3: %v after step %d", err, last.Step)
	}
}
