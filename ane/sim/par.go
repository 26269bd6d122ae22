package sim

import (
	"runtime"
	"sync"

	"github.com/anetop/anetop/mil/fp16"
)

// parMin is the least work (elements) worth splitting across goroutines:
// rounding and conversion are memory-bound and take about 0.1 ns per
// element, so below a few million elements one core is as fast.
const parMin = 1 << 21

// par splits [0, n) into up to GOMAXPROCS contiguous chunks of at least grain
// items and runs fn on each concurrently. Used for the memory-bound passes
// (fp16 conversion and rounding) around the sgemms, which would otherwise
// run on one core while the BLAS uses them all.
func par(n, grain int, fn func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n/max(grain, 1))
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + w - 1) / w
	for lo := step; lo < n; lo += step {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, min(lo+step, n))
	}
	fn(0, min(step, n))
	wg.Wait()
}

// round16 rounds d to fp16 in place, in parallel when it is large.
func round16(d []float32) {
	par(len(d), parMin, func(lo, hi int) { fp16.RoundFloat32s(d[lo:hi], d[lo:hi]) })
}
