package checkpoint

// This file reads and writes llama2.c's model.bin, for interchange with
// llama2.c, PyTorch and the published TinyStories models.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/anetop/anetop/model"
)

// llama2cMagic is the first uint32 of llama2.c's version-1 and version-2
// exports ("ak42"); legacy version-0 files start with dim instead.
const llama2cMagic = 0x616b3432

// llama2cHeader is the legacy (version 0) header: 7 int32.
const llama2cHeader = 28

// llama2cV1Header is the size of the version-1 and version-2 headers: the
// magic, the version, the 7 int32 of version 0, the shared-classifier byte
// and zero padding.
const llama2cV1Header = 256

// ReadLlama2C reads a llama2.c model.bin, detecting its format:
//
//   - version 0 ("legacy": run.c's format and the published
//     stories15M/42M/110M files): a header of 7 int32 (dim, hidden_dim,
//     n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
//     vocab_size means an untied classifier is stored last), then float32
//     arrays in llama2.c's order, which is model.Config.Tensors' order with
//     the two RoPE tables (seq_len × head_size/2 each, unused: the model
//     computes its own) between the final norm and the classifier;
//   - version 1 (export.py --version 1): a 256-byte header (magic "ak42",
//     version 1, the same 7 int32, a shared-classifier byte that says
//     whether the classifier is tied, whatever vocab_size's sign), then the
//     three kinds of norm gains, the embedding, the per-layer matrices and
//     the classifier when not shared; no RoPE tables.
//
// Version 2 (int8-quantized) is refused with an error saying how to get a
// float file. RopeTheta and NormEps are llama2.c's hard-coded 10000 and
// 1e-5.
//
// The file must be exactly the size its header implies, every weight finite
// and a version-0 file's RoPE tables within [−1, 1]; anything else is
// refused with an error naming the file and what to do.
func ReadLlama2C(path string) (*model.Params, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read llama2.c model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read llama2.c model: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read llama2.c model %s: not a regular file", path)
	}
	p, err := DecodeLlama2C(bufio.NewReaderSize(f, 1<<16), st.Size())
	if err != nil {
		return nil, fmt.Errorf("read llama2.c model %s: %w", path, err)
	}
	return p, nil
}

// DecodeLlama2C reads a model.bin of version 0 or 1 (detected from its
// first bytes) of size bytes from r; see ReadLlama2C. The size is checked
// against the header before anything is allocated.
func DecodeLlama2C(r io.Reader, size int64) (*model.Params, error) {
	return decodeLlama2C(r, size, false)
}

// SniffLlama2C reports whether path is a llama2.c model.bin, reading its
// header only: nil if the header is well formed and the file's size is the
// one it implies. A file that is not one gets a *FormatError (wrapped, the
// message naming path), so a caller guessing a file's format can say why
// it is not a model.bin.
func SniffLlama2C(path string) error {
	f, err := openSized(path)
	if err != nil {
		return fmt.Errorf("read llama2.c model: %w", err)
	}
	defer f.Close()
	if _, err := decodeLlama2C(bufio.NewReader(f), f.size, true); err != nil {
		return fmt.Errorf("read llama2.c model %s: %w", path, err)
	}
	return nil
}

// l2FormatError marks err, about a file without llama2.c's magic, as a
// *FormatError: the file may be another format altogether.
func l2FormatError(err error, whole bool) error {
	reason := err.Error()
	if !whole {
		reason, _, _ = strings.Cut(reason, "; ") // drop "it is not a llama2.c model.bin"
	}
	return &FormatError{Format: "llama2.c model.bin", Reason: reason, msg: err.Error()}
}

// decodeLlama2C is DecodeLlama2C; with headerOnly it returns nil, nil once
// the header and the file size have been checked, having allocated nothing.
func decodeLlama2C(r io.Reader, size int64, headerOnly bool) (*model.Params, error) {
	if size < llama2cHeader {
		if size >= 4 {
			// Peek: a truncated version-1 header deserves its own message.
			var m [4]byte
			if _, err := io.ReadFull(r, m[:]); err == nil && binary.LittleEndian.Uint32(m[:]) == llama2cMagic {
				return nil, fmt.Errorf("the file is %d bytes, shorter than the %d-byte header of a llama2.c version-1 model.bin: it is truncated", size, llama2cV1Header)
			}
		}
		return nil, l2FormatError(fmt.Errorf("the file is %d bytes, shorter than llama2.c's %d-byte header; it is not a llama2.c model.bin", size, llama2cHeader), false)
	}
	var h [llama2cHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	if binary.LittleEndian.Uint32(h[:]) == llama2cMagic {
		return decodeLlama2CV1(r, size, h[:], headerOnly)
	}
	var f [7]int32
	for i := range f {
		f[i] = int32(binary.LittleEndian.Uint32(h[4*i:]))
	}
	c, err := llama2cConfig(f, true, 0)
	if err != nil {
		return nil, l2FormatError(err, false)
	}
	// CheckShape bounds the parameter count, so this arithmetic cannot
	// overflow, and the size is checked before anything is allocated.
	table := int64(c.Seq) * int64(c.HeadDim) // both RoPE tables
	n := int64(c.NumParams())
	if err := checkSize(size, llama2cHeader+4*(n+table), c, 0); err != nil {
		return nil, l2FormatError(err, true)
	}
	if headerOnly {
		return nil, nil
	}
	p, err := model.NewParams(c)
	if err != nil {
		return nil, err
	}
	shared := len(p.Data)
	if !c.Tied {
		shared -= c.Vocab * c.Dim
	}
	buf := make([]byte, 1<<16)
	if err := readFloats(r, p.Data[:shared], buf); err != nil {
		return nil, err
	}
	rt := make([]float32, table)
	if err := readFloats(r, rt, buf); err != nil {
		return nil, err
	}
	for i, x := range rt {
		if !(math.Abs(float64(x)) <= 1+1e-5) {
			return nil, l2FormatError(fmt.Errorf("the RoPE table after the final norm holds %v at element %d, which no cosine or sine can be: "+
				"the header does not match the contents (is this a llama2.c version-0 model.bin?)", x, i), true)
		}
	}
	if err := readFloats(r, p.Data[shared:], buf); err != nil {
		return nil, err
	}
	return p, checkFinite(p, false)
}

// llama2cConfig turns the 7 header integers into a resolved config. A
// negative vocab_size (version 0 only) means an untied classifier.
func llama2cConfig(f [7]int32, negVocab bool, version int) (model.Config, error) {
	names := [7]string{"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"}
	for i, v := range f {
		if v == 0 || (v < 0 && (i != 5 || !negVocab)) || v == math.MinInt32 {
			return model.Config{}, fmt.Errorf("the header's %s is %d; it is not a llama2.c version-%d model.bin (or it is corrupt)", names[i], v, version)
		}
	}
	c := model.Config{Dim: int(f[0]), Hidden: int(f[1]), Layers: int(f[2]), Heads: int(f[3]), KVHeads: int(f[4]),
		Vocab: int(f[5]), Seq: int(f[6]), Tied: f[5] > 0, RopeTheta: model.DefaultRopeTheta, NormEps: model.DefaultNormEps}
	if c.Vocab < 0 {
		c.Vocab = -c.Vocab
	}
	if c.Dim%c.Heads != 0 {
		return model.Config{}, fmt.Errorf("the header's n_heads (%d) does not divide dim (%d); it is not a llama2.c model.bin", c.Heads, c.Dim)
	}
	if err := c.CheckShape(); err != nil {
		return model.Config{}, fmt.Errorf("the header describes an invalid model: %w", err)
	}
	return c.Resolved(), nil
}

// checkSize compares a file's size with the size its header implies.
func checkSize(size, want int64, c model.Config, version int) error {
	if size == want {
		return nil
	}
	hint := "the file is truncated or its header is wrong"
	if size > want {
		hint = fmt.Sprintf("the file has extra bytes: its header is wrong, or it is not a version-%d model.bin", version)
	}
	return fmt.Errorf("the file is %d bytes but its header (%v) implies %d bytes for a llama2.c version-%d model; %s",
		size, c, want, version, hint)
}

// checkFinite refuses NaN and infinite weights, naming the tensor (by its
// Hugging Face name when hf is set, as checkpoints and HF files store them).
func checkFinite(p *model.Params, hf bool) error {
	for _, t := range p.Tensors {
		name := t.Name
		if hf {
			name = t.HFName()
		}
		if err := finite(name, p.Data[t.Offset:t.Offset+t.Size]); err != nil {
			return err
		}
	}
	return nil
}

// llama2cV1Order is the order of the float arrays of a version-1 file, by
// kind. Every kind's tensors (all layers of a per-layer kind) are one
// contiguous range of the flat buffer, so each is one copy.
var llama2cV1Order = []model.Kind{model.AttnNorm, model.FFNNorm, model.FinalNorm, model.Embed,
	model.Wq, model.Wk, model.Wv, model.Wo, model.W1, model.W2, model.W3, model.Classifier}

// kindRange is the flat-buffer range of all tensors of kind k, or nil for
// a tied classifier.
func kindRange(c model.Config, data []float32, k model.Kind) []float32 {
	layer := -1
	n := c.Size(k)
	if k.PerLayer() {
		layer = 0
		n *= c.Layers
	}
	off := c.Offset(k, layer)
	if off < 0 {
		return nil
	}
	return data[off : off+n]
}

// decodeLlama2CV1 reads the rest of a file that starts with llama2.c's
// magic; first holds its first llama2cHeader bytes.
func decodeLlama2CV1(r io.Reader, size int64, first []byte, headerOnly bool) (*model.Params, error) {
	version := int32(binary.LittleEndian.Uint32(first[4:]))
	switch version {
	case 1:
	case 2:
		return nil, errors.New("this is a llama2.c version-2 export (int8-quantized Q8_0, for runq.c), which anetop does not import: " +
			"export the float weights instead with llama2.c's `python export.py --version 1 out.bin --checkpoint ckpt.pt` " +
			"(or --version 0, which run.c reads too)")
	default:
		return nil, fmt.Errorf("the file starts with llama2.c's magic \"ak42\" but says it is version %d; anetop reads versions 0 and 1 "+
			"(export the float weights with llama2.c's `python export.py --version 1 …`)", version)
	}
	if size < llama2cV1Header {
		return nil, fmt.Errorf("the file is %d bytes, shorter than the %d-byte header of a llama2.c version-1 model.bin: it is truncated", size, llama2cV1Header)
	}
	h := make([]byte, llama2cV1Header)
	copy(h, first)
	if _, err := io.ReadFull(r, h[len(first):]); err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	var f [7]int32
	for i := range f {
		f[i] = int32(binary.LittleEndian.Uint32(h[8+4*i:]))
	}
	shared := h[36]
	if shared > 1 {
		return nil, fmt.Errorf("the header's shared_classifier byte is %d; it must be 0 or 1 (the file is corrupt)", shared)
	}
	// vocab_size is positive in version 1, but export.py negates it in
	// place when it writes an untied model as version 0, so a later export
	// from the same process carries the sign; the flag byte decides.
	c, err := llama2cConfig(f, true, 1)
	if err != nil {
		return nil, err
	}
	c.Tied = shared == 1
	if err := checkSize(size, llama2cV1Header+4*int64(c.NumParams()), c, 1); err != nil {
		return nil, err
	}
	if headerOnly {
		return nil, nil
	}
	p, err := model.NewParams(c)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<16)
	for _, k := range llama2cV1Order {
		if err := readFloats(r, kindRange(c, p.Data, k), buf); err != nil {
			return nil, err
		}
	}
	return p, checkFinite(p, false)
}

func readFloats(r io.Reader, dst []float32, buf []byte) error {
	for len(dst) > 0 {
		n := min(len(dst), len(buf)/4)
		if _, err := io.ReadFull(r, buf[:4*n]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading the weights: %w", err)
		}
		for i := range n {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		dst = dst[n:]
	}
	return nil
}

// Llama2CCompatible reports why c cannot be stored in a legacy model.bin, or
// nil: the format has no fields for the head width, RoPE base or norm
// epsilon (run.c hard-codes dim/n_heads, 10000 and 1e-5).
func Llama2CCompatible(c model.Config) error {
	c = c.Resolved()
	switch {
	case c.HeadDim != c.Dim/c.Heads || c.Dim%c.Heads != 0:
		return fmt.Errorf("llama2.c's model.bin has no head-width field (run.c uses dim/n_heads = %d); this model's HeadDim is %d", c.Dim/c.Heads, c.HeadDim)
	case c.RopeTheta != model.DefaultRopeTheta:
		return fmt.Errorf("llama2.c's model.bin has no RoPE-base field (run.c uses %d); this model's RopeTheta is %g", model.DefaultRopeTheta, c.RopeTheta)
	case c.NormEps != model.DefaultNormEps:
		return fmt.Errorf("llama2.c's model.bin has no norm-epsilon field (run.c uses %g); this model's NormEps is %g", model.DefaultNormEps, c.NormEps)
	}
	return nil
}

// EncodeLlama2C writes p as a legacy (version 0) model.bin: what llama2.c's
// export.py --version 0 writes, RoPE tables included, so run.c can run it.
func EncodeLlama2C(w io.Writer, p *model.Params) error {
	return EncodeLlama2CVersion(w, p, 0)
}

// EncodeLlama2CVersion writes p as a model.bin of the given version: 0, the
// legacy format run.c reads (see EncodeLlama2C), or 1, export.py --version
// 1's float format with a 256-byte header.
func EncodeLlama2CVersion(w io.Writer, p *model.Params, version int) error {
	if version != 0 && version != 1 {
		return fmt.Errorf("write llama2.c model: version %d; anetop writes versions 0 (run.c's) and 1", version)
	}
	c := p.Config.Resolved()
	if err := c.CheckShape(); err != nil {
		return err
	}
	if err := Llama2CCompatible(c); err != nil {
		return err
	}
	if len(p.Data) != c.NumParams() {
		return fmt.Errorf("write llama2.c model: %d weights for a model of %d parameters", len(p.Data), c.NumParams())
	}
	dims := []int32{int32(c.Dim), int32(c.Hidden), int32(c.Layers), int32(c.Heads), int32(c.KVHeads), int32(c.Vocab), int32(c.Seq)}
	buf := make([]byte, 1<<16)
	if version == 1 {
		h := make([]byte, llama2cV1Header)
		binary.LittleEndian.PutUint32(h, llama2cMagic)
		binary.LittleEndian.PutUint32(h[4:], 1)
		for i, v := range dims {
			binary.LittleEndian.PutUint32(h[8+4*i:], uint32(v))
		}
		if c.Tied {
			h[36] = 1
		}
		if _, err := w.Write(h); err != nil {
			return err
		}
		for _, k := range llama2cV1Order {
			if err := writeFloats(w, kindRange(c, p.Data, k), buf); err != nil {
				return err
			}
		}
		return nil
	}
	if !c.Tied {
		dims[5] = -dims[5]
	}
	var h [llama2cHeader]byte
	for i, v := range dims {
		binary.LittleEndian.PutUint32(h[4*i:], uint32(v))
	}
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	shared := len(p.Data)
	if !c.Tied {
		shared -= c.Vocab * c.Dim
	}
	if err := writeFloats(w, p.Data[:shared], buf); err != nil {
		return err
	}
	// export.py's tables: [seq, head_size/2], cos then sin, of
	// pos·θ^(−2j/head_size).
	half := c.HeadDim / 2
	cos, sin := make([]float32, c.Seq*half), make([]float32, c.Seq*half)
	for t := range c.Seq {
		for j := range half {
			a := float64(t) * math.Pow(c.RopeTheta, -2*float64(j)/float64(c.HeadDim))
			cos[t*half+j], sin[t*half+j] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	if err := writeFloats(w, cos, buf); err != nil {
		return err
	}
	if err := writeFloats(w, sin, buf); err != nil {
		return err
	}
	return writeFloats(w, p.Data[shared:], buf)
}

func writeFloats(w io.Writer, src []float32, buf []byte) error {
	for len(src) > 0 {
		n := min(len(src), len(buf)/4)
		for i := range n {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(src[i]))
		}
		if _, err := w.Write(buf[:4*n]); err != nil {
			return err
		}
		src = src[n:]
	}
	return nil
}

// WriteLlama2C writes p to path as a legacy (version 0) model.bin,
// crash-safely: to a temporary file in the same directory, synced, then
// renamed over path, and the directory synced, so path holds either the old
// file or the complete new one.
func WriteLlama2C(path string, p *model.Params) error {
	return WriteLlama2CVersion(path, p, 0)
}

// WriteLlama2CVersion is WriteLlama2C for a given format version, 0 or 1
// (see EncodeLlama2CVersion).
func WriteLlama2CVersion(path string, p *model.Params, version int) error {
	if version != 0 && version != 1 {
		return fmt.Errorf("write llama2.c model %s: version %d; anetop writes versions 0 (run.c's) and 1", path, version)
	}
	if err := Llama2CCompatible(p.Config); err != nil {
		return fmt.Errorf("write llama2.c model %s: %w", path, err)
	}
	err := writeAtomic(path, func(w io.Writer) error { return EncodeLlama2CVersion(w, p, version) })
	if err != nil {
		return fmt.Errorf("write llama2.c model: %w", err)
	}
	return nil
}
