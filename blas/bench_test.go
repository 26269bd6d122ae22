package blas

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// BenchmarkSgemm reports GFLOPS per backend for a large square product and
// for training-step shapes of a 768-wide model at 256 tokens: the forward
// x·W (256×768·768×768) and the weight gradient dW = xᵀ·dy (768×256·256×768).
//
//	go test -run '^$' -bench Sgemm -count 5 ./blas
func BenchmarkSgemm(b *testing.B) {
	shapes := []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"1024x1024x1024", false, false, 1024, 1024, 1024},
		{"256x768x768", false, false, 256, 768, 768},
		{"dW_768x768x256_TN", true, false, 768, 768, 256},
		// Small enough that the per-call overhead (cgo transition, argument
		// marshalling, allocations) is a visible share of the time.
		{"64x64x64", false, false, 64, 64, 64},
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, im := range Backends() {
		for _, threads := range threadCases(im) {
			for _, sh := range shapes {
				name := im.ID() + threads.label + "/" + sh.name
				b.Run(name, func(b *testing.B) {
					if threads.n != 0 {
						SetThreads(threads.n)
						defer SetThreads(0)
					}
					a, bb := randSlice(r, sh.m*sh.k), randSlice(r, sh.k*sh.n)
					c := make([]float32, sh.m*sh.n)
					lda, ldb := sh.k, sh.n
					if sh.tA {
						lda = sh.m
					}
					im.Sgemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, a, lda, bb, ldb, 0, c, sh.n) // warm up
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						im.Sgemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, a, lda, bb, ldb, 0, c, sh.n)
					}
					flops := 2 * float64(sh.m) * float64(sh.n) * float64(sh.k)
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
				})
			}
		}
	}
}

type threadCase struct {
	label string
	n     int // 0: default
}

// threadCases runs OpenBLAS with one thread as well as with its default.
func threadCases(im *Impl) []threadCase {
	if im.ID() != OpenBLAS {
		return []threadCase{{"", 0}}
	}
	return []threadCase{{"_1thread", 1}, {"_default", 0}}
}

// BenchmarkSaxpy compares a native call with pure Go for short and long
// vectors; it is what nativeL1Min is chosen from. "kernel" bypasses the
// front end's length cutoff.
func BenchmarkSaxpy(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, im := range Backends() {
		for _, n := range []int{256, 1024, 4096, 16384, 65536, 1 << 20} {
			x, y := randSlice(r, n), randSlice(r, n)
			b.Run(fmt.Sprintf("%s_kernel/n=%d", im.ID(), n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(8 * n))
				for b.Loop() {
					im.k.saxpy(1e-3, x, y)
				}
			})
		}
	}
}

// BenchmarkSdot is BenchmarkSaxpy for the dot product.
func BenchmarkSdot(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, im := range Backends() {
		for _, n := range []int{256, 4096, 16384, 65536, 1 << 20} {
			x, y := randSlice(r, n), randSlice(r, n)
			b.Run(fmt.Sprintf("%s_kernel/n=%d", im.ID(), n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(8 * n))
				var s float32
				for b.Loop() {
					s += im.k.sdot(x, y)
				}
				_ = s
			})
		}
	}
}

// BenchmarkSgemmConcurrent runs the 256×768×768 product from two goroutines
// at once, as the dW worker and the emulator's device worker do, and reports
// the combined rate.
func BenchmarkSgemmConcurrent(b *testing.B) {
	const m, n, k = 256, 768, 768
	r := rand.New(rand.NewPCG(4, 4))
	a, bb := randSlice(r, m*k), randSlice(r, k*n)
	for _, im := range Backends() {
		for _, threads := range threadCases(im) {
			b.Run(im.ID()+threads.label, func(b *testing.B) {
				if threads.n != 0 {
					SetThreads(threads.n)
					defer SetThreads(0)
				}
				cs := [2][]float32{make([]float32, m*n), make([]float32, m*n)}
				b.ResetTimer()
				for b.Loop() {
					var wg sync.WaitGroup
					for _, c := range cs {
						wg.Go(func() { im.Sgemm(false, false, m, n, k, 1, a, k, bb, n, 0, c, n) })
					}
					wg.Wait()
				}
				flops := 2 * 2 * float64(m) * float64(n) * float64(k)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}
