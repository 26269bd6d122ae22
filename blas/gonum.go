package blas

import (
	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// goKernel is the pure-Go backend: gonum's blocked, GOMAXPROCS-parallel
// implementation (assembly level-1 kernels on amd64, plain Go elsewhere).
type goKernel struct{}

var gonumImpl gonum.Implementation

func (goKernel) name() string { return "pure Go (gonum)" }

func (goKernel) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gonumImpl.Sgemm(gonumTrans(transA), gonumTrans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
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
