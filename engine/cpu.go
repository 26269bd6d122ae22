package engine

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anetop/anetop/blas"
)

// rmsNorm writes y = x·g·r for x [d, s] channel-first, with r[t] =
// 1/√(mean_c x[c,t]² + eps) saved for the backward. The loops run along the
// sequence (contiguous) with the channel outside, so they vectorise.
func rmsNorm(y, r, x, g []float32, d, s int, eps float64) {
	for t := range s {
		r[t] = 0
	}
	for c := range d {
		row := x[c*s : c*s+s]
		for t, v := range row {
			r[t] += v * v
		}
	}
	for t := range s {
		r[t] = float32(1 / math.Sqrt(float64(r[t])/float64(d)+eps))
	}
	for c := range d {
		row, out, gc := x[c*s:c*s+s], y[c*s:c*s+s], g[c]
		for t, v := range row {
			out[t] = v * r[t] * gc
		}
	}
}

// rmsNormBackward adds the gradient of y = RMSNorm(x)·g into dx (dx += …,
// the residual stream's own gradient is already there) and dg, given dy:
// dx = r·(dy·g − x·r²·Σ_c(dy·g·x)/d), dg += Σ_t dy·x·r. dot is s scratch.
func rmsNormBackward(dx, dg, dot, x, g, r, dy []float32, d, s int) {
	for t := range s {
		dot[t] = 0
	}
	for c := range d {
		xr, dr, gc := x[c*s:c*s+s], dy[c*s:c*s+s], g[c]
		var acc float32
		for t := range s {
			dot[t] += dr[t] * gc * xr[t]
			acc += dr[t] * xr[t] * r[t]
		}
		dg[c] += acc
	}
	inv := 1 / float32(d)
	for t := range s {
		dot[t] *= r[t] * r[t] * inv
	}
	for c := range d {
		xr, dr, or, gc := x[c*s:c*s+s], dy[c*s:c*s+s], dx[c*s:c*s+s], g[c]
		for t := range s {
			or[t] += r[t] * (dr[t]*gc - xr[t]*dot[t])
		}
	}
}

// crossEntropyRows turns rows [lo, hi) of logits [S, V] into scaled
// gradients (softmax − onehot)·scale in place and returns the rows' summed
// loss. Max-subtracted, the exponentials in float32 (expSum, ~1 ulp), their
// sums in float64: stable for any logits.
func crossEntropyRows(logits []float32, targets []int32, v, lo, hi int, scale float32) float64 {
	var loss float64
	for t := lo; t < hi; t++ {
		row := logits[t*v : t*v+v]
		mx := rowMax(row)
		tg := targets[t]
		ztg := float64(row[tg] - mx)
		sum := expSum(row, mx)
		// −log p_target = log Σ exp(z − max) − (z_target − max).
		loss += math.Log(sum) - ztg
		k := scale / float32(sum)
		for j := range row {
			row[j] *= k
		}
		row[tg] -= scale
	}
	return loss
}

// sumSquares is Σx² in a fixed order: four float32 lanes over blocks of
// 1024 elements, each block's lanes flushed to a float64 sum so that long
// sums keep their precision. Four independent accumulators, not one: a
// single chain waits on the previous addition for every element, which
// made the gradient-norm pass four times slower than its memory traffic.
func sumSquares(x []float32) float64 {
	var acc float64
	for len(x) > 0 {
		blk := x[:min(len(x), 1024)]
		x = x[len(blk):]
		var a0, a1, a2, a3 float32
		for len(blk) >= 4 {
			a0 += blk[0] * blk[0]
			a1 += blk[1] * blk[1]
			a2 += blk[2] * blk[2]
			a3 += blk[3] * blk[3]
			blk = blk[4:]
		}
		for _, g := range blk {
			a0 += g * g
		}
		acc += float64((a0 + a1) + (a2 + a3))
	}
	return acc
}

// jobKind is what a dwJob does.
type jobKind uint8

const (
	jobSgemm  jobKind = iota // C += op(A)·op(B): a weight gradient
	jobLookup                // the embedding's lookup gradient
	jobUpdate                // the chunks of a launched update (update.go)
	// jobRows is a compacted classifier's gradient: rows[i] of dst is
	// gathered into row i of C, C += op(A)·op(B), and C's rows scattered
	// back. Copies, not C = op(A)·op(B) then dst += C: the sgemm sees the
	// same accumulator values as on the full path, so scoring every id
	// gives the full path's bits whatever the BLAS's summation order.
	jobRows
)

// dwJob is one unit of the dW worker: C += op(A)·op(B) (an sgemm with β 1);
// the embedding's lookup gradient (row tokens[t] of C gets column t of A
// [d, s] times alpha); or the previous update's AdamW, which the worker
// runs while the main goroutine starts the next step's forward.
type dwJob struct {
	kind           jobKind
	name           string // span name, a constant
	layer, step    int    // for the span
	transA, transB bool
	m, n, k        int
	alpha          float32
	a, b, c        []float32
	lda, ldb, ldc  int
	tokens         []int32
	rows           []int32   // jobRows: the rows of dst that C holds
	dst            []float32 // jobRows: the full gradient, ldc wide
}

// dwWorker runs jobs in order on one goroutine while the caller keeps the
// device busy. Jobs are values sent over a buffered channel (no allocation).
// submit returns a ticket, the job's position in the order, and waitFor(t)
// returns once job t is done: the start of a window waits for the previous
// window's gradient jobs, not for whatever was queued after them. cond also
// wakes the main goroutine when an update chunk is done (waitState).
type dwWorker struct {
	jobs      chan dwJob
	submitted int64        // tickets issued; only the submitting goroutine touches it
	done      atomic.Int64 // jobs finished, in order
	mu        sync.Mutex
	cond      sync.Cond     // signalled under mu when done grows
	busy      time.Duration // gradient jobs' time: written by the worker, read after a wait
	optBusy   time.Duration // update chunks' time, likewise
	tr        Tracer
	update    func() // runs a jobUpdate (and its spans, and optBusy)
}

func newDWWorker(tr Tracer, update func()) *dwWorker {
	w := &dwWorker{jobs: make(chan dwJob, 256), tr: tr, update: update}
	w.cond.L = &w.mu
	go w.run()
	return w
}

func (w *dwWorker) run() {
	for j := range w.jobs {
		if j.kind == jobUpdate {
			w.update()
			w.jobDone()
			continue
		}
		t0 := time.Now()
		switch j.kind {
		case jobLookup:
			s := len(j.tokens)
			for t, tok := range j.tokens {
				row := j.c[int(tok)*j.n : int(tok)*j.n+j.n]
				for c := range row {
					row[c] += j.alpha * j.a[c*s+t]
				}
			}
		case jobSgemm:
			blas.Sgemm(j.transA, j.transB, j.m, j.n, j.k, j.alpha, j.a, j.lda, j.b, j.ldb, 1, j.c, j.ldc)
		case jobRows:
			n := j.ldc
			for i, r := range j.rows {
				copy(j.c[i*n:i*n+n], j.dst[int(r)*n:int(r)*n+n])
			}
			blas.Sgemm(j.transA, j.transB, j.m, j.n, j.k, j.alpha, j.a, j.lda, j.b, j.ldb, 1, j.c, j.ldc)
			for i, r := range j.rows {
				copy(j.dst[int(r)*n:int(r)*n+n], j.c[i*n:i*n+n])
			}
		}
		t1 := time.Now()
		w.busy += t1.Sub(t0)
		if w.tr != nil {
			w.tr.Span(Span{Track: TrackDW, Name: j.name, Step: j.step, Layer: j.layer, Start: t0, End: t1})
		}
		w.jobDone()
	}
}

func (w *dwWorker) jobDone() {
	w.mu.Lock()
	w.done.Add(1)
	w.cond.Broadcast()
	w.mu.Unlock()
}

// broadcast wakes whoever waits on cond (for an update chunk's state).
func (w *dwWorker) broadcast() {
	w.mu.Lock()
	w.cond.Broadcast()
	w.mu.Unlock()
}

// waitState blocks until st holds want, rechecking whenever the worker
// signals progress (see broadcast).
func (w *dwWorker) waitState(st *atomic.Int32, want int32) {
	w.mu.Lock()
	for st.Load() != want {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

// submit queues j and returns its ticket.
func (w *dwWorker) submit(j dwJob) int64 {
	w.submitted++
	w.jobs <- j
	return w.submitted
}

// outer queues dw [out, in] += dy [out, s] · x [in, s]ᵀ.
func (w *dwWorker) outer(name string, layer, step int, dw, dy []float32, out int, x []float32, in, s int) int64 {
	return w.submit(dwJob{name: name, layer: layer, step: step, transB: true, m: out, n: in, k: s, alpha: 1, a: dy, lda: s, b: x, ldb: s, c: dw, ldc: in})
}

// finished reports whether job t is done, without blocking.
func (w *dwWorker) finished(t int64) bool { return w.done.Load() >= t }

// waitFor blocks until job t (and so every job before it) is done.
func (w *dwWorker) waitFor(t int64) {
	if w.finished(t) {
		return
	}
	w.mu.Lock()
	for w.done.Load() < t {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

// wait blocks until every queued job is done.
func (w *dwWorker) wait() { w.waitFor(w.submitted) }

func (w *dwWorker) close() { w.wait(); close(w.jobs) }

// pool runs indexed tasks on persistent goroutines (a go statement per task
// would allocate every step). fn is fixed at construction; the caller sets
// whatever state the tasks read before run.
type pool struct {
	n     int
	tasks chan int
	wg    sync.WaitGroup
	fn    func(task, worker int)
}

func newPool(n int, fn func(task, worker int)) *pool {
	p := &pool{n: n, tasks: make(chan int, 1024), fn: fn}
	for w := range n {
		go func() {
			for t := range p.tasks {
				p.fn(t, w)
				p.wg.Done()
			}
		}()
	}
	return p
}

func (p *pool) run(n int) {
	p.wg.Add(n)
	for t := range n {
		p.tasks <- t
	}
	p.wg.Wait()
}

func (p *pool) close() { close(p.tasks) }
