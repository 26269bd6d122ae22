package blas

import (
	"runtime"
	"sync"
	"sync/atomic"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// goKernel is the pure-Go backend: gonum's blocked implementation (assembly
// level-1 kernels on amd64, plain Go elsewhere), run in parallel over
// GOMAXPROCS by this package rather than by gonum (see sgemm).
type goKernel struct{}

var gonumImpl gonum.Implementation

func (goKernel) name() string { return "pure Go (gonum)" }

// gonum's tiling, which its serial kernels are tuned for: C is cut into
// tileSize×tileSize tiles and the k dimension into slices as long, and a
// product goes parallel once C has minParTiles tiles.
const (
	tileSize    = 64
	minParTiles = 4
)

// sgemm does what gonum's Sgemm does, with the same tiles computed by the
// same serial kernels, but on persistent helper goroutines: gonum starts a
// goroutine per tile and makes a channel and a WaitGroup per call, which
// costs hundreds of allocations per large product (a training step makes
// hundreds of products). Small products, which gonum runs serially, go to
// gonum directly.
func (goKernel) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	tiles := ceilDiv(m, tileSize) * ceilDiv(n, tileSize)
	if tiles < minParTiles {
		gonumImpl.Sgemm(gonumTrans(transA), gonumTrans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// From here on gonum's Sgemm is only called on single tiles: given the
	// whole product it would go parallel even with GOMAXPROCS 1. With one
	// proc the caller computes every tile itself.
	scaleMatrix(m, n, beta, c, ldc) // tiles then accumulate with beta = 1

	j := gemmJobs.Get().(*gemmJob)
	*j = gemmJob{
		transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
		tilesN: ceilDiv(n, tileSize), tiles: tiles,
	}
	maxHelpers := min(runtime.GOMAXPROCS(0)-1, tiles-1)
	startHelpers(maxHelpers)
	joined := 0
	for {
		// Offer the job again before each tile: a helper busy with another
		// caller's product may have come free since.
		joined += j.offer(maxHelpers - joined)
		t := int(j.next.Add(1)) - 1
		if t >= j.tiles {
			break
		}
		j.tile(t)
	}
	j.helpers.Wait() // helpers still on their last tile
	*j = gemmJob{}   // drop the caller's slices before pooling
	gemmJobs.Put(j)
}

// A gemmJob is one parallel product. Tiles are claimed through next by the
// caller and by any helpers that joined; helpers counts the joined helpers
// until they are done with the job.
type gemmJob struct {
	transA, transB bool
	m, n, k        int
	alpha          float32
	a, b, c        []float32
	lda, ldb, ldc  int
	tilesN, tiles  int // tiles per tile row, in all

	next    atomic.Int64
	helpers sync.WaitGroup
}

// gemmJobs recycles jobs (a GC may empty it; the next product then
// allocates one job).
var gemmJobs = sync.Pool{New: func() any { return new(gemmJob) }}

// offer hands the job to at most max idle helpers and returns how many took
// it. The channel is unbuffered and the send does not block, so a helper
// joins only if it is idle now: a caller never waits for a helper that is
// busy with another caller's product.
func (j *gemmJob) offer(max int) int {
	for i := range max {
		j.helpers.Add(1)
		select {
		case helperWork <- j:
		default:
			j.helpers.Done()
			return i
		}
	}
	return max
}

// run computes tiles until none is left.
func (j *gemmJob) run() {
	for {
		t := int(j.next.Add(1)) - 1
		if t >= j.tiles {
			return
		}
		j.tile(t)
	}
}

// tile computes tile t of C (row-major order of tiles, as gonum does),
// accumulating over k slices with gonum's serial kernel: a product of one
// tile is below gonum's parallel threshold.
func (j *gemmJob) tile(t int) {
	i0, j0 := t/j.tilesN*tileSize, t%j.tilesN*tileSize
	rows, cols := min(tileSize, j.m-i0), min(tileSize, j.n-j0)
	tA, tB := gonumTrans(j.transA), gonumTrans(j.transB)
	c := view(j.c, j.ldc, i0, j0, rows, cols)
	for p0 := 0; p0 < j.k; p0 += tileSize {
		depth := min(tileSize, j.k-p0)
		var a, b []float32
		if j.transA {
			a = view(j.a, j.lda, p0, i0, depth, rows)
		} else {
			a = view(j.a, j.lda, i0, p0, rows, depth)
		}
		if j.transB {
			b = view(j.b, j.ldb, j0, p0, cols, depth)
		} else {
			b = view(j.b, j.ldb, p0, j0, depth, cols)
		}
		gonumImpl.Sgemm(tA, tB, rows, cols, depth, j.alpha, a, j.lda, b, j.ldb, 1, c, j.ldc)
	}
}

// view returns the r×c block at (i, j) of the matrix s with row stride ld,
// as the shortest slice that holds it.
func view(s []float32, ld, i, j, r, c int) []float32 {
	return s[i*ld+j : (i+r-1)*ld+j+c]
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// The helper goroutines live for the rest of the process, parked on
// helperWork when idle. There are GOMAXPROCS-1 of them at most, the caller
// being the last worker; they are started on first need and only ever added
// (if GOMAXPROCS grows), and an extra idle helper costs nothing.
var (
	helperWork  = make(chan *gemmJob)
	helperMu    sync.Mutex
	helperCount atomic.Int32
)

func startHelpers(n int) {
	if int(helperCount.Load()) >= n {
		return
	}
	helperMu.Lock()
	defer helperMu.Unlock()
	for int(helperCount.Load()) < n {
		helperCount.Add(1)
		go helper()
	}
}

func helper() {
	for j := range helperWork {
		j.run()
		j.helpers.Done()
	}
}

func (goKernel) saxpy(alpha float32, x, y []float32) { gonumImpl.Saxpy(len(x), alpha, x, 1, y, 1) }
func (goKernel) sdot(x, y []float32) float32         { return gonumImpl.Sdot(len(x), x, 1, y, 1) }
func (goKernel) sscal(alpha float32, x []float32)    { gonumImpl.Sscal(len(x), alpha, x, 1) }
func (goKernel) snrm2(x []float32) float32           { return gonumImpl.Snrm2(len(x), x, 1) }

func gonumTrans(t bool) gblas.Transpose {
	if t {
		return gblas.Trans
	}
	return gblas.NoTrans
}
