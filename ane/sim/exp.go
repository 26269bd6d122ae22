package sim

import "math"

// fastExp is eˣ with a relative error below 1e-9 over float64, several times
// faster than math.Exp: the results are rounded to float32 and then fp16, so
// the last float64 bits never show. It reduces x = n·ln2 + r with |r| ≤ ln2/2
// and sums the Taylor series of eʳ to degree 8 (error r⁹/9! < 3e-10).
func fastExp(x float64) float64 {
	switch {
	case x != x:
		return x
	case x > 709.78:
		return math.Inf(1)
	case x < -745.2:
		return 0
	}
	const (
		log2e = 1.4426950408889634
		ln2hi = 6.93147180369123816490e-01 // ln2 split so that n·ln2hi is exact
		ln2lo = 1.90821492927058770002e-10
	)
	n := math.Floor(x*log2e + 0.5)
	r := (x - n*ln2hi) - n*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320+r/362880))))))))
	if n < -1022 || n > 1023 {
		return math.Ldexp(p, int(n))
	}
	return p * math.Float64frombits(uint64(int64(n)+1023)<<52)
}
