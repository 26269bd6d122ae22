package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/anetop/anetop/engine"
)

// headerLine2 is the header's second line (step, rate, elapsed, ETA).
func headerLine2(v string) string { return strings.Split(v, "\n")[1] }

// TestElapsedStopsAtEnd: elapsed freezes when the run finishes or fails
// (and keeps counting while paused); the ETA says done only when finished.
func TestElapsedStopsAtEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  engine.Event
		eta  string
	}{
		{"finished", engine.StateEvent{Step: 5, State: "finished"}, "ETA done"},
		{"stopped", engine.StateEvent{Step: 5, State: "stopped"}, "ETA —"},
		{"error", engine.ErrorEvent{Step: 5, Err: errors.New("device lost")}, "ETA —"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 120, 40)
			r.run(5) // the clock at t0+1s
			r.tick()
			r.tick()
			r.bus.Publish(tc.end)
			r.tick() // applied at t0+4s
			for range 10 {
				r.tick()
			}
			l := headerLine2(r.m.View())
			if !strings.Contains(l, "elapsed 4s") {
				t.Errorf("elapsed did not stop when the run ended: %q", l)
			}
			if !strings.Contains(l, tc.eta) {
				t.Errorf("want %q: %q", tc.eta, l)
			}
			if tc.eta != "ETA done" && strings.Contains(l, "done") {
				t.Errorf("says done though the run did not finish: %q", l)
			}
		})
	}
	// Paused, elapsed stays wall time.
	r := newRig(t, 120, 40)
	r.run(5)
	r.press("p")
	r.bus.Publish(engine.StateEvent{Step: 5, State: "paused"})
	for range 5 {
		r.tick()
	}
	if l := headerLine2(r.m.View()); !strings.Contains(l, "elapsed 6s") {
		t.Errorf("paused: %q", l)
	}
}

// TestEndedSaysQToExit: as soon as the run ends, without a key, the status
// line says q exits, and the key line offers only the keys that still do
// something.
func TestEndedSaysQToExit(t *testing.T) {
	for name, end := range map[string]engine.Event{
		"finished": engine.StateEvent{Step: 5, State: "finished"},
		"stopped":  engine.StateEvent{Step: 5, State: "stopped"},
		"error":    engine.ErrorEvent{Step: 5, Err: errors.New("device lost")},
	} {
		for _, sz := range [][2]int{{80, 24}, {120, 40}} {
			t.Run(fmt.Sprintf("%s/%dx%d", name, sz[0], sz[1]), func(t *testing.T) {
				r := newRig(t, sz[0], sz[1])
				r.run(5)
				r.press("c") // a note that the end must replace
				keys := r.m.View()
				keys = keys[strings.LastIndex(keys, "\n")+1:]
				if !strings.Contains(keys, "pause") {
					t.Fatalf("running key line: %q", keys)
				}
				r.bus.Publish(end)
				r.tick()
				v := r.m.View()
				checkScreen(t, v, sz[0], sz[1])
				ls := strings.Split(v, "\n")
				status, keys := ls[len(ls)-2], ls[len(ls)-1]
				if !strings.Contains(status+keys, "q to exit") && !strings.Contains(keys, "q exit") {
					t.Errorf("ended run does not say q exits:\n%s\n%s", status, keys)
				}
				if _, ok := end.(engine.ErrorEvent); !ok && !strings.Contains(status, "q to exit") {
					t.Errorf("status line: %q", status)
				}
				for _, gone := range []string{"pause", "checkpoint", "restart", "sample"} {
					if strings.Contains(keys, gone) {
						t.Errorf("key line still offers %s: %q", gone, keys)
					}
				}
				if !strings.Contains(keys, "q exit") || !strings.Contains(keys, "? help") {
					t.Errorf("key line: %q", keys)
				}
			})
		}
	}
}

// TestSeveralRunesInOneMessage: keys that arrive in one read are those
// keys in order; a paste is not.
func TestSeveralRunesInOneMessage(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	if !isQuit(r.press("qq")) {
		t.Fatal("qq did not quit")
	}
	if !r.m.forced {
		t.Error("qq not a forced quit")
	}
	if want := []engine.Command{engine.Checkpoint, engine.Stop}; fmt.Sprint(r.ctl.got) != fmt.Sprint(want) {
		t.Errorf("qq sent %v, want %v", r.ctl.got, want)
	}

	r = newRig(t, 80, 24)
	r.run(5)
	if isQuit(r.press("pcs")) {
		t.Fatal("pcs quit")
	}
	if want := []engine.Command{engine.Pause, engine.Checkpoint, engine.Sample}; fmt.Sprint(r.ctl.got) != fmt.Sprint(want) {
		t.Errorf("pcs sent %v, want %v", r.ctl.got, want)
	}

	r = newRig(t, 80, 24)
	r.run(5)
	if _, cmd := r.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("rq"), Paste: true}); isQuit(cmd) || len(r.ctl.got) != 0 {
		t.Errorf("a paste acted as keys: sent %v", r.ctl.got)
	}
}

// TestProgramKeysInOneRead: the same through a real program's input parser,
// p and q written at once.
func TestProgramKeysInOneRead(t *testing.T) {
	bus := engine.NewBus(100)
	ctl := &stopCtl{bus: bus}
	m := New(Options{Source: bus, Controller: ctl})
	defer m.Close()
	bus.Publish(engine.StepEvent{StepStats: stats(0, 5)})
	final := runProgram(t, m, "pq")
	if fm := final.(*Model); fm.forced || !fm.ended {
		t.Errorf("final state: forced %v, ended %v", fm.forced, fm.ended)
	}
	if want := []engine.Command{engine.Pause, engine.Checkpoint, engine.Stop}; fmt.Sprint(ctl.got) != fmt.Sprint(want) {
		t.Errorf("sent %v, want %v", ctl.got, want)
	}
}

var number = regexp.MustCompile(`[0-9][0-9.]*`)

// lossTitle is the loss panel's title line, without the panel beside it.
func lossTitle(t *testing.T, v string) string {
	t.Helper()
	for _, l := range strings.Split(ansi.Strip(v), "\n") {
		if i := strings.Index(l, "── loss "); i >= 0 {
			if j := strings.Index(l, "── kernels"); j > 0 {
				l = l[:j]
			}
			return l[i:]
		}
	}
	t.Fatalf("no loss title:\n%s", v)
	return ""
}

// TestLossTitleFits: the loss panel's title fits its width at 80 and 120
// columns, in colour and without, shortened without cutting a number: with
// validation losses at 120×40 it still shows train, val and, when there is
// room, avg.
func TestLossTitleFits(t *testing.T) {
	defer lipgloss.SetColorProfile(termenv.Ascii)
	for _, p := range []termenv.Profile{termenv.Ascii, termenv.ANSI256} {
		for _, sz := range [][2]int{{80, 24}, {100, 30}, {120, 24}, {120, 40}, {250, 70}} {
			for _, evals := range [][]float64{nil, {5.5}, {5.5, 5.75}, {12.3456, 11.5, 10.25}} {
				t.Run(fmt.Sprintf("%v/%dx%d/%v", p, sz[0], sz[1], evals), func(t *testing.T) {
					lipgloss.SetColorProfile(p)
					r := newRig(t, sz[0], sz[1])
					r.run(200)
					for i, l := range evals {
						r.bus.Publish(engine.EvalEvent{Step: 50 * (i + 1), Loss: l})
					}
					r.tick()
					v := r.m.View()
					checkScreen(t, v, sz[0], sz[1])
					title := lossTitle(t, v)
					if strings.Contains(title, "…") || !strings.HasSuffix(strings.TrimRight(title, " "), "─") {
						t.Errorf("title cut: %q", title)
					}
					for _, n := range number.FindAllString(title, -1) {
						if i := strings.IndexByte(n, '.'); i < 0 || len(n)-i-1 < 3 {
							t.Errorf("number %q in the title has fewer than 3 decimals: %q", n, title)
						}
					}
					for _, want := range []string{"train ", "avg "} {
						if !strings.Contains(title, want) {
							t.Errorf("title lacks %q: %q", want, title)
						}
					}
					if len(evals) > 0 && !strings.Contains(title, "val ") {
						t.Errorf("title lacks val: %q", title)
					}
				})
			}
		}
	}
}

// TestNoColourLegend: without colour the loss title says which glyph is
// which series; in colour the names' colours do.
func TestNoColourLegend(t *testing.T) {
	defer lipgloss.SetColorProfile(termenv.Ascii)
	r := newRig(t, 80, 24)
	r.run(50)
	if title := lossTitle(t, r.m.View()); !strings.Contains(title, "• avg") || strings.Contains(title, "◆") {
		t.Errorf("no-colour title without validation: %q", title)
	}
	r.bus.Publish(engine.EvalEvent{Step: 25, Loss: 6})
	r.tick()
	if title := lossTitle(t, r.m.View()); !strings.Contains(title, "• avg") || !strings.Contains(title, "◆ val") {
		t.Errorf("no-colour title: %q", title)
	}
	lipgloss.SetColorProfile(termenv.ANSI256)
	if title := lossTitle(t, r.m.View()); strings.Contains(title, "•") || strings.Contains(title, "◆") {
		t.Errorf("colour title marks glyphs the chart does not draw: %q", title)
	}
}

// TestNotesClearedOnConfirm: a request's note goes when the engine's event
// confirms it, not later, and not on some other event.
func TestNotesClearedOnConfirm(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	status := func() string {
		ls := strings.Split(r.m.View(), "\n")
		return ls[len(ls)-2]
	}
	for _, tc := range []struct {
		key, note string
		other     engine.Event // an event that confirms something else
		confirm   engine.Event
	}{
		{"p", "pause requested", engine.SampleEvent{Step: 5}, engine.StateEvent{Step: 5, State: "paused"}},
		{"p", "resume requested", engine.StateEvent{Step: 5, State: "paused"}, engine.StateEvent{Step: 5, State: "running"}},
		{"s", "sample requested", engine.CheckpointEvent{Step: 5}, engine.SampleEvent{Step: 5, Tokens: []int32{1}}},
		{"s", "sample requested", engine.WarningEvent{Step: 5, Msg: "loss scale halved"}, engine.WarningEvent{Step: 5, Msg: "sample: no prompt"}},
		{"c", "checkpoint requested", engine.SampleEvent{Step: 5}, engine.CheckpointEvent{Step: 5, Path: "x"}},
		{"r", "restart requested", engine.CheckpointEvent{Step: 5}, engine.StateEvent{State: "restarted"}},
	} {
		r.press(tc.key)
		if s := status(); !strings.Contains(s, tc.note) {
			t.Fatalf("%s: no note: %q", tc.note, s)
		}
		r.bus.Publish(tc.other)
		r.tick()
		if s := status(); !strings.Contains(s, tc.note) {
			t.Errorf("%s: cleared by %#v: %q", tc.note, tc.other, s)
		}
		r.bus.Publish(tc.confirm)
		r.tick()
		if s := status(); strings.Contains(s, tc.note) {
			t.Errorf("%s: still shown after %#v: %q", tc.note, tc.confirm, s)
		}
	}
	// The exit's note stays through the exit checkpoint.
	r.press("q")
	r.bus.Publish(engine.CheckpointEvent{Step: 5, Path: "x"})
	r.tick()
	if s := status(); !strings.Contains(s, "checkpointing before exit") {
		t.Errorf("exit note cleared by the checkpoint: %q", s)
	}
}

// runProgram runs m in a tea.Program with no terminal, keys written to its
// input in one Write (one read for the parser).
func runProgram(t *testing.T, m *Model, keys string) tea.Model {
	t.Helper()
	in, w := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(io.Discard), tea.WithContext(ctx), tea.WithoutSignalHandler())
	go w.Write([]byte(keys))
	final, err := p.Run()
	if err != nil {
		t.Fatalf("program: %v", err)
	}
	return final
}

// TestResumedCheckpointInStatus: a resumed run's status line names the
// checkpoint it resumed from until it writes one of its own.
func TestResumedCheckpointInStatus(t *testing.T) {
	bus := engine.NewBus(100)
	m := New(Options{Source: bus, Info: RunInfo{Model: "tiny", Steps: 100, Resumed: "runs/tiny/step-000060.safetensors", ResumedStep: 60}})
	defer m.Close()
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	if v := m.View(); !strings.Contains(v, "resumed from checkpoint step 60 → runs/tiny/step-000060.safetensors") || strings.Contains(v, "no checkpoint yet") {
		t.Errorf("status does not name the checkpoint resumed from:\n%s", v)
	}
	m.apply(engine.CheckpointEvent{Step: 70, Path: "runs/tiny/step-000070.safetensors"})
	if v := m.View(); !strings.Contains(v, "checkpoint step 70") || strings.Contains(v, "resumed from") {
		t.Errorf("status after a checkpoint of its own:\n%s", v)
	}
}

// TestElapsedSpansRestarts: a console given the run's earlier start counts
// elapsed from it, not from its own.
func TestElapsedSpansRestarts(t *testing.T) {
	clk := &clock{t0}
	m := New(Options{Now: clk.now, Info: RunInfo{Steps: 100, Started: t0.Add(-90 * time.Second)}})
	defer m.Close()
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	if v := m.View(); !strings.Contains(v, "elapsed 1m30s") {
		t.Errorf("elapsed does not count from the run's start:\n%s", v)
	}
}
