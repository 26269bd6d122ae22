package ane

// Classifying Objective-C method type encodings: pure Go, tested on every
// platform (objc_types_test.go), used by the darwin probe before it sends a
// message whose return type is not documented.

// retKind is the kind of value a method returns, as far as the probe needs
// to know it.
type retKind int

const (
	retUnknown retKind = iota // no encoding, or one the probe does not handle
	retObject                 // '@': an object (id, including blocks "@?")
	retCString                // '*': a char *
	retInteger                // c C s S i I l L q Q: an integer
	retOther                  // anything else: void, float, struct, pointer, BOOL…
)

func (k retKind) String() string {
	switch k {
	case retObject:
		return "object"
	case retCString:
		return "C string"
	case retInteger:
		return "integer"
	case retOther:
		return "other"
	}
	return "unknown"
}

// returnKind classifies the return type of a method from its type encoding,
// as method_getTypeEncoding gives it: the return type comes first, followed
// by the frame size and the arguments ("@16@0:8" returns an object,
// "Q16@0:8" an unsigned long long). Type qualifiers (r const, n in, N inout,
// o out, O bycopy, R byref, V oneway) may precede the return type and are
// skipped. For an integer, size is its width in bytes on darwin/arm64: c and
// C 1, s and S 2, i, I, l and L 4 (the encoding's l is always 32 bits), q
// and Q 8; size is 0 for every other kind.
func returnKind(encoding string) (kind retKind, size int) {
	i := 0
	for i < len(encoding) && isTypeQualifier(encoding[i]) {
		i++
	}
	if i == len(encoding) {
		return retUnknown, 0
	}
	switch encoding[i] {
	case '@':
		return retObject, 0
	case '*':
		return retCString, 0
	case 'c', 'C':
		return retInteger, 1
	case 's', 'S':
		return retInteger, 2
	case 'i', 'I', 'l', 'L':
		return retInteger, 4
	case 'q', 'Q':
		return retInteger, 8
	}
	return retOther, 0
}

func isTypeQualifier(c byte) bool {
	switch c {
	case 'r', 'n', 'N', 'o', 'O', 'R', 'V':
		return true
	}
	return false
}

// intResult keeps the low size bytes of a 64-bit return register: on arm64
// an integer narrower than 64 bits leaves the upper bits of x0 undefined, so
// they must not be read as part of the value. The value is taken as
// unsigned; the caller's range check rejects what a negative one becomes.
func intResult(raw uint64, size int) uint64 {
	if size <= 0 || size >= 8 {
		return raw
	}
	return raw & (1<<(8*uint(size)) - 1)
}
