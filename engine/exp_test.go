package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// expImpls are the implementations of expSum: the dispatching one (the
// vector kernel on amd64 with AVX2 and FMA, Go for the tails) and Go alone.
var expImpls = []struct {
	name string
	f    func([]float32, float32) float64
}{
	{"expSum", expSum},
	{"expSumGo", expSumGo},
}

// TestExpSum compares the exponentials with math.Exp over the whole range
// where the result is a normal float32 (random points plus a dense sweep of
// [−20, 0], where softmax arguments live), the float64 sum with the sum of
// math.Exp's results, and the limits: underflow to 0, overflow to +Inf, NaN.
func TestExpSum(t *testing.T) {
	t.Logf("vector kernel: %v", haveExpAVX2)
	const lo, hi = -87.33654, 88.7228
	rng := rand.New(rand.NewPCG(5, 6))
	xs := make([]float32, 0, 1<<21+8)
	for range 1 << 20 {
		xs = append(xs, float32(lo+(hi-lo)*rng.Float64()))
	}
	for i := range 1 << 20 {
		xs = append(xs, float32(-20*float64(i)/(1<<20)))
	}
	xs = append(xs, lo, hi, 0, -0.5*math.Ln2, 0.5*math.Ln2, 1, -1) // and a tail of 7
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	edge := []float32{-88, -1000, float32(math.Inf(-1)), 89, 1000, inf, nan, -87.3}
	edge = append(edge, edge...)
	edge = append(edge, edge[:5]...) // vector blocks and a Go tail
	for _, impl := range expImpls {
		t.Run(impl.name, func(t *testing.T) {
			got := append([]float32(nil), xs...)
			sum := impl.f(got, 0)
			var want, worst float64
			worstX := float32(0)
			for i, x := range xs {
				w := math.Exp(float64(x))
				want += float64(float32(w))
				if d := math.Abs(float64(got[i])-w) / w; d > worst {
					worst, worstX = d, x
				}
			}
			t.Logf("worst relative error %.3g at x = %v", worst, worstX)
			if worst > 1.5e-7 {
				t.Errorf("worst relative error %.3g at x = %v, want ≤ 1.5e-7", worst, worstX)
			}
			if math.Abs(sum-want) > 1e-6*want {
				t.Errorf("sum %v, want %v", sum, want)
			}
			// The shift is subtracted in float32 before the exponential.
			row := []float32{3, 2, 1, 3, 2, 1, 3, 2, 1, 3}
			impl.f(row, 3)
			for i, r := range row {
				x := float64(-(i % 3))
				if d := math.Abs(float64(r) - math.Exp(x)); d > 1.5e-7*math.Exp(x) {
					t.Errorf("e^(%v−3) = %v, want %v", 3-i%3, r, math.Exp(x))
				}
			}
			e := append([]float32(nil), edge...)
			s := impl.f(e, 0)
			for i, x := range edge {
				var want float32
				switch {
				case x != x:
					want = nan
				case x > hi:
					want = inf
				case x < lo:
					want = 0
				default:
					want = float32(math.Exp(float64(x)))
				}
				if e[i] != want && !(want != want && e[i] != e[i]) && math.Abs(float64(e[i]-want)) > 1.5e-7*float64(want) {
					t.Errorf("e^%v = %v, want %v", x, e[i], want)
				}
			}
			if s == s {
				t.Errorf("sum with NaNs and infinities %v, want NaN", s)
			}
		})
	}
}

func BenchmarkExpSum(b *testing.B) {
	row := make([]float32, 32000)
	for i := range row {
		row[i] = float32(-i%20) * 0.37
	}
	buf := make([]float32, len(row))
	for _, impl := range expImpls {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(row)))
			for b.Loop() {
				copy(buf, row)
				impl.f(buf, 0)
			}
		})
	}
	b.Run("math.Exp", func(b *testing.B) {
		b.SetBytes(int64(4 * len(row)))
		for b.Loop() {
			copy(buf, row)
			var s float64
			for j, z := range buf {
				e := float32(math.Exp(float64(z)))
				buf[j] = e
				s += float64(e)
			}
			_ = s
		}
	})
}

// BenchmarkCrossEntropy is one stories15m window's cross-entropy (256
// positions × 32000 logits) on one goroutine.
func BenchmarkCrossEntropy(b *testing.B) {
	const s, v = 256, 32000
	rng := rand.New(rand.NewPCG(1, 2))
	logits, buf := make([]float32, s*v), make([]float32, s*v)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 2)
	}
	targets := make([]int32, s)
	for i := range targets {
		targets[i] = int32(rng.IntN(v))
	}
	b.SetBytes(4 * s * v)
	for b.Loop() {
		copy(buf, logits)
		crossEntropyRows(buf, targets, v, 0, s, 1)
	}
}

// TestRowMax compares rowMax (the vector kernel where there is one) and
// rowMaxGo with a plain search, for every length up to 70 and the position
// of the maximum anywhere, and their NaN rule: skipped unless first.
func TestRowMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, f := range []func([]float32) float32{rowMax, rowMaxGo} {
		for n := 1; n <= 70; n++ {
			row := make([]float32, n)
			for i := range row {
				row[i] = float32(rng.NormFloat64()) - 10
			}
			for at := range n {
				r := append([]float32(nil), row...)
				r[at] = 5
				if got := f(r); got != 5 {
					t.Fatalf("n %d, maximum at %d: got %v", n, at, got)
				}
				if n > 1 && at > 0 {
					r[0] = float32(math.NaN())
					if got := f(r); got == got {
						t.Fatalf("n %d, NaN first: got %v, want NaN", n, got)
					}
					r[0], r[n-1-(at+1)%(n-1)] = row[0], float32(math.NaN())
					if r[at] == r[at] {
						if got := f(r); got != 5 {
							t.Fatalf("n %d, maximum at %d, a NaN elsewhere: got %v, want 5", n, at, got)
						}
					}
				}
			}
		}
	}
}

// TestSumSquares compares sumSquares with a float64 sum, for lengths
// around its block and lane sizes and one long enough for float32
// accumulation alone to drift.
func TestSumSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 3, 4, 5, 1023, 1024, 1025, 4099, 3 << 20} {
		x := make([]float32, n)
		var want float64
		for i := range x {
			x[i] = float32(rng.NormFloat64())
			want += float64(x[i]) * float64(x[i])
		}
		got := sumSquares(x)
		if math.Abs(got-want) > 1e-6*want || (n == 0 && got != 0) {
			t.Errorf("n %d: %v, want %v", n, got, want)
		}
	}
}
