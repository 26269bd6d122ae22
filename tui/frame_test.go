package tui

import (
	"math"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/anetop/anetop/engine"
)

// BenchmarkFrame is the console's work per redraw (at most two a second):
// the tick's drain of the step events published since the last one, and
// View of the wide 120×40 layout in 256 colours, with a loss history of
// 5000 steps.
func BenchmarkFrame(b *testing.B) {
	lipgloss.SetColorProfile(termenv.ANSI256)
	defer lipgloss.SetColorProfile(termenv.Ascii)
	r := newRig(b, 120, 40)
	r.run(5000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Two steps land between frames (the tiny preset's ~30 steps/s
		// give 15 between two of today's frames; two keep the history
		// growing slowly, as the earlier measurements did).
		r.bus.Publish(stepEvent(5000 + 2*i))
		r.bus.Publish(stepEvent(5001 + 2*i))
		r.tick()
		_ = r.m.View()
	}
}

func stepEvent(step int) engine.StepEvent {
	return engine.StepEvent{StepStats: stats(step, 3+float64(step%7)/10)}
}

// TestSeriesRange: the chart's y range, kept as points arrive, is the range
// of the finite points kept, also after thinning drops the extremes.
func TestSeriesRange(t *testing.T) {
	var s lossSeries
	check := func(when string) {
		t.Helper()
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range s.loss {
			for _, v := range []float64{s.loss[i], s.avg[i]} {
				if finite(v) {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
		if !s.ranged || s.lo != lo || s.hi != hi {
			t.Fatalf("%s: range [%v, %v] (ranged %v), the points' is [%v, %v]", when, s.lo, s.hi, s.ranged, lo, hi)
		}
	}
	s.add(0, math.NaN())
	if s.ranged {
		t.Fatal("a NaN loss gave a range")
	}
	// The extremes at odd indices, which thinning drops.
	for i := 1; i < seriesCap-1; i++ {
		v := 5 + math.Sin(float64(i))
		switch i {
		case 1001:
			v = 100
		case 2001:
			v = -100
		case 3001:
			v = math.Inf(1)
		}
		s.add(i, v)
	}
	check("before thinning")
	s.add(seriesCap, 6)
	if s.n() >= seriesCap {
		t.Fatalf("not thinned: %d points", s.n())
	}
	check("after thinning")
}

// BenchmarkFrameIdle is a redraw with no new step since the last one (a
// paused run, or a model slower than the redraw rate): the chart and the
// other panels that depend only on the steps are not drawn again.
func BenchmarkFrameIdle(b *testing.B) {
	lipgloss.SetColorProfile(termenv.ANSI256)
	defer lipgloss.SetColorProfile(termenv.Ascii)
	r := newRig(b, 120, 40)
	r.run(5000)
	_ = r.m.View()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.tick()
		_ = r.m.View()
	}
}

// TestCachedPanels: what the frame caches (the chart, the header's first
// line, rendered static texts) is drawn again whenever what it shows
// changed: a step, a validation loss, a restart, the size, the colour
// profile, the state.
func TestCachedPanels(t *testing.T) {
	defer lipgloss.SetColorProfile(termenv.Ascii)
	r := newRig(t, 120, 40)
	fresh := func(when string) {
		t.Helper()
		v := r.m.View()
		// A new model fed the same state draws every panel from scratch.
		m := *r.m
		m.memo, m.chartS, m.line1S, m.haveBar = nil, "", "", false
		if w := m.View(); w != v {
			t.Fatalf("%s: the cached frame differs from one drawn from scratch:\n%s\n---\n%s", when, v, w)
		}
	}
	fresh("empty")
	r.run(50)
	fresh("50 steps")
	r.bus.Publish(engine.StepEvent{StepStats: stats(50, 20)})
	r.tick()
	fresh("an outlier")
	r.bus.Publish(engine.EvalEvent{Step: 51, Loss: 1})
	r.tick()
	fresh("a validation loss")
	lipgloss.SetColorProfile(termenv.ANSI256)
	fresh("256 colours")
	lipgloss.SetColorProfile(termenv.TrueColor)
	fresh("true colour")
	r.m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	fresh("narrow")
	r.press("p")
	r.tick()
	fresh("paused")
	r.bus.Publish(engine.StateEvent{State: "restarted"})
	r.tick()
	fresh("restarted")
	r.bus.Publish(engine.StepEvent{StepStats: stats(0, 4)})
	r.bus.Publish(engine.StepEvent{StepStats: stats(1, 3)})
	r.tick()
	fresh("after the restart")
	r.bus.Publish(engine.StateEvent{State: "finished"})
	r.tick()
	fresh("finished")
}
