package engine

import "time"

// Track is one row of a step timeline: who did the work a Span describes.
type Track uint8

const (
	// TrackStep holds one span per Step, from its call to its return.
	TrackStep Track = iota
	// TrackCPU is the goroutine that calls Step: its CPU phases, named as
	// in Phases ("staging", "norms", "dW wait", "optimizer"), the
	// classifier's in three ("logits", "cross-entropy", "classifier
	// backward").
	TrackCPU
	// TrackDevice is the device: one span per kernel evaluation, named
	// after the kernel, as seen by the caller of Kernel.Eval.
	TrackDevice
	// TrackDW is the dW worker: one span per weight-gradient job, named
	// after the gradient it adds to ("dW1", "dWcls", "dEmbed", …).
	TrackDW
	// NumTracks is the number of tracks.
	NumTracks
)

var trackNames = [NumTracks]string{"step", "cpu", "device", "dW worker"}

// String is the track's display name.
func (t Track) String() string {
	if t < NumTracks {
		return trackNames[t]
	}
	return "track?"
}

// Span is one timed piece of a step. Name is always a constant string (a
// kernel, phase or job name), never formatted, so that emitting a span
// costs no allocation; Step and Layer say which step and layer it belongs
// to.
type Span struct {
	Track      Track
	Name       string
	Step       int // the engine's step number (StepStats.Step)
	Layer      int // the layer, or -1 for work that is not per layer
	Start, End time.Time
}

// Tracer receives the engine's timeline: Config.Tracer, nil for none.
// Span is called from the goroutine that calls Step and from the dW worker,
// so it must be safe for concurrent use; it runs on the step's critical
// path, so it should be quick and must not block on I/O for long (buffer).
// Spans on one track never overlap partially: each track's spans are
// sequential, except TrackStep's, which contain the others.
// internal/trace.Writer writes them as a Chrome/Perfetto trace file.
type Tracer interface {
	Span(Span)
}

// cpuPhase is one of the CPU phases of Phases, for lap.
type cpuPhase uint8

const (
	phStaging cpuPhase = iota
	phClassifier
	phNorms
	phDWWait
	phOptimizer
)

// Span names of the CPU phases; constants, so a span costs no allocation.
var phaseNames = [...]string{"staging", "classifier", "norms", "dW wait", "optimizer"}

func (p *Phases) at(ph cpuPhase) *time.Duration {
	switch ph {
	case phStaging:
		return &p.Staging
	case phClassifier:
		return &p.Classifier
	case phNorms:
		return &p.Norms
	case phDWWait:
		return &p.DWWait
	default:
		return &p.Optimizer
	}
}

// lap ends a CPU phase segment that began at t: its time goes to the
// step's Phases and, with a tracer, to a span. It returns the end, the
// start of the next segment.
func (e *Engine) lap(ph cpuPhase, t time.Time, layer int) time.Time {
	return e.lapAs(ph, phaseNames[ph], t, layer)
}

// lapAs is lap with a finer span name (the classifier's three parts).
func (e *Engine) lapAs(ph cpuPhase, name string, t time.Time, layer int) time.Time {
	now := time.Now()
	*e.stats.Phases.at(ph) += now.Sub(t)
	if e.tr != nil {
		e.tr.Span(Span{Track: TrackCPU, Name: name, Step: e.stepN, Layer: layer, Start: t, End: now})
	}
	return now
}
