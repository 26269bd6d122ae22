package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/model"
)

func TestMain(m *testing.M) {
	// Plain output makes the assertions independent of the test's terminal.
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

// fakeCtl records commands; full makes Send refuse, as a full Runner queue.
type fakeCtl struct {
	got  []engine.Command
	full bool
}

func (f *fakeCtl) Send(c engine.Command) bool {
	if f.full {
		return false
	}
	f.got = append(f.got, c)
	return true
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a settable fake time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func stats(step int, loss float64) engine.StepStats {
	st := engine.StepStats{
		Step: step, Loss: loss, LR: 3e-4, GradNorm: 1.25, LossScale: 1024,
		Tokens: 256, Time: 40 * time.Millisecond, TokensPerSec: 6400,
		DeviceTime: 25 * time.Millisecond, DeviceFLOPs: 5e9, DeviceFLOPS: 2e11,
		Utilisation: 0.4213, Emulated: true, BudgetUsed: 12, BudgetLimit: 119,
		DWTime: 8 * time.Millisecond, DWHidden: 7 * time.Millisecond,
		Phases: engine.Phases{Staging: 3 * time.Millisecond, Classifier: 5 * time.Millisecond,
			Norms: time.Millisecond, DWWait: time.Millisecond, Optimizer: 2 * time.Millisecond},
	}
	for _, id := range model.Kernels {
		st.Kernels[id] = engine.KernelTiming{Name: id.String(), Evals: 6, Time: 6 * time.Millisecond, FLOPs: 1.2e9}
	}
	return st
}

type rig struct {
	m   *Model
	bus *engine.Bus
	ctl *fakeCtl
	clk *clock
}

func newRig(t testing.TB, w, h int) *rig {
	t.Helper()
	r := &rig{bus: engine.NewBus(1000), ctl: &fakeCtl{}, clk: &clock{t0}}
	r.m = New(Options{Source: r.bus, Controller: r.ctl, Now: r.clk.now, Info: RunInfo{
		Model: "stories15M", Params: 15_190_000, Device: "sim · CPU emulation", BLAS: "openblas", Steps: 1000,
		Decode: func(toks []int32) string {
			var b strings.Builder
			for _, tk := range toks {
				fmt.Fprintf(&b, "w%d ", tk)
			}
			return b.String()
		},
	}})
	t.Cleanup(r.m.Close)
	r.m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return r
}

// tick advances the fake clock and delivers a redraw tick; it returns the
// command Update gave back.
func (r *rig) tick() tea.Cmd {
	r.clk.t = r.clk.t.Add(time.Second)
	_, cmd := r.m.Update(tickMsg(r.clk.t))
	return cmd
}

func (r *rig) press(k string) tea.Cmd {
	msg := tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
	switch k {
	case "esc":
		msg = tea.KeyMsg{Type: tea.KeyEsc}
	case "ctrl+c":
		msg = tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	_, cmd := r.m.Update(msg)
	return cmd
}

// run publishes a typical run: n steps, a sample, a checkpoint, a warning.
func (r *rig) run(n int) {
	r.bus.Publish(engine.StateEvent{State: "running"})
	for i := range n {
		r.bus.Publish(engine.StepEvent{StepStats: stats(i, 8-3*float64(i)/float64(n)+0.1*math.Sin(float64(i)))})
	}
	r.bus.Publish(engine.SampleEvent{Step: n, Prompt: []int32{1}, Tokens: []int32{7, 8, 9}})
	r.bus.Publish(engine.CheckpointEvent{Step: n, Path: "runs/x/ckpt-000200.bin"})
	r.bus.Publish(engine.WarningEvent{Step: n, Msg: "loss scale halved"})
	r.tick()
}

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

func checkScreen(t *testing.T, v string, w, h int) {
	t.Helper()
	lines := strings.Split(v, "\n")
	if len(lines) != h {
		t.Errorf("%d×%d: view has %d lines", w, h, len(lines))
	}
	for i, l := range lines {
		if lw := lipgloss.Width(l); lw > w {
			t.Errorf("%d×%d: line %d is %d wide: %q", w, h, i, lw, l)
		}
	}
}

func TestKeysSendCommands(t *testing.T) {
	for _, tc := range []struct {
		keys string
		want []engine.Command
	}{
		{"p", []engine.Command{engine.Pause}},
		{"pp", []engine.Command{engine.Pause, engine.Resume}},
		{"c", []engine.Command{engine.Checkpoint}},
		{"r", []engine.Command{engine.Restart}},
		{"s", []engine.Command{engine.Sample}},
		{"q", []engine.Command{engine.Checkpoint, engine.Stop}},
		{"?x", nil},
	} {
		t.Run(tc.keys, func(t *testing.T) {
			r := newRig(t, 80, 24)
			r.run(5)
			for _, k := range tc.keys {
				if cmd := r.press(string(k)); isQuit(cmd) {
					t.Fatalf("key %q quit", k)
				}
			}
			if fmt.Sprint(r.ctl.got) != fmt.Sprint(tc.want) {
				t.Errorf("keys %q sent %v, want %v", tc.keys, r.ctl.got, tc.want)
			}
		})
	}
}

func TestQuitTwiceQuitsAtOnce(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	if isQuit(r.press("q")) {
		t.Fatal("first q quit before the checkpoint")
	}
	if !strings.Contains(r.m.View(), "STOPPING") {
		t.Error("first q: view does not say STOPPING")
	}
	if !isQuit(r.press("q")) {
		t.Fatal("second q did not quit")
	}
	if !r.m.forced {
		t.Error("second q not recorded as forced")
	}
	if fmt.Sprint(r.ctl.got) != fmt.Sprint([]engine.Command{engine.Checkpoint, engine.Stop}) {
		t.Errorf("sent %v", r.ctl.got)
	}
}

// TestCtrlCQuitsAsInterrupted: ctrl+c checkpoints and stops as q does, and
// is remembered so Run reports ErrInterrupted (exit 130); q is not.
func TestCtrlCQuitsAsInterrupted(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	if isQuit(r.press("ctrl+c")) {
		t.Fatal("ctrl+c quit before the checkpoint")
	}
	if fmt.Sprint(r.ctl.got) != fmt.Sprint([]engine.Command{engine.Checkpoint, engine.Stop}) {
		t.Errorf("ctrl+c sent %v", r.ctl.got)
	}
	r.bus.Publish(engine.StateEvent{Step: 5, State: "stopped"})
	if !isQuit(r.tick()) {
		t.Fatal("did not quit after the engine stopped")
	}
	if !r.m.interrupted || r.m.forced {
		t.Errorf("interrupted %v, forced %v; want an interrupted, clean quit", r.m.interrupted, r.m.forced)
	}
	q := newRig(t, 80, 24)
	q.run(5)
	q.press("q")
	if q.m.interrupted {
		t.Error("q recorded as an interrupt")
	}
}

func TestQuitWaitsForStop(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	r.press("q")
	if isQuit(r.tick()) {
		t.Fatal("quit before the engine stopped")
	}
	r.bus.Publish(engine.CheckpointEvent{Step: 5, Path: "runs/x/ckpt.bin"})
	r.bus.Publish(engine.StateEvent{Step: 5, State: "stopped"})
	if !isQuit(r.tick()) {
		t.Fatal("did not quit after the engine stopped")
	}
	if r.m.forced {
		t.Error("a clean quit was recorded as forced")
	}
}

func TestQuitAfterRunEnded(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	r.bus.Publish(engine.StateEvent{Step: 5, State: "finished"})
	r.tick()
	if !strings.Contains(r.m.View(), "FINISHED") {
		t.Error("view does not say FINISHED")
	}
	r.press("p")
	if !isQuit(r.press("q")) {
		t.Fatal("q after the run ended did not quit at once")
	}
	if len(r.ctl.got) != 0 {
		t.Errorf("sent %v to a run that has ended", r.ctl.got)
	}
}

func TestFullQueue(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	r.ctl.full = true
	r.press("c")
	if v := r.m.View(); !strings.Contains(v, "not queued") {
		t.Errorf("a refused command is not reported:\n%s", v)
	}
	r.press("p")
	if strings.Contains(r.m.View(), "PAUSED") {
		t.Error("shows PAUSED though the pause was not queued")
	}
	// q with a full queue cannot ask for a checkpoint: it exits at once.
	if !isQuit(r.press("q")) {
		t.Error("q with a full queue did not quit")
	}
}

func TestViewSizes(t *testing.T) {
	for _, sz := range [][2]int{{80, 24}, {100, 30}, {120, 40}, {250, 70}} {
		w, h := sz[0], sz[1]
		t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
			r := newRig(t, w, h)
			r.run(200)
			v := r.m.View()
			checkScreen(t, v, w, h)
			last := 8 - 3*199.0/200 + 0.1*math.Sin(199)
			for _, want := range []string{
				"stories15M", "15.2M params", "emulator", "openblas", "step 200/1000", "6.40k tok/s", "ETA",
				lossText(last),                                // the loss value
				"attn_fwd", "ffn_bwd", "15.0%", "200 GFLOP/s", // kernel table
				"staging", "3.00", "hidden", "7.00 (87.5%)", // CPU phases
				"emulator util", "42.1%", "200 GFLOP/s", // utilisation
				"12/119", // budget
				"w7 w8",  // sample text
				"checkpoint step 200", "loss scale halved", "RUNNING",
			} {
				if !strings.Contains(v, want) {
					t.Errorf("view lacks %q:\n%s", want, v)
				}
			}
		})
	}
}

// TestTinyTerminal: a terminal below 80×24 gets a message that fits it
// (wrapped at words, at most its height), says what it needs when there is
// room, and always that training goes on and q still quits.
func TestTinyTerminal(t *testing.T) {
	for _, sz := range [][2]int{{79, 24}, {80, 23}, {40, 10}, {40, 1}, {200, 5}, {20, 1}, {20, 3}, {25, 2}, {33, 24}, {79, 1}} {
		r := newRig(t, sz[0], sz[1])
		r.run(3)
		v := r.m.View()
		ls := strings.Split(v, "\n")
		if len(ls) > sz[1] {
			t.Errorf("%v: tiny view has %d lines: %q", sz, len(ls), v)
		}
		for _, l := range ls {
			if lipgloss.Width(l) > sz[0] {
				t.Errorf("%v: message wider than the terminal: %q", sz, l)
			}
		}
		text := strings.Join(strings.Fields(strings.ReplaceAll(v, "\u00a0", " ")), " ")
		if !strings.Contains(text, "q quits") || !strings.Contains(strings.ToLower(text), "training") {
			t.Errorf("%v: does not say training goes on and q quits: %q", sz, text)
		}
		if strings.Contains(text, "…") {
			t.Errorf("%v: message cut: %q", sz, text)
		}
		want := fmt.Sprintf("this terminal is %d×%d", sz[0], sz[1])
		if sz[0] >= 40 && sz[1] >= 3 && (!strings.Contains(text, "needs at least 80×24") || !strings.Contains(text, want) ||
			!strings.Contains(text, "Training continues")) {
			t.Errorf("%v: %q", sz, text)
		}
	}
	// Paused, it does not claim training continues.
	r := newRig(t, 40, 10)
	r.run(3)
	r.press("p")
	if v := r.m.View(); !strings.Contains(v, "paused") || strings.Contains(v, "continues") {
		t.Errorf("paused: %q", v)
	}
}

func TestEmptyState(t *testing.T) {
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {250, 70}} {
		r := newRig(t, sz[0], sz[1])
		r.tick()
		v := r.m.View()
		checkScreen(t, v, sz[0], sz[1])
		for _, want := range []string{"step 0/1000", "waiting for the first steps", "attn_fwd", "no sample yet", "no checkpoint yet"} {
			if !strings.Contains(v, want) {
				t.Errorf("%v: empty view lacks %q:\n%s", sz, want, v)
			}
		}
	}
	// No source, no controller, no size yet: still a view.
	m := New(Options{})
	if m.View() == "" {
		t.Error("empty view before the first size")
	}
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m.Update(tickMsg(t0))
	checkScreen(t, m.View(), 80, 24)
	if _, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")}); !isQuit(cmd) {
		t.Error("q without a controller did not quit")
	}
}

func TestBadLosses(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	for name, losses := range map[string][]float64{
		"one":      {3},
		"constant": {2, 2, 2, 2, 2},
		"nan":      {nan, nan, nan},
		"inf":      {inf, math.Inf(-1), inf},
		"mixed":    {5, nan, 4, inf, 3, math.Inf(-1), 2.5, 1e300},
		"nanfirst": {nan, 4, 3},
		"huge":     {1e300, -1e300},
		"tiny":     {1e-12, 2e-12, 1e-12},
		"negative": {-1, -2, -3},
	} {
		for _, sz := range [][2]int{{80, 24}, {120, 40}, {250, 70}} {
			t.Run(fmt.Sprintf("%s/%dx%d", name, sz[0], sz[1]), func(t *testing.T) {
				r := newRig(t, sz[0], sz[1])
				for i, l := range losses {
					r.bus.Publish(engine.StepEvent{StepStats: stats(i, l)})
				}
				r.tick()
				checkScreen(t, r.m.View(), sz[0], sz[1])
			})
		}
	}
}

func TestManySteps(t *testing.T) {
	// Past the series cap the history thins itself and the chart still draws.
	r := newRig(t, 120, 40)
	for i := range seriesCap + 10 {
		r.m.apply(engine.StepEvent{StepStats: stats(i, 5/math.Sqrt(float64(i+1)))})
	}
	if n := r.m.series.n(); n >= seriesCap || n < seriesCap/2 {
		t.Errorf("series holds %d points", n)
	}
	checkScreen(t, r.m.View(), 120, 40)
}

func TestPauseShowsPaused(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	if strings.Contains(r.m.View(), "PAUSED") {
		t.Fatal("PAUSED before any pause")
	}
	r.press("p")
	if v := r.m.View(); !strings.Contains(v, "PAUSED") || !strings.Contains(v, "ETA paused") {
		t.Errorf("p does not show PAUSED:\n%s", v)
	}
	r.press("p")
	if strings.Contains(r.m.View(), "PAUSED") {
		t.Error("still PAUSED after resume")
	}
	// The engine's own state wins (e.g. paused by another controller).
	r.bus.Publish(engine.StateEvent{Step: 5, State: "paused"})
	r.tick()
	if !strings.Contains(r.m.View(), "PAUSED") {
		t.Error("a paused StateEvent does not show PAUSED")
	}
}

func TestRestartClearsCurve(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(50)
	r.bus.Publish(engine.StateEvent{Step: 0, State: "restarted"})
	r.tick()
	if v := r.m.View(); !strings.Contains(v, "step 0/1000") {
		t.Errorf("after restart, before its first step, the header is stale:\n%s", v)
	}
	r.bus.Publish(engine.StepEvent{StepStats: stats(0, 9)})
	r.tick()
	if n := r.m.series.n(); n != 1 {
		t.Errorf("after restart the series holds %d points, want 1", n)
	}
	if !strings.Contains(r.m.View(), "step 1/1000") {
		t.Errorf("after restart:\n%s", r.m.View())
	}
}

func TestHistoryReplayAndErrors(t *testing.T) {
	bus := engine.NewBus(100)
	for i := range 10 {
		bus.Publish(engine.StepEvent{StepStats: stats(i, 5)})
	}
	bus.Publish(engine.ErrorEvent{Step: 10, Err: errors.New("eval attn_fwd: device lost")})
	m := New(Options{Source: bus, Now: func() time.Time { return t0 }})
	defer m.Close()
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	if n := m.series.n(); n != 10 {
		t.Errorf("replayed %d steps, want 10", n)
	}
	v := m.View()
	for _, want := range []string{"ERROR", "device lost", "step 10"} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
}

// lossySource is a source whose subscription dropped everything: the
// header must still show the newest step from Latest.
type lossySource struct{ hist []engine.Event }

func (s lossySource) Latest() (engine.StepStats, bool) { return stats(99, 2.5), true }
func (s lossySource) History() []engine.Event          { return s.hist }
func (s lossySource) Subscribe(int) (<-chan engine.Event, func()) {
	return make(chan engine.Event), func() {}
}

func TestDroppedEventsUseLatest(t *testing.T) {
	m := New(Options{Source: lossySource{[]engine.Event{engine.StepEvent{StepStats: stats(0, 5)}}}, Info: RunInfo{Steps: 500}})
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m.Update(tickMsg(t0))
	if v := m.View(); !strings.Contains(v, "step 100/500") || !strings.Contains(v, "2.5000") {
		t.Errorf("header does not show the latest step:\n%s", v)
	}
}

// TestHelpOverlay: ? shows every key, the descriptions in one column after
// the widest key (ctrl+c); esc closes it.
func TestHelpOverlay(t *testing.T) {
	r := newRig(t, 80, 24)
	r.run(5)
	r.press("?")
	v := r.m.View()
	checkScreen(t, v, 80, 24)
	col := -1
	for _, d := range []string{"pause / resume", "write a checkpoint", "restart the run", "generate a sample",
		"checkpoint, stop and exit", "as q, exiting", "show / hide this help"} {
		l := ""
		for _, x := range strings.Split(v, "\n") {
			if strings.Contains(x, d) {
				l = x
			}
		}
		if l == "" {
			t.Fatalf("help lacks %q:\n%s", d, v)
		}
		c := lipgloss.Width(l[:strings.Index(l, d)])
		if col >= 0 && c != col {
			t.Errorf("%q starts at column %d, the others at %d:\n%s", d, c, col, v)
		}
		col = c
	}
	r.press("esc")
	if strings.Contains(r.m.View(), "checkpoint, stop and exit") {
		t.Error("esc did not close the help")
	}
}

func TestColourViewDoesNotPanic(t *testing.T) {
	lipgloss.SetColorProfile(termenv.TrueColor)
	defer lipgloss.SetColorProfile(termenv.Ascii)
	r := newRig(t, 120, 40)
	r.run(100)
	checkScreen(t, r.m.View(), 120, 40)
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{count(15_190_000), "15.2M"},
		{count(110_000_000), "110M"},
		{count(1_100_000_000), "1.10B"},
		{rate(1.234e12), "1.23 TFLOP/s"},
		{rate(4.56e11), "456 GFLOP/s"},
		{rate(0), "—"},
		{rate(math.NaN()), "—"},
		{dur(42 * time.Second), "42s"},
		{dur(184 * time.Second), "3m04s"},
		{dur(3720 * time.Second), "1h02m"},
		{share(time.Millisecond, 4*time.Millisecond), "25.0%"},
		{share(time.Millisecond, 0), "—"},
		{lossText(math.Inf(1)), "+Inf"},
		{tokRate(12345), "12.3k"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// stopCtl behaves like a Runner for the quit path: Stop makes the engine
// report "stopped".
type stopCtl struct {
	fakeCtl
	bus *engine.Bus
}

func (c *stopCtl) Send(cmd engine.Command) bool {
	c.fakeCtl.Send(cmd)
	if cmd == engine.Stop {
		c.bus.Publish(engine.StateEvent{State: "stopped"})
	}
	return true
}

// TestProgram runs the model in a real tea.Program (keys through its input
// parser, no terminal): p then q must pause, checkpoint, stop and exit
// cleanly once the engine reports it stopped.
func TestProgram(t *testing.T) {
	bus := engine.NewBus(100)
	ctl := &stopCtl{bus: bus}
	m := New(Options{Source: bus, Controller: ctl})
	defer m.Close()
	bus.Publish(engine.StepEvent{StepStats: stats(0, 5)})
	in, keys := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(io.Discard), tea.WithContext(ctx), tea.WithoutSignalHandler())
	go func() {
		// Each Write is one read for the parser, so one key each.
		keys.Write([]byte("p"))
		keys.Write([]byte("q"))
	}()
	final, err := p.Run()
	if err != nil {
		t.Fatalf("program: %v", err)
	}
	if fm := final.(*Model); fm.forced || !fm.ended {
		t.Errorf("final state: forced %v, ended %v", fm.forced, fm.ended)
	}
	want := []engine.Command{engine.Pause, engine.Checkpoint, engine.Stop}
	if fmt.Sprint(ctl.got) != fmt.Sprint(want) {
		t.Errorf("sent %v, want %v", ctl.got, want)
	}
}

// The emulator's own name starts with "emulator"; the header labels the
// device once, not twice.
func TestHeaderNamesEmulatorOnce(t *testing.T) {
	r := newRig(t, 120, 40)
	r.m.info.Device = "emulator · CPU (AMD EPYC, 2 threads)"
	r.run(3)
	r.tick()
	v := r.m.View()
	if strings.Contains(v, "emulator · emulator") || !strings.Contains(v, "emulator · CPU (AMD EPYC, 2 threads)") {
		t.Errorf("header should read \"emulator · CPU (…)\" once:\n%s", strings.SplitN(v, "\n", 2)[0])
	}
}

// TestValidationPoints: eval events become the legend's val and best
// figures and isolated points in the chart, at the columns of the steps
// they were measured after.
func TestValidationPoints(t *testing.T) {
	r := newRig(t, 250, 70)
	r.run(100)
	r.bus.Publish(engine.EvalEvent{Step: 50, Loss: 5.5, Tokens: 1024})
	r.bus.Publish(engine.EvalEvent{Step: 100, Loss: 5.75, Tokens: 1024})
	r.tick()
	v := r.m.View()
	if !strings.Contains(v, "val 5.7500 (best 5.5000)") {
		t.Errorf("legend lacks the validation figures:\n%s", v)
	}
	if strings.Count(v, "◆") < 2 {
		t.Errorf("chart lacks the validation points:\n%s", v)
	}
	_, _, val := bin(&r.m.series, 50)
	for c, x := range val {
		want := math.NaN()
		switch c {
		case 49 * 50 / 100:
			want = 5.5
		case 49:
			want = 5.75
		}
		if !(x == want || math.IsNaN(x) && math.IsNaN(want)) {
			t.Errorf("validation column %d = %v, want %v", c, x, want)
		}
	}
}

// TestBudgetGauge: the compile-budget gauge says where the budget forces
// an exec restart — never on the dynamic pipeline, before the step whose
// recompiles no longer fit on the static one — and the loss says when it is
// over a compacted vocabulary.
func TestBudgetGauge(t *testing.T) {
	r := newRig(t, 120, 40)
	r.m.info.Vocab = 512
	for i := range 3 {
		st := stats(i, 5)
		st.BudgetUsed, st.BudgetLimit = 4, 119
		r.bus.Publish(engine.StepEvent{StepStats: st})
	}
	r.tick()
	if v := r.m.View(); !strings.Contains(v, "4/119 compiles · no restart") {
		t.Errorf("dynamic pipeline gauge:\n%s", v)
	}

	r = newRig(t, 120, 40)
	r.m.info.Vocab = 512
	// Static: 4 shared + 8 per step, limit 28: steps 1–3 fit, 4 does not.
	for i := range 2 {
		st := stats(i, 5)
		st.BudgetUsed, st.BudgetLimit, st.ScoredVocab = 4+8*(i+1), 28, 37
		r.bus.Publish(engine.StepEvent{StepStats: st})
	}
	r.tick()
	v := r.m.View()
	if !strings.Contains(v, "20/28 compiles · restart at step 4") {
		t.Errorf("static pipeline gauge after 2 steps:\n%s", v)
	}
	if !strings.Contains(v, "(37/512 vocab)") {
		t.Errorf("the loss does not say it is over 37 of 512 ids:\n%s", v)
	}
}

// TestSampleIsSanitised: generated text cannot move the terminal's cursor:
// tabs, carriage returns, escape sequences and invalid UTF-8 are neutralised,
// and the screen keeps its size.
func TestSampleIsSanitised(t *testing.T) {
	if got, want := printable("a\tb\r\nc\x1b[2Jd\xffe\u0085f\u0605g\u0301h"), "a b\nc·[2Jd\uFFFDe·f·g·h"; got != want {
		t.Errorf("printable = %q, want %q", got, want)
	}
	r := newRig(t, 120, 40)
	r.m.info.Decode = func([]int32) string { return "tab\there\x1b[2J\r\x07 and more\tand more\t\t\tand more" }
	r.run(20)
	v := r.m.View()
	checkScreen(t, v, 120, 40)
	if strings.ContainsAny(v, "\t\r\x07") || strings.Contains(v, "\x1b[2J") {
		t.Errorf("control characters reached the screen: %q", v)
	}
}
