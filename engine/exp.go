package engine

import "math"

// expSum replaces every z of row by e^(z−shift) in float32 and returns the
// results' sum in float64. It exists for the cross-entropy, whose 8 million
// exponentials per stories15m step made math.Exp (float64, a call per
// element) half of the classifier's time; the loop body is written out here
// because a separate expf function is over the inliner's budget. On amd64
// with AVX2 and FMA an assembly kernel does eight at a time (the same
// algorithm, with FMAs, so its results may differ from the Go loop's in the
// last bit; both are tested against math.Exp).
//
// The exponential is Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2, eʳ by a
// degree-7 polynomial, 2ⁿ put into the exponent bits. Its relative error is
// below 1.5e-7 (about 1 ulp) wherever the result is a normal float32
// (TestExpSum measures it against math.Exp over the whole range). Below
// x ≈ −87.34 it returns 0 instead of a subnormal: a softmax term under 1e-38
// of its row's largest contributes nothing either way. Above 88.7228 it
// returns +Inf, and NaN stays NaN.
func expSum(row []float32, shift float32) float64 {
	n, sum := expSumFast(row, shift)
	return sum + expSumGo(row[n:], shift)
}

// expSumGo is expSum in Go, for the tail of a row that the vector kernel
// leaves and where there is none.
func expSumGo(row []float32, shift float32) float64 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375 // ln2 split so that n·ln2hi is exact for |n| < 2⁹
		ln2lo = -2.12194440e-4
		magic = 1.5 * (1 << 23) // adding it rounds to an integer in the low mantissa bits
		lo    = -87.33654       // e^lo is the least normal float32
		hi    = 88.7228         // e^hi is just below the largest float32
	)
	var sum float64
	for j, z := range row {
		x := z - shift
		if !(x >= lo) || x > hi {
			switch {
			case x != x:
				row[j] = x
			case x > hi:
				row[j] = float32(math.Inf(1))
			default:
				row[j] = 0
			}
			sum += float64(row[j])
			continue
		}
		t := x*log2e + magic
		n := t - magic
		r := x - n*ln2hi - n*ln2lo
		p := ((((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r+5.0000001201e-1)*r*r + r) + 1
		// 2ⁿ from t's low bits, n ∈ [−126, 128]; 2¹²⁸ is not a float32, so
		// that one power is applied in two halves.
		k := int32(math.Float32bits(t)-math.Float32bits(magic)) + 127
		var e float32
		if k > 254 {
			e = p * 2 * math.Float32frombits(uint32(k-1)<<23)
		} else {
			e = p * math.Float32frombits(uint32(k)<<23)
		}
		row[j] = e
		sum += float64(e)
	}
	return sum
}

// rowMaxGo is rowMax in Go. The comparison, not the max builtin, whose
// NaN and signed-zero rules made it several times slower than the
// exponentials; a NaN logit still makes the loss NaN, through the sum.
func rowMaxGo(row []float32) float32 {
	mx := row[0]
	for _, z := range row {
		if z > mx {
			mx = z
		}
	}
	return mx
}
