package ref

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// LTNS is one tensor of an LTNS file, the simple tensor format of the
// torch-tiny fixture: the bytes "LTNS", uint32 version 1, uint32 count, then
// per tensor a uint32-length name, uint32 dtype (0 float32, 1 float64,
// 2 int32), uint32 rank, int32 dims and the little-endian row-major data.
type LTNS struct {
	Shape []int
	F64   []float64 // the data, converted to float64 whatever the dtype
}

// ReadLTNS reads an LTNS file into a map by tensor name.
func ReadLTNS(path string) (map[string]LTNS, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s; not a valid LTNS tensor file", path, fmt.Sprintf(format, a...))
	}
	off := 0
	u32 := func() (uint32, bool) {
		if len(b)-off < 4 {
			return 0, false
		}
		v := binary.LittleEndian.Uint32(b[off:])
		off += 4
		return v, true
	}
	if len(b) < 12 || string(b[:4]) != "LTNS" {
		return nil, fail("missing the LTNS header")
	}
	off = 4
	if v, _ := u32(); v != 1 {
		return nil, fail("version %d, want 1", v)
	}
	count, _ := u32()
	out := map[string]LTNS{}
	for i := range count {
		n, ok := u32()
		if !ok || int(n) > len(b)-off {
			return nil, fail("tensor %d: truncated name", i)
		}
		name := string(b[off : off+int(n)])
		off += int(n)
		dt, ok1 := u32()
		rank, ok2 := u32()
		if !ok1 || !ok2 || dt > 2 || rank > 8 {
			return nil, fail("tensor %q: bad dtype %d or rank %d", name, dt, rank)
		}
		shape := make([]int, rank)
		elems := 1
		for j := range shape {
			d, ok := u32()
			if !ok || int32(d) < 0 || int(d) > len(b) {
				return nil, fail("tensor %q: bad dimension", name)
			}
			shape[j] = int(d)
			elems *= shape[j]
			if elems > len(b) {
				return nil, fail("tensor %q: shape %v larger than the file", name, shape)
			}
		}
		size := 4
		if dt == 1 {
			size = 8
		}
		if elems*size > len(b)-off {
			return nil, fail("tensor %q: truncated data", name)
		}
		t := LTNS{Shape: shape, F64: make([]float64, elems)}
		for j := range elems {
			switch dt {
			case 0:
				t.F64[j] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[off+4*j:])))
			case 1:
				t.F64[j] = math.Float64frombits(binary.LittleEndian.Uint64(b[off+8*j:]))
			case 2:
				t.F64[j] = float64(int32(binary.LittleEndian.Uint32(b[off+4*j:])))
			}
		}
		off += elems * size
		out[name] = t
	}
	if off != len(b) {
		return nil, fail("%d trailing bytes", len(b)-off)
	}
	return out, nil
}
