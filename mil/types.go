package mil

import (
	"fmt"
	"strconv"
	"strings"
)

// UnknownDim marks a dimension whose size is not known statically (printed "?").
// The ANE compiles only static shapes; the parser accepts "?" so that such files
// can be read and refused with a clear message by the device.
const UnknownDim = -1

// MaxElements bounds the element count of any tensor type anetop will build or
// parse. It is far above any real kernel (a 32000×4096 fp16 classifier is 2^27)
// and keeps absurd shapes from overflowing size arithmetic.
const MaxElements = 1 << 40

// Shape is a list of dimension sizes; a rank-0 shape is a scalar.
type Shape []int

// Rank is the number of dimensions.
func (s Shape) Rank() int { return len(s) }

// Static reports whether every dimension is known.
func (s Shape) Static() bool {
	for _, d := range s {
		if d < 0 {
			return false
		}
	}
	return true
}

// NumElements returns the number of elements, or -1 if a dimension is unknown
// or the count exceeds MaxElements.
func (s Shape) NumElements() int {
	n := 1
	for _, d := range s {
		if d < 0 {
			return -1
		}
		if d != 0 && n > MaxElements/d {
			return -1
		}
		n *= d
	}
	return n
}

// Equal reports whether two shapes are identical.
func (s Shape) Equal(t Shape) bool {
	if len(s) != len(t) {
		return false
	}
	for i := range s {
		if s[i] != t[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy that does not alias s.
func (s Shape) Clone() Shape {
	if s == nil {
		return Shape{}
	}
	return append(Shape{}, s...)
}

// String prints the shape as MIL does: "[1, 64, 1, 32]".
func (s Shape) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		if d < 0 {
			b.WriteByte('?')
		} else {
			b.WriteString(strconv.Itoa(d))
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Type is the type of a value: a tensor of DType with Shape. A rank-0 tensor is
// a scalar. Strings and bools are scalars or tensors like any other dtype.
type Type struct {
	DType DType
	Shape Shape
}

// TensorOf returns the tensor type with the given dtype and dims.
func TensorOf(d DType, dims ...int) Type { return Type{DType: d, Shape: Shape(dims).Clone()} }

// ScalarOf returns the rank-0 type of d.
func ScalarOf(d DType) Type { return Type{DType: d, Shape: Shape{}} }

// IsScalar reports whether t has rank 0.
func (t Type) IsScalar() bool { return len(t.Shape) == 0 }

// Equal reports whether two types are identical.
func (t Type) Equal(u Type) bool { return t.DType == u.DType && t.Shape.Equal(u.Shape) }

// String prints t in the program(1.3) spelling: "fp16" for a scalar,
// "tensor<fp16, [1, 64, 1, 32]>" otherwise.
func (t Type) String() string {
	if t.IsScalar() {
		return t.DType.String()
	}
	return "tensor<" + t.DType.String() + ", " + t.Shape.String() + ">"
}

// validate checks that the type can exist in a program.
func (t Type) validate() error {
	if !t.DType.Valid() {
		return fmt.Errorf("invalid dtype %v", t.DType)
	}
	for _, d := range t.Shape {
		if d < UnknownDim {
			return fmt.Errorf("negative dimension %d in shape %v", d, t.Shape)
		}
	}
	if t.Shape.Static() && t.Shape.NumElements() < 0 {
		return fmt.Errorf("shape %v has more than 2^40 elements", t.Shape)
	}
	return nil
}
