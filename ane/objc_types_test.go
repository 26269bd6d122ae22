package ane

import "testing"

func TestReturnKind(t *testing.T) {
	for _, c := range []struct {
		enc  string
		kind retKind
		size int
	}{
		{"@16@0:8", retObject, 0},
		{"@?16@0:8", retObject, 0}, // a block is an object
		{"r@16@0:8", retObject, 0},
		{"Q16@0:8", retInteger, 8},
		{"q16@0:8", retInteger, 8},
		{"I16@0:8", retInteger, 4},
		{"i16@0:8", retInteger, 4},
		{"L16@0:8", retInteger, 4},
		{"l16@0:8", retInteger, 4},
		{"S16@0:8", retInteger, 2},
		{"s16@0:8", retInteger, 2},
		{"C16@0:8", retInteger, 1},
		{"c16@0:8", retInteger, 1},
		{"rQ16@0:8", retInteger, 8},
		{"Vv16@0:8", retOther, 0}, // oneway void
		{"*16@0:8", retCString, 0},
		{"r*16@0:8", retCString, 0}, // const char *
		{"rn*16@0:8", retCString, 0},
		{"v16@0:8", retOther, 0},
		{"B16@0:8", retOther, 0}, // BOOL on arm64: not an integer code
		{"d16@0:8", retOther, 0},
		{"f16@0:8", retOther, 0},
		{"^v16@0:8", retOther, 0},
		{"{CGSize=dd}16@0:8", retOther, 0},
		{"#16@0:8", retOther, 0}, // a Class
		{"", retUnknown, 0},
		{"rnNoORV", retUnknown, 0}, // qualifiers and nothing else
	} {
		kind, size := returnKind(c.enc)
		if kind != c.kind || size != c.size {
			t.Errorf("returnKind(%q) = %v, %d; want %v, %d", c.enc, kind, size, c.kind, c.size)
		}
	}
}

func TestIntResult(t *testing.T) {
	for _, c := range []struct {
		raw  uint64
		size int
		want uint64
	}{
		{0xdeadbeef_00000010, 4, 16}, // garbage above a 32-bit result
		{0xffffffff_ffffff10, 1, 0x10},
		{0x1234_5678_0000_0020, 2, 0x20},
		{0x10, 8, 0x10},
		{0xffffffff_ffffffff, 8, 0xffffffff_ffffffff},
		{0xffffffff_fffffff0, 4, 0xfffffff0}, // a negative int stays out of any small range
	} {
		if got := intResult(c.raw, c.size); got != c.want {
			t.Errorf("intResult(%#x, %d) = %#x, want %#x", c.raw, c.size, got, c.want)
		}
	}
}
