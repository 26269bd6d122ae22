package engine

import (
	"math"
	"sync"
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
// loss. Max-subtracted, in float64 sums: stable for any logits.
func crossEntropyRows(logits []float32, targets []int32, v, lo, hi int, scale float32) float64 {
	var loss float64
	for t := lo; t < hi; t++ {
		row := logits[t*v : t*v+v]
		mx := row[0]
		for _, z := range row {
			mx = max(mx, z)
		}
		tg := targets[t]
		ztg := float64(row[tg] - mx)
		var sum float64
		for j, z := range row {
			e := float32(math.Exp(float64(z - mx)))
			row[j] = e
			sum += float64(e)
		}
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

// dwJob is one unit of the dW worker: C += op(A)·op(B) (an sgemm with β 1),
// or, with tokens set, the embedding's lookup gradient: row tokens[t] of C
// gets column t of A [d, s] times alpha.
type dwJob struct {
	transA, transB bool
	m, n, k        int
	alpha          float32
	a, b, c        []float32
	lda, ldb, ldc  int
	tokens         []int32
}

// dwWorker runs weight-gradient jobs in order on one goroutine while the
// caller keeps the device busy. Jobs are values sent over a buffered channel
// (no allocation); a WaitGroup counts the outstanding ones.
type dwWorker struct {
	jobs chan dwJob
	wg   sync.WaitGroup
	busy time.Duration // written by the worker, read after wait
}

func newDWWorker() *dwWorker {
	w := &dwWorker{jobs: make(chan dwJob, 256)}
	go w.run()
	return w
}

func (w *dwWorker) run() {
	for j := range w.jobs {
		t0 := time.Now()
		if j.tokens != nil {
			s := len(j.tokens)
			for t, tok := range j.tokens {
				row := j.c[int(tok)*j.n : int(tok)*j.n+j.n]
				for c := range row {
					row[c] += j.alpha * j.a[c*s+t]
				}
			}
		} else {
			blas.Sgemm(j.transA, j.transB, j.m, j.n, j.k, j.alpha, j.a, j.lda, j.b, j.ldb, 1, j.c, j.ldc)
		}
		w.busy += time.Since(t0)
		w.wg.Done()
	}
}

func (w *dwWorker) submit(j dwJob) {
	w.wg.Add(1)
	w.jobs <- j
}

// outer queues dw [out, in] += dy [out, s] · x [in, s]ᵀ.
func (w *dwWorker) outer(dw, dy []float32, out int, x []float32, in, s int) {
	w.submit(dwJob{transB: true, m: out, n: in, k: s, alpha: 1, a: dy, lda: s, b: x, ldb: s, c: dw, ldc: in})
}

// wait blocks until every queued job is done and returns how long it waited.
func (w *dwWorker) wait() time.Duration {
	t0 := time.Now()
	w.wg.Wait()
	return time.Since(t0)
}

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
