package mil

import (
	"fmt"
	"math"
)

// FloatTensor returns an immediate float tensor. Elements are rounded to d's
// precision, so the value is exactly what a device reading the text would hold.
func FloatTensor(d DType, shape Shape, vals []float64) *Value {
	v := &Value{Type: Type{DType: d, Shape: shape.Clone()}, Floats: make([]float64, len(vals))}
	for i, x := range vals {
		v.Floats[i] = RoundFloat(x, d)
	}
	return v
}

// IntTensor returns an immediate integer tensor.
func IntTensor(d DType, shape Shape, vals []int64) *Value {
	return &Value{Type: Type{DType: d, Shape: shape.Clone()}, Ints: append([]int64{}, vals...)}
}

// BoolTensor returns an immediate bool tensor.
func BoolTensor(shape Shape, vals []bool) *Value {
	return &Value{Type: Type{DType: Bool, Shape: shape.Clone()}, Bools: append([]bool{}, vals...)}
}

// Int32s returns a rank-1 int32 tensor, the type of axes, perms and shapes.
func Int32s(vals ...int) *Value {
	iv := make([]int64, len(vals))
	for i, x := range vals {
		iv[i] = int64(x)
	}
	return IntTensor(Int32, Shape{len(vals)}, iv)
}

// Bools returns a rank-1 bool tensor, the type of slice masks.
func Bools(vals ...bool) *Value { return BoolTensor(Shape{len(vals)}, vals) }

// FloatScalar returns a float scalar of dtype d.
func FloatScalar(d DType, x float64) *Value { return FloatTensor(d, Shape{}, []float64{x}) }

// IntScalar returns an integer scalar of dtype d.
func IntScalar(d DType, x int64) *Value { return IntTensor(d, Shape{}, []int64{x}) }

// BoolScalar returns a bool scalar.
func BoolScalar(x bool) *Value { return BoolTensor(Shape{}, []bool{x}) }

// StringScalar returns a string scalar.
func StringScalar(s string) *Value {
	return &Value{Type: ScalarOf(String), Strings: []string{s}}
}

// BlobValue returns a value of type t whose data lives in a weight blob.
func BlobValue(t Type, path string, offset uint64) *Value {
	return &Value{Type: Type{DType: t.DType, Shape: t.Shape.Clone()}, Blob: &BlobRef{Path: path, Offset: offset}}
}

// Len returns the number of immediate elements the value holds.
func (v *Value) Len() int {
	switch {
	case v.Floats != nil:
		return len(v.Floats)
	case v.Ints != nil:
		return len(v.Ints)
	case v.Bools != nil:
		return len(v.Bools)
	case v.Strings != nil:
		return len(v.Strings)
	}
	return 0
}

// Check verifies that the value is well formed: a valid static type, exactly one
// kind of payload matching the dtype, the right element count, and integers in
// the dtype's range.
func (v *Value) Check() error {
	if err := v.Type.validate(); err != nil {
		return err
	}
	if !v.Type.Shape.Static() {
		return fmt.Errorf("literal of type %v has an unknown dimension", v.Type)
	}
	if v.Blob != nil {
		if v.Floats != nil || v.Ints != nil || v.Bools != nil || v.Strings != nil {
			return fmt.Errorf("literal of type %v has both a blob and immediate data", v.Type)
		}
		if _, ok := v.Type.DType.BlobCode(); !ok {
			return fmt.Errorf("dtype %v cannot be stored in a weight blob", v.Type.DType)
		}
		return nil
	}
	d := v.Type.DType
	var n int
	switch {
	case d.IsFloat():
		n = len(v.Floats)
		if v.Ints != nil || v.Bools != nil || v.Strings != nil {
			return fmt.Errorf("%v literal holds non-float data", d)
		}
	case d.IsInt():
		n = len(v.Ints)
		if v.Floats != nil || v.Bools != nil || v.Strings != nil {
			return fmt.Errorf("%v literal holds non-integer data", d)
		}
		lo, hi := d.intRange()
		for _, x := range v.Ints {
			if x < lo || x > hi {
				return fmt.Errorf("%v literal %d is out of range [%d, %d]", d, x, lo, hi)
			}
		}
	case d == Bool:
		n = len(v.Bools)
		if v.Floats != nil || v.Ints != nil || v.Strings != nil {
			return fmt.Errorf("bool literal holds non-bool data")
		}
	case d == String:
		n = len(v.Strings)
		if v.Floats != nil || v.Ints != nil || v.Bools != nil {
			return fmt.Errorf("string literal holds non-string data")
		}
	}
	if want := v.Type.Shape.NumElements(); n != want {
		return fmt.Errorf("literal of type %v has %d elements, want %d", v.Type, n, want)
	}
	return nil
}

// AsInts returns the value's elements as ints (integer or bool dtypes).
func (v *Value) AsInts() ([]int, bool) {
	if v == nil || v.Blob != nil {
		return nil, false
	}
	switch {
	case v.Ints != nil || (v.Type.DType.IsInt() && v.Len() == 0):
		out := make([]int, len(v.Ints))
		for i, x := range v.Ints {
			out[i] = int(x)
		}
		return out, true
	case v.Bools != nil:
		out := make([]int, len(v.Bools))
		for i, x := range v.Bools {
			if x {
				out[i] = 1
			}
		}
		return out, true
	}
	return nil, false
}

// AsFloat returns a numeric scalar's value.
func (v *Value) AsFloat() (float64, bool) {
	if v == nil || v.Blob != nil || !v.Type.IsScalar() {
		return 0, false
	}
	switch {
	case len(v.Floats) == 1:
		return v.Floats[0], true
	case len(v.Ints) == 1:
		return float64(v.Ints[0]), true
	}
	return 0, false
}

// AsBool returns a bool scalar's value.
func (v *Value) AsBool() (bool, bool) {
	if v == nil || len(v.Bools) != 1 || !v.Type.IsScalar() {
		return false, false
	}
	return v.Bools[0], true
}

// AsString returns a string scalar's value.
func (v *Value) AsString() (string, bool) {
	if v == nil || len(v.Strings) != 1 || !v.Type.IsScalar() {
		return "", false
	}
	return v.Strings[0], true
}

// RoundFloat rounds x to the precision of float dtype d (round to nearest even,
// overflow to ±inf), so printed literals carry exactly the stored value.
func RoundFloat(x float64, d DType) float64 {
	switch d {
	case FP16:
		return roundFP16(x)
	case BF16:
		return roundBF16(x)
	case FP32:
		return float64(float32(x))
	}
	return x
}

// roundBF16 rounds to bfloat16 (the top 16 bits of a float32), nearest even.
func roundBF16(x float64) float64 {
	f := float32(x)
	if f != f {
		return x
	}
	b := math.Float32bits(f)
	b += 0x7fff + (b>>16)&1
	return float64(math.Float32frombits(b &^ 0xffff))
}

// roundFP16 rounds x to the nearest binary16 value, ties to even, overflowing
// to ±inf. It works in float64, where scaling by powers of two is exact, so it
// rounds once (no double rounding through float32).
func roundFP16(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || x == 0 {
		return x
	}
	a := math.Abs(x)
	if a >= 65520 { // halfway between 65504 and 2^16 and beyond: inf
		return math.Copysign(math.Inf(1), x)
	}
	_, e := math.Frexp(a) // a = f·2^e, f in [0.5, 1)
	q := max(e-1-10, -24) // the quantum: 10 fraction bits, subnormal step 2^-24
	r := math.RoundToEven(math.Ldexp(a, -q))
	return math.Copysign(math.Ldexp(r, q), x)
}
