package engine

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/anetop/anetop/model"
)

// The update, from the gradient to the new weights, in two halves: decide
// at the end of a step, and the AdamW pass itself (with restaging), which
// runs at the start of the next step overlapped with its forward (launch),
// or at once when the weights are read from outside (settle).

// updChunk is one piece of a launched update: a layer's tensors, after
// which its two surfaces are restaged (layer ≥ 0), or a range of the
// tensors outside the layers (layer −1); rows marks an embedding range,
// whose rows launch already updated are skipped.
type updChunk struct {
	layer  int
	lo, hi int
	decay  bool
	rows   bool
}

// Chunk states: a chunk is taken by exactly one goroutine (compare and
// swap), so every element is updated once.
const (
	chunkFree int32 = iota
	chunkTaken
	chunkDone
)

// buildChunks lists the update's chunks: the layers in the order the
// forward needs them, then the other tensors in pieces of about 64k values
// (whole rows of the embedding), so that the main goroutine can take a
// share when the worker falls behind.
func (e *Engine) buildChunks() {
	c := e.mc
	for l := range c.Layers {
		e.chunks = append(e.chunks, updChunk{layer: l})
	}
	for _, tn := range e.params.Tensors {
		if tn.Kind.PerLayer() {
			continue
		}
		step := 1 << 16
		rows := tn.Kind == model.Embed
		if rows {
			step = max(1, step/c.Dim) * c.Dim
		}
		for lo := tn.Offset; lo < tn.Offset+tn.Size; lo += step {
			e.chunks = append(e.chunks, updChunk{layer: -1, lo: lo, hi: min(lo+step, tn.Offset+tn.Size), decay: tn.Kind.Matrix(), rows: rows})
		}
	}
	e.chunkSt = make([]atomic.Int32, len(e.chunks))
}

// update decides and applies an update at once (the tests' entry; Step
// leaves the application to the next step, see launch).
func (e *Engine) update() error {
	e.decide()
	return e.settle()
}

// decide ends an update's gradient phase: the global norm of the unscaled
// gradient, then either a skip (inf/NaN: the gradient is zeroed, the scale
// halved, weights and moments kept) or the AdamW parameters of the update,
// left pending for launch or settle to apply. The loss scale's bookkeeping
// is done here, as it does not depend on the new weights.
func (e *Engine) decide() {
	t0 := time.Now()
	defer func() { e.lap(phOptimizer, t0, -1) }()
	e.phase = phaseNorm
	e.pool.run(len(e.opt))
	var ss float64
	for _, p := range e.part {
		ss += p
	}
	norm := math.Sqrt(ss) / e.lossScale
	e.stats.LR = e.cfg.LRAt(e.stepN)
	e.stats.GradNorm = norm
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		// fp16 overflowed somewhere below the classifier: this update's
		// gradient is garbage. Halve the scale, drop it, keep the weights.
		e.stats.Skipped = true
		e.lossScale = max(1, e.lossScale/2)
		e.clean = 0
		e.phase = phaseZero
		e.pool.run(len(e.opt))
		return
	}
	gs := 1 / e.lossScale
	if e.cfg.Clip > 0 && norm > e.cfg.Clip {
		gs *= e.cfg.Clip / norm
	}
	e.adam++
	e.lr, e.gscale = float32(e.stats.LR), float32(gs)
	e.bc1 = float32(1 - math.Pow(e.cfg.Beta1, float64(e.adam)))
	e.bc2 = float32(1 - math.Pow(e.cfg.Beta2, float64(e.adam)))
	e.pending = true
	e.clean++
	if e.clean >= e.cfg.ScaleWindow && e.lossScale < MaxLossScale {
		e.lossScale *= 2
		e.clean = 0
	}
}

// launch starts the pending update at the start of the step that needs
// it, so that it overlaps the forward, which would otherwise leave a core
// idle while the device runs. The embedding rows the step looks up are
// updated here; the chunks go to the (idle) dW worker, which takes them in
// order — the layers as the forward needs them, then the rest. Before
// layer l the forward makes sure chunk l is done (ensureChunk), and before
// the final norm all of them (finishUpdate), doing a chunk itself rather
// than wait when the worker has not got to it. Every element is updated
// once, by adamwRange whoever runs it, so the weights are bit for bit those
// of an update applied at once.
func (e *Engine) launch(x []int32) {
	if !e.pending {
		return
	}
	e.pending = false
	t0 := time.Now()
	// Mark the rows before the worker starts (it reads the marks), update
	// them after (it skips them), so that it starts on layer 0 at once.
	for _, tok := range x {
		if !e.marked[tok] {
			e.marked[tok] = true
			e.markList = append(e.markList, tok)
		}
	}
	for i := range e.chunkSt {
		e.chunkSt[i].Store(chunkFree)
	}
	e.async = true
	e.dw.submit(dwJob{kind: jobUpdate, step: e.stepN})
	d := e.mc.Dim
	off := e.mc.Offset(model.Embed, -1)
	for _, tok := range e.markList {
		lo := off + int(tok)*d
		e.adamwRange(lo, lo+d, model.Embed.Matrix())
	}
	e.lap(phOptimizer, t0, -1)
}

// updateJob is the worker's side of a launched update: every chunk it can
// take, in order. Each layer is a span "AdamW" on the worker's track, and
// the rest one span (not one per 64k values: the trace stays small).
func (e *Engine) updateJob() {
	var r0, r1 time.Time // the worker's run of chunks outside the layers
	for i := range e.chunks {
		if !e.chunkSt[i].CompareAndSwap(chunkFree, chunkTaken) {
			continue
		}
		t0 := time.Now()
		e.runChunk(i, e.wscratch)
		e.chunkSt[i].Store(chunkDone)
		e.dw.broadcast()
		t1 := time.Now()
		if l := e.chunks[i].layer; l >= 0 {
			e.optSpan(l, t0, t1)
			continue
		}
		if r0.IsZero() {
			r0 = t0
		}
		r1 = t1
	}
	if !r0.IsZero() {
		e.optSpan(-1, r0, r1)
	}
}

// optSpan accounts the worker's update time [t0, t1) on layer l.
func (e *Engine) optSpan(l int, t0, t1 time.Time) {
	e.dw.optBusy += t1.Sub(t0)
	if e.tr != nil {
		e.tr.Span(Span{Track: TrackDW, Name: "AdamW", Step: e.stepN, Layer: l, Start: t0, End: t1})
	}
}

// waitLayer makes sure layer l's chunk is done before its forward.
func (e *Engine) waitLayer(l int) {
	t0 := time.Now()
	if e.ensureChunk(l) {
		e.lap(phOptimizer, t0, l)
	}
}

// ensureChunk makes sure chunk i is done: the main goroutine runs it if the
// worker has not taken it, and otherwise waits for the worker. It reports
// whether it had to do either: time of the optimizer's on the critical
// path.
func (e *Engine) ensureChunk(i int) bool {
	st := &e.chunkSt[i]
	if st.Load() == chunkDone {
		return false
	}
	if st.CompareAndSwap(chunkFree, chunkTaken) {
		e.runChunk(i, e.mscratch)
		st.Store(chunkDone)
	} else {
		e.dw.waitState(st, chunkDone)
	}
	return true
}

// finishUpdate ends a launched update: every chunk done, then the rows
// launch marked are unmarked.
func (e *Engine) finishUpdate() {
	t0 := time.Now()
	worked := false
	for i := range e.chunks {
		worked = e.ensureChunk(i) || worked
	}
	if worked {
		e.lap(phOptimizer, t0, -1)
	}
	for _, r := range e.markList {
		e.marked[r] = false
	}
	e.markList = e.markList[:0]
	e.async = false
}

// runChunk applies the update to chunk i; scratch is the caller's staging
// scratch.
func (e *Engine) runChunk(i int, scratch []float32) {
	c := &e.chunks[i]
	switch {
	case c.layer >= 0:
		e.adamw(&e.opt[c.layer]) // the layers' tasks come first in e.opt
		e.optErr[c.layer] = e.stageLayer(c.layer, scratch)
	case c.rows:
		// Embedding rows, skipping those launch did, in runs.
		d := e.mc.Dim
		base := e.mc.Offset(model.Embed, -1)
		for r, end := (c.lo-base)/d, (c.hi-base)/d; r < end; {
			for r < end && e.marked[r] {
				r++
			}
			r0 := r
			for r < end && !e.marked[r] {
				r++
			}
			if r > r0 {
				e.adamwRange(base+r0*d, base+r*d, c.decay)
			}
		}
	default:
		e.adamwRange(c.lo, c.hi, c.decay)
	}
}

// settle brings the weights up to date: it finishes a launched update or
// applies a pending one at once (in parallel). Everything that reads the
// weights from outside a step calls it.
func (e *Engine) settle() error {
	if e.async {
		e.finishUpdate()
	}
	e.dw.wait()
	if e.pending {
		e.pending = false
		e.phase = phaseUpdate
		e.pool.run(len(e.opt))
	}
	return e.optError()
}

// drain finishes a launched update, waits for the worker and drops a
// pending update, for Restore and Reset, which replace the weights,
// moments and gradient anyway.
func (e *Engine) drain() {
	if e.async {
		e.finishUpdate()
	}
	e.dw.wait()
	e.pending = false
}

// optError is the first restaging failure of the last update.
func (e *Engine) optError() error {
	for _, err := range e.optErr {
		if err != nil {
			return err
		}
	}
	return nil
}

// adamw runs adamwRange on one task's ranges.
func (e *Engine) adamw(t *optTask) {
	for _, r := range t.ranges {
		e.adamwRange(r.lo, r.hi, r.decay)
	}
}

// adamwRange is torch.optim.AdamW on parameters [lo, hi): decoupled decay
// w ← w·(1 − lr·wd) on matrices, then w ← w − lr·m̂/(√v̂ + ε); the gradient
// is unscaled and clipped on the fly and zeroed for the next update. Every
// path of an update (pool, worker, main goroutine, launch's embedding rows)
// goes through this one function, so each element's arithmetic is the same
// whoever runs it.
func (e *Engine) adamwRange(lo, hi int, decayed bool) {
	b1, b2 := float32(e.cfg.Beta1), float32(e.cfg.Beta2)
	lr, gs, eps := e.lr, e.gscale, float32(e.cfg.Eps)
	ib1, ib2 := 1/e.bc1, 1/e.bc2
	dk := float32(1)
	if decayed {
		dk = 1 - lr*float32(e.cfg.WeightDecay)
	}
	w, gr, m, v := e.params.Data[lo:hi], e.grad[lo:hi], e.m[lo:hi], e.v[lo:hi]
	gr, m, v = gr[:len(w)], m[:len(w)], v[:len(w)] // one bounds check, not four per element
	for i := range w {
		g := gr[i] * gs
		gr[i] = 0
		mi := b1*m[i] + (1-b1)*g
		vi := b2*v[i] + (1-b2)*g*g
		m[i], v[i] = mi, vi
		w[i] = w[i]*dk - lr*(mi*ib1)/(float32(math.Sqrt(float64(vi*ib2)))+eps)
	}
}
