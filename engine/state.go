package engine

import (
	"fmt"
	"slices"
)

// State is the optimizer state a checkpoint needs besides the weights.
type State struct {
	Step      int       // steps taken (the LR schedule's position)
	Updates   int       // AdamW updates applied (its bias-correction t)
	LossScale float64   // dynamic loss scale
	Clean     int       // clean updates since the scale last changed
	M, V      []float32 // Adam moments, in the parameters' flat order
}

// State returns a copy of the optimizer state (after the last step's
// update, which it applies if it is still in flight).
func (e *Engine) State() State {
	e.settle() // an error stays in optErr and fails the next Step
	return State{Step: e.stepN, Updates: e.adam, LossScale: e.lossScale, Clean: e.clean,
		M: slices.Clone(e.m), V: slices.Clone(e.v)}
}

// SnapshotInto copies the weights and the optimizer state (after the last
// step's update, applied if still in flight) into w, m and v, each
// NumParams long, and returns the state with M and V set to m and v: a
// checkpoint's snapshot without allocating 3×NumParams floats each time.
func (e *Engine) SnapshotInto(w, m, v []float32) (State, error) {
	if n := len(e.params.Data); len(w) != n || len(m) != n || len(v) != n {
		return State{}, fmt.Errorf("engine: snapshot needs buffers of %d values, got %d, %d, %d", n, len(w), len(m), len(v))
	}
	e.settle() // an error stays in optErr and fails the next Step
	copy(w, e.params.Data)
	copy(m, e.m)
	copy(v, e.v)
	return State{Step: e.stepN, Updates: e.adam, LossScale: e.lossScale, Clean: e.clean, M: m, V: v}, nil
}

// Restore loads weights and optimizer state (from a checkpoint) and restages
// every surface. Nil moments mean zeros.
func (e *Engine) Restore(weights []float32, st State) error {
	n := len(e.params.Data)
	if len(weights) != n || (st.M != nil && len(st.M) != n) || (st.V != nil && len(st.V) != n) {
		return fmt.Errorf("engine: restore needs %d weights and moments", n)
	}
	if !(st.LossScale >= 1) || st.LossScale > MaxLossScale {
		return fmt.Errorf("engine: restored loss scale %v outside [1, %d]", st.LossScale, MaxLossScale)
	}
	e.drain()
	copy(e.params.Data, weights)
	clear(e.m)
	clear(e.v)
	copy(e.m, st.M)
	copy(e.v, st.V)
	clear(e.grad)
	e.stepN, e.adam, e.lossScale, e.clean = st.Step, st.Updates, st.LossScale, st.Clean
	e.st.stale = e.cfg.Static
	return e.restage()
}

// Reset restarts training from the initial weights of Config (Params, or
// Init(Seed)) with fresh optimizer state.
func (e *Engine) Reset() error {
	e.drain()
	if e.cfg.Params != nil {
		copy(e.params.Data, e.cfg.Params.Data)
	} else {
		e.params.Init(e.cfg.Seed)
	}
	clear(e.m)
	clear(e.v)
	clear(e.grad)
	e.stepN, e.adam, e.lossScale, e.clean = 0, 0, e.cfg.LossScale, 0
	e.st.stale = e.cfg.Static
	return e.restage()
}
