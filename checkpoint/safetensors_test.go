package checkpoint

import (
	"bytes"
	"encoding/binary"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateSafetensors = flag.Bool("update-safetensors", false, "rewrite the hand-assembled safetensors fixtures in testdata/")

// stHandFile is a safetensors file written out byte by byte from the
// published format description, independent of the package's writer: two
// F32 tensors "a" = [1, -2] (shape [2]) and "b" = [[0.5]] (shape [1,1]) and
// metadata {"k": "v"}.
var stHandFile = concat(
	// Header length: 136 = 0x88, little-endian uint64.
	[]byte{0x88, 0, 0, 0, 0, 0, 0, 0},
	// 135 bytes of JSON and one space of padding to a multiple of 8.
	[]byte(`{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}} `),
	[]byte{0x00, 0x00, 0x80, 0x3f}, // 1.0
	[]byte{0x00, 0x00, 0x00, 0xc0}, // -2.0
	[]byte{0x00, 0x00, 0x00, 0x3f}, // 0.5
)

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestSafetensorsEncodeHandAssembled(t *testing.T) {
	// Given in reverse name order: the writer must sort.
	ts := []Tensor{
		{Name: "b", Shape: []int{1, 1}, Data: []float32{0.5}},
		{Name: "a", Shape: []int{2}, Data: []float32{1, -2}},
	}
	var buf bytes.Buffer
	if err := EncodeSafetensors(&buf, ts, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), stHandFile) {
		t.Fatalf("encoded\n%q\nwant\n%q", buf.Bytes(), stHandFile)
	}
}

func TestSafetensorsDecodeHandAssembled(t *testing.T) {
	f, err := DecodeSafetensors(bytes.NewReader(stHandFile), int64(len(stHandFile)), "hand")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 2 || f.Metadata["k"] != "v" || len(f.Metadata) != 1 {
		t.Fatalf("got %+v", f)
	}
	checkTensor(t, f, "a", []int{2}, []float32{1, -2})
	checkTensor(t, f, "b", []int{1, 1}, []float32{0.5})
}

func checkTensor(t *testing.T, f *File, name string, shape []int, data []float32) {
	t.Helper()
	got := f.Tensor(name)
	if got == nil {
		t.Fatalf("no tensor %q", name)
	}
	if !equalInts(got.Shape, shape) {
		t.Errorf("%s: shape %v, want %v", name, got.Shape, shape)
	}
	if len(got.Data) != len(data) {
		t.Fatalf("%s: %d values, want %d", name, len(got.Data), len(data))
	}
	for i := range data {
		if math.Float32bits(got.Data[i]) != math.Float32bits(data[i]) {
			t.Errorf("%s[%d] = %v, want %v", name, i, got.Data[i], data[i])
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// handmadeFixture assembles testdata/handmade.safetensors by hand: mixed
// dtypes (F16 with a subnormal and an infinity, BF16, F32), a scalar and an
// empty tensor, the header in non-canonical form (whitespace, keys out of
// name order, data out of name order), as another writer might produce.
func handmadeFixture() []byte {
	hdr := `{ "w.f16" : {"dtype":"F16", "shape":[2,3], "data_offsets":[0,12]},
  "__metadata__": {"note": "hand-made", "format": "pt"},
  "scalar": {"shape": [], "dtype": "F32", "data_offsets": [26, 30]},
  "a": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]},
  "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [20, 20]},
  "w.bf16": {"dtype": "BF16", "shape": [3], "data_offsets": [20, 26]} }`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	return concat(n[:], []byte(hdr),
		// w.f16: 1, -2, 0.5, 65504, 2^-24, -inf
		[]byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0xff, 0x7b, 0x01, 0x00, 0x00, 0xfc},
		// a: 1, -2
		[]byte{0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0},
		// w.bf16: 1, -0.15625, 3
		[]byte{0x80, 0x3f, 0x20, 0xbe, 0x40, 0x40},
		// scalar: 3.5
		[]byte{0x00, 0x00, 0x60, 0x40},
	)
}

func TestSafetensorsHandmadeFixture(t *testing.T) {
	path := checkFixture(t, "handmade.safetensors", handmadeFixture())
	f, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, f, "w.f16", []int{2, 3}, []float32{1, -2, 0.5, 65504, 0x1p-24, float32(math.Inf(-1))})
	checkTensor(t, f, "a", []int{2}, []float32{1, -2})
	checkTensor(t, f, "w.bf16", []int{3}, []float32{1, -0.15625, 3})
	checkTensor(t, f, "scalar", []int{}, []float32{3.5})
	checkTensor(t, f, "empty", []int{0, 4}, []float32{})
	if f.Metadata["note"] != "hand-made" || f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	if f.DTypes["w.f16"] != "F16" || f.DTypes["w.bf16"] != "BF16" || f.DTypes["a"] != "F32" {
		t.Errorf("dtypes %v", f.DTypes)
	}
	// The writer stores everything as F32; the widened values survive exactly.
	var buf bytes.Buffer
	if err := EncodeSafetensors(&buf, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	g, err := DecodeSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "re-encoded")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range f.Tensors {
		checkTensor(t, g, tt.Name, tt.Shape, tt.Data)
	}
}

func TestF16ToF32(t *testing.T) {
	for h := range 1 << 16 {
		got := f16ToF32(uint16(h))
		sign, exp, mant := h>>15, (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case exp == 0x1f && mant == 0:
			want = math.Inf(1)
		case exp == 0x1f:
			if !math.IsNaN(float64(got)) || math.Float32bits(got)>>13&0x3ff != uint32(mant) {
				t.Fatalf("%#04x: got %v (%#x), want NaN with payload kept", h, got, math.Float32bits(got))
			}
			continue
		case exp == 0:
			want = float64(mant) * 0x1p-24
		default:
			want = (1 + float64(mant)/1024) * math.Ldexp(1, exp-15)
		}
		if sign == 1 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign == 1) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00001), math.Float32frombits(0xffa00000), math.SmallestNonzeroFloat32, math.MaxFloat32}
	var ts []Tensor
	for i, shape := range [][]int{{}, {0}, {7}, {3, 5}, {2, 3, 4}, {9000}, {1, 0, 3}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		d := make([]float32, n)
		for j := range d {
			d[j] = float32(rng.NormFloat64())
			if j < len(special) {
				d[j] = special[j]
			}
		}
		ts = append(ts, Tensor{Name: "t" + strings.Repeat("x", i) + `"<&>é`, Shape: shape, Data: d})
	}
	md := map[string]string{"config": `{"dim":8}`, "quote\"": "line\nbreak", "empty": ""}
	var buf bytes.Buffer
	if err := EncodeSafetensors(&buf, ts, md); err != nil {
		t.Fatal(err)
	}
	if (binary.LittleEndian.Uint64(buf.Bytes())+8)%8 != 0 {
		t.Error("data section not 8-aligned")
	}
	f, err := DecodeSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "rt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range ts {
		checkTensor(t, f, tt.Name, tt.Shape, tt.Data)
	}
	if len(f.Metadata) != len(md) {
		t.Errorf("metadata %v, want %v", f.Metadata, md)
	}
	for k, v := range md {
		if f.Metadata[k] != v {
			t.Errorf("metadata[%q] = %q, want %q", k, f.Metadata[k], v)
		}
	}
	// Deterministic output.
	var again bytes.Buffer
	EncodeSafetensors(&again, ts, md)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("encoding is not deterministic")
	}
}

func TestSafetensorsEncodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		ts   []Tensor
		want string
	}{
		{[]Tensor{{Name: "", Data: []float32{1}}}, "no name"},
		{[]Tensor{{Name: "__metadata__", Data: []float32{1}}}, "reserved"},
		{[]Tensor{{Name: "x", Data: []float32{1}}, {Name: "x", Data: []float32{1}}}, `two tensors are called "x"`},
		{[]Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1}}}, `"x" has shape [2]`},
		{[]Tensor{{Name: "x", Shape: []int{-1}, Data: []float32{}}}, "negative"},
		{[]Tensor{{Name: "\xff", Data: []float32{1}}}, "UTF-8"},
	} {
		err := EncodeSafetensors(&bytes.Buffer{}, tc.ts, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.ts, err, tc.want)
		}
	}
}

// stFile assembles a safetensors file from a header string and data bytes.
func stFile(hdr string, data []byte) []byte {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	return concat(n[:], []byte(hdr), data)
}

func TestSafetensorsDecodeRefuses(t *testing.T) {
	eight := make([]byte, 8)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"short", []byte{1, 2, 3}, "too short"},
		{"huge header", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'}, "does not fit"},
		{"header past end", stFile("{}", nil)[:9], "does not fit"},
		{"not object", stFile(`[]      `, nil), "start with '{'"},
		{"bad json", stFile(`{"a":}  `, nil), "header"},
		{"trailing", stFile(`{} x    `, nil), "after the JSON"},
		{"bad utf8", stFile("{\"\xff\":1}", nil), "UTF-8"},
		{"duplicate", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight[:4]), `"a" appears twice`},
		{"dup metadata", stFile(`{"__metadata__":{"k":"1","k":"2"}}`, nil), `"k" appears twice`},
		{"metadata number", stFile(`{"__metadata__":{"k":1}}`, nil), `"k" is not a string`},
		{"unknown field", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, eight[:4]), `tensor "a"`},
		{"missing dtype", stFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, eight[:4]), `tensor "a": needs dtype`},
		{"unknown dtype", stFile(`{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}`, eight[:4]), `tensor "a": unknown dtype "F31"`},
		{"unsupported dtype", stFile(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, eight), `tensor "a" has dtype I64`},
		{"negative shape", stFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, eight[:4]), `tensor "a"`},
		{"three offsets", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}`, eight[:4]), `tensor "a": data_offsets has 3`},
		{"shape mismatch", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, eight[:4]), `tensor "a": shape [2] of F32 needs 8 bytes`},
		{"huge shape", stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}`, eight[:4]), `tensor "a": shape`},
		{"reversed offsets", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, eight[:4]), `tensor "a": data_offsets [4, 0] outside`},
		{"past end", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight[:4]), `tensor "a": data_offsets [0, 8] outside`},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`, eight[:6]), `tensor "b": data_offsets [2, 6] overlap`},
		{"gap", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), `tensor "a": gap of 4 bytes`},
		{"trailing data", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "cover 4 bytes but the data section holds 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSafetensors(bytes.NewReader(tc.file), int64(len(tc.file)), "bad.safetensors")
			if err == nil {
				t.Fatalf("accepted; want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.safetensors") {
				t.Fatalf("error %q; want the file name and %q", err, tc.want)
			}
		})
	}
}

func TestSafetensorsReaderShorterThanSize(t *testing.T) {
	// The size the caller gives may lie (a file truncated while being read):
	// the reader must fail cleanly, naming the tensor.
	short := stHandFile[:len(stHandFile)-2]
	_, err := DecodeSafetensors(bytes.NewReader(short), int64(len(stHandFile)), "f")
	if err == nil || !strings.Contains(err.Error(), `tensor "b"`) {
		t.Fatalf("error %v", err)
	}
}

func FuzzDecodeSafetensors(f *testing.F) {
	f.Add(stHandFile)
	f.Add(handmadeFixture())
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := DecodeSafetensors(bytes.NewReader(b), int64(len(b)), "fuzz")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := EncodeSafetensors(&buf, sf.Tensors, sf.Metadata); err != nil {
			// Only names the writer refuses (e.g. empty) are allowed to fail.
			return
		}
		g, err := DecodeSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "fuzz2")
		if err != nil {
			t.Fatalf("re-encoded file refused: %v", err)
		}
		for _, tt := range sf.Tensors {
			checkTensor(t, g, tt.Name, tt.Shape, tt.Data)
		}
	})
}

// checkFixture compares testdata/name with the bytes the test assembled by
// hand (writing them first with -update-safetensors) and returns its path.
func checkFixture(t *testing.T, name string, want []byte) string {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateSafetensors {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update-safetensors to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the hand-assembled bytes", path)
	}
	return path
}
