package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

// Tensor is one named fp32 tensor. Data is row-major (the last dimension
// varies fastest), as safetensors, PyTorch and llama2.c store it.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// File is the content of a safetensors file: its tensors in file (offset)
// order and its string metadata.
type File struct {
	Tensors  []Tensor
	Metadata map[string]string

	// DTypes records the stored dtype of each tensor ("F32", "F16", "BF16"),
	// so an importer can say when it widened half-precision weights.
	DTypes map[string]string

	// crcs holds the CRC-32C of each tensor's stored bytes, computed while
	// reading so that verification needs no second pass over the data.
	crcs map[string]uint32
	// prefix is the length prefix and the header exactly as stored; the header
	// checksum covers these bytes.
	prefix []byte
}

// Tensor returns the tensor called name, or nil.
func (f *File) Tensor(name string) *Tensor {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i]
		}
	}
	return nil
}

// maxHeader bounds the JSON header. The reference implementation refuses
// headers over 100 MB; so do we, so that a flipped bit in the length prefix
// cannot make us allocate gigabytes.
const maxHeader = 100 << 20

// metadataKey is the reserved top-level header key holding the string metadata.
const metadataKey = "__metadata__"

// dtypeSize is the element size of every dtype the format defines. Knowing
// them all lets the reader tell "not a safetensors file" from "a dtype anetop
// does not import".
var dtypeSize = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// castagnoli is the CRC-32C table; hardware-accelerated on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeSafetensors writes tensors and metadata in the safetensors format,
// all as F32. Tensors are laid out sorted by name (all share one alignment,
// which is how the reference implementation orders them), the header lists
// __metadata__ first (keys sorted) and then the tensors in data order, and is
// padded with spaces to a multiple of 8 bytes so the data is aligned. The
// output is a function of the arguments only: the same tensors and metadata
// always give the same bytes.
//
// It writes exactly the metadata given; Save adds the checksums.
func EncodeSafetensors(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	hdr, order, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	bw.Write(n[:])
	bw.Write(hdr)
	if err := writeTensorData(bw, tensors, order, nil); err != nil {
		return err
	}
	return bw.Flush()
}

// encodeHeader validates the tensors and builds the padded JSON header. It
// returns the tensor indices in data order.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, []int, error) {
	seen := make(map[string]bool, len(tensors))
	order := make([]int, len(tensors))
	for i, t := range tensors {
		order[i] = i
		switch {
		case t.Name == "":
			return nil, nil, fmt.Errorf("safetensors: tensor %d has no name", i)
		case t.Name == metadataKey:
			return nil, nil, fmt.Errorf("safetensors: %q is reserved and cannot name a tensor", metadataKey)
		case !utf8.ValidString(t.Name):
			return nil, nil, fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", t.Name)
		case seen[t.Name]:
			return nil, nil, fmt.Errorf("safetensors: two tensors are called %q", t.Name)
		}
		seen[t.Name] = true
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("safetensors: tensor %q has negative dimension in shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return nil, nil, fmt.Errorf("safetensors: tensor %q has shape %v (%d elements) but %d values", t.Name, t.Shape, n, len(t.Data))
		}
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("safetensors: metadata %q is not valid UTF-8", k)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(tensors[a].Name, tensors[b].Name) })

	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		b.WriteString(`"` + metadataKey + `":{`)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
		first = false
	}
	var off uint64
	for _, i := range order {
		t := tensors[i]
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeJSONString(&b, t.Name)
		b.WriteString(`:{"dtype":"F32","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", d)
		}
		end := off + 4*uint64(len(t.Data))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > maxHeader {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d-byte limit", b.Len(), maxHeader)
	}
	return b.Bytes(), order, nil
}

// writeJSONString writes s as a JSON string without HTML escaping, so names
// like "a<b" stay readable in the header.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // cannot fail for a string
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// writeTensorData writes the tensors' little-endian bytes in data order. If
// crcs is not nil it records each tensor's CRC-32C there.
func writeTensorData(w io.Writer, tensors []Tensor, order []int, crcs map[string]uint32) error {
	buf := make([]byte, 1<<15)
	for _, i := range order {
		t := tensors[i]
		var crc uint32
		for s := 0; s < len(t.Data); {
			n := min(len(t.Data)-s, len(buf)/4)
			for j, v := range t.Data[s : s+n] {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
			}
			crc = crc32.Update(crc, castagnoli, buf[:4*n])
			if _, err := w.Write(buf[:4*n]); err != nil {
				return err
			}
			s += n
		}
		if crcs != nil {
			crcs[t.Name] = crc
		}
	}
	return nil
}

// tensorCRC is the CRC-32C of t's stored (little-endian F32) bytes.
func tensorCRC(t *Tensor) uint32 {
	crcs := map[string]uint32{}
	writeTensorData(io.Discard, []Tensor{*t}, []int{0}, crcs)
	return crcs[t.Name]
}

// ReadSafetensors reads a safetensors file, widening F16 and BF16 tensors to
// float32. It validates the layout (see DecodeSafetensors) but does not
// require checksums; if the file carries anetop checksums they are verified.
// Use Load for anetop's own checkpoints, which must carry them.
func ReadSafetensors(path string) (*File, error) { return readFile(path, false) }

// readFile decodes a safetensors file and verifies its checksums: always when
// requireCRC is set (anetop's checkpoints), else only if it carries them.
func readFile(path string, requireCRC bool) (*File, error) {
	f, err := openSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sf, err := DecodeSafetensors(f, f.size, path)
	if err != nil {
		return nil, err
	}
	if _, ok := sf.Metadata[MetaHeaderCRC]; ok || requireCRC {
		if err := verify(sf, path); err != nil {
			return nil, err
		}
	}
	return sf, nil
}

// SniffSafetensors reports whether path is a safetensors file, reading and
// validating its header only (see DecodeSafetensors), not its data or
// checksums. A file that is not one gets a *FormatError naming path, so a
// caller guessing a file's format can say why it is not safetensors.
func SniffSafetensors(path string) error {
	f, err := openSized(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, _, err = decodeHeader(bufio.NewReader(f), f.size, path)
	return err
}

type sizedFile struct {
	*os.File
	size int64
}

func openSized(path string) (sizedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return sizedFile{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return sizedFile{}, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return sizedFile{}, fmt.Errorf("%s: not a regular file", path)
	}
	return sizedFile{f, st.Size()}, nil
}

// tensorInfo is one header entry. Pointers tell a missing field from a zero.
type tensorInfo struct {
	DType   *string   `json:"dtype"`
	Shape   *[]uint64 `json:"shape"`
	Offsets *[]uint64 `json:"data_offsets"`
}

type entry struct {
	name   string
	dtype  string
	shape  []int
	begin  uint64
	end    uint64
	nelems uint64
}

// DecodeSafetensors reads a safetensors file of the given size from r; name
// is used in errors. It refuses anything the format does not allow: a header
// length beyond the file, a header that is not one well-formed JSON object
// (duplicate keys included), unknown fields, unknown dtypes, shapes whose
// size does not match their offsets, offsets that overlap, leave gaps, do not
// start at 0 or do not end exactly at the end of the file. Every error names
// the file and, where there is one, the tensor. F16 and BF16 tensors are
// widened to float32 exactly; other dtypes are refused. r is read
// sequentially, once.
func DecodeSafetensors(r io.Reader, size int64, name string) (*File, error) {
	sf, ents, err := decodeHeader(r, size, name)
	if err != nil {
		return nil, err
	}
	if err := readTensorData(r, sf, ents, name); err != nil {
		return nil, err
	}
	return sf, nil
}

// decodeHeader reads and validates the length prefix and header; r is left at
// the start of the data section.
func decodeHeader(r io.Reader, size int64, name string) (*File, []entry, error) {
	fail := func(format string, a ...any) error {
		reason := fmt.Sprintf(format, a...)
		return &FormatError{Format: "safetensors file", Reason: reason, msg: fmt.Sprintf("%s: not a valid safetensors file: %s", name, reason)}
	}
	if size < 8 {
		return nil, nil, fail("%d bytes is too short for the 8-byte header length", size)
	}
	prefix := make([]byte, 8)
	if _, err := io.ReadFull(r, prefix); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(prefix)
	if n > maxHeader || n > uint64(size-8) {
		return nil, nil, fail("header length %d does not fit in a file of %d bytes (truncated or corrupt)", n, size)
	}
	prefix = slices.Grow(prefix, int(n))[:8+n]
	if _, err := io.ReadFull(r, prefix[8:]); err != nil {
		return nil, nil, fmt.Errorf("%s: reading header: %w", name, err)
	}
	hdr := prefix[8:]
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, fail("header does not start with '{'")
	}
	if !utf8.Valid(hdr) {
		return nil, nil, fail("header is not valid UTF-8")
	}
	top, err := objectEntries(hdr)
	if err != nil {
		return nil, nil, fail("header: %v", err)
	}
	sf := &File{Metadata: map[string]string{}, DTypes: map[string]string{}, crcs: map[string]uint32{}, prefix: prefix}
	var ents []entry
	dataLen := uint64(size) - 8 - n
	for _, kv := range top {
		if kv.key == metadataKey {
			if string(kv.raw) == "null" {
				continue
			}
			md, err := objectEntries(kv.raw)
			if err != nil {
				return nil, nil, fail("%s: %v", metadataKey, err)
			}
			for _, m := range md {
				var v string
				if err := json.Unmarshal(m.raw, &v); err != nil {
					return nil, nil, fail("%s: value of %q is not a string", metadataKey, m.key)
				}
				sf.Metadata[m.key] = v
			}
			continue
		}
		var ti tensorInfo
		dec := json.NewDecoder(bytes.NewReader(kv.raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ti); err != nil {
			return nil, nil, fail("tensor %q: %v", kv.key, err)
		}
		if ti.DType == nil || ti.Shape == nil || ti.Offsets == nil {
			return nil, nil, fail("tensor %q: needs dtype, shape and data_offsets", kv.key)
		}
		es, ok := dtypeSize[*ti.DType]
		if !ok {
			return nil, nil, fail("tensor %q: unknown dtype %q", kv.key, *ti.DType)
		}
		if len(*ti.Offsets) != 2 {
			return nil, nil, fail("tensor %q: data_offsets has %d values, want 2", kv.key, len(*ti.Offsets))
		}
		e := entry{name: kv.key, dtype: *ti.DType, begin: (*ti.Offsets)[0], end: (*ti.Offsets)[1], nelems: 1}
		for _, d := range *ti.Shape {
			// Bound the running product by the data size so it cannot overflow.
			if d != 0 && e.nelems > dataLen/d {
				return nil, nil, fail("tensor %q: shape %v is larger than the file", kv.key, *ti.Shape)
			}
			e.nelems *= d
			e.shape = append(e.shape, int(d))
		}
		if e.end < e.begin || e.end > dataLen {
			return nil, nil, fail("tensor %q: data_offsets [%d, %d] outside the %d-byte data section (truncated or corrupt)", kv.key, e.begin, e.end, dataLen)
		}
		if e.nelems*uint64(es) != e.end-e.begin {
			return nil, nil, fail("tensor %q: shape %v of %s needs %d bytes but data_offsets [%d, %d] span %d", kv.key, e.shape, e.dtype, e.nelems*uint64(es), e.begin, e.end, e.end-e.begin)
		}
		ents = append(ents, e)
	}
	slices.SortStableFunc(ents, func(a, b entry) int {
		if a.begin != b.begin {
			return cmpU64(a.begin, b.begin)
		}
		return cmpU64(a.end, b.end)
	})
	var pos uint64
	for _, e := range ents {
		if e.begin < pos {
			return nil, nil, fail("tensor %q: data_offsets [%d, %d] overlap the previous tensor, which ends at %d", e.name, e.begin, e.end, pos)
		}
		if e.begin > pos {
			return nil, nil, fail("tensor %q: gap of %d bytes before its data at %d", e.name, e.begin-pos, e.begin)
		}
		pos = e.end
	}
	if pos != dataLen {
		return nil, nil, fail("tensors cover %d bytes but the data section holds %d (truncated, or trailing bytes)", pos, dataLen)
	}
	for _, e := range ents {
		switch e.dtype {
		case "F32", "F16", "BF16":
		default:
			return nil, nil, fmt.Errorf("%s: tensor %q has dtype %s; anetop reads F32, F16 and BF16 only", name, e.name, e.dtype)
		}
	}

	return sf, ents, nil
}

// readTensorData reads the data section described by ents into sf.
func readTensorData(r io.Reader, sf *File, ents []entry, name string) error {
	br := bufio.NewReaderSize(r, 1<<16)
	buf := make([]byte, 1<<15)
	sf.Tensors = make([]Tensor, len(ents))
	for i, e := range ents {
		t := Tensor{Name: e.name, Shape: e.shape, Data: make([]float32, e.nelems)}
		if t.Shape == nil {
			t.Shape = []int{}
		}
		es := uint64(dtypeSize[e.dtype])
		var crc uint32
		for s := uint64(0); s < e.nelems; {
			k := min(e.nelems-s, uint64(len(buf))/es)
			b := buf[:k*es]
			if _, err := io.ReadFull(br, b); err != nil {
				return fmt.Errorf("%s: tensor %q: reading data: %w (truncated?)", name, e.name, err)
			}
			crc = crc32.Update(crc, castagnoli, b)
			dst := t.Data[s : s+k]
			switch e.dtype {
			case "F32":
				for j := range dst {
					dst[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
				}
			case "F16":
				for j := range dst {
					dst[j] = f16ToF32(binary.LittleEndian.Uint16(b[2*j:]))
				}
			case "BF16":
				for j := range dst {
					dst[j] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*j:])) << 16)
				}
			}
			s += k
		}
		sf.Tensors[i] = t
		sf.DTypes[e.name] = e.dtype
		sf.crcs[e.name] = crc
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type keyRaw struct {
	key string
	raw json.RawMessage
}

// objectEntries splits one JSON object into its members in order, refusing
// duplicate keys (encoding/json would silently keep the last one, and two
// readers could then disagree about a file) and anything after the object
// other than whitespace.
func objectEntries(data []byte) ([]keyRaw, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var out []keyRaw
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		if seen[k] {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		seen[k] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%q: %v", k, err)
		}
		out = append(out, keyRaw{k, raw})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return out, nil
}

// f16ToF32 widens an IEEE 754 binary16 value exactly, subnormals, infinities
// and NaN payloads included.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: normalise the mantissa.
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}
