// Package fp16 converts between float32/float64 and IEEE 754 binary16
// ("half precision", fp16), the only floating-point format the Apple Neural
// Engine computes in.
//
// anetop uses it in two places: staging weights and activations for the
// device (which happens after every optimizer step, so the bulk conversions
// are on a hot path), and the Linux ANE emulator, which calls [Round] after
// every operation to stay bit-faithful to the device.
//
// # Rounding contract
//
// Conversions to binary16 ([FromFloat32], [FromFloat64], [FromFloat32s],
// [Round], [RoundFloat32s]) round to nearest, ties to even, exactly as IEEE
// 754 specifies:
//
//   - Results in the subnormal range (magnitude below 2^-14) are rounded
//     correctly, including rounding from subnormal up to the smallest normal
//     and from the smallest normal range down into the subnormals. Nothing is
//     flushed to zero; magnitudes at or below 2^-25 become a zero of the same
//     sign.
//   - Magnitudes of 65520 (the midpoint between [MaxValue] and 2^16) and
//     above overflow to an infinity of the same sign.
//   - ±Inf maps to ±Inf and zeros keep their sign.
//   - A NaN maps to a quiet NaN of the same sign; it never becomes an
//     infinity. The payload keeps its top bits: the result is
//     sign | 0x7e00 | (the top 10 bits of the float32 fraction), i.e. the
//     quiet bit is forced and the low bits are dropped. The SIMD paths
//     produce the same NaN bits as the pure-Go code (the tests check this
//     exhaustively on amd64, and on arm64 under qemu), but callers should
//     rely only on "NaN in, NaN of the same sign out".
//   - [FromFloat64] rounds directly from the float64 value (it does not go
//     through float32, which could round twice and get halfway cases wrong).
//
// Conversions from binary16 ([Bits.Float32], [ToFloat32s]) are exact for
// every non-NaN value. A NaN becomes a quiet float32 NaN of the same sign
// whose fraction starts with the 10 fraction bits of the binary16 value
// (with the quiet bit set), which is what the hardware converters do too.
//
// # SIMD paths
//
// The slice functions ([FromFloat32s], [ToFloat32s], [RoundFloat32s]) use
// SIMD assembly when it is available and portable Go otherwise. The results
// are bit-identical for all inputs, NaNs included, on the hardware the tests
// ran on; for non-NaN inputs the tests require it.
//
//   - amd64 with F16C and AVX: VCVTPS2PH (imm8 = 0: round to nearest even,
//     whatever MXCSR.RC says) and VCVTPH2PS on YMM registers, 32 elements
//     per loop iteration. With AVX-512F as well, the ZMM forms, 64 elements
//     per iteration. MXCSR does not matter otherwise either: DAZ could only
//     touch float32 subnormals, which round to a signed zero anyway, FTZ does
//     not apply to these conversions, and Go runs with the default MXCSR.
//   - arm64: FCVTN/FCVTN2 and FCVTL/FCVTL2 on 128-bit vectors, 16 elements
//     per iteration. Advanced SIMD is part of every ARMv8-A core, so there is
//     nothing to detect. Go runs with the default FPCR (round to nearest, no
//     flush-to-zero, default-NaN mode off).
//   - other architectures, CPUs without F16C, and builds with the purego
//     tag: portable Go. For long slices the binary16 to float32 direction
//     uses a 64Ki-entry table, built on first use.
//
// The SIMD kernels convert whole blocks of 8 elements; the last 0-7 go
// through the scalar code. The amd64 features are detected at start-up with
// golang.org/x/sys/cpu, so GODEBUG=cpu.avx512f=off selects the F16C path
// and GODEBUG=cpu.avx=off the portable one. [Accel] reports the path in use.
package fp16

import (
	"math"
	"strconv"
)

// Bits is the bit pattern of an IEEE 754 binary16 value: 1 sign bit, 5
// exponent bits (bias 15) and 10 fraction bits.
type Bits uint16

// Bit patterns of special binary16 values.
const (
	PosZero   Bits = 0x0000
	NegZero   Bits = 0x8000
	One       Bits = 0x3c00 // 1.0
	MaxFinite Bits = 0x7bff // 65504, the largest finite value
	PosInf    Bits = 0x7c00
	NegInf    Bits = 0xfc00
	NaN       Bits = 0x7e00 // the canonical quiet NaN
)

// Values of binary16 limits, as untyped constants.
const (
	MaxValue          = 65504   // largest finite binary16 value, (2 - 2^-10) * 2^15
	SmallestNormal    = 0x1p-14 // smallest positive normal binary16 value
	SmallestSubnormal = 0x1p-24 // smallest positive binary16 value
	Epsilon           = 0x1p-10 // difference between 1 and the next binary16 value
	OverflowThreshold = 65520   // magnitudes >= this round to infinity
	UnderflowToZero   = 0x1p-25 // magnitudes <= this round to zero
)

const (
	signMask16 = 0x8000
	expMask16  = 0x7c00
	fracMask16 = 0x03ff
	quiet16    = 0x0200
)

// IsNaN reports whether h is a NaN.
func (h Bits) IsNaN() bool { return h&0x7fff > expMask16 }

// IsInf reports whether h is an infinity, according to sign: sign > 0 means
// +Inf, sign < 0 means -Inf, sign == 0 means either.
func (h Bits) IsInf(sign int) bool {
	switch {
	case sign > 0:
		return h == PosInf
	case sign < 0:
		return h == NegInf
	}
	return h&0x7fff == expMask16
}

// IsFinite reports whether h is neither an infinity nor a NaN.
func (h Bits) IsFinite() bool { return h&expMask16 != expMask16 }

// Signbit reports whether the sign bit of h is set.
func (h Bits) Signbit() bool { return h&signMask16 != 0 }

// Neg returns h with its sign bit flipped.
func (h Bits) Neg() Bits { return h ^ signMask16 }

// Abs returns h with its sign bit cleared.
func (h Bits) Abs() Bits { return h &^ signMask16 }

// FromFloat32 converts f to binary16, rounding to nearest, ties to even.
// See the package documentation for the handling of overflow, subnormals
// and NaNs.
func FromFloat32(f float32) Bits {
	b := math.Float32bits(f)
	if inNormalRange(b) {
		return fromFloat32Normal(b)
	}
	return fromFloat32Slow(b)
}

// inNormalRange reports whether 2^-14 <= |f| < 2^16 for the float32 bits b
// of f: the range where the binary16 result is normal or, at the very top,
// rounds up to infinity.
func inNormalRange(b uint32) bool {
	return b&0x7fffffff-0x38800000 < 0x47800000-0x38800000
}

// fromFloat32Normal converts the float32 bits b in the normal range: it
// rebiases the exponent from 127 to 15 and rounds the 23-bit fraction to 10
// bits, ties to even. A carry out of the fraction increments the exponent,
// which is exactly right (and turns 0x7bff + 1 into 0x7c00, +Inf).
func fromFloat32Normal(b uint32) Bits {
	r := b&0x7fffffff - (127-15)<<23
	r += 0xfff + (r>>13)&1
	return Bits(b>>16)&signMask16 | Bits(r>>13)
}

// fromFloat32Slow handles everything outside [2^-14, 2^16) in magnitude.
func fromFloat32Slow(b uint32) Bits {
	sign := Bits(b>>16) & signMask16
	abs := b & 0x7fffffff
	switch {
	case abs > 0x7f800000: // NaN: keep the top payload bits, force quiet.
		return sign | expMask16 | quiet16 | Bits(abs>>13)&fracMask16
	case abs >= 0x47800000: // |f| >= 2^16, Inf included
		return sign | expMask16
	case abs <= 0x33000000:
		// |f| <= 2^-25: rounds to zero (exactly 2^-25 is a tie, to even 0).
		return sign
	case abs >= 0x38800000:
		return fromFloat32Normal(b)
	}
	// 2^-25 < |f| < 2^-14: subnormal result (or the smallest normal, if it
	// rounds up). The value is m * 2^(e-150) with a 24-bit significand m,
	// and we want it in units of 2^-24.
	e := abs >> 23 // 102 ... 112
	m := abs&0x7fffff | 0x800000
	shift := 126 - e // 14 ... 24
	m += (1<<(shift-1) - 1) + (m>>shift)&1
	return sign | Bits(m>>shift)
}

// FromFloat64 converts f to binary16, rounding to nearest, ties to even,
// directly from the float64 value (a single rounding). See the package
// documentation for the handling of overflow, subnormals and NaNs; a NaN
// keeps the top 10 bits of its 52-bit fraction.
func FromFloat64(f float64) Bits {
	b := math.Float64bits(f)
	sign := Bits(b>>48) & signMask16
	abs := b &^ (1 << 63)
	switch {
	case abs >= 0x3f10000000000000 && abs < 0x40f0000000000000:
		// 2^-14 <= |f| < 2^16: as in FromFloat32, rebias 1023 -> 15 and
		// round the 52-bit fraction to 10 bits.
		r := abs - (1023-15)<<52
		r += (1<<41 - 1) + (r>>42)&1
		return sign | Bits(r>>42)
	case abs >= 0x40f0000000000000:
		if abs > 0x7ff0000000000000 {
			return sign | expMask16 | quiet16 | Bits(abs>>42)&fracMask16
		}
		return sign | expMask16
	case abs <= 0x3e60000000000000: // |f| <= 2^-25
		return sign
	}
	// 2^-25 < |f| < 2^-14: value is m * 2^(e-1075) with a 53-bit m; we
	// want units of 2^-24.
	e := abs >> 52 // 998 ... 1008
	m := abs&(1<<52-1) | 1<<52
	shift := 1051 - e // 43 ... 53
	m += (1<<(shift-1) - 1) + (m>>shift)&1
	return sign | Bits(m>>shift)
}

// Float32 returns h as a float32. The conversion is exact; a NaN becomes a
// quiet NaN with the same sign and the binary16 fraction in the top bits.
func (h Bits) Float32() float32 {
	return math.Float32frombits(toFloat32Bits(h))
}

// Float64 returns h as a float64 (exactly, except for NaN payloads).
func (h Bits) Float64() float64 { return float64(h.Float32()) }

// toFloat32Bits is the complete arithmetic binary16 -> float32 conversion.
func toFloat32Bits(h Bits) uint32 {
	sign := uint32(h&signMask16) << 16
	e := uint32(h>>10) & 0x1f
	frac := uint32(h & fracMask16)
	switch e {
	case 0x1f:
		if frac != 0 { // NaN: quiet it, as the hardware converters do.
			return sign | 0x7fc00000 | frac<<13
		}
		return sign | 0x7f800000
	case 0:
		// Zero or subnormal: frac * 2^-24, exact in float32.
		return sign | math.Float32bits(float32(frac)*0x1p-24)
	}
	return sign | (e+(127-15))<<23 | frac<<13
}

// Round returns f rounded to the nearest binary16 value, as a float32: it is
// FromFloat32(f).Float32(), with a fast path for the normal range.
func Round(f float32) float32 {
	b := math.Float32bits(f)
	if roundsToNormal(b) {
		return math.Float32frombits(roundNormal(b))
	}
	return fromFloat32Slow(b).Float32()
}

// roundsToNormal reports whether 2^-14 <= |f| < 65520 for the float32 bits
// b of f: the range where the result is a finite normal binary16 value.
func roundsToNormal(b uint32) bool {
	return b&0x7fffffff-0x38800000 < 0x477ff000-0x38800000
}

// roundNormal rounds the fraction of the float32 bits b in place to 10
// bits, ties to even. A carry into the exponent is correct and, in the
// roundsToNormal range, cannot reach the sign bit.
func roundNormal(b uint32) uint32 {
	return (b + 0xfff + (b>>13)&1) &^ 0x1fff
}

// String formats h as its float32 value.
func (h Bits) String() string {
	return strconv.FormatFloat(float64(h.Float32()), 'g', -1, 32)
}
