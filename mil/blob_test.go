package mil

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// blobDTypes lists every dtype that has a blob code.
func blobDTypes() []DType {
	var ds []DType
	for d := InvalidDType; d <= UInt64; d++ {
		if _, ok := d.BlobCode(); ok {
			ds = append(ds, d)
		}
	}
	return ds
}

// mustAdd adds a blob or fails the test.
func mustAdd(t testing.TB, w *BlobWriter, d DType, data []byte) uint64 {
	t.Helper()
	off, err := w.Add(d, data)
	if err != nil {
		t.Fatalf("Add(%v, %d bytes): %v", d, len(data), err)
	}
	return off
}

// seq returns n bytes 1, 2, 3, ... so that misplaced data is visible.
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return b
}

// le32 and le64 spell little-endian integers as bytes, independently of the
// writer's own encoding calls.
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// wantMeta is the 64-byte metadata record the spec prescribes.
func wantMeta(code uint32, size, dataOff uint64) []byte {
	return cat([]byte{0xEF, 0xBE, 0xAD, 0xDE}, le32(code), le64(size), le64(dataOff), make([]byte, 40))
}

func TestBlobWriterOneFP16(t *testing.T) {
	const n = 5 // 10 data bytes: the file is not padded to 64 after them
	var w BlobWriter
	data := seq(2 * n)
	if off := mustAdd(t, &w, FP16, data); off != 64 {
		t.Fatalf("offset = %d, want 64", off)
	}
	want := cat(
		[]byte{0x01, 0, 0, 0, 0x02, 0, 0, 0}, make([]byte, 56),
		[]byte{0xEF, 0xBE, 0xAD, 0xDE, 0x01, 0, 0, 0, // sentinel, dtype 1
			2 * n, 0, 0, 0, 0, 0, 0, 0, // size 2N
			128, 0, 0, 0, 0, 0, 0, 0}, // data offset
		make([]byte, 40),
		data,
	)
	got := w.Bytes()
	if len(got) != 128+2*n || w.Len() != len(got) {
		t.Fatalf("len = %d, Len() = %d, want %d", len(got), w.Len(), 128+2*n)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file =\n% x\nwant\n% x", got, want)
	}
}

func TestBlobWriterEmpty(t *testing.T) {
	var w BlobWriter
	if w.Len() != 64 || w.Count() != 0 {
		t.Fatalf("empty writer: Len %d Count %d", w.Len(), w.Count())
	}
	want := cat([]byte{0, 0, 0, 0, 2, 0, 0, 0}, make([]byte, 56))
	got := w.Bytes()
	if !bytes.Equal(got, want) {
		t.Fatalf("empty file = % x", got)
	}
	f, err := ReadBlobFile(got)
	if err != nil || len(f.Blobs) != 0 {
		t.Fatalf("ReadBlobFile(empty) = %v, %v", f, err)
	}
}

// TestBlobWriterWorkedExample is mil-spec §3.4: three fp32[500] blobs.
func TestBlobWriterWorkedExample(t *testing.T) {
	var w BlobWriter
	blobs := [][]byte{seq(2000), bytes.Repeat([]byte{0xAA}, 2000), bytes.Repeat([]byte{0x55}, 2000)}
	wantOff := []uint64{64, 2176, 4288}
	for i, b := range blobs {
		if off := mustAdd(t, &w, FP32, b); off != wantOff[i] {
			t.Errorf("blob %d offset = %d, want %d", i, off, wantOff[i])
		}
	}
	want := cat(
		[]byte{3, 0, 0, 0, 2, 0, 0, 0}, make([]byte, 56),
		wantMeta(2, 2000, 128), blobs[0], make([]byte, 2176-2128),
		wantMeta(2, 2000, 2240), blobs[1], make([]byte, 4288-4240),
		wantMeta(2, 2000, 4352), blobs[2],
	)
	got := w.Bytes()
	if len(got) != 6352 {
		t.Errorf("len = %d, want 6352", len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file differs from the spec's layout")
	}
	f, err := ReadBlobFile(got)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range f.Blobs {
		wantInfo := BlobInfo{Offset: wantOff[i], DType: FP32, DataOffset: wantOff[i] + 64, Size: 2000}
		if b != wantInfo {
			t.Errorf("Blobs[%d] = %+v, want %+v", i, b, wantInfo)
		}
		d, err := f.Data(wantOff[i], TensorOf(FP32, 500))
		if err != nil || !bytes.Equal(d, blobs[i]) {
			t.Errorf("Data(%d) = %d bytes, %v", wantOff[i], len(d), err)
		}
	}
}

// TestBlobWriterConvWeight is the converted-model case of mil-spec §3.4: an
// fp16[256,1,3,3] weight at 64 and the next blob at 4736.
func TestBlobWriterConvWeight(t *testing.T) {
	var w BlobWriter
	if off := mustAdd(t, &w, FP16, seq(256*9*2)); off != 64 {
		t.Fatalf("offset = %d, want 64", off)
	}
	if off := mustAdd(t, &w, FP16, seq(2)); off != 4736 {
		t.Fatalf("second offset = %d, want 4736", off)
	}
	f, err := ReadBlobFile(w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Data(64, TensorOf(FP16, 256, 1, 3, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Data(4736, ScalarOf(FP16)); err != nil {
		t.Fatal(err)
	}
}

func TestBlobWriterErrors(t *testing.T) {
	var w BlobWriter
	for _, c := range []struct {
		d    DType
		data []byte
		want string
	}{
		{Bool, []byte{1}, "dtype bool cannot be stored"},
		{String, nil, "dtype string cannot be stored"},
		{FP64, make([]byte, 8), "dtype fp64 cannot be stored"},
		{Int64, make([]byte, 8), "dtype int64 cannot be stored"},
		{InvalidDType, nil, "cannot be stored"},
		{FP16, make([]byte, 3), "3 bytes of fp16 data is not a whole number of 2-byte elements"},
		{UInt32, make([]byte, 6), "not a whole number of 4-byte elements"},
	} {
		if _, err := w.Add(c.d, c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Add(%v, %d bytes) error = %v, want %q", c.d, len(c.data), err, c.want)
		}
	}
	if w.Count() != 0 || w.Len() != 64 {
		t.Errorf("failed Adds changed the writer: Count %d Len %d", w.Count(), w.Len())
	}
}

// TestBlobWriterBytesStable checks that a file Bytes returned is not changed
// by later Adds, which rewrite the header's count.
func TestBlobWriterBytesStable(t *testing.T) {
	var w BlobWriter
	mustAdd(t, &w, Int8, seq(3))
	first := w.Bytes()
	saved := bytes.Clone(first)
	mustAdd(t, &w, Int8, seq(100))
	mustAdd(t, &w, FP16, seq(4))
	if !bytes.Equal(first, saved) {
		t.Fatal("Add modified a file returned earlier by Bytes")
	}
	if _, err := ReadBlobFile(first); err != nil {
		t.Fatalf("earlier file: %v", err)
	}
	f, err := ReadBlobFile(w.Bytes())
	if err != nil || len(f.Blobs) != 3 {
		t.Fatalf("final file: %v blobs, %v", f, err)
	}
	if !bytes.Equal(w.Bytes(), w.Bytes()) {
		t.Fatal("Bytes not repeatable")
	}
}

func TestBlobRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dts := blobDTypes()
	if len(dts) != 9 {
		t.Fatalf("%d dtypes with blob codes, want 9", len(dts))
	}
	for trial := range 200 {
		var w BlobWriter
		type blob struct {
			d    DType
			data []byte
			off  uint64
		}
		var want []blob
		for range rng.IntN(12) {
			d := dts[rng.IntN(len(dts))]
			n := rng.IntN(200)
			if rng.IntN(10) == 0 {
				n = 0 // empty tensors are legal blobs
			}
			data := make([]byte, n*d.Size())
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			want = append(want, blob{d, data, mustAdd(t, &w, d, data)})
		}
		file := w.Bytes()
		f, err := ReadBlobFile(file)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if len(f.Blobs) != len(want) || w.Count() != len(want) {
			t.Fatalf("trial %d: %d blobs read, %d written", trial, len(f.Blobs), len(want))
		}
		var end uint64 = 64
		for i, b := range want {
			info := f.Blobs[i]
			if info.Offset != b.off || info.Offset%64 != 0 || info.Offset < end || info.Offset-end >= 64 ||
				info.DType != b.d || info.DataOffset != b.off+64 || info.Size != uint64(len(b.data)) {
				t.Fatalf("trial %d blob %d: %+v, wrote %v %d bytes at %d", trial, i, info, b.d, len(b.data), b.off)
			}
			end = info.DataOffset + info.Size
			got, err := f.Data(b.off, TensorOf(b.d, len(b.data)/b.d.Size()))
			if err != nil || !bytes.Equal(got, b.data) {
				t.Fatalf("trial %d blob %d: Data = %v", trial, i, err)
			}
		}
		if end != uint64(len(file)) {
			t.Fatalf("trial %d: file is %d bytes, last blob ends at %d", trial, len(file), end)
		}
	}
}

// blobFile3 is the worked example's file, for crafting broken variants.
func blobFile3(t testing.TB) []byte {
	var w BlobWriter
	for range 3 {
		mustAdd(t, &w, FP32, seq(2000))
	}
	return bytes.Clone(w.Bytes())
}

func TestReadBlobFileErrors(t *testing.T) {
	put32 := func(b []byte, off int, v uint32) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	put64 := func(b []byte, off int, v uint64) []byte { binary.LittleEndian.PutUint64(b[off:], v); return b }
	cases := []struct {
		name string
		edit func(b []byte) []byte
		want string
	}{
		{"empty", func(b []byte) []byte { return nil },
			"blob file: 0 bytes is shorter than the 64-byte header"},
		{"truncated header", func(b []byte) []byte { return b[:10] },
			"blob file: 10 bytes is shorter than the 64-byte header (not a Core ML weight file, or truncated)"},
		{"version 1", func(b []byte) []byte { return put32(b, 4, 1) },
			"blob file: version is 1, want 2"},
		{"header reserved", func(b []byte) []byte { b[17] = 1; return b },
			"blob file: header reserved word at offset 16 is 0x100, want 0"},
		{"bad sentinel", func(b []byte) []byte { return put32(b, 2176, 0) },
			"blob file: blob 2 of 3 at offset 2176: sentinel is 0x00000000, want 0xDEADBEEF (not a Core ML weight file, or truncated)"},
		{"unknown dtype", func(b []byte) []byte { return put32(b, 64+4, 99) },
			"blob file: blob 1 of 3 at offset 64: unknown dtype code 99"},
		{"dtype code 0", func(b []byte) []byte { return put32(b, 4288+4, 0) },
			"blob 3 of 3 at offset 4288: unknown dtype code 0"},
		{"sub-byte dtype", func(b []byte) []byte { return put32(b, 64+4, 8) },
			"blob 1 of 3 at offset 64: dtype code 8 (int4) is not supported by anetop"},
		{"size not whole elements", func(b []byte) []byte { return put64(b, 64+8, 1999) },
			"blob 1 of 3 at offset 64: size 1999 bytes is not a whole number of 4-byte fp32 elements"},
		{"data past EOF", func(b []byte) []byte { return put64(b, 4288+8, 2004) },
			"blob 3 of 3 at offset 4288: 2004 bytes of fp32 data at offset 4352 run past the end of the 6352-byte file"},
		{"truncated data", func(b []byte) []byte { return b[:6000] },
			"blob 3 of 3 at offset 4288: 2000 bytes of fp32 data at offset 4352 run past the end of the 6000-byte file"},
		{"size near 2^64", func(b []byte) []byte { return put64(b, 2176+8, math.MaxUint64-3) },
			"blob 2 of 3 at offset 2176: 18446744073709551612 bytes of fp32 data at offset 2240 run past the end"},
		{"data offset 0", func(b []byte) []byte { return put64(b, 2176+16, 0) },
			"blob 2 of 3 at offset 2176: data offset is 0, want 2240 (metadata offset + 64)"},
		{"data offset near 2^64", func(b []byte) []byte { return put64(b, 64+16, math.MaxUint64-63) },
			"blob 1 of 3 at offset 64: data offset is 18446744073709551552, want 128"},
		{"padding bits", func(b []byte) []byte { return put64(b, 64+24, 3) },
			"blob 1 of 3 at offset 64: padding bits is 3, want 0 for whole-byte type fp32"},
		{"count too large", func(b []byte) []byte { return put32(b, 0, 4) },
			"blob file: blob 4 of 4 at offset 6400: file ends at 6352 (header count too large, or file truncated)"},
		{"count huge", func(b []byte) []byte { return put32(b, 0, math.MaxUint32) },
			"blob file: header count is 4294967295, but a 6352-byte file holds at most 98 blobs"},
		{"truncated metadata", func(b []byte) []byte { return b[:2176+30] },
			"blob 2 of 3 at offset 2176: file ends at 2206, inside the 64-byte metadata"},
		{"truncated at metadata", func(b []byte) []byte { return b[:4240] },
			"blob 3 of 3 at offset 4288: file ends at 4240 (header count too large"},
		{"count too small", func(b []byte) []byte { return put32(b, 0, 2) },
			"blob file: 2112 bytes follow the last of the header's 2 blobs, from offset 4240; a blob's metadata starts at 4288 (header count too small)"},
		{"count zero", func(b []byte) []byte { return put32(b, 0, 0) },
			"blob file: 6288 bytes follow the last of the header's 0 blobs, from offset 64; a blob's metadata starts at 64"},
		{"trailing garbage", func(b []byte) []byte { return append(b, 1, 2, 3, 4, 5) },
			"blob file: 5 bytes follow the last of the header's 3 blobs, from offset 6352"},
		{"trailing zero padding", func(b []byte) []byte { return append(b, make([]byte, 48)...) },
			"blob file: 48 bytes follow the last of the header's 3 blobs, from offset 6352"},
		{"nonzero gap", func(b []byte) []byte { b[4250] = 7; return b },
			"blob file: byte at offset 4250, in the alignment gap before blob 3 of 3, is 0x07, want 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ReadBlobFile(c.edit(blobFile3(t)))
			if err == nil {
				t.Fatalf("accepted: %+v", f.Blobs)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
}

// TestReadBlobFileMetaReserved checks the one leniency: garbage in the
// metadata's reserved words, which pre-iOS 18 Core ML writers left.
func TestReadBlobFileMetaReserved(t *testing.T) {
	b := blobFile3(t)
	for i := 2176 + 32; i < 2176+64; i++ {
		b[i] = 0xCC
	}
	f, err := ReadBlobFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Data(2176, TensorOf(FP32, 500)); err != nil {
		t.Fatal(err)
	}
}

func TestBlobFileDataErrors(t *testing.T) {
	var w BlobWriter
	mustAdd(t, &w, FP16, seq(8)) // 64: fp16[4]
	mustAdd(t, &w, Int8, nil)    // 192: int8[0]
	mustAdd(t, &w, Int8, seq(3)) // 256: int8[3]
	f, err := ReadBlobFile(w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := []uint64{f.Blobs[0].Offset, f.Blobs[1].Offset, f.Blobs[2].Offset}; got[0] != 64 || got[1] != 192 || got[2] != 256 {
		t.Fatalf("offsets %v", got)
	}
	for _, c := range []struct {
		off  uint64
		typ  Type
		want string
	}{
		{64, TensorOf(FP32, 2), "blob at offset 64 holds fp16 data, want fp32 for tensor<fp32, [2]>"},
		{64, TensorOf(FP16, 1, 3), "blob at offset 64 holds 8 bytes (4 fp16 elements), want 6 bytes for tensor<fp16, [1, 3]>"},
		{64, TensorOf(FP16, 8), "holds 8 bytes (4 fp16 elements), want 16 bytes"},
		{64, TensorOf(FP16, UnknownDim), "type tensor<fp16, [?]> has no static element count"},
		{192, ScalarOf(Int8), "blob at offset 192 holds 0 bytes (0 int8 elements), want 1 bytes for int8"},
		{128, TensorOf(FP16, 4), "no blob at offset 128: it lies in the data of the blob at 64 (a BLOBFILE offset names the metadata record"},
		{0, TensorOf(FP16, 4), "no blob at offset 0: blobs start at 64, 192, 256"},
		{math.MaxUint64, TensorOf(FP16, 4), "no blob at offset 18446744073709551615: blobs start at"},
	} {
		if _, err := f.Data(c.off, c.typ); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Data(%d, %v) error = %v\nwant %q", c.off, c.typ, err, c.want)
		}
	}
	if d, err := f.Data(192, TensorOf(Int8, 0)); err != nil || len(d) != 0 {
		t.Errorf("empty blob: %v, %v", d, err)
	}
	d, err := f.Data(256, TensorOf(Int8, 3))
	if err != nil {
		t.Fatal(err)
	}
	if cap(d) != 3 {
		t.Errorf("Data's capacity %d reaches past the blob", cap(d))
	}

	var empty BlobWriter
	ef, _ := ReadBlobFile(empty.Bytes())
	if _, err := ef.Data(64, ScalarOf(FP16)); err == nil || !strings.Contains(err.Error(), "the file holds no blobs") {
		t.Errorf("empty file: %v", err)
	}

	var many BlobWriter
	for range 10 {
		mustAdd(t, &many, UInt8, seq(1))
	}
	mf, _ := ReadBlobFile(many.Bytes())
	if _, err := mf.Data(1, ScalarOf(UInt8)); err == nil || !strings.Contains(err.Error(), "blobs start at 64, 192, 320, 448, 576, 704, 832, … (10 in all)") {
		t.Errorf("many blobs: %v", err)
	}
}

func TestWeightsResolve(t *testing.T) {
	var w1, w2 BlobWriter
	q := mustAdd(t, &w1, FP16, seq(12))
	k := mustAdd(t, &w1, FP16, seq(6))
	m := mustAdd(t, &w2, Int8, seq(4))
	const p1, p2 = "@model_path/weights/weight.bin", "@model_path/weights/mask.bin"
	w := Weights{p1: w1.Bytes(), p2: w2.Bytes(), "@model_path/weights/bad.bin": []byte("nope")}

	got, err := w.Resolve(BlobValue(TensorOf(FP16, 1, 6, 1, 1), p1, q))
	if err != nil || !bytes.Equal(got, seq(12)) {
		t.Fatalf("Resolve q = %v, %v", got, err)
	}
	if got, err := w.Resolve(BlobValue(TensorOf(FP16, 3), p1, k)); err != nil || !bytes.Equal(got, seq(6)) {
		t.Fatalf("Resolve k = %v, %v", got, err)
	}
	if got, err := w.Resolve(BlobValue(TensorOf(Int8, 2, 2), p2, m)); err != nil || !bytes.Equal(got, seq(4)) {
		t.Fatalf("Resolve mask = %v, %v", got, err)
	}

	for _, c := range []struct {
		w    Weights
		v    *Value
		want string
	}{
		{w, BlobValue(TensorOf(FP16, 6), "@model_path/weights/wq.bin", 64),
			`weights: no blob file "@model_path/weights/wq.bin"; have "@model_path/weights/bad.bin", "@model_path/weights/mask.bin", "@model_path/weights/weight.bin"`},
		{nil, BlobValue(TensorOf(FP16, 6), p1, 64),
			`weights: no blob file "@model_path/weights/weight.bin": no weight files were given`},
		{w, FloatScalar(FP16, 1), "weights: value is not a BLOBFILE literal"},
		{w, nil, "weights: value is not a BLOBFILE literal"},
		{w, BlobValue(TensorOf(FP16, 6), "@model_path/weights/bad.bin", 64),
			`weights "@model_path/weights/bad.bin": blob file: 4 bytes is shorter than the 64-byte header`},
		{w, BlobValue(TensorOf(FP32, 3), p1, q),
			`weights "@model_path/weights/weight.bin": blob at offset 64 holds fp16 data, want fp32`},
		{w, BlobValue(TensorOf(FP16, 7), p1, k),
			`weights "@model_path/weights/weight.bin": blob at offset 192 holds 6 bytes (3 fp16 elements), want 14 bytes`},
		{w, BlobValue(TensorOf(FP16, 6), p1, 128),
			`weights "@model_path/weights/weight.bin": no blob at offset 128: it lies in the data of the blob at 64`},
	} {
		if _, err := c.w.Resolve(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Resolve error = %v\nwant %q", err, c.want)
		}
	}
}

func TestEncodeFloat32sBytes(t *testing.T) {
	sub := float32(math.Ldexp(1, -24)) // smallest fp16 subnormal
	for _, c := range []struct {
		d    DType
		vals []float32
		want []byte
	}{
		{FP16, []float32{1, -2, 65504, 65519.99, 65520, 0.5, float32(math.Inf(-1))},
			[]byte{0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0xFF, 0x7B, 0x00, 0x7C, 0x00, 0x38, 0x00, 0xFC}},
		// Ties to even: 1+2^-11 is halfway between 1 and 1+2^-10.
		{FP16, []float32{1 + 1.0/2048, 1 + 3.0/2048, float32(math.Copysign(0, -1))},
			[]byte{0x00, 0x3C, 0x02, 0x3C, 0x00, 0x80}},
		// Subnormals: 2^-24, 2^-25 (tie → 0), 1.5·2^-25 (→ 2^-24), 2^-14-2^-25 (→ 2^-14, a carry into the normals).
		{FP16, []float32{sub, sub / 2, sub * 0.75, float32(math.Ldexp(1, -14) - math.Ldexp(1, -25))},
			[]byte{0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x04}},
		{BF16, []float32{1, -2, 1 + 1.0/256, 1 + 3.0/256},
			[]byte{0x80, 0x3F, 0x00, 0xC0, 0x80, 0x3F, 0x82, 0x3F}},
		{FP32, []float32{1, -0.5}, []byte{0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xBF}},
		{Int8, []float32{-128, 127, 0, -1}, []byte{0x80, 0x7F, 0x00, 0xFF}},
		{UInt8, []float32{0, 255, 7}, []byte{0x00, 0xFF, 0x07}},
		{FP16, nil, []byte{}},
	} {
		got, err := EncodeFloat32s(c.d, c.vals)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("EncodeFloat32s(%v, %v) = % x, %v; want % x", c.d, c.vals, got, err, c.want)
		}
		back, err := DecodeFloat32s(c.d, got)
		if err != nil || len(back) != len(c.vals) {
			t.Errorf("DecodeFloat32s(%v) = %v, %v", c.d, back, err)
		}
	}
}

func TestEncodeDecodeErrors(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		d    DType
		vals []float32
		want string
	}{
		{Int8, []float32{0, 1.5}, "encode int8: element 1 is 1.5, not an integer in [-128, 127]"},
		{Int8, []float32{128}, "element 0 is 128, not an integer"},
		{Int8, []float32{nan}, "element 0 is NaN"},
		{UInt8, []float32{-1}, "encode uint8: element 0 is -1, not an integer in [0, 255]"},
		{UInt8, []float32{float32(math.Inf(1))}, "element 0 is +Inf"},
		{Int32, []float32{1}, "encode: dtype int32 is not supported"},
		{FP64, []float32{1}, "encode: dtype fp64 is not supported"},
	} {
		if _, err := EncodeFloat32s(c.d, c.vals); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EncodeFloat32s(%v, %v) error = %v, want %q", c.d, c.vals, err, c.want)
		}
	}
	if _, err := DecodeFloat32s(FP16, []byte{1, 2, 3}); err == nil || !strings.Contains(err.Error(), "decode fp16: 3 bytes is not a whole number of 2-byte elements") {
		t.Errorf("decode odd fp16: %v", err)
	}
	if _, err := DecodeFloat32s(UInt16, []byte{1, 2}); err == nil || !strings.Contains(err.Error(), "decode: dtype uint16 is not supported") {
		t.Errorf("decode uint16: %v", err)
	}
}

// TestFP16Exhaustive checks that every binary16 value decodes exactly and
// encodes back to itself.
func TestFP16Exhaustive(t *testing.T) {
	data := make([]byte, 2<<16)
	for h := range 1 << 16 {
		binary.LittleEndian.PutUint16(data[2*h:], uint16(h))
	}
	vals, err := DecodeFloat32s(FP16, data)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncodeFloat32s(FP16, vals)
	if err != nil {
		t.Fatal(err)
	}
	for h, f := range vals {
		g := binary.LittleEndian.Uint16(enc[2*h:])
		if isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0; isNaN {
			if f == f || g&0x7c00 != 0x7c00 || g&0x3ff == 0 || g&0x8000 != uint16(h)&0x8000 {
				t.Fatalf("NaN %#04x → %v → %#04x", h, f, g)
			}
			continue
		}
		if want := roundFP16(float64(f)); float64(f) != want {
			t.Fatalf("%#04x decodes to %v, not a binary16 value", h, f)
		}
		if g != uint16(h) {
			t.Fatalf("%#04x → %v → %#04x", h, f, g)
		}
	}
}

// TestFP16Rounding checks the float32 → binary16 rounding against
// roundFP16, the float64 reference in value.go, on random and edge values.
func TestFP16Rounding(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var in []float32
	for range 1_000_000 {
		if f := math.Float32frombits(rng.Uint32()); f == f {
			in = append(in, f)
		}
	}
	// Every float32 bit pattern near binary16's boundaries: the subnormal
	// range, the normal/subnormal edge, and overflow.
	for _, centre := range []float64{0x1p-25, 0x1p-24, 0x1p-14, 65504, 65520, 1, 2048} {
		c := math.Float32bits(float32(centre))
		for d := uint32(0); d < 1<<14; d++ {
			f := math.Float32frombits(c - 1<<13 + d)
			in = append(in, f, -f)
		}
	}
	enc, err := EncodeFloat32s(FP16, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeFloat32s(FP16, enc)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range in {
		want, got := roundFP16(float64(f)), float64(out[i])
		if got != want || math.Signbit(got) != math.Signbit(want) {
			t.Fatalf("%v (%#08x) rounds to %v, want %v", f, math.Float32bits(f), got, want)
		}
	}
}

func TestBF16Rounding(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200_000 {
		f := math.Float32frombits(rng.Uint32())
		b, err := EncodeFloat32s(BF16, []float32{f})
		if err != nil {
			t.Fatal(err)
		}
		back, _ := DecodeFloat32s(BF16, b)
		if f != f {
			if back[0] == back[0] {
				t.Fatalf("NaN %#08x became %v", math.Float32bits(f), back[0])
			}
			continue
		}
		if want := roundBF16(float64(f)); float64(back[0]) != want {
			t.Fatalf("%v → %v, want %v", f, back[0], want)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, d := range []DType{FP16, BF16, FP32, Int8, UInt8} {
		data := make([]byte, 64*d.Size())
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		vals, err := DecodeFloat32s(d, data)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := EncodeFloat32s(d, vals)
		if err != nil {
			t.Fatal(err)
		}
		// NaNs may come back quieted, so compare the decoded values.
		again, _ := DecodeFloat32s(d, enc)
		for i := range vals {
			if vals[i] != again[i] && !(vals[i] != vals[i] && again[i] != again[i]) {
				t.Fatalf("%v element %d: %v → %v", d, i, vals[i], again[i])
			}
		}
		if d != FP16 && d != BF16 && !bytes.Equal(enc, data) {
			t.Fatalf("%v: re-encoding changed the bytes", d)
		}
	}
}

// TestReadWeightFile: a weight file is read whole when it is a regular file
// no more than WeightFileSlack past what the program needs; a device (a
// weights path linked to /dev/zero), a directory or a far larger file is
// refused with an error naming it, without reading it.
func TestReadWeightFile(t *testing.T) {
	dir := t.TempDir()
	file := blobFile3(t)
	good := filepath.Join(dir, "weight.bin")
	if err := os.WriteFile(good, file, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadWeightFile(good, uint64(len(file)))
	if err != nil || !bytes.Equal(got, file) {
		t.Fatalf("ReadWeightFile(good) = %d bytes, %v; want the %d-byte file", len(got), err, len(file))
	}
	// Blobs beyond what the program reads (a shared file) are within the slack.
	if got, err := ReadWeightFile(good, 128); err != nil || len(got) != len(file) {
		t.Errorf("ReadWeightFile(good, 128) = %d bytes, %v; want the whole file", len(got), err)
	}

	huge := filepath.Join(dir, "huge.bin")
	if err := os.WriteFile(huge, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 1000+WeightFileSlack+1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	_, err = ReadWeightFile(huge, 1000)
	if err == nil || !strings.Contains(err.Error(), huge) || !strings.Contains(err.Error(), "read only its first 1000") {
		t.Errorf("ReadWeightFile(huge) = %v; want a refusal naming %s", err, huge)
	}

	_, err = ReadWeightFile(dir, 1000)
	if err == nil || !strings.Contains(err.Error(), dir+" is a directory") {
		t.Errorf("ReadWeightFile(dir) = %v; want a refusal naming %s", err, dir)
	}

	missing := filepath.Join(dir, "missing.bin")
	if _, err := ReadWeightFile(missing, 1000); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("ReadWeightFile(missing) = %v; want fs.ErrNotExist naming %s", err, missing)
	}

	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero here")
	}
	zero := filepath.Join(dir, "zero.bin")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Skipf("cannot symlink: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadWeightFile(zero, 1000); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), zero+" is a character device, not a regular file") {
			t.Errorf("ReadWeightFile(link to /dev/zero) = %v; want a refusal naming %s", err, zero)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadWeightFile(link to /dev/zero) is still reading after 10s")
	}
}
