package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/anetop/anetop/model"
)

// recorder is a Tracer that keeps every span.
type recorder struct {
	mu    sync.Mutex
	spans []Span
}

func (r *recorder) Span(s Span) {
	r.mu.Lock()
	r.spans = append(r.spans, s)
	r.mu.Unlock()
}

// TestTracerAccounting checks the spans of three steps (two windows each)
// against the StepStats they add up to: one step span of exactly
// StepStats.Time, one device span per kernel evaluation, the CPU spans
// summing exactly to each of Phases' fields, the worker's gradient jobs to
// DWTime and its AdamW chunks to OptimizerOverlap; every span inside its
// step and none partially overlapping another on its track.
func TestTracerAccounting(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 96, Layers: 2, Heads: 2, Seq: 32, Vocab: 48, Tied: true}
	rec := &recorder{}
	e, err := New(Config{Model: c, Device: openSim(t), Seed: 2, Accum: 2, Tracer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x, y := make([]int32, 2*c.Seq), make([]int32, 2*c.Seq)
	for i := range x {
		x[i], y[i] = int32(i*3%c.Vocab), int32((i*3+3)%c.Vocab)
	}
	var stats []StepStats
	for range 3 {
		st, err := e.Step(x, y)
		if err != nil {
			t.Fatal(err)
		}
		stats = append(stats, st)
	}
	phaseOf := map[string]cpuPhase{"logits": phClassifier, "cross-entropy": phClassifier, "classifier backward": phClassifier}
	for ph, n := range phaseNames {
		phaseOf[n] = cpuPhase(ph)
	}
	for i, st := range stats {
		var steps []Span
		var evals int64
		var phases Phases
		var dw, opt time.Duration
		byTrack := map[Track][]Span{}
		for _, s := range rec.spans {
			if s.Step != i {
				continue
			}
			byTrack[s.Track] = append(byTrack[s.Track], s)
			d := s.End.Sub(s.Start)
			switch s.Track {
			case TrackStep:
				steps = append(steps, s)
			case TrackDevice:
				evals++
			case TrackCPU:
				ph, ok := phaseOf[s.Name]
				if !ok {
					t.Errorf("CPU span %q is no phase", s.Name)
				}
				*phases.at(ph) += d
			case TrackDW:
				if s.Name == "AdamW" {
					opt += d
				} else {
					dw += d
				}
			}
		}
		if len(steps) != 1 || steps[0].End.Sub(steps[0].Start) != st.Time {
			t.Fatalf("step %d: step spans %v, want one of %v", i, steps, st.Time)
		}
		var want int64
		for _, k := range st.Kernels {
			want += k.Evals
		}
		if evals != want {
			t.Errorf("step %d: %d device spans, %d evaluations", i, evals, want)
		}
		if phases != st.Phases {
			t.Errorf("step %d: CPU spans add up to %+v, Phases %+v", i, phases, st.Phases)
		}
		if dw != st.DWTime || opt != st.OptimizerOverlap {
			t.Errorf("step %d: worker spans %v + %v AdamW, stats %v + %v", i, dw, opt, st.DWTime, st.OptimizerOverlap)
		}
		for tr, ss := range byTrack {
			for j, s := range ss {
				if s.Start.Before(steps[0].Start) || s.End.After(steps[0].End) || s.End.Before(s.Start) {
					t.Errorf("step %d: %v span %s outside the step", i, tr, s.Name)
				}
				// Each track's spans come from one goroutine, in order.
				if tr != TrackStep && j > 0 && s.Start.Before(ss[j-1].End) {
					t.Errorf("step %d: %v span %s starts before %s ends", i, tr, s.Name, ss[j-1].Name)
				}
			}
		}
	}
}
