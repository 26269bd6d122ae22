//go:build !purego

package engine

import "golang.org/x/sys/cpu"

// haveExpAVX2 selects expSumAVX2: eight exponentials per instruction
// sequence, FMAs included. HasAVX2 also means the OS saves the YMM state.
var haveExpAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func expSumAVX2(row *float32, n int, shift float32) float64

// expSumFast runs expSumAVX2 on the longest multiple of 8 of row it can and
// returns how many it did and their sum.
func expSumFast(row []float32, shift float32) (int, float64) {
	n := len(row) &^ 7
	if !haveExpAVX2 || n == 0 {
		return 0, 0
	}
	return n, expSumAVX2(&row[0], n, shift)
}

//go:noescape
func maxAVX2(row *float32, n int) float32

// rowMax is the largest element of row (not empty); NaNs are skipped
// unless row[0] is one.
func rowMax(row []float32) float32 {
	n := len(row) &^ 7
	if !haveExpAVX2 || n == 0 {
		return rowMaxGo(row)
	}
	mx := maxAVX2(&row[0], n)
	for _, z := range row[n:] {
		if z > mx {
			mx = z
		}
	}
	return mx
}
