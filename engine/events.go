package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Event is what the engine publishes: StepEvent, SampleEvent,
// CheckpointEvent, EvalEvent, WarningEvent, ErrorEvent, StateEvent.
type Event interface{ event() }

// StepEvent reports one training step.
type StepEvent struct{ StepStats }

// SampleEvent carries generated tokens.
type SampleEvent struct {
	Step           int
	Prompt, Tokens []int32
	Options        SampleOptions
}

// CheckpointEvent reports a checkpoint written (Err nil) or failed.
type CheckpointEvent struct {
	Step int
	Path string
	Err  error
}

// WarningEvent is something the user should see that does not stop training
// (a skipped update, a loss-scale collapse).
type WarningEvent struct {
	Step int
	Msg  string
}

// ErrDiverged is returned by Runner.Run when DivergedSteps steps in a row
// could not update the weights: the loss was NaN or infinite (the forward
// pass overflowed: weights blown up by too high a learning rate, or fp16
// activations out of range), or the gradients overflowed even at loss
// scale 1. Training on would only spend time; the checkpoints written
// before it are the ones to go back to.
var ErrDiverged = errors.New("engine: training diverged")

// DivergedSteps is how many failed steps in a row make Runner.Run stop
// with ErrDiverged. Ordinary overflows pass: each halves the loss scale
// and the next step usually succeeds.
const DivergedSteps = 8

// ErrorEvent is a failure that stopped the run.
type ErrorEvent struct {
	Step int
	Err  error
}

// EvalEvent reports a validation loss: the mean cross-entropy in nats of
// the weights after Step updates over Tokens held-out tokens (Evaluator).
type EvalEvent struct {
	Step   int
	Loss   float64
	Tokens int
	Time   time.Duration
}

// StateEvent reports a change of the run's state ("running", "paused",
// "restarted", "stopped", "finished", or "budget": stopped before a step
// the compile budget cannot pay for).
type StateEvent struct {
	Step  int
	State string
}

func (StepEvent) event()       {}
func (SampleEvent) event()     {}
func (CheckpointEvent) event() {}
func (WarningEvent) event()    {}
func (ErrorEvent) event()      {}
func (StateEvent) event()      {}
func (EvalEvent) event()       {}

// Bus fans events out without ever blocking the publisher: it keeps the
// latest step and a bounded history ring, and each subscriber gets a
// buffered channel into which events are dropped (and counted) when full.
type Bus struct {
	mu      sync.Mutex
	latest  StepStats
	hasStep bool
	ring    []Event
	head    int
	n       int
	subs    map[chan Event]*int64
}

// NewBus keeps the last history events (at least 1).
func NewBus(history int) *Bus {
	return &Bus{ring: make([]Event, max(1, history)), subs: map[chan Event]*int64{}}
}

// Publish records ev and offers it to every subscriber without waiting.
func (b *Bus) Publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := ev.(StepEvent); ok {
		b.latest, b.hasStep = s.StepStats, true
	}
	b.ring[(b.head+b.n)%len(b.ring)] = ev
	if b.n < len(b.ring) {
		b.n++
	} else {
		b.head = (b.head + 1) % len(b.ring)
	}
	for ch, dropped := range b.subs {
		select {
		case ch <- ev:
		default:
			*dropped++
		}
	}
}

// Subscribe returns a channel of future events (buffer buf) and a cancel
// function that closes it. A slow reader loses events, never stalls the loop.
func (b *Bus) Subscribe(buf int) (<-chan Event, func()) {
	ch := make(chan Event, max(1, buf))
	b.mu.Lock()
	b.subs[ch] = new(int64)
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// Latest returns the most recent step's statistics.
func (b *Bus) Latest() (StepStats, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.latest, b.hasStep
}

// History returns the retained events, oldest first.
func (b *Bus) History() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Event, b.n)
	for i := range b.n {
		out[i] = b.ring[(b.head+i)%len(b.ring)]
	}
	return out
}

// Command controls a Runner.
type Command int

const (
	Pause      Command = iota // stop stepping until Resume
	Resume                    // continue after Pause
	Sample                    // generate a sample now (published as SampleEvent)
	Checkpoint                // write a checkpoint now
	Restart                   // start over from the initial weights
	Stop                      // end Run
)

var commandNames = []string{"pause", "resume", "sample", "checkpoint", "restart", "stop"}

func (c Command) String() string {
	if c >= 0 && int(c) < len(commandNames) {
		return commandNames[c]
	}
	return fmt.Sprintf("Command(%d)", int(c))
}

// Runner drives an Engine over its Steps, obeying commands and publishing
// events.
type Runner struct {
	Engine *Engine
	Bus    *Bus
	// Batch fills the next step's inputs and targets (Accum·Seq tokens each).
	Batch func(x, y []int32) error
	// Save writes a checkpoint and returns where; nil makes Checkpoint
	// commands report an error event.
	Save func(e *Engine) (string, error)
	// Prompt, SampleLen and SampleOptions configure Sample commands.
	Prompt        []int32
	SampleLen     int
	SampleOptions SampleOptions

	once sync.Once
	cmds chan Command
}

func (r *Runner) init() { r.once.Do(func() { r.cmds = make(chan Command, 64) }) }

// Send queues a command; it reports false if the queue is full.
func (r *Runner) Send(c Command) bool {
	r.init()
	select {
	case r.cmds <- c:
		return true
	default:
		return false
	}
}

// Run steps until the engine has taken Config.Steps steps, Stop, or ctx
// ends. It returns nil when finished or stopped, ctx.Err() when cancelled,
// an error wrapping ErrCompileBudget before a step whose compiles the
// process cannot afford (static pipeline), and the error of a failed
// step, batch or restart.
func (r *Runner) Run(ctx context.Context) error {
	r.init()
	e := r.Engine
	c := e.cfg
	x, y := make([]int32, c.Accum*c.Model.Seq), make([]int32, c.Accum*c.Model.Seq)
	paused := false
	var fatal error
	r.Bus.Publish(StateEvent{Step: e.stepN, State: "running"})
	// handle applies one command; it reports whether to stop.
	handle := func(cmd Command) bool {
		switch cmd {
		case Pause:
			if !paused {
				paused = true
				r.Bus.Publish(StateEvent{Step: e.stepN, State: "paused"})
			}
		case Resume:
			if paused {
				paused = false
				r.Bus.Publish(StateEvent{Step: e.stepN, State: "running"})
			}
		case Sample:
			prompt := r.Prompt
			if len(prompt) == 0 {
				prompt = []int32{0}
			}
			toks, err := e.Generate(prompt, max(1, r.SampleLen), r.SampleOptions)
			if err != nil {
				r.Bus.Publish(WarningEvent{Step: e.stepN, Msg: "sample: " + err.Error()})
			} else {
				r.Bus.Publish(SampleEvent{Step: e.stepN, Prompt: prompt, Tokens: toks, Options: r.SampleOptions})
			}
		case Checkpoint:
			if r.Save == nil {
				r.Bus.Publish(CheckpointEvent{Step: e.stepN, Err: errors.New("no checkpoint writer configured")})
			} else {
				path, err := r.Save(e)
				r.Bus.Publish(CheckpointEvent{Step: e.stepN, Path: path, Err: err})
			}
		case Restart:
			if err := e.Reset(); err != nil {
				r.Bus.Publish(ErrorEvent{Step: e.stepN, Err: err})
				fatal = err
				return true
			}
			r.Bus.Publish(StateEvent{Step: e.stepN, State: "restarted"})
		case Stop:
			r.Bus.Publish(StateEvent{Step: e.stepN, State: "stopped"})
			return true
		}
		return false
	}
	bad, badLoss := 0, 0 // steps in a row that could not update (see DivergedSteps), and those with a non-finite loss
	for e.stepN < c.Steps {
		// Commands first, without waiting; while paused, wait for one.
		for {
			var cmd Command
			if paused {
				select {
				case cmd = <-r.cmds:
				case <-ctx.Done():
					return ctx.Err()
				}
			} else {
				select {
				case cmd = <-r.cmds:
				case <-ctx.Done():
					return ctx.Err()
				default:
					cmd = -1
				}
			}
			if cmd < 0 {
				break
			}
			if handle(cmd) {
				return fatal
			}
		}
		// Before the batch, so that the data cursor stays at this step.
		if need := e.CompilesNeeded(); need > 0 {
			if used, limit := e.dev.Budget(); used+need > limit {
				r.Bus.Publish(StateEvent{Step: e.stepN, State: "budget"})
				return fmt.Errorf("%w (%d used of %d, the step needs %d)", ErrCompileBudget, used, limit, need)
			}
		}
		if err := r.Batch(x, y); err != nil {
			r.Bus.Publish(ErrorEvent{Step: e.stepN, Err: err})
			return err
		}
		st, err := e.Step(x, y)
		if err != nil {
			r.Bus.Publish(ErrorEvent{Step: e.stepN, Err: err})
			return err
		}
		r.Bus.Publish(StepEvent{st})
		lossBad := math.IsNaN(st.Loss) || math.IsInf(st.Loss, 0)
		switch {
		case lossBad:
			r.Bus.Publish(WarningEvent{Step: e.stepN, Msg: fmt.Sprintf(
				"the loss is not finite (the forward pass overflowed): update skipped, loss scale now %g", e.lossScale)})
		case st.Skipped:
			r.Bus.Publish(WarningEvent{Step: e.stepN, Msg: fmt.Sprintf(
				"gradient overflowed in fp16 at loss scale %g: update skipped, scale now %g", st.LossScale, e.lossScale)})
		}
		// A non-finite loss, or an overflow the loss scale can no longer
		// absorb, is no transient: lowering the scale does not mend the
		// forward pass, and no update happens while it lasts.
		switch {
		case lossBad:
			bad++
			badLoss++
		case st.Skipped && st.LossScale <= 1:
			bad++
		default:
			bad, badLoss = 0, 0
		}
		if bad == DivergedSteps {
			why := "the loss was not finite (the weights or activations overflow fp16)"
			if badLoss < bad {
				why = fmt.Sprintf("the loss was not finite in %d and the gradients overflowed at loss scale 1 in %d", badLoss, bad-badLoss)
			}
			if badLoss == 0 {
				why = "the gradients overflowed fp16 even at loss scale 1"
			}
			err := fmt.Errorf("%w: no update in %d steps in a row (steps %d–%d): %s",
				ErrDiverged, bad, st.Step-bad+2, st.Step+1, why) // StepStats.Step counts from 0
			r.Bus.Publish(ErrorEvent{Step: e.stepN, Err: err})
			return err
		}
	}
	r.Bus.Publish(StateEvent{Step: e.stepN, State: "finished"})
	return nil
}
