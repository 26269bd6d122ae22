package fp16

import (
	"math"
	"sort"
)

// The reference implementations below are deliberately written in the most
// obvious way, with float64 arithmetic and the math package, and share no
// code with the package under test.

// refDecode returns the value of the binary16 bit pattern h from the
// textbook formula (-1)^s * 2^(e-15) * 1.f, or 2^-14 * 0.f for e = 0.
func refDecode(h Bits) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e := int(h>>10) & 0x1f
	f := int(h & 0x3ff)
	switch e {
	case 31:
		if f == 0 {
			return math.Inf(int(s))
		}
		return math.NaN()
	case 0:
		return s * math.Ldexp(float64(f), -24)
	}
	return s * math.Ldexp(float64(1024+f), e-15-10)
}

// refDecodeTable[h] = refDecode(h).
var refDecodeTable = func() []float64 {
	t := make([]float64, 1<<16)
	for i := range t {
		t[i] = refDecode(Bits(i))
	}
	return t
}()

// refRound returns x rounded to the nearest binary16 value, ties to even, as
// a float64 (±Inf on overflow, NaN for NaN). It works on the real value: it
// finds the spacing q of binary16 values around |x| (2^-24 below 2^-14,
// otherwise 2^(floor(log2|x|)-10)), rounds |x|/q to an integer with ties to
// even (|x|/q is exact, q being a power of two), and overflows to infinity
// when the result exceeds the largest finite value, as IEEE 754 specifies
// (the rounding is done with an unbounded exponent, so 65520 rounds to 65536
// and overflows, while anything below rounds to 65504).
func refRound(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	a := math.Abs(x)
	q := 0x1p-24
	if a >= 0x1p-14 {
		// q = 2^(floor(log2 a) - 10). a is a normal float64 here, so
		// floor(log2 a) is its unbiased exponent; build 2^k from its bits
		// (math.Frexp and math.Ldexp would do, but are several times
		// slower, which matters for the 2^32 sweep).
		k := int(math.Float64bits(a)>>52) - 1023 - 10
		q = math.Float64frombits(uint64(k+1023) << 52)
	}
	r := math.RoundToEven(a/q) * q
	if r > 65504 {
		r = math.Inf(1)
	}
	return math.Copysign(r, x)
}

// sameFloat64 reports whether a and b have the same bits (so +0 != -0).
func sameFloat64(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// checkFrom checks the result h of converting x to binary16 against the
// reference. For a NaN only the contract is checked: a NaN of the same sign.
func checkFrom(x float64, h Bits) bool {
	if math.IsNaN(x) {
		return h.IsNaN() && h.Signbit() == math.Signbit(x)
	}
	return sameFloat64(refDecodeTable[h], refRound(x))
}

// A second, even more literal reference for FromFloat32, used by the 2^32
// sweep because it is cheap: walk up the sorted list of binary16 magnitudes
// and pick the nearer neighbour, ties to the one with an even significand.
//
// refPos[i] is the value of the positive binary16 pattern i for i < 0x7c00,
// and refPos[0x7c00] = 2^16, the value the next pattern would have with an
// unbounded exponent. Its significand is even, so the tie at 65520 goes up,
// and pattern 0x7c00 is +Inf: the IEEE overflow rule falls out.
var refPos = func() []float64 {
	t := make([]float64, 0x7c01)
	for i := range 0x7c00 {
		t[i] = refDecode(Bits(i))
	}
	t[0x7c00] = 65536
	return t
}()

// refWalker finds the nearest binary16 magnitude for a non-decreasing
// sequence of magnitudes.
type refWalker struct{ j int }

// start positions the walker at the largest j with refPos[j] <= a.
func (w *refWalker) start(a float64) {
	w.j = sort.Search(len(refPos), func(i int) bool { return refPos[i] > a }) - 1
}

// nearest returns the binary16 pattern nearest to a >= 0 (not NaN), which
// must not be smaller than the previous a.
func (w *refWalker) nearest(a float64) Bits {
	for w.j < 0x7c00 && refPos[w.j+1] <= a {
		w.j++
	}
	j := w.j
	if j == 0x7c00 {
		return 0x7c00
	}
	// Compare a - lo with hi - a as 2a with lo + hi, both exact in float64.
	lo, hi := refPos[j], refPos[j+1]
	switch {
	case 2*a < lo+hi:
		return Bits(j)
	case 2*a > lo+hi:
		return Bits(j + 1)
	case j%2 == 0:
		return Bits(j)
	}
	return Bits(j + 1)
}
