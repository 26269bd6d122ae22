package blas

import (
	"fmt"
	"math"
	"runtime"
)

// Impl is one backend. Its methods have the semantics of the package-level
// functions of the same name and are safe for concurrent use.
type Impl struct {
	id string
	k  kernel
	// Vectors shorter than l1Min are done by the pure-Go kernel, which is
	// faster there than a call into C.
	l1Min int
}

// kernel is what a backend supplies. Arguments have been validated, sizes
// are non-zero and, for native kernels, fit in a C int.
type kernel interface {
	name() string
	sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	saxpy(alpha float32, x, y []float32)
	sdot(x, y []float32) float32
	sscal(alpha float32, x []float32)
	snrm2(x []float32) float32
}

// nativeL1Min is the vector length from which level-1 calls go to a native
// library. A native call costs about 0.1 µs (0.4 µs before the calls went
// through purego.SyscallN), and OpenBLAS wakes its threads for vectors over
// 10000 elements. On amd64 gonum's SSE kernels keep pace with OpenBLAS at
// every length (level-1 is memory-bound; see BenchmarkSaxpy and
// BenchmarkSdot), so level-1 stays in Go there. Elsewhere gonum's float32
// level-1 is plain Go and long vectors are worth the call (not measured: no
// arm64 machine with a native BLAS was at hand). The native Sdot and Snrm2
// are an sgemv_ (see nativeKernel), which on this amd64 machine runs at about
// half the speed of OpenBLAS's own sdot on in-cache vectors and at the same
// speed out of cache.
var nativeL1Min = 4096

func init() {
	if runtime.GOARCH == "amd64" {
		nativeL1Min = math.MaxInt
	}
}

func newImpl(id string, k kernel) *Impl {
	im := &Impl{id: id, k: k}
	if _, isGo := k.(goKernel); !isGo {
		im.l1Min = nativeL1Min
	}
	return im
}

// ID returns the backend's identifier: Accelerate, OpenBLAS or Go.
func (im *Impl) ID() string { return im.id }

// Name describes the backend for display, e.g. "OpenBLAS 0.3.21 (2 threads)".
func (im *Impl) Name() string { return im.k.name() }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C; see the package-level Sgemm.
func (im *Impl) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 {
		panic(fmt.Sprintf("blas: Sgemm: m = %d < 0", m))
	}
	if n < 0 {
		panic(fmt.Sprintf("blas: Sgemm: n = %d < 0", n))
	}
	if k < 0 {
		panic(fmt.Sprintf("blas: Sgemm: k = %d < 0", k))
	}
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	checkMatrix('a', rowsA, colsA, a, lda)
	checkMatrix('b', rowsB, colsB, b, ldb)
	checkMatrix('c', m, n, c, ldc)

	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleMatrix(m, n, beta, c, ldc)
		return
	}
	kern := im.k
	if max(m, n, k, lda, ldb, ldc) > math.MaxInt32 {
		kern = goKernel{}
	}
	kern.sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Saxpy computes y += alpha·x.
func (im *Impl) Saxpy(alpha float32, x, y []float32) {
	if len(x) != len(y) {
		panic(fmt.Sprintf("blas: Saxpy: len(x) = %d != len(y) = %d", len(x), len(y)))
	}
	if len(x) == 0 || alpha == 0 {
		return
	}
	im.l1(len(x)).saxpy(alpha, x, y)
}

// Sdot returns x·y.
func (im *Impl) Sdot(x, y []float32) float32 {
	if len(x) != len(y) {
		panic(fmt.Sprintf("blas: Sdot: len(x) = %d != len(y) = %d", len(x), len(y)))
	}
	if len(x) == 0 {
		return 0
	}
	return im.l1(len(x)).sdot(x, y)
}

// Sscal computes x *= alpha.
func (im *Impl) Sscal(alpha float32, x []float32) {
	if len(x) == 0 || alpha == 1 {
		return
	}
	if alpha == 0 {
		// Backends disagree on 0·NaN here; zeroing is what callers mean.
		clear(x)
		return
	}
	im.l1(len(x)).sscal(alpha, x)
}

// Snrm2 returns the Euclidean norm of x.
func (im *Impl) Snrm2(x []float32) float32 {
	if len(x) == 0 {
		return 0
	}
	return im.l1(len(x)).snrm2(x)
}

func (im *Impl) l1(n int) kernel {
	if n < im.l1Min || n > math.MaxInt32 {
		return goKernel{}
	}
	return im.k
}

// checkMatrix panics unless s can hold a rows×cols matrix with row stride ld.
// Like cblas, ld must be at least max(1, cols) even for an empty matrix.
func checkMatrix(name byte, rows, cols int, s []float32, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("blas: Sgemm: ld%c = %d < max(1, %d)", name, ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	// len(s) >= (rows-1)*ld + cols, written so that it cannot overflow.
	if len(s) < cols || (len(s)-cols)/ld < rows-1 {
		panic(fmt.Sprintf("blas: Sgemm: len(%c) = %d too short for %d×%d with ld%c = %d", name, len(s), rows, cols, name, ld))
	}
}

// scaleMatrix computes C = beta·C for the m×n matrix C. beta == 0 stores
// zeros without reading C, so NaNs in a fresh buffer do not survive.
func scaleMatrix(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}
