package tui

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/progress"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/anetop/anetop/model"
)

// MinWidth and MinHeight are the smallest terminal the console lays out.
const (
	MinWidth  = 80
	MinHeight = 24
)

// wideFrom is the width from which the chart and the tables sit side by
// side rather than stacked.
const wideFrom = 120

// wideMinHeight is the height the side-by-side layout's right column needs;
// a wide but short terminal gets the stacked layout.
const wideMinHeight = 36

var (
	accent  = lipgloss.NewStyle().Foreground(lipgloss.Color("75")).Bold(true)
	dim     = lipgloss.NewStyle().Foreground(lipgloss.Color("244"))
	bold    = lipgloss.NewStyle().Bold(true)
	warnSt  = lipgloss.NewStyle().Foreground(lipgloss.Color("214"))
	errSt   = lipgloss.NewStyle().Foreground(lipgloss.Color("203")).Bold(true)
	okSt    = lipgloss.NewStyle().Foreground(lipgloss.Color("78"))
	badge   = lipgloss.NewStyle().Bold(true).Reverse(true).Padding(0, 1)
	trainSt = lipgloss.NewStyle().Foreground(lipgloss.Color("117"))
	avgSt   = lipgloss.NewStyle().Foreground(lipgloss.Color("214"))
	valSt   = lipgloss.NewStyle().Foreground(lipgloss.Color("118"))
	helpBox = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(1, 2)
)

// colour reports whether colours are in use: with NO_COLOR the chart marks
// its second series by glyph instead.
func colour() bool { return lipgloss.ColorProfile() != termenv.Ascii }

// View draws the whole screen from the state the last tick collected.
func (m *Model) View() string {
	w, h := m.width, m.height
	if w == 0 && h == 0 {
		return "anetop: starting…"
	}
	if w < MinWidth || h < MinHeight {
		return m.tooSmall(w, h)
	}
	if m.help {
		return block(strings.Split(lipgloss.Place(w, h, lipgloss.Center, lipgloss.Center, m.helpView()), "\n"), w, h)
	}
	top := m.header(w)
	bottom := m.status(w) + "\n" + m.keyLine(w)
	bodyH := h - 4
	var body string
	if w >= wideFrom && h >= wideMinHeight {
		body = m.wideBody(w, bodyH)
	} else {
		body = m.narrowBody(w, bodyH)
	}
	return top + "\n" + body + "\n" + bottom
}

// narrowBody stacks the panels; the chart gets whatever height is left.
func (m *Model) narrowBody(w, h int) string {
	sampleH := min(max(1, (h-20)/4+1), 6)
	fixed := 1 + kernelLines + 2 + 1 + 2 + 1 + 1 + sampleH // rules, table, phases, gauges, sample
	chartH := max(3, h-fixed)
	parts := []string{
		m.lossRule(w),
		m.chart(w, chartH),
		m.rule("kernels", m.stepLegend(), w),
		block(m.kernelTable(), w, kernelLines),
		block(m.phaseLines(), w, 2),
		m.rule("device", "", w),
		block(m.gauges(w), w, 2),
		m.rule("sample", m.sampleLegend(), w),
		block(m.sampleLines(w, sampleH), w, sampleH),
	}
	return block(strings.Split(strings.Join(parts, "\n"), "\n"), w, h)
}

// wideBody puts the chart and sample on the left, the tables and gauges on
// the right, so a wide terminal shows a longer loss history.
func (m *Model) wideBody(w, h int) string {
	rightW := min(max(64, w*2/5), 96)
	leftW := w - rightW - 2
	sampleH := min(max(2, h/5), 10)
	chartH := h - 2 - sampleH
	left := strings.Join([]string{
		m.lossRule(leftW),
		m.chart(leftW, chartH),
		m.rule("sample", m.sampleLegend(), leftW),
		block(m.sampleLines(leftW, sampleH), leftW, sampleH),
	}, "\n")
	right := []string{m.rule("kernels", m.stepLegend(), rightW)}
	right = append(right, m.kernelTable()...)
	right = append(right, "", m.rule("cpu", "", rightW))
	right = append(right, m.phaseTable()...)
	right = append(right, "", m.rule("device", "", rightW))
	right = append(right, m.gauges(rightW)...)
	right = append(right, "", m.rule("optimizer", "", rightW))
	right = append(right, m.optimizerLines()...)
	return sideBySide(lines(left, leftW, h), block(right, rightW, h), "  ")
}

// lines splits s, whose lines are all already exactly w wide, into exactly h
// lines, padding with blank ones: block without measuring every line again
// (measuring is most of a frame's cost).
func lines(s string, w, h int) string {
	ls := strings.SplitN(s, "\n", h+1)
	if len(ls) > h {
		ls = ls[:h]
	}
	for len(ls) < h {
		ls = append(ls, strings.Repeat(" ", w))
	}
	return strings.Join(ls, "\n")
}

// sideBySide joins two blocks of exactly as many lines, each of one width
// (block's output), line by line with sep between them. It is
// lipgloss.JoinHorizontal for that case, without measuring every line.
func sideBySide(left, right, sep string) string {
	l, r := strings.Split(left, "\n"), strings.Split(right, "\n")
	var b strings.Builder
	b.Grow(len(left) + len(right) + len(l)*(len(sep)+1))
	for i := range max(len(l), len(r)) {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i < len(l) {
			b.WriteString(l[i])
		}
		b.WriteString(sep)
		if i < len(r) {
			b.WriteString(r[i])
		}
	}
	return b.String()
}

// rule is a section title: "── loss ── 3.2101 · avg 3.3012 ─────".
func (m *Model) rule(title, legend string, w int) string {
	return m.ruleW(title, memoVal{legend, lipgloss.Width(legend)}, w)
}

// ruleW is rule with the legend's width already measured.
func (m *Model) ruleW(title string, legend memoVal, w int) string {
	head := m.styledW(&accent, "── "+title+" ")
	s := head.s + legend.s
	used := head.w
	if legend.s != "" {
		s += " "
		used += legend.w + 1
	}
	if n := w - used; n > 0 {
		// Exactly w wide now: what fit would return unchanged.
		return s + m.styled(&dim, strings.Repeat("─", n))
	}
	return fit(s, w)
}

// line1Key is what the header's first line depends on besides the run's
// info, which does not change.
type line1Key struct {
	w        int
	emulated bool
	state    string
	p        termenv.Profile
}

func (m *Model) header(w int) string {
	info := m.info
	state := m.stateBadge()
	k := line1Key{w, m.haveStep && m.last.Emulated, state, lipgloss.ColorProfile()}
	if m.line1S == "" || m.line1K != k {
		m.line1K, m.line1S = k, m.line1(w, k.emulated, state)
	}
	line1 := m.line1S

	done := 0
	if m.haveStep {
		done = m.last.Step + 1
	}
	step := fmt.Sprintf("step %d", done)
	if info.Steps > 0 {
		step += fmt.Sprintf("/%d (%.1f%%)", info.Steps, 100*float64(done)/float64(info.Steps))
	}
	eta := "ETA —" // also once stopped or failed: nothing remains to come
	switch {
	case m.ended:
		if m.state == "finished" {
			eta = "ETA done"
		}
	case m.paused:
		eta = "ETA paused"
	case info.Steps > 0 && m.stepEMA > 0 && done <= info.Steps:
		eta = "ETA " + dur(time.Duration(info.Steps-done)*m.stepEMA)
	}
	// Wall time, paused or not, until the run ends.
	until := m.clock
	if m.ended {
		until = m.endAt
	}
	parts := []string{bold.Render(step), tokRate(m.last.TokensPerSec) + " tok/s",
		"elapsed " + dur(until.Sub(m.start)), eta}
	if m.haveStep {
		loss := "loss " + bold.Render(lossText(m.last.Loss))
		if k := m.last.ScoredVocab; k > 0 && k < m.info.Vocab {
			loss += dim.Render(fmt.Sprintf(" (%d/%d vocab)", k, m.info.Vocab))
		}
		parts = append(parts, loss, fmt.Sprintf("lr %.2e", m.last.LR))
	}
	line2 := items(parts, m.styled(&dim, "  │  "), w)
	return line1 + "\n" + fit(line2, w)
}

// line1 is the header's first line: the model, the device and the state,
// exactly w wide.
func (m *Model) line1(w int, emulated bool, state string) string {
	info := m.info
	name := info.Model
	if name == "" {
		name = "model"
	}
	parts := []string{accent.Render("anetop") + "  " + bold.Render(name)}
	if info.Params > 0 {
		parts[0] += " · " + count(info.Params) + " params"
	}
	dev := info.Device
	if emulated {
		// Never let an emulated number pass for the chip's: say
		// "emulator" even if the device name already hints at it.
		rest := strings.TrimPrefix(strings.TrimPrefix(info.Device, "emulator"), " · ")
		dev = warnSt.Render("emulator")
		if rest != "" && !strings.HasPrefix(rest, "sim") {
			dev += dim.Render(" · " + rest)
		}
	}
	parts = append(parts, dev)
	if info.BLAS != "" {
		parts = append(parts, "blas "+info.BLAS)
	}
	left := items(parts, dim.Render("  │  "), w-lipgloss.Width(state)-1)
	if lipgloss.Width(left) == 0 {
		left = parts[0]
	}
	return fit(fit(left, w-lipgloss.Width(state)-1)+" "+state, w)
}

func (m *Model) stateBadge() string {
	k := memoKey{nil, m.badgeName(), lipgloss.ColorProfile()}
	if v, ok := m.memo[k]; ok {
		return v.s
	}
	return m.remember(k, m.renderBadge()).s
}

// badgeName is what renderBadge draws, as a cache key.
func (m *Model) badgeName() string {
	switch {
	case m.state == "error":
		return "error"
	case m.quitting && !m.ended:
		return "stopping"
	case m.paused:
		return "paused"
	case m.state == "finished":
		return "finished"
	case m.state == "stopped":
		return "stopped"
	case m.state == "running", m.state == "restarted", m.haveStep:
		return "running"
	}
	return "state " + m.state
}

func (m *Model) renderBadge() string {
	switch {
	case m.state == "error":
		return errSt.Inherit(badge).Render("ERROR")
	case m.quitting && !m.ended:
		return warnSt.Inherit(badge).Render("STOPPING")
	case m.paused:
		return warnSt.Inherit(badge).Render("PAUSED")
	case m.state == "finished":
		return okSt.Inherit(badge).Render("FINISHED")
	case m.state == "stopped":
		return badge.Render("STOPPED")
	case m.state == "running", m.state == "restarted", m.haveStep:
		return okSt.Inherit(badge).Render("RUNNING")
	}
	return dim.Inherit(badge).Render(strings.ToUpper(m.state))
}

// legendKey is what the loss panel's title depends on: the series, the
// room for it and the colour profile.
type legendKey struct {
	gen, room int
	p         termenv.Profile
}

// lossHeadW is the width of the loss rule's head, "── loss ", the space
// after its legend and two cells of rule, so that the title never runs
// into the next panel's.
var lossHeadW = lipgloss.Width("── loss ") + 3

// lossRule is the loss panel's title, w wide. Its legend is drawn again
// only when the series or the width changed.
func (m *Model) lossRule(w int) string {
	k := legendKey{m.seriesGen, w - lossHeadW, lipgloss.ColorProfile()}
	if m.legendK != k {
		m.legendK, m.legendV = k, m.lossLegend(k.room)
	}
	return m.ruleW("loss", m.legendV, w)
}

// legendTier is one way of writing the loss legend; lossLegend takes the
// first that fits.
type legendTier struct {
	dec            int  // decimals of the losses
	avg, val, best bool // which figures it shows besides the training loss
}

// legendTiers go from the fullest to the barest: fewer decimals first,
// then without the best validation loss, the average, the validation loss.
var legendTiers = []legendTier{
	{4, true, true, true},
	{3, true, true, true},
	{3, true, true, false},
	{3, false, true, false},
	{3, false, false, false},
}

// lossLegend is the loss panel's title in at most room cells: the latest
// training loss, its moving average, the latest validation loss and the
// best one, shortened by dropping digits and then figures, never by
// cutting one. In colour the names take their curves' colours; without,
// the average and validation names carry their curves' glyphs ("• avg",
// "◆ val"), the chart's legend.
func (m *Model) lossLegend(room int) memoVal {
	s := &m.series
	if s.n() == 0 || room <= 0 {
		return memoVal{}
	}
	for _, t := range legendTiers {
		l := m.legendText(t)
		if w := lipgloss.Width(l); w <= room {
			return memoVal{l, w}
		}
	}
	return memoVal{}
}

func (m *Model) legendText(t legendTier) string {
	s := &m.series
	c := colour()
	sep := m.styled(&dim, " · ")
	var b strings.Builder
	if c {
		b.WriteString(m.styled(&trainSt, "train "))
	} else {
		b.WriteString("train ")
	}
	b.WriteString(bold.Render(legendNum(s.loss[s.n()-1], t.dec)))
	if t.avg {
		avg := "—" // no finite loss yet
		if s.have {
			avg = legendNum(s.ema, t.dec)
		}
		b.WriteString(sep)
		if c {
			// asciigraph's Orange, the average's curve.
			b.WriteString(m.styled(&avgSt, "avg "))
		} else {
			b.WriteString("• avg ")
		}
		b.WriteString(avg)
	}
	if n := len(s.val); t.val && n > 0 {
		v := s.val[n-1].loss
		b.WriteString(sep)
		if c {
			b.WriteString(m.styled(&valSt, "val "))
		} else {
			b.WriteString("◆ val ")
		}
		b.WriteString(legendNum(v, t.dec))
		if t.best {
			if v == s.bestVal {
				b.WriteString(" (best)") // the latest is the best so far
			} else {
				b.WriteString(" (best " + legendNum(s.bestVal, t.dec) + ")")
			}
		}
	}
	return b.String()
}

// legendNum is a loss with dec decimals; NaN and ±Inf by name, and a
// number too large for a loss in three significant digits, so that no
// figure outgrows the title.
func legendNum(v float64, dec int) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return lossText(v)
	case math.Abs(v) >= 1e5:
		return fmt.Sprintf("%.3g", v)
	}
	return fmt.Sprintf("%.*f", dec, v)
}

func (m *Model) stepLegend() string {
	if !m.haveStep {
		return ""
	}
	st := m.last
	return fmt.Sprintf("step %s ms · device %s ms (%s)", ms(st.Time), ms(st.DeviceTime), share(st.DeviceTime, st.Time))
}

// kernelLines is the kernel table's height: a header and one row per
// kernel.
const kernelLines = 1 + int(model.NumKernels)

func (m *Model) kernelTable() []string {
	const format = "%-10s %10s %9s %7s %14s"
	lines := []string{m.styled(&dim, fmt.Sprintf(format, "kernel", "evals/step", "ms/step", "share", "achieved"))}
	st := m.last
	for _, id := range model.Kernels {
		k := st.Kernels[id]
		name := k.Name
		if name == "" {
			name = id.String()
		}
		if !m.haveStep {
			lines = append(lines, fmt.Sprintf(format, name, "—", "—", "—", "—"))
			continue
		}
		r := 0.0
		if k.Time > 0 {
			r = k.FLOPs / k.Time.Seconds()
		}
		lines = append(lines, fmt.Sprintf(format, name, fmt.Sprint(k.Evals), ms(k.Time), share(k.Time, st.Time), rate(r)))
	}
	return lines
}

func (m *Model) phaseLines() []string {
	if !m.haveStep {
		return []string{dim.Render("CPU ms   staging — · classifier — · norms — · optimizer —"),
			dim.Render("dW ms    wait — · worker — · hidden by overlap —")}
	}
	p, st := m.last.Phases, m.last
	return []string{
		m.styled(&dim, "CPU ms   ") + fmt.Sprintf("staging %s · classifier %s · norms %s · optimizer %s",
			ms(p.Staging), ms(p.Classifier), ms(p.Norms), ms(p.Optimizer)),
		m.styled(&dim, "dW ms    ") + fmt.Sprintf("wait %s · worker %s · hidden by overlap %s (%s)",
			ms(p.DWWait), ms(st.DWTime), ms(st.DWHidden), share(st.DWHidden, st.DWTime)),
	}
}

// phaseTable is the wide layout's CPU panel: one row per phase, then the
// dW worker and how much of it the overlap hid.
func (m *Model) phaseTable() []string {
	const format = "%-12s %9s %7s"
	p, st := m.last.Phases, m.last
	lines := []string{m.styled(&dim, fmt.Sprintf(format, "phase", "ms/step", "share"))}
	for _, r := range []struct {
		name string
		d    time.Duration
	}{{"staging", p.Staging}, {"classifier", p.Classifier}, {"norms", p.Norms}, {"dW wait", p.DWWait}, {"optimizer", p.Optimizer}} {
		if !m.haveStep {
			lines = append(lines, fmt.Sprintf(format, r.name, "—", "—"))
			continue
		}
		lines = append(lines, fmt.Sprintf(format, r.name, ms(r.d), share(r.d, st.Time)))
	}
	if !m.haveStep {
		return append(lines, fmt.Sprintf(format, "dW worker", "—", "—"))
	}
	return append(lines, fmt.Sprintf(format, "dW worker", ms(st.DWTime), share(st.DWTime, st.Time))+
		fmt.Sprintf("   hidden %s (%s)", ms(st.DWHidden), share(st.DWHidden, st.DWTime)))
}

func (m *Model) optimizerLines() []string {
	if !m.haveStep {
		return []string{dim.Render("no step yet")}
	}
	st := m.last
	l := fmt.Sprintf("lr %.2e · grad norm %s · loss scale %g · %d tok/step", st.LR, sig3(st.GradNorm), st.LossScale, st.Tokens)
	if st.Skipped {
		l += " · " + warnSt.Render("update skipped")
	}
	return []string{l}
}

// gauges are static progress bars: the values change only when a step
// lands, so the spring animation of progress.SetPercent would only add
// frames.
func (m *Model) gauges(w int) []string {
	const labelW = 15
	st := m.last
	dev := "ANE"
	if st.Emulated || (!m.haveStep && strings.HasPrefix(m.info.Device, "sim")) {
		dev = "emulator"
	}
	utilText := "—"
	if m.haveStep {
		utilText = fmt.Sprintf("%.1f%% · %s", 100*st.Utilisation, rate(st.DeviceFLOPS))
	}
	budText := "—"
	budPct := 0.0
	if m.haveStep {
		if st.BudgetLimit > 0 {
			budText = fmt.Sprintf("%d/%d compiles", st.BudgetUsed, st.BudgetLimit) + m.restartText()
			budPct = float64(st.BudgetUsed) / float64(st.BudgetLimit)
		} else {
			budText = fmt.Sprintf("%d compiles · no limit", st.BudgetUsed)
		}
	}
	textW := max(lipgloss.Width(utilText), lipgloss.Width(budText))
	barW := max(10, w-labelW-textW-2)
	if c := colour(); !m.haveBar || m.barW != barW || m.barC != c {
		if c {
			m.bar = progress.New(progress.WithWidth(barW), progress.WithoutPercentage(), progress.WithSolidFill("75"))
		} else {
			m.bar = progress.New(progress.WithWidth(barW), progress.WithoutPercentage(), progress.WithColorProfile(termenv.Ascii))
		}
		m.barW, m.barC, m.haveBar = barW, c, true
	}
	bar := m.bar
	return []string{
		fmt.Sprintf("%-*s", labelW, dev+" util") + bar.ViewAs(clamp01(st.Utilisation)) + "  " + utilText,
		fmt.Sprintf("%-*s", labelW, "compile budget") + bar.ViewAs(clamp01(budPct)) + "  " + budText,
	}
}

// restartText says where the compile budget will force an exec restart:
// never on the dynamic pipeline (its kernels compile once), or before the
// step whose recompiles no longer fit on the static one.
func (m *Model) restartText() string {
	st, per := m.last, m.compilesPerStep
	switch {
	case per < 0:
		return ""
	case per == 0:
		return " · no restart"
	}
	// Steps 1-based like the header: after step done, (limit − used)/per
	// more fit, and the one after them starts in a fresh process.
	done := st.Step + 1
	return fmt.Sprintf(" · restart at step %d", done+(st.BudgetLimit-st.BudgetUsed)/per+1)
}

func clamp01(v float64) float64 {
	if !finite(v) || v < 0 {
		return 0
	}
	return min(v, 1)
}

func (m *Model) sampleLegend() string {
	if m.sample == "" {
		return ""
	}
	return fmt.Sprintf("step %d", m.sampleN)
}

func (m *Model) sampleLines(w, h int) []string {
	if m.sample == "" {
		return []string{m.styled(&dim, "no sample yet — press s")}
	}
	wrapped := strings.Split(lipgloss.NewStyle().Width(w).Render(printable(m.sample)), "\n")
	if len(wrapped) > h {
		// The newest tokens are at the end; keep the start, which has the
		// prompt, and mark the cut.
		wrapped = wrapped[:h]
		wrapped[h-1] = fit(wrapped[h-1], w-1) + "…"
	}
	return wrapped
}

// status is the line above the keys: an error beats the note for the last
// key, which beats a warning, which beats the last checkpoint.
func (m *Model) status(w int) string {
	var ck string
	switch {
	case !m.ckpt.ok:
		ck = m.styled(&dim, "no checkpoint yet")
	case m.ckpt.resumed:
		ck = m.styled(&okSt, "✔") + fmt.Sprintf(" resumed from checkpoint step %d", m.ckpt.step)
		if m.ckpt.path != "" {
			ck += m.styled(&dim, " → "+m.ckpt.path)
		}
	case m.ckpt.err != "":
		ck = errSt.Render(fmt.Sprintf("checkpoint at step %d failed (%s ago): %s", m.ckpt.step, dur(m.clock.Sub(m.ckpt.at)), m.ckpt.err))
	default:
		ck = m.styled(&okSt, "✔") + fmt.Sprintf(" checkpoint step %d, %s ago", m.ckpt.step, dur(m.clock.Sub(m.ckpt.at)))
		if m.ckpt.path != "" {
			ck += m.styled(&dim, " → "+m.ckpt.path)
		}
	}
	var msg string
	switch {
	case m.errMsg != "":
		msg = errSt.Render("✖ " + m.errMsg)
		if m.ended {
			// The key line says it too, should the error fill this one.
			msg += m.styled(&dim, "  │  ") + m.styled(&accent, "› q to exit")
		}
	case m.ended:
		// Nothing reads commands any more: say so at once, not only after
		// a key that no longer does anything.
		switch m.state {
		case "finished":
			msg = m.styled(&accent, "› the run has finished: q to exit")
		case "stopped":
			msg = m.styled(&accent, "› the run has stopped: q to exit")
		default:
			msg = m.styled(&accent, "› the run has ended: q to exit")
		}
	case m.note != "" && (m.quitting || m.clock.Sub(m.noteAt) < 5*time.Second):
		msg = accent.Render("› " + m.note)
	case m.warn != "":
		msg = warnSt.Render("⚠ "+m.warn) + dim.Render(" ("+dur(m.clock.Sub(m.warnAt))+" ago)")
	}
	if msg == "" {
		return fit(ck, w)
	}
	// The message matters more than the checkpoint: it goes first.
	return fit(msg+m.styled(&dim, "  │  ")+ck, w)
}

// keyLine depends only on the width and whether the run has ended (then
// only q and ? still do something); it is cached, as rendering the help
// (with its adaptive colours) is a good part of a frame's cost.
func (m *Model) keyLine(w int) string {
	if m.keyLineW != w || m.keyLineE != m.ended || m.keyLineS == "" {
		h := help.New()
		h.Width = w
		keys := m.keys.ShortHelp()
		if m.ended {
			keys = m.keys.endedHelp()
		}
		m.keyLineW, m.keyLineE, m.keyLineS = w, m.ended, fit(h.ShortHelpView(keys), w)
	}
	return m.keyLineS
}

func (m *Model) helpView() string {
	rows := [][2]string{
		{"p", "pause / resume training (after the step in flight)"},
		{"c", "write a checkpoint now"},
		{"r", "restart the run (see anetop --help for what restart keeps)"},
		{"s", "generate a sample from the current weights"},
		{"q", "checkpoint, stop and exit; q again exits at once"},
		{"ctrl+c", "as q, exiting as interrupted (code 130)"},
		{"?", "show / hide this help (esc closes)"},
	}
	kw := 0 // the key column: the widest key and two spaces
	for _, r := range rows {
		kw = max(kw, lipgloss.Width(r[0]))
	}
	var b strings.Builder
	b.WriteString(accent.Render("anetop keys") + "\n\n")
	for _, r := range rows {
		b.WriteString(bold.Render(fmt.Sprintf("  %-*s  ", kw, r[0])) + r[1] + "\n")
	}
	b.WriteString("\n" + dim.Render("utilisation = device FLOPs ÷ (device time × peak); on the"))
	b.WriteString("\n" + dim.Render("emulator the peak is this CPU's measured sgemm peak."))
	if m.info.RunDir != "" {
		b.WriteString("\n" + dim.Render("Checkpoints: "+m.info.RunDir))
	}
	return helpBox.Render(b.String())
}

// tooSmall is the screen of a terminal smaller than MinWidth×MinHeight:
// what it needs, that training goes on and that q still quits, in as many
// words as fit w×h (any w from 20 on), wrapped at words.
func (m *Model) tooSmall(w, h int) string {
	what, short := "training continues", "training on"
	switch {
	case m.ended:
		what, short = "the run has ended", "run ended"
	case m.paused:
		what, short = "training is paused", "paused"
	}
	size := fmt.Sprintf("%d×%d", w, h)
	variants := [...]string{
		fmt.Sprintf("anetop needs at least %d×%d; this terminal is %s. %s; q\u00a0quits.",
			MinWidth, MinHeight, size, strings.ToUpper(what[:1])+what[1:]),
		fmt.Sprintf("anetop needs %d×%d, this is %s: %s, q\u00a0quits", MinWidth, MinHeight, size, what),
		"too small: " + what + ", q\u00a0quits",
		"too small: " + short + ", q\u00a0quits",
		short + ", q\u00a0quits",
	}
next:
	for _, v := range variants {
		ls := strings.Split(ansi.Wordwrap(v, w, ""), "\n")
		if len(ls) > max(h, 1) {
			continue
		}
		for i, l := range ls {
			l = strings.TrimRight(l, " ")
			if lipgloss.Width(l) > w {
				continue next
			}
			ls[i] = fit(l, w)
		}
		return strings.Join(ls, "\n")
	}
	return fit(variants[len(variants)-1], w)
}

// printable makes generated text safe to draw: a model emits whatever bytes
// its tokens decode to, and a tab, a carriage return, an escape sequence or
// invalid UTF-8 would move the terminal's cursor behind the renderer's back
// (a tab is 1 cell to the layout and up to 8 to the terminal) and shift
// every line below it. Newlines stay; tabs become a space; other control
// and format characters and combining marks become "·"; invalid bytes
// U+FFFD.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case r == '\r':
			return -1
		case unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me, unicode.Co):
			// Format characters and combining marks have no width of their
			// own, and terminals disagree with the layout about them
			// (an untrained model emits them freely).
			return '·'
		}
		return r
	}, s)
}
