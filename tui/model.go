package tui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/anetop/anetop/engine"
)

// Model is the console's bubbletea model. Create it with New.
type Model struct {
	info     RunInfo
	src      Source
	ctl      Controller
	now      func() time.Time
	interval time.Duration
	// compilesPerStep is the budget the last step spent (-1 before two
	// consecutive steps were seen).
	compilesPerStep int

	events <-chan engine.Event
	cancel func()

	width, height int
	start, clock  time.Time

	haveStep bool
	last     engine.StepStats
	stepEMA  time.Duration // smoothed step time, for the ETA
	series   lossSeries

	state  string // the engine's last StateEvent state
	paused bool
	ended  bool // finished, stopped or failed: nobody reads commands any more
	// endAt is when the console learnt the run ended (the clock of the
	// poll that applied the event): elapsed stops there. Events carry no
	// time of their own, so this is up to one redraw interval late.
	endAt   time.Time
	errMsg  string
	warn    string
	warnAt  time.Time
	sample  string
	sampleN int // step of the sample

	ckpt struct {
		ok      bool
		resumed bool // the checkpoint the run resumed from, not one it wrote
		step    int
		path    string
		at      time.Time
		err     string
	}

	note   string // feedback for the last key, e.g. "checkpoint requested"
	noteAt time.Time
	// noteReq: note is a request for noteCmd, cleared when the engine's
	// event confirms it (a stale "pause requested" under PAUSED misleads).
	noteReq bool
	noteCmd engine.Command

	help     bool
	quitting bool // q pressed once: waiting for the checkpoint and stop
	forced   bool // q pressed twice
	// ctrl+c quits as q does, and Run reports it (ErrInterrupted) so the
	// process exits as interrupted, as it would on SIGINT without a console.
	interrupted bool
	keys        keyMap

	keyLineW int    // width keyLineS was drawn for
	keyLineE bool   // ended, when keyLineS was drawn
	keyLineS string // the key line, which changes only with the width and the end

	legendK legendKey // what legendV, the loss panel's title, was drawn for
	legendV memoVal

	memo map[memoKey]memoVal // styled's cache

	line1K line1Key // what line1S, the header's first line, was drawn for
	line1S string

	// The chart changes only when the series does: at a few steps a
	// second most frames would draw the same one again.
	seriesGen int // bumped whenever series changes
	chartK    chartKey
	chartS    string

	barW    int // width and colour bar was made for
	barC    bool
	bar     progress.Model
	haveBar bool
}

type tickMsg time.Time

// New builds the console. It subscribes to the source at once and replays
// its history, so nothing published between New and the first frame is
// lost; call Close (Run does) to unsubscribe.
func New(o Options) *Model {
	m := &Model{
		compilesPerStep: -1,
		info:            o.Info,
		src:             o.Source,
		ctl:             o.Controller,
		now:             o.Now,
		interval:        max(o.Interval, minInterval),
		state:           "waiting",
		keys:            defaultKeys(),
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.start = m.now()
	m.clock = m.start
	if st := o.Info.Started; !st.IsZero() && st.Before(m.start) {
		m.start = st
	}
	if o.Info.Resumed != "" {
		m.ckpt.ok, m.ckpt.resumed, m.ckpt.step, m.ckpt.path = true, true, o.Info.ResumedStep, o.Info.Resumed
	}
	if m.src != nil {
		// Subscribe before reading history: an event published in between
		// then shows up twice rather than not at all, and apply ignores a
		// step it has already seen.
		m.events, m.cancel = m.src.Subscribe(subscriptionBuffer)
		for _, ev := range m.src.History() {
			m.apply(ev)
		}
	}
	return m
}

// Close unsubscribes from the source.
func (m *Model) Close() {
	if m.cancel != nil {
		m.cancel()
		m.cancel = nil
	}
}

// Init starts the redraw tick.
func (m *Model) Init() tea.Cmd { return m.tick() }

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.interval, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Update handles keys, resizes and the redraw tick; events are only read on
// the tick, which bounds the work per second whatever the step rate.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tickMsg:
		m.clock = m.now()
		if m.poll() {
			return m, tea.Quit
		}
		return m, m.tick()
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// poll drains the subscription without blocking and refreshes the latest
// step. It reports whether the console should now exit.
func (m *Model) poll() bool {
	// A bounded drain keeps one frame's work bounded even if the engine
	// published a burst; the rest waits for the next tick.
drain:
	for range subscriptionBuffer {
		select {
		case ev, ok := <-m.events: // a nil channel (no source) never fires
			if !ok {
				m.events = nil
				break drain
			}
			m.apply(ev)
		default:
			break drain
		}
	}
	if m.src != nil {
		// Only ever newer than what the events said (the subscription
		// dropped some): right after a restart Latest still holds the
		// old run's last step, which must not come back.
		if st, ok := m.src.Latest(); ok && m.haveStep && st.Step > m.last.Step {
			m.last, m.haveStep = st, true
		}
	}
	if m.ended && (m.quitting || m.info.ExitOnFinish) {
		return true
	}
	return false
}

// apply folds one engine event into the view state.
func (m *Model) apply(ev engine.Event) {
	now := m.now()
	switch ev := ev.(type) {
	case engine.StepEvent:
		st := ev.StepStats
		if m.series.n() > 0 && st.Step <= m.series.lastStep() {
			return // replayed twice (see New)
		}
		if m.haveStep && st.Step == m.last.Step+1 {
			// Compiles a step costs: 0 on the dynamic pipeline, 4 per layer
			// on the static one, which restarts before the budget runs out.
			m.compilesPerStep = st.BudgetUsed - m.last.BudgetUsed
		}
		m.last, m.haveStep = st, true
		m.series.add(st.Step, st.Loss)
		m.seriesGen++
		if st.Time > 0 {
			if m.stepEMA == 0 {
				m.stepEMA = st.Time
			} else {
				m.stepEMA = (m.stepEMA*7 + st.Time) / 8
			}
		}
	case engine.SampleEvent:
		m.sampleN = ev.Step
		m.sample = m.decode(ev.Prompt, ev.Tokens)
		m.confirmed(engine.Sample)
	case engine.CheckpointEvent:
		m.confirmed(engine.Checkpoint)
		m.ckpt.ok, m.ckpt.resumed, m.ckpt.step, m.ckpt.path, m.ckpt.at = true, false, ev.Step, ev.Path, now
		m.ckpt.err = ""
		if ev.Err != nil {
			m.ckpt.err = ev.Err.Error()
		}
	case engine.EvalEvent:
		// Measured after ev.Step steps: the weights the loss of step index
		// ev.Step−1 (0-based, as the series counts) left behind.
		m.series.addVal(ev.Step-1, ev.Loss)
		m.seriesGen++
	case engine.WarningEvent:
		m.warn, m.warnAt = fmt.Sprintf("step %d: %s", ev.Step, ev.Msg), now
		if strings.HasPrefix(ev.Msg, "sample:") {
			// The Runner's answer to a Sample it could not generate.
			m.confirmed(engine.Sample)
		}
	case engine.ErrorEvent:
		m.errMsg = fmt.Sprintf("step %d: %v", ev.Step, ev.Err)
		m.state, m.paused = "error", false
		m.end(now)
	case engine.StateEvent:
		m.state = ev.State
		switch ev.State {
		case "paused":
			m.paused = true
			m.confirmed(engine.Pause)
		case "running":
			m.paused, m.ended, m.endAt = false, false, time.Time{}
			m.confirmed(engine.Resume)
		case "restarted":
			m.confirmed(engine.Restart)
			// The engine went back to its initial weights and step 0:
			// the old curve would only mislead.
			m.series = lossSeries{}
			m.seriesGen++
			m.haveStep, m.last, m.stepEMA, m.compilesPerStep = false, engine.StepStats{}, 0, -1
		case "stopped", "finished":
			m.paused = false
			m.end(now)
		}
	}
}

// end marks the run ended at now (the first time only: a "stopped" after
// an error does not move the end).
func (m *Model) end(now time.Time) {
	if !m.ended {
		m.ended, m.endAt = true, now
	}
}

// confirmed clears the note of a request for c once the engine's event
// shows it done: the panel, badge or status line says so from then on.
func (m *Model) confirmed(c engine.Command) {
	if m.noteReq && m.noteCmd == c {
		m.note, m.noteReq = "", false
	}
}

// decode shows the prompt and its continuation as text when the caller
// gave a tokenizer, else as token ids.
func (m *Model) decode(prompt, toks []int32) string {
	if m.info.Decode != nil {
		return m.info.Decode(prompt) + m.info.Decode(toks)
	}
	var b strings.Builder
	for i, t := range append(append([]int32{}, prompt...), toks...) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, t)
	}
	return b.String()
}

// send forwards a command and leaves a note saying whether it was queued.
func (m *Model) send(c engine.Command, note string) bool {
	if m.ctl == nil {
		m.setNote("no run to control")
		return false
	}
	if !m.ctl.Send(c) {
		m.setNote(fmt.Sprintf("engine busy: %s not queued, try again", c))
		return false
	}
	m.setNote(note)
	m.noteReq, m.noteCmd = true, c
	return true
}

func (m *Model) setNote(s string) { m.note, m.noteAt, m.noteReq = s, m.now(), false }

// key handles a key. Several runes in one message (keys typed faster than
// the terminal is read, or tmux send-keys qq) are those keys in order; a
// paste (bracketed, so Paste is set) or an alt+ combination is one key.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste && !k.Alt {
		for i := range k.Runes {
			one := tea.KeyMsg{Type: tea.KeyRunes, Runes: k.Runes[i : i+1]}
			if cmd := m.key1(one); cmd != nil {
				// Only tea.Quit is ever returned: the keys after it
				// would act on a console that is exiting.
				return cmd
			}
		}
		return nil
	}
	return m.key1(k)
}

func (m *Model) key1(k tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(k, m.keys.Interrupt):
		m.interrupted = true
		return m.quit()
	case key.Matches(k, m.keys.Quit):
		return m.quit()
	case key.Matches(k, m.keys.Help):
		m.help = !m.help
	case key.Matches(k, m.keys.Close):
		m.help = false
	case m.ended:
		m.setNote("the run has ended: q to exit")
	case key.Matches(k, m.keys.Pause):
		if m.paused {
			if m.send(engine.Resume, "resume requested") {
				m.paused = false
			}
		} else if m.send(engine.Pause, "pause requested") {
			// Shown at once; the engine confirms with a StateEvent after
			// the step in flight.
			m.paused = true
		}
	case key.Matches(k, m.keys.Checkpoint):
		m.send(engine.Checkpoint, "checkpoint requested")
	case key.Matches(k, m.keys.Restart):
		m.send(engine.Restart, "restart requested")
	case key.Matches(k, m.keys.Sample):
		m.send(engine.Sample, "sample requested")
	}
	return nil
}

// quit: the first q asks for a checkpoint and a stop and exits when the
// engine reports it stopped; a second q, or q once nothing is running,
// exits at once.
func (m *Model) quit() tea.Cmd {
	if m.ended || m.ctl == nil {
		return tea.Quit
	}
	if m.quitting {
		m.forced = true
		return tea.Quit
	}
	if !m.send(engine.Checkpoint, "checkpointing before exit — q again to quit now") {
		m.forced = true
		return tea.Quit
	}
	m.send(engine.Stop, "checkpointing before exit — q again to quit now")
	m.quitting = true
	return nil
}

// lossSeries keeps every step's loss and its exponential moving average up
// to a cap, then thins itself by half: the chart is at most a few hundred
// columns wide, so a long run loses nothing visible.
type lossSeries struct {
	steps []int
	loss  []float64
	avg   []float64
	ema   float64
	have  bool
	k     int // finite losses seen

	// lo and hi bound the finite losses and averages kept (valid when
	// ranged), so a frame need not scan the whole history for the chart's
	// y range.
	lo, hi float64
	ranged bool

	// val holds the validation losses (few: one per --eval-every steps),
	// by the 0-based step index of the training loss they follow.
	val     []valPoint
	bestVal float64 // lowest finite validation loss (valid when len(val) > 0)
}

type valPoint struct {
	step int
	loss float64
}

// addVal records a validation loss measured after step (0-based).
func (s *lossSeries) addVal(step int, loss float64) {
	if n := len(s.val); n > 0 && s.val[n-1].step >= step {
		return // replayed (see New)
	}
	if finite(loss) && (len(s.val) == 0 || loss < s.bestVal || !finite(s.bestVal)) {
		s.bestVal = loss
	}
	s.val = append(s.val, valPoint{step, loss})
	s.extend(loss)
}

const seriesCap = 1 << 16

// emaAlpha weights the newest loss in the moving average (~ a 50-step
// window), smoothing the batch-to-batch noise of a small model.
const emaAlpha = 0.04

func (s *lossSeries) n() int        { return len(s.steps) }
func (s *lossSeries) lastStep() int { return s.steps[len(s.steps)-1] }

func (s *lossSeries) add(step int, loss float64) {
	if finite(loss) {
		// A plain mean over the first 1/emaAlpha points, so the average
		// does not start pinned to the first (highest) loss.
		s.k++
		s.ema += max(emaAlpha, 1/float64(s.k)) * (loss - s.ema)
		s.have = true
	}
	avg := math.NaN()
	if s.have {
		avg = s.ema
	}
	s.steps, s.loss, s.avg = append(s.steps, step), append(s.loss, loss), append(s.avg, avg)
	s.extend(loss)
	s.extend(avg)
	if len(s.steps) >= seriesCap {
		k := 0
		for i := 0; i < len(s.steps); i += 2 {
			s.steps[k], s.loss[k], s.avg[k] = s.steps[i], s.loss[i], s.avg[i]
			k++
		}
		s.steps, s.loss, s.avg = s.steps[:k], s.loss[:k], s.avg[:k]
		// The dropped points may have held the extremes.
		s.ranged = false
		for i := range s.loss {
			s.extend(s.loss[i])
			s.extend(s.avg[i])
		}
		for _, v := range s.val {
			s.extend(v.loss)
		}
	}
}

// extend widens [lo, hi] to v if v is finite.
func (s *lossSeries) extend(v float64) {
	if !finite(v) {
		return
	}
	if !s.ranged {
		s.lo, s.hi, s.ranged = v, v, true
		return
	}
	s.lo, s.hi = min(s.lo, v), max(s.hi, v)
}

// finite is false for NaN, ±Inf and values too large to be a loss (fp16
// overflow reports 65504-ish or worse); such points are drawn as gaps.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && math.Abs(v) < 1e9 }

type keyMap struct {
	Pause, Checkpoint, Restart, Sample, Quit, Interrupt, Help, Close key.Binding
}

func defaultKeys() keyMap {
	return keyMap{
		Pause:      key.NewBinding(key.WithKeys("p", " "), key.WithHelp("p", "pause/resume")),
		Checkpoint: key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "checkpoint")),
		Restart:    key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "restart")),
		Sample:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sample")),
		Quit:       key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		Interrupt:  key.NewBinding(key.WithKeys("ctrl+c")),
		Help:       key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Close:      key.NewBinding(key.WithKeys("esc")),
	}
}

// ShortHelp is the key line at the bottom of the screen.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Pause, k.Checkpoint, k.Restart, k.Sample, k.Quit, k.Help}
}

// endedHelp is the key line once the run has ended: only q and ? still do
// something.
func (k keyMap) endedHelp() []key.Binding {
	return []key.Binding{key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "exit")), k.Help}
}

// FullHelp is unused (the overlay has its own longer text) but completes
// help.KeyMap.
func (k keyMap) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }
