package tui

import (
	"context"
	"errors"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/anetop/anetop/engine"
)

// Source is where the console reads the run from. *engine.Bus implements it.
type Source interface {
	// Latest is the most recent step, the freshest figures for the header
	// even when the subscription dropped events.
	Latest() (engine.StepStats, bool)
	// History is replayed once at start, so a console opened mid-run (or
	// after a restart) shows the loss so far.
	History() []engine.Event
	// Subscribe delivers future events; a full channel must drop, never
	// block the publisher.
	Subscribe(buf int) (<-chan engine.Event, func())
}

// Controller receives the console's commands. *engine.Runner implements
// it; Send reports false when the command could not be queued.
type Controller interface {
	Send(engine.Command) bool
}

// RunInfo is what the console knows about the run that events do not carry.
type RunInfo struct {
	Model  string // preset or model name, e.g. "stories15M"
	Params int64  // parameter count
	Device string // the device's Name(), e.g. "ANE · Apple M4 (16 cores)"
	BLAS   string // blas backend name, e.g. "accelerate"
	Steps  int    // total steps of the run (0: unknown)
	RunDir string // where checkpoints go (shown in help)
	Vocab  int    // the model's vocabulary, to label a loss over fewer ids (--compact-vocab)
	// Decode turns sampled tokens into text; nil shows token ids.
	Decode func(tokens []int32) string
	// Started is when the run started, if before this console (a run that
	// exec-restarted itself); elapsed counts from it.
	Started time.Time
	// Resumed is the checkpoint the run resumed from, ResumedStep its step:
	// the status line's last checkpoint until this process writes one.
	Resumed     string
	ResumedStep int
	// ExitOnFinish quits the console when the run finishes or stops by
	// itself; otherwise the final figures stay on screen until q.
	ExitOnFinish bool
}

// Options configure New.
type Options struct {
	Source     Source     // may be nil: the console then shows an empty run
	Controller Controller // may be nil: keys then only change the view
	Info       RunInfo
	// Now is the clock (tests inject a fixed one); nil means time.Now.
	Now func() time.Time
	// Interval between redraws of the run's figures; 0 means 1/2 s, and
	// faster is clamped to it, so the console never costs more than two
	// frames a second (plus one per key). Each frame costs the training
	// loop several times its own CPU time on a machine whose cores the
	// training keeps busy: at 15 frames a second the tiny preset on two
	// vCPUs lost about 8 % of its steps/s (docs/BENCHMARKS.md).
	Interval time.Duration
}

// ErrQuitNow is returned by Run when the user pressed q a second time, not
// waiting for the exit checkpoint: the caller should cancel the run.
var ErrQuitNow = errors.New("tui: quit before the exit checkpoint was written")

// ErrInterrupted is returned by Run when the user quit with ctrl+c (once,
// with the exit checkpoint written, as q): the caller should exit as
// interrupted (130), as it does on SIGINT without a console.
var ErrInterrupted = errors.New("tui: interrupted with ctrl+c")

// subscriptionBuffer holds ~4 s of events at 1000 steps/s, eight times
// the time between two drains; beyond that events are dropped and Latest
// still shows the newest step.
const subscriptionBuffer = 4096

const minInterval = time.Second / 2

// Run shows the console on the terminal until the user quits or ctx ends.
// It installs no signal handler: cancel ctx on SIGINT/SIGTERM. It returns
// nil after a normal quit (q once: Checkpoint and Stop were sent and the
// run stopped; or q after the run ended), ErrInterrupted after the same
// with ctrl+c, ErrQuitNow after q (or ctrl+c) twice, and ctx.Err() when ctx
// was cancelled.
func Run(ctx context.Context, src Source, ctl Controller, info RunInfo) error {
	if noColor() {
		lipgloss.SetColorProfile(termenv.Ascii)
	}
	m := New(Options{Source: src, Controller: ctl, Info: info})
	defer m.Close()
	p := tea.NewProgram(m,
		tea.WithAltScreen(),
		// The renderer's own rate: a key's feedback shows within 1/15 s.
		// Between the redraw ticks the view has not changed, and a flush
		// of an unchanged view writes nothing.
		tea.WithFPS(15),
		tea.WithContext(ctx),
		tea.WithoutSignalHandler(),
	)
	final, err := p.Run()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if fm, ok := final.(*Model); ok {
		switch {
		case fm.forced:
			return ErrQuitNow
		case fm.interrupted:
			return ErrInterrupted
		}
	}
	return nil
}

// noColor follows https://no-color.org: any non-empty NO_COLOR disables
// colour. TERM=dumb gets the same plain output.
func noColor() bool {
	return os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb"
}
