package sim

import (
	"slices"
	"testing"
	"time"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/blas"
)

// The dynamic-pipeline linear kernel at Stories110M's width, and the bare
// sgemm of the same product: the kernel should take at most 1.3× the sgemm.
const benchIC, benchOC, benchS = 768, 2048, 256

func reportGFLOPS(b *testing.B, flops float64, start time.Time) {
	b.ReportMetric(flops*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOPS")
}

// benchKernel compiles the linear kernel and stages a random input.
func benchKernel(b *testing.B) (k ane.Kernel, in, out *ane.Surface) {
	b.Helper()
	p, w := dynMatmul(b, benchIC, benchOC, benchS)
	d := newDev(b, ane.Options{})
	k, err := d.Compile("dyn", p, w)
	if err != nil {
		b.Fatal(err)
	}
	in, _ = k.NewSurface(ane.Input, 0)
	out, _ = k.NewSurface(ane.Output, 0)
	x := randn(1, benchIC*(benchS+benchOC), 1)
	in.WriteBlock(0, 0, in.Rows(), in.Cols(), x, in.Cols())
	return k, in, out
}

func BenchmarkDynamicMatmul(b *testing.B) {
	k, in, out := benchKernel(b)
	one := []*ane.Surface{in}
	res := []*ane.Surface{out}
	if err := k.Eval(one, res); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := k.Eval(one, res); err != nil {
			b.Fatal(err)
		}
	}
	reportGFLOPS(b, k.FLOPs(), start)
}

func BenchmarkSgemmSame(b *testing.B) {
	// out[OC, S] = Wᵀ·act with W [IC, OC] and act [IC, S], both row-major.
	w := randn(1, benchIC*benchOC, 1)
	a := randn(2, benchIC*benchS, 1)
	c := make([]float32, benchOC*benchS)
	blas.Sgemm(true, false, benchOC, benchS, benchIC, 1, w, benchOC, a, benchS, 0, c, benchS)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		blas.Sgemm(true, false, benchOC, benchS, benchIC, 1, w, benchOC, a, benchS, 0, c, benchS)
	}
	reportGFLOPS(b, 2*benchIC*benchOC*benchS, start)
}

// BenchmarkDynamicMatmulRatio alternates the kernel and the bare sgemm and
// reports the ratio of their best times, which stays meaningful on a noisy
// machine where the two separate benchmarks drift apart.
func BenchmarkDynamicMatmulRatio(b *testing.B) {
	k, in, out := benchKernel(b)
	wt := randn(1, benchIC*benchOC, 1)
	a := randn(2, benchIC*benchS, 1)
	c := make([]float32, benchOC*benchS)
	bestK, bestS := time.Duration(1<<62), time.Duration(1<<62)
	var ratios []float64
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		blas.Sgemm(true, false, benchOC, benchS, benchIC, 1, wt, benchOC, a, benchS, 0, c, benchS)
		t2 := time.Now()
		bestK, bestS = min(bestK, t1.Sub(t0)), min(bestS, t2.Sub(t1))
		ratios = append(ratios, float64(t1.Sub(t0))/float64(t2.Sub(t1)))
	}
	slices.Sort(ratios)
	b.ReportMetric(float64(bestK.Microseconds())/1e3, "kernel-ms")
	b.ReportMetric(float64(bestS.Microseconds())/1e3, "sgemm-ms")
	b.ReportMetric(float64(bestK)/float64(bestS), "best-ratio")
	b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
}
