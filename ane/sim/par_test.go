package sim

import (
	"runtime"
	"sync"
	"testing"
)

// TestParConcurrent runs many parallel passes at once (as several devices'
// workers do) and checks each covers its range exactly once, with parts in
// range; with -race it also checks the job descriptors' reuse.
func TestParConcurrent(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range 200 {
				n := 1 + (g*7919+it*104729)%5000
				grain := 1 + it%64
				hits := make([]int32, n)
				parts := parParts(n, grain)
				var mu sync.Mutex
				bad := false
				par(n, grain, func(part, lo, hi int) {
					if part < 0 || part >= parts || lo >= hi {
						mu.Lock()
						bad = true
						mu.Unlock()
					}
					for i := lo; i < hi; i++ {
						hits[i]++
					}
				})
				if bad {
					t.Errorf("n=%d grain=%d: a part out of range or empty", n, grain)
					return
				}
				for i, h := range hits {
					if h != 1 {
						t.Errorf("n=%d grain=%d: item %d visited %d times", n, grain, i, h)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
