package mil

import "fmt"

// DType is an element type of a MIL tensor or scalar.
type DType uint8

// The element types anetop reads and writes. The zero value is invalid so that a
// forgotten dtype is caught by validation rather than silently meaning fp16.
const (
	InvalidDType DType = iota
	Bool
	String
	FP16
	FP32
	FP64
	BF16
	Int8
	Int16
	Int32
	Int64
	UInt8
	UInt16
	UInt32
	UInt64
)

var dtypeNames = [...]string{
	InvalidDType: "invalid",
	Bool:         "bool",
	String:       "string",
	FP16:         "fp16",
	FP32:         "fp32",
	FP64:         "fp64",
	BF16:         "bf16",
	Int8:         "int8",
	Int16:        "int16",
	Int32:        "int32",
	Int64:        "int64",
	UInt8:        "uint8",
	UInt16:       "uint16",
	UInt32:       "uint32",
	UInt64:       "uint64",
}

// String returns the dtype's spelling in MIL text ("fp16", "int32", ...).
func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// ParseDType maps a MIL text spelling to its DType.
func ParseDType(s string) (DType, bool) {
	for d, name := range dtypeNames {
		if d != int(InvalidDType) && name == s {
			return DType(d), true
		}
	}
	return InvalidDType, false
}

// Valid reports whether d is one of the defined dtypes.
func (d DType) Valid() bool { return d > InvalidDType && d <= UInt64 }

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d == FP16 || d == FP32 || d == FP64 || d == BF16 }

// IsInt reports whether d is a signed or unsigned integer type.
func (d DType) IsInt() bool { return d >= Int8 && d <= UInt64 }

// IsNumeric reports whether d is a float or integer type.
func (d DType) IsNumeric() bool { return d.IsFloat() || d.IsInt() }

// Size is the number of bytes one element occupies in memory and in a weight
// blob; 0 for bool and string, which are never stored as raw elements.
func (d DType) Size() int {
	switch d {
	case Int8, UInt8:
		return 1
	case FP16, BF16, Int16, UInt16:
		return 2
	case FP32, Int32, UInt32:
		return 4
	case FP64, Int64, UInt64:
		return 8
	}
	return 0
}

// intRange returns the inclusive range of an integer dtype.
func (d DType) intRange() (lo, hi int64) {
	switch d {
	case Int8:
		return -1 << 7, 1<<7 - 1
	case Int16:
		return -1 << 15, 1<<15 - 1
	case Int32:
		return -1 << 31, 1<<31 - 1
	case Int64:
		return -1 << 63, 1<<63 - 1
	case UInt8:
		return 0, 1<<8 - 1
	case UInt16:
		return 0, 1<<16 - 1
	case UInt32:
		return 0, 1<<32 - 1
	case UInt64:
		// int64 holds literals; uint64 values above MaxInt64 are not representable
		// here and never occur (uint64 is used only for blob offsets).
		return 0, 1<<63 - 1
	}
	return 0, 0
}

// Blob dtype codes of Core ML's weight storage format (MILBlob BlobDataType).
var blobCodes = map[DType]uint32{
	FP16:   1,
	FP32:   2,
	UInt8:  3,
	Int8:   4,
	BF16:   5,
	Int16:  6,
	UInt16: 7,
	Int32:  14,
	UInt32: 15,
}

// BlobCode returns the weight-blob dtype code of d, and false if d cannot be
// stored in a weight blob.
func (d DType) BlobCode() (uint32, bool) {
	c, ok := blobCodes[d]
	return c, ok
}

// DTypeFromBlobCode is the inverse of BlobCode.
func DTypeFromBlobCode(code uint32) (DType, bool) {
	for d, c := range blobCodes {
		if c == code {
			return d, true
		}
	}
	return InvalidDType, false
}
