package anetest

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/anetop/anetop/mil"
)

// The reference keeps its own fp16 arithmetic rather than borrowing mil/fp16:
// a bug in the shared conversion would otherwise cancel out between the device
// and the reference that is meant to catch it. ref_test.go checks the two
// against each other instead.

const (
	// maxHalf is the largest finite fp16 value.
	maxHalf = 65504
	// unit is fp16's unit roundoff: round to nearest is within unit·|x|
	// (plus half the smallest subnormal).
	unit = 1.0 / 2048
	// tinyHalf is the smallest positive fp16 subnormal, 2^-24.
	tinyHalf = 1.0 / (1 << 24)
)

// round16 rounds x to the nearest fp16 value, ties to even; beyond the
// overflow threshold (halfway between 65504 and 65536) it is ±inf.
func round16(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || x == 0 {
		return x
	}
	a := math.Abs(x)
	if a >= 65520 {
		return math.Copysign(math.Inf(1), x)
	}
	_, e := math.Frexp(a) // a = f·2^e with f in [0.5, 1)
	// fp16 has 11 significant bits down to 2^-14, then a fixed step of 2^-24.
	q := max(e-11, -24)
	r := math.RoundToEven(math.Ldexp(a, -q))
	return math.Copysign(math.Ldexp(r, q), x)
}

// roundTo rounds x to the precision of a float dtype; other dtypes are exact.
func roundTo(x float64, d mil.DType) float64 {
	switch d {
	case mil.FP16:
		return round16(x)
	case mil.FP32:
		return float64(float32(x))
	}
	return x
}

// half16 decodes IEEE binary16 bits.
func half16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 31:
		if frac != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1024+frac, exp-25)
}

// decodeBlob turns the little-endian data of a weight blob into float64s.
func decodeBlob(d mil.DType, data []byte, n int) ([]float64, error) {
	size := map[mil.DType]int{mil.FP16: 2, mil.FP32: 4, mil.Int8: 1, mil.UInt8: 1, mil.Int16: 2, mil.UInt16: 2, mil.Int32: 4}[d]
	if size == 0 {
		return nil, fmt.Errorf("reference: cannot decode a %v blob", d)
	}
	if len(data) < n*size {
		return nil, fmt.Errorf("reference: %v blob holds %d bytes, need %d", d, len(data), n*size)
	}
	out := make([]float64, n)
	for i := range out {
		b := data[i*size:]
		switch d {
		case mil.FP16:
			out[i] = half16(binary.LittleEndian.Uint16(b))
		case mil.FP32:
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		case mil.Int8:
			out[i] = float64(int8(b[0]))
		case mil.UInt8:
			out[i] = float64(b[0])
		case mil.Int16:
			out[i] = float64(int16(binary.LittleEndian.Uint16(b)))
		case mil.UInt16:
			out[i] = float64(binary.LittleEndian.Uint16(b))
		case mil.Int32:
			out[i] = float64(int32(binary.LittleEndian.Uint32(b)))
		}
	}
	return out, nil
}

// intRange is the range of an integer dtype the reference computes with.
func intRange(d mil.DType) (lo, hi float64) {
	switch d {
	case mil.Int8:
		return -128, 127
	case mil.UInt8:
		return 0, 255
	case mil.Int16:
		return -32768, 32767
	case mil.UInt16:
		return 0, 65535
	}
	return math.MinInt32, math.MaxInt32
}
