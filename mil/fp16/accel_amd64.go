//go:build !purego

package fp16

import "golang.org/x/sys/cpu"

// F16C instructions are VEX encoded and use YMM registers, so they need AVX
// as well; HasAVX also checks that the OS saves the YMM state, and
// HasAVX512F that it saves the ZMM state.
var availableKernels = func() []*kernels {
	var ks []*kernels
	if !cpu.X86.HasAVX || !cpu.X86.HasF16C {
		return nil
	}
	if cpu.X86.HasAVX512F {
		ks = append(ks, &kernels{"avx512", fromAVX512, toAVX512, roundAVX512})
	}
	return append(ks, &kernels{"f16c", fromF16C, toF16C, roundF16C})
}()

// The assembly kernels convert n elements, n a positive multiple of 8.

//go:noescape
func f32ToF16F16C(dst *Bits, src *float32, n int)

//go:noescape
func f16ToF32F16C(dst *float32, src *Bits, n int)

//go:noescape
func roundF32F16C(dst, src *float32, n int)

//go:noescape
func f32ToF16AVX512(dst *Bits, src *float32, n int)

//go:noescape
func f16ToF32AVX512(dst *float32, src *Bits, n int)

//go:noescape
func roundF32AVX512(dst, src *float32, n int)

func fromF16C(dst []Bits, src []float32) int {
	n := len(src) &^ 7
	if n > 0 {
		_ = dst[n-1]
		f32ToF16F16C(&dst[0], &src[0], n)
	}
	return n
}

func toF16C(dst []float32, src []Bits) int {
	n := len(src) &^ 7
	if n > 0 {
		_ = dst[n-1]
		f16ToF32F16C(&dst[0], &src[0], n)
	}
	return n
}

func roundF16C(dst, src []float32) int {
	n := len(src) &^ 7
	if n > 0 {
		_ = dst[n-1]
		roundF32F16C(&dst[0], &src[0], n)
	}
	return n
}

func fromAVX512(dst []Bits, src []float32) int {
	n := len(src) &^ 7
	if n > 0 {
		_ = dst[n-1]
		f32ToF16AVX512(&dst[0], &src[0], n)
	}
	return n
}

func toAVX512(dst []float32, src []Bits) int {
	n := len(src) &^ 7
	if n > 0 {
		_ = dst[n-1]
		f16ToF32AVX512(&dst[0], &src[0], n)
	}
	return n
}

func roundAVX512(dst, src []float32) int {
	n := len(src) &^ 7
	if n > 0 {
		_ = dst[n-1]
		roundF32AVX512(&dst[0], &src[0], n)
	}
	return n
}
