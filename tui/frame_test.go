package tui

import (
	"math"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/anetop/anetop/engine"
)

// BenchmarkFrame is the console's work per redraw (at most 15 a second):
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
		// About two steps land between frames at the tiny preset's ~30
		// steps/s.
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
