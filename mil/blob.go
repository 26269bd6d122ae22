package mil

// Weight blob files ("MIL blob storage v2", Core ML's weight.bin).
//
// A MIL program keeps large constants out of its text: a literal
// BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64))
// names a file and the offset of a blob inside it. The ANE compiler and
// anetop's emulator both read these files, so the writer here sets every field
// exactly as Apple's StorageWriter does, and the reader checks every field.
//
// All integers are little-endian. The layout:
//
//	file header, 64 bytes at offset 0
//	  0  u32      count     number of blobs
//	  4  u32      version   2
//	  8  7 × u64  reserved  0
//	then, per blob, in file order:
//	metadata, 64 bytes at M (M is a multiple of 64; the first is at 64)
//	  M+0   u32      sentinel     0xDEADBEEF (bytes EF BE AD DE)
//	  M+4   u32      dtype code   1 fp16, 2 fp32, 3 uint8, 4 int8, 5 bf16,
//	                              6 int16, 7 uint16, 14 int32, 15 uint32, ...
//	  M+8   u64      sizeInBytes  exact data length, no padding
//	  M+16  u64      offset       absolute offset of the data = M + 64
//	  M+24  u64      paddingBits  unused bits of the last byte (sub-byte types); 0
//	  M+32  4 × u64  reserved     0
//	data, sizeInBytes bytes at M+64: the tensor in row-major order, elements
//	  little-endian
//	zero bytes up to the next multiple of 64, where the next metadata starts;
//	no padding after the last blob, so the file ends where its data ends.
//
// The BLOBFILE offset is the offset M of the metadata, not of the data. For
// example three fp32[500] blobs (2000 bytes each) sit at 64, 2176 and 4288, and
// a file holding one fp16 blob of N elements is 128+2N bytes long.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/anetop/anetop/mil/fp16"
)

const (
	blobAlign       = 64         // DefaultStorageAlignment: header, metadata and data are 64-aligned
	blobHeaderSize  = 64         // storage_header
	blobMetaSize    = 64         // blob_metadata
	blobVersion     = 2          // storage_header.version; 1 was Espresso's older format
	blobSentinel    = 0xDEADBEEF // blob_metadata.sentinel
	maxBlobFileSize = math.MaxInt64
)

// blobCodeNames names the BlobDataType codes anetop has no DType for, so that a
// file using them is refused with a message that says what it holds.
var blobCodeNames = map[uint32]string{
	8:  "int4",
	9:  "uint1",
	10: "uint2",
	11: "uint4",
	12: "uint3",
	13: "uint6",
	16: "fp8e4m3fn",
	17: "fp8e5m2",
}

// align64 rounds n up to a multiple of 64. Callers keep n ≤ MaxInt64, so the
// sum cannot wrap.
func align64(n uint64) uint64 { return (n + blobAlign - 1) &^ (blobAlign - 1) }

// BlobWriter builds a weight blob file in memory. The zero value is an empty
// file, ready to use. A BlobWriter is not safe for concurrent use.
type BlobWriter struct {
	buf   []byte // the whole file so far, header included; nil until first use
	count uint32
	// shared is set when Bytes has handed buf out. The next Add copies buf
	// before rewriting the header's count, so a returned file never changes.
	shared bool
}

// init writes the header of an empty file.
func (w *BlobWriter) init() {
	if w.buf == nil {
		w.buf = make([]byte, blobHeaderSize, 4096)
		binary.LittleEndian.PutUint32(w.buf[4:], blobVersion)
	}
}

// Add appends one blob holding data, the row-major little-endian elements of a
// tensor of dtype d, and returns the offset of its metadata record: the offset
// a BLOBFILE literal names. The metadata goes at the next multiple of 64 at or
// after the current end of the file and the data right after it. data is
// copied. Add fails if d has no blob code or len(data) is not a whole number of
// elements.
func (w *BlobWriter) Add(d DType, data []byte) (offset uint64, err error) {
	code, ok := d.BlobCode()
	if !ok {
		return 0, fmt.Errorf("blob writer: dtype %v cannot be stored in a weight blob", d)
	}
	if len(data)%d.Size() != 0 {
		return 0, fmt.Errorf("blob writer: %d bytes of %v data is not a whole number of %d-byte elements", len(data), d, d.Size())
	}
	if w.count == math.MaxUint32 {
		return 0, fmt.Errorf("blob writer: file already holds %d blobs, the most its header can count", w.count)
	}
	w.init()
	meta := align64(uint64(len(w.buf)))
	if uint64(len(data)) > maxBlobFileSize-blobMetaSize-meta {
		return 0, fmt.Errorf("blob writer: adding %d bytes at offset %d would exceed the largest file size", len(data), meta)
	}
	if w.shared {
		w.buf = slices.Clone(w.buf)
		w.shared = false
	}
	w.buf = slices.Grow(w.buf, int(meta)+blobMetaSize+len(data)-len(w.buf))
	for len(w.buf) < int(meta) { // the alignment gap: zeros, as Apple's writer leaves by seeking
		w.buf = append(w.buf, 0)
	}
	var m [blobMetaSize]byte
	binary.LittleEndian.PutUint32(m[0:], blobSentinel)
	binary.LittleEndian.PutUint32(m[4:], code)
	binary.LittleEndian.PutUint64(m[8:], uint64(len(data)))
	binary.LittleEndian.PutUint64(m[16:], meta+blobMetaSize)
	// m[24:32] padding bits and m[32:64] reserved stay zero: every type
	// anetop stores is a whole number of bytes.
	w.buf = append(w.buf, m[:]...)
	w.buf = append(w.buf, data...)
	w.count++
	// Apple's writer rewrites the header after each append too, so the count
	// is right whenever the file is read.
	binary.LittleEndian.PutUint32(w.buf[0:], w.count)
	return meta, nil
}

// Bytes returns the complete file. The result stays valid and unchanged after
// later calls to Add (the first Add after Bytes copies the file to keep it so;
// call Bytes once, after the last Add, to avoid the copy). It must not be
// modified.
func (w *BlobWriter) Bytes() []byte {
	w.init()
	w.shared = true
	return w.buf[:len(w.buf):len(w.buf)]
}

// Len returns the length in bytes of the file Bytes would return.
func (w *BlobWriter) Len() int {
	if w.buf == nil {
		return blobHeaderSize
	}
	return len(w.buf)
}

// Count returns the number of blobs added.
func (w *BlobWriter) Count() int { return int(w.count) }

// BlobInfo describes one blob of a weight file.
type BlobInfo struct {
	Offset     uint64 // of the 64-byte metadata record: the BLOBFILE offset
	DType      DType
	DataOffset uint64 // of the data, always Offset+64
	Size       uint64 // of the data in bytes
}

// BlobFile is a parsed, validated weight file. Its methods only read, so it is
// safe for concurrent use.
type BlobFile struct {
	Blobs []BlobInfo // in file order, so by increasing Offset
	data  []byte
}

// ReadBlobFile parses and validates a weight file. The file must be exactly
// what BlobWriter (and Apple's StorageWriter) would write for its blobs: header
// version 2 with zero reserved words; for each of the header's count blobs the
// sentinel, a dtype code anetop supports, a data offset of metadata offset + 64,
// zero padding bits, a size that is a whole number of elements and within the
// file; zero bytes in the alignment gaps; nothing after the last blob.
//
// One leniency: the reserved words of blob metadata are ignored, because Core
// ML writers before iOS 18 left them uninitialised.
//
// The BlobFile refers to data; data must not be modified while it is in use.
func ReadBlobFile(data []byte) (*BlobFile, error) {
	n := uint64(len(data))
	if n < blobHeaderSize {
		return nil, fmt.Errorf("blob file: %d bytes is shorter than the 64-byte header (not a Core ML weight file, or truncated)", n)
	}
	count := binary.LittleEndian.Uint32(data[0:])
	if v := binary.LittleEndian.Uint32(data[4:]); v != blobVersion {
		return nil, fmt.Errorf("blob file: version is %d, want 2 (not a Core ML blob storage v2 weight file)", v)
	}
	for i := 8; i < blobHeaderSize; i += 8 {
		if r := binary.LittleEndian.Uint64(data[i:]); r != 0 {
			return nil, fmt.Errorf("blob file: header reserved word at offset %d is %#x, want 0 (corrupt header)", i, r)
		}
	}
	// Each blob takes at least its 64-byte metadata, so a count the file
	// cannot hold is refused before anything is allocated for it.
	if most := (n - blobHeaderSize) / blobMetaSize; uint64(count) > most {
		return nil, fmt.Errorf("blob file: header count is %d, but a %d-byte file holds at most %d blobs (count too large, or file truncated)", count, n, most)
	}
	f := &BlobFile{Blobs: make([]BlobInfo, 0, count), data: data}
	off := uint64(blobHeaderSize) // where the next metadata starts
	end := off                    // where the previous blob's data ended
	for i := range uint64(count) {
		b, err := readBlobMeta(data, off)
		if err != nil {
			return nil, fmt.Errorf("blob file: blob %d of %d at offset %d: %w", i+1, count, off, err)
		}
		if j := nonzero(data[end:off]); j >= 0 {
			return nil, fmt.Errorf("blob file: byte at offset %d, in the alignment gap before blob %d of %d, is 0x%02x, want 0", end+uint64(j), i+1, count, data[end+uint64(j)])
		}
		f.Blobs = append(f.Blobs, b)
		end = b.DataOffset + b.Size
		off = align64(end)
	}
	if end < n {
		msg := fmt.Sprintf("blob file: %d bytes follow the last of the header's %d blobs, from offset %d", n-end, count, end)
		if off+4 <= n && binary.LittleEndian.Uint32(data[off:]) == blobSentinel {
			msg += fmt.Sprintf("; a blob's metadata starts at %d (header count too small)", off)
		}
		return nil, errors.New(msg)
	}
	return f, nil
}

// readBlobMeta reads and checks the metadata record at off.
func readBlobMeta(data []byte, off uint64) (BlobInfo, error) {
	n := uint64(len(data))
	if off >= n {
		return BlobInfo{}, fmt.Errorf("file ends at %d (header count too large, or file truncated)", n)
	}
	if n-off < blobMetaSize {
		return BlobInfo{}, fmt.Errorf("file ends at %d, inside the 64-byte metadata (header count too large, or file truncated)", n)
	}
	m := data[off : off+blobMetaSize]
	if s := binary.LittleEndian.Uint32(m[0:]); s != blobSentinel {
		return BlobInfo{}, fmt.Errorf("sentinel is 0x%08X, want 0xDEADBEEF (not a Core ML weight file, or truncated)", s)
	}
	code := binary.LittleEndian.Uint32(m[4:])
	d, ok := DTypeFromBlobCode(code)
	if !ok {
		if name, known := blobCodeNames[code]; known {
			return BlobInfo{}, fmt.Errorf("dtype code %d (%s) is not supported by anetop", code, name)
		}
		return BlobInfo{}, fmt.Errorf("unknown dtype code %d", code)
	}
	size := binary.LittleEndian.Uint64(m[8:])
	dataOff := binary.LittleEndian.Uint64(m[16:])
	pad := binary.LittleEndian.Uint64(m[24:])
	if want := off + blobMetaSize; dataOff != want {
		return BlobInfo{}, fmt.Errorf("data offset is %d, want %d (metadata offset + 64)", dataOff, want)
	}
	if pad != 0 {
		return BlobInfo{}, fmt.Errorf("padding bits is %d, want 0 for whole-byte type %v", pad, d)
	}
	if es := uint64(d.Size()); size%es != 0 {
		return BlobInfo{}, fmt.Errorf("size %d bytes is not a whole number of %d-byte %v elements", size, es, d)
	}
	if size > n-dataOff { // dataOff = off+64 ≤ n here, so n-dataOff cannot wrap
		return BlobInfo{}, fmt.Errorf("%d bytes of %v data at offset %d run past the end of the %d-byte file (truncated?)", size, d, dataOff, n)
	}
	return BlobInfo{Offset: off, DType: d, DataOffset: dataOff, Size: size}, nil
}

// nonzero returns the index of the first nonzero byte of b, or -1.
func nonzero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// Blob returns the blob whose metadata is at offset.
func (f *BlobFile) Blob(offset uint64) (BlobInfo, bool) {
	i, ok := slices.BinarySearchFunc(f.Blobs, offset, func(b BlobInfo, o uint64) int {
		switch {
		case b.Offset < o:
			return -1
		case b.Offset > o:
			return 1
		}
		return 0
	})
	if !ok {
		return BlobInfo{}, false
	}
	return f.Blobs[i], true
}

// Data returns the data of the blob whose metadata is at offset, checking that
// it holds a tensor of type want: the same dtype and exactly
// NumElements·Size bytes. The result aliases the file (with its capacity
// clipped, so appending to it cannot overwrite the file).
func (f *BlobFile) Data(offset uint64, want Type) ([]byte, error) {
	b, ok := f.Blob(offset)
	if !ok {
		return nil, f.noBlob(offset)
	}
	if b.DType != want.DType {
		return nil, fmt.Errorf("blob at offset %d holds %v data, want %v for %v", offset, b.DType, want.DType, want)
	}
	ne := want.Shape.NumElements()
	if ne < 0 {
		return nil, fmt.Errorf("blob at offset %d: type %v has no static element count", offset, want)
	}
	// ne ≤ 2^40 and Size ≤ 8, so the product fits comfortably.
	if need := uint64(ne) * uint64(want.DType.Size()); b.Size != need {
		return nil, fmt.Errorf("blob at offset %d holds %d bytes (%d %v elements), want %d bytes for %v",
			offset, b.Size, b.Size/uint64(b.DType.Size()), b.DType, need, want)
	}
	end := b.DataOffset + b.Size
	return f.data[b.DataOffset:end:end], nil
}

// noBlob explains why no blob starts at offset.
func (f *BlobFile) noBlob(offset uint64) error {
	for _, b := range f.Blobs {
		if offset >= b.DataOffset && offset < b.DataOffset+max(b.Size, 1) {
			return fmt.Errorf("no blob at offset %d: it lies in the data of the blob at %d (a BLOBFILE offset names the metadata record, 64 bytes before the data)", offset, b.Offset)
		}
	}
	offs := make([]string, 0, 8)
	for i, b := range f.Blobs {
		if i == 7 {
			offs = append(offs, fmt.Sprintf("… (%d in all)", len(f.Blobs)))
			break
		}
		offs = append(offs, fmt.Sprint(b.Offset))
	}
	if len(offs) == 0 {
		return fmt.Errorf("no blob at offset %d: the file holds no blobs", offset)
	}
	return fmt.Errorf("no blob at offset %d: blobs start at %s", offset, strings.Join(offs, ", "))
}

// WeightFileSlack is how many bytes a weight file may hold beyond the end of
// the furthest blob its program reads (blobs of other kernels that share the
// file) before ReadWeightFile refuses it.
const WeightFileSlack = 64 << 20

// ReadWeightFile reads the weight file name for a program whose BLOBFILE
// literals read its first need bytes (see Program.BlobFileSizes). It refuses,
// with an error naming the file, anything but a regular file (a device such
// as /dev/zero would be read without end, a FIFO would block) and a file more
// than WeightFileSlack bytes longer than need, so it never reads more than
// need plus that slack, nor more than the file held when it was opened. A
// missing file's error wraps fs.ErrNotExist. The content is not checked here:
// ReadBlobFile does that.
func ReadWeightFile(name string, need uint64) ([]byte, error) {
	// Stat before opening: opening a FIFO for reading blocks until a writer
	// comes.
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("weight file: %w", err)
	}
	if err := checkWeightFileInfo(name, fi, need); err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("weight file: %w", err)
	}
	defer f.Close()
	// The file may have been replaced between the Stat and the Open.
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("weight file: %w", err)
	}
	if err := checkWeightFileInfo(name, fi, need); err != nil {
		return nil, err
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("weight file %s: reading %d bytes: %w (did it change while being read?)", name, fi.Size(), err)
	}
	return data, nil
}

// checkWeightFileInfo refuses non-regular and oversized weight files.
func checkWeightFileInfo(name string, fi fs.FileInfo, need uint64) error {
	if !fi.Mode().IsRegular() {
		kind := "not a regular file"
		switch m := fi.Mode(); {
		case m.IsDir():
			kind = "a directory"
		case m&fs.ModeCharDevice != 0:
			kind = "a character device"
		case m&fs.ModeDevice != 0:
			kind = "a device"
		case m&fs.ModeNamedPipe != 0:
			kind = "a named pipe"
		case m&fs.ModeSocket != 0:
			kind = "a socket"
		}
		return fmt.Errorf("weight file %s is %s, not a regular file: a BLOBFILE path must name a weight blob file (weight.bin)", name, kind)
	}
	size := uint64(fi.Size())
	if size > need && size-need > WeightFileSlack {
		return fmt.Errorf("weight file %s is %d bytes, but the program's BLOBFILE literals read only its first %d; "+
			"refusing to read more than %d MiB beyond that (is it the right file?)", name, size, need, WeightFileSlack>>20)
	}
	return nil
}

// Resolve returns the data of a literal stored in a weight blob: the bytes of
// the blob v.Blob names, checked against v.Type. The file is parsed and
// validated on every call (parsing only reads the metadata records); the result
// aliases w's storage.
func (w Weights) Resolve(v *Value) ([]byte, error) {
	if v == nil || v.Blob == nil {
		return nil, fmt.Errorf("weights: value is not a BLOBFILE literal")
	}
	path := v.Blob.Path
	file, ok := w[path]
	if !ok {
		have := make([]string, 0, len(w))
		for p := range w {
			have = append(have, fmt.Sprintf("%q", p))
		}
		slices.Sort(have)
		if len(have) == 0 {
			return nil, fmt.Errorf("weights: no blob file %q: no weight files were given", path)
		}
		return nil, fmt.Errorf("weights: no blob file %q; have %s", path, strings.Join(have, ", "))
	}
	f, err := ReadBlobFile(file)
	if err != nil {
		return nil, fmt.Errorf("weights %q: %w", path, err)
	}
	data, err := f.Data(v.Blob.Offset, v.Type)
	if err != nil {
		return nil, fmt.Errorf("weights %q: %w", path, err)
	}
	return data, nil
}

// EncodeFloat32s returns vals as the blob data of a dtype-d tensor: binary16
// (fp16, converted by package fp16) or bfloat16 rounded to nearest, ties to
// even, with overflow to ±inf;
// fp32 bit-exact; int8 and uint8 one byte per value, which must be an integer
// in the dtype's range (quantised data is never silently rounded or clamped).
// Elements are little-endian.
func EncodeFloat32s(d DType, vals []float32) ([]byte, error) {
	switch d {
	case FP16:
		h := make([]fp16.Bits, len(vals))
		fp16.FromFloat32s(h, vals)
		out := make([]byte, 2*len(vals))
		for i, x := range h {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(x))
		}
		return out, nil
	case BF16:
		out := make([]byte, 2*len(vals))
		for i, x := range vals {
			binary.LittleEndian.PutUint16(out[2*i:], float32ToBF16(x))
		}
		return out, nil
	case FP32:
		out := make([]byte, 4*len(vals))
		for i, x := range vals {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
		}
		return out, nil
	case Int8, UInt8:
		lo, hi := d.intRange()
		out := make([]byte, len(vals))
		for i, x := range vals {
			if x != float32(math.Trunc(float64(x))) || float64(x) < float64(lo) || float64(x) > float64(hi) {
				return nil, fmt.Errorf("encode %v: element %d is %v, not an integer in [%d, %d]", d, i, x, lo, hi)
			}
			if d == Int8 {
				out[i] = byte(int8(x)) // two's complement
			} else {
				out[i] = uint8(x)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("encode: dtype %v is not supported (fp16, bf16, fp32, int8, uint8 are)", d)
}

// DecodeFloat32s is the inverse of EncodeFloat32s: it converts blob data of
// dtype d to float32, exactly (a NaN stays a NaN of the same sign but may be
// quieted).
func DecodeFloat32s(d DType, data []byte) ([]float32, error) {
	switch d {
	case FP16, BF16, FP32, Int8, UInt8:
	default:
		return nil, fmt.Errorf("decode: dtype %v is not supported (fp16, bf16, fp32, int8, uint8 are)", d)
	}
	es := d.Size()
	if len(data)%es != 0 {
		return nil, fmt.Errorf("decode %v: %d bytes is not a whole number of %d-byte elements", d, len(data), es)
	}
	out := make([]float32, len(data)/es)
	switch d {
	case FP16:
		h := make([]fp16.Bits, len(out))
		for i := range h {
			h[i] = fp16.Bits(binary.LittleEndian.Uint16(data[2*i:]))
		}
		fp16.ToFloat32s(out, h)
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[2*i:])) << 16)
		}
	case FP32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case Int8:
		for i, b := range data {
			out[i] = float32(int8(b))
		}
	case UInt8:
		for i, b := range data {
			out[i] = float32(b)
		}
	}
	return out, nil
}

// float32ToBF16 rounds f to bfloat16 (the top half of a float32), nearest
// even; NaNs stay quiet NaNs.
func float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
