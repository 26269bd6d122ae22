package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestNoAllocs pins the steady state of every backend that loads here to
// zero allocations per call: a training step makes hundreds of sgemm calls.
// It covers small products (serial everywhere), products large enough for
// the pure-Go backend's parallel path, and the level-1 kernels, which are
// called directly so that native libraries are reached at every length.
// Buffers are made outside the measured function. The count is an average
// over many runs, so a pool refilled once after a GC does not show. It runs
// with GOMAXPROCS 1 and with the default, which on more than one core
// brings in the pure-Go backend's helper goroutines.
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items at random); the plain test run checks them")
	}
	// The engine changes the OpenBLAS thread count twice per step.
	if n := allocsPerRun(20, func() { SetThreads(1); SetThreads(0) }); n != 0 {
		t.Errorf("SetThreads: %v allocations per pair of calls, want 0", n)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, runtime.GOMAXPROCS(0)} {
		runtime.GOMAXPROCS(procs)
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), testNoAllocs)
	}
}

// allocsPerRun is testing.AllocsPerRun without its GOMAXPROCS(1), which
// would keep the pure-Go backend's parallel path from running. It counts
// the allocations of every goroutine, helpers included.
func allocsPerRun(runs int, f func()) float64 {
	f() // warm up: pools, helpers
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64((after.Mallocs - before.Mallocs) / uint64(runs))
}

func testNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const big = 192 // 3×3 tiles of 64
	a, b, c := randSlice(r, big*big), randSlice(r, big*big), make([]float32, big*big)
	x, y := randSlice(r, 20000), randSlice(r, 20000)
	runs := 50
	if testing.Short() {
		runs = 10
	}
	forEachBackend(t, func(t *testing.T, im *Impl) {
		check := func(what string, f func()) {
			t.Helper()
			if n := allocsPerRun(runs, f); n != 0 {
				t.Errorf("%s: %v allocations per call, want 0", what, n)
			}
		}
		for combo := range 4 {
			tA, tB := combo&1 != 0, combo&2 != 0
			check(fmt.Sprintf("Sgemm 64³ tA=%v tB=%v", tA, tB), func() {
				im.Sgemm(tA, tB, 64, 64, 64, 1, a, 64, b, 64, 0.5, c, 64)
			})
			check(fmt.Sprintf("Sgemm %d³ tA=%v tB=%v", big, tA, tB), func() {
				im.Sgemm(tA, tB, big, big, big, 1, a, big, b, big, 0, c, big)
			})
		}
		for _, n := range []int{100, 20000} {
			xs, ys := x[:n], y[:n]
			check(fmt.Sprintf("saxpy n=%d", n), func() { im.k.saxpy(1e-3, xs, ys) })
			check(fmt.Sprintf("sdot n=%d", n), func() { _ = im.k.sdot(xs, ys) })
			check(fmt.Sprintf("sscal n=%d", n), func() { im.k.sscal(1, ys) })
			check(fmt.Sprintf("snrm2 n=%d", n), func() { _ = im.k.snrm2(xs) })
			check(fmt.Sprintf("front end n=%d", n), func() {
				im.Saxpy(1e-3, xs, ys)
				_ = im.Sdot(xs, ys)
				im.Sscal(1.0001, ys)
				_ = im.Snrm2(xs)
			})
		}
	})
}

// TestGoParallel checks the pure-Go backend's tiled product against the
// float64 reference with one, two and four workers: GOMAXPROCS 1 takes the
// serial path, and 4 on this two-core machine starts more helper
// goroutines than cores, which must change nothing but speed.
func TestGoParallel(t *testing.T) {
	im, _ := Lookup(Go)
	r := rand.New(rand.NewPCG(10, 11))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 4} {
		runtime.GOMAXPROCS(procs)
		for combo := range 4 {
			tA, tB := combo&1 != 0, combo&2 != 0
			testOneGemm(t, r, im, tA, tB, 200, 131, 129, -0.75, 0.5, 1)
			testOneGemm(t, r, im, tA, tB, 65, 257, 3, 1, 0, 0)
		}
	}
}

// TestSnrm2Kernel checks each backend's snrm2 kernel, called directly, on
// vectors whose sum of squares overflows or underflows float32, where the
// native kernel's x·x shortcut must hand over to the scaled algorithm.
func TestSnrm2Kernel(t *testing.T) {
	cases := []struct {
		name string
		x    []float32
	}{
		{"overflow", fill(5000, 1e30)},
		{"underflow", fill(5000, 1e-30)},
		{"denormal", fill(5000, 1e-40)},
		{"zeros", fill(5000, 0)},
		{"one huge", append(fill(4999, 1), 3e38)},
		{"ordinary", fill(5000, -0.5)},
	}
	forEachBackend(t, func(t *testing.T, im *Impl) {
		for _, tc := range cases {
			var ss float64
			for _, v := range tc.x {
				ss += float64(v) * float64(v)
			}
			want := math.Sqrt(ss)
			got := float64(im.k.snrm2(tc.x))
			if math.Abs(got-want) > 1e-6*want {
				t.Errorf("%s: snrm2 = %g, want %g", tc.name, got, want)
			}
		}
		nan := fill(5000, 1)
		nan[17] = float32(math.NaN())
		if got := im.k.snrm2(nan); !math.IsNaN(float64(got)) {
			t.Errorf("NaN: snrm2 = %g, want NaN", got)
		}
	})
}

func fill(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}
