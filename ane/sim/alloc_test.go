package sim

import (
	"runtime"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/blas"
)

// maxEvalAllocs bounds the objects a steady-state evaluation allocates in the
// emulator itself (the BLAS's own allocations are measured and allowed for).
const maxEvalAllocs = 2

// TestEvalAllocs checks that evaluating a kernel again allocates (almost)
// nothing: the training engine evaluates kernels many times per step and
// aims at a handful of allocations per step. The kernel is a matmul, a
// softmax and broadcast elementwise ops, each large enough to be split
// across goroutines.
func TestEvalAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("large kernel")
	}
	const m, k, n = 2048, 64, 2048 // m·n is past parMin, so the rounding is parallel too
	text := prog("tensor<fp16, [1, 2048, 64]> x, tensor<fp16, [64, 2048]> y, tensor<fp16, [1, 2048, 1]> b", `
            tensor<fp16, [1, 2048, 2048]> z = matmul(transpose_x = bool(false), transpose_y = bool(false), x = x, y = y)[name = string("z")];
            tensor<fp16, [1, 2048, 2048]> s = softmax(axis = int32(-1), x = z)[name = string("s")];
            tensor<fp16, [1, 2048, 2048]> a = add(x = s, y = b)[name = string("a")];
            tensor<fp16, [1, 2048, 2048]> o = mul(x = a, y = s)[name = string("o")];`, "o")
	d := newDev(t, multi)
	kn := compile(t, d, text, nil)
	var in, out []*ane.Surface
	for i, sz := range []int{m * k, k * n, m} {
		s, err := kn.NewSurface(ane.Input, i)
		if err != nil {
			t.Fatal(err)
		}
		s.WriteBlock(0, 0, s.Rows(), s.Cols(), randn(uint64(i+1), sz, 1), s.Cols())
		in = append(in, s)
	}
	o, err := kn.NewSurface(ane.Output, 0)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, o)
	if runtime.GOMAXPROCS(0) < 2 {
		t.Logf("GOMAXPROCS is 1: the passes run serially")
	}

	// The kernel's one sgemm (a shared right operand: one call over the batch).
	xa, ya, c := randn(1, m*k, 1), randn(2, k*n, 1), make([]float32, m*n)
	sgemm := testing.AllocsPerRun(3, func() {
		blas.Sgemm(false, false, m, n, k, 1, xa, k, ya, n, 0, c, n)
	})
	got := testing.AllocsPerRun(3, func() {
		if err := kn.Eval(in, out); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%v allocations per evaluation, %v of them in the %s sgemm", got, sgemm, blas.Backend())
	if got > sgemm+maxEvalAllocs {
		t.Errorf("an evaluation allocates %v objects, %v of them in the sgemm; want at most %d more", got, sgemm, maxEvalAllocs)
	}
}
