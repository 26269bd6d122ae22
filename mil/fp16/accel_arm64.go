//go:build !purego

package fp16

// Advanced SIMD (NEON) with FCVTN/FCVTL is mandatory in ARMv8-A, so there is
// nothing to detect.
var availableKernels = []*kernels{{"neon", fromNEON, toNEON, roundNEON}}

// The assembly kernels convert n elements, n a positive multiple of 8.

//go:noescape
func f32ToF16NEON(dst *Bits, src *float32, n int)

//go:noescape
func f16ToF32NEON(dst *float32, src *Bits, n int)

//go:noescape
func roundF32NEON(dst, src *float32, n int)

func fromNEON(dst []Bits, src []float32) int {
	n := len(src) &^ 7
	if n == 0 {
		return 0
	}
	_ = dst[n-1]
	f32ToF16NEON(&dst[0], &src[0], n)
	return n
}

func toNEON(dst []float32, src []Bits) int {
	n := len(src) &^ 7
	if n == 0 {
		return 0
	}
	_ = dst[n-1]
	f16ToF32NEON(&dst[0], &src[0], n)
	return n
}

func roundNEON(dst, src []float32) int {
	n := len(src) &^ 7
	if n == 0 {
		return 0
	}
	_ = dst[n-1]
	roundF32NEON(&dst[0], &src[0], n)
	return n
}
