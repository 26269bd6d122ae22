//go:build purego || !amd64

package engine

// haveExpAVX2 is false off amd64 (and in purego builds): expSumGo only.
const haveExpAVX2 = false

func expSumFast(row []float32, shift float32) (int, float64) { return 0, 0 }

// rowMax is the largest element of row (not empty); NaNs are skipped
// unless row[0] is one.
func rowMax(row []float32) float32 { return rowMaxGo(row) }
