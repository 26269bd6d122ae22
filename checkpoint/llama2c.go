package checkpoint

// This file reads and writes llama2.c's model.bin, for interchange with
// llama2.c, PyTorch and the published TinyStories models.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/anetop/anetop/model"
)

// llama2cMagic is the first uint32 of llama2.c's version-1 and version-2
// exports ("ak42"); legacy version-0 files start with dim instead.
const llama2cMagic = 0x616b3432

// llama2cHeader is the legacy header: 7 int32.
const llama2cHeader = 28

// ReadLlama2C reads a llama2.c legacy (version 0) model.bin, the format of
// run.c and of the published stories15M/42M/110M files: a header of 7 int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
// negative vocab_size means an untied classifier is stored last), then
// float32 arrays in llama2.c's order, which is model.Config.Tensors' order
// with the two RoPE tables (seq_len × head_size/2 each, unused: the model
// computes its own) between the final norm and the classifier. RopeTheta and
// NormEps are llama2.c's hard-coded 10000 and 1e-5.
//
// The file must be exactly the size its header implies, every weight finite
// and the RoPE tables within [−1, 1]; anything else is refused with an error
// naming the file and what to do.
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
	p, err := DecodeLlama2C(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("read llama2.c model %s: %w", path, err)
	}
	return p, nil
}

// DecodeLlama2C reads a legacy model.bin of size bytes from r (see
// ReadLlama2C). The size is checked against the header before anything is
// allocated.
func DecodeLlama2C(r io.Reader, size int64) (*model.Params, error) {
	if size < llama2cHeader {
		return nil, fmt.Errorf("the file is %d bytes, shorter than llama2.c's %d-byte header; it is not a llama2.c model.bin", size, llama2cHeader)
	}
	var h [llama2cHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	var f [7]int32
	for i := range f {
		f[i] = int32(binary.LittleEndian.Uint32(h[4*i:]))
	}
	if uint32(f[0]) == llama2cMagic {
		return nil, fmt.Errorf("this is a llama2.c version-%d export (export.py --version %d); anetop reads the legacy "+
			"version-0 format: re-export with llama2.c's `python export.py --version 0 …`", f[1], f[1])
	}
	names := [7]string{"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"}
	for i, v := range f {
		if v == 0 || (v < 0 && i != 5) || v == math.MinInt32 {
			return nil, fmt.Errorf("the header's %s is %d; it is not a llama2.c version-0 model.bin (or it is corrupt)", names[i], v)
		}
	}
	c := model.Config{Dim: int(f[0]), Hidden: int(f[1]), Layers: int(f[2]), Heads: int(f[3]), KVHeads: int(f[4]),
		Vocab: int(f[5]), Seq: int(f[6]), Tied: f[5] > 0, RopeTheta: model.DefaultRopeTheta, NormEps: model.DefaultNormEps}
	if c.Vocab < 0 {
		c.Vocab = -c.Vocab
	}
	if c.Heads > 0 && c.Dim%c.Heads != 0 {
		return nil, fmt.Errorf("the header's n_heads (%d) does not divide dim (%d); it is not a llama2.c model.bin", c.Heads, c.Dim)
	}
	if err := c.CheckShape(); err != nil {
		return nil, fmt.Errorf("the header describes an invalid model: %w", err)
	}
	c = c.Resolved()
	// CheckShape bounds the parameter count, so this arithmetic cannot
	// overflow, and the size is checked before anything is allocated.
	table := int64(c.Seq) * int64(c.HeadDim) // both RoPE tables
	n := int64(c.NumParams())
	want := llama2cHeader + 4*(n+table)
	if size != want {
		hint := "the file is truncated or its header is wrong"
		if size > want {
			hint = "the file has extra bytes: its header is wrong, or it is not a version-0 model.bin"
		}
		return nil, fmt.Errorf("the file is %d bytes but its header (%v) implies %d bytes for a llama2.c version-0 model; %s",
			size, c, want, hint)
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
			return nil, fmt.Errorf("the RoPE table after the final norm holds %v at element %d, which no cosine or sine can be: "+
				"the header does not match the contents (is this a llama2.c version-0 model.bin?)", x, i)
		}
	}
	if err := readFloats(r, p.Data[shared:], buf); err != nil {
		return nil, err
	}
	for _, t := range p.Tensors {
		for i, x := range p.Data[t.Offset : t.Offset+t.Size] {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("tensor %s element %d is %v; the weights are corrupt (a diverged run?)", t.Name, i, x)
			}
		}
	}
	return p, nil
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
	vocab := int32(c.Vocab)
	if !c.Tied {
		vocab = -vocab
	}
	var h [llama2cHeader]byte
	for i, v := range []int32{int32(c.Dim), int32(c.Hidden), int32(c.Layers), int32(c.Heads), int32(c.KVHeads), vocab, int32(c.Seq)} {
		binary.LittleEndian.PutUint32(h[4*i:], uint32(v))
	}
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	shared := len(p.Data)
	if !c.Tied {
		shared -= c.Vocab * c.Dim
	}
	buf := make([]byte, 1<<16)
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

// WriteLlama2C writes p to path as a legacy model.bin, crash-safely: to a
// temporary file in the same directory, synced, then renamed over path, so
// path holds either the old file or the complete new one.
func WriteLlama2C(path string, p *model.Params) (err error) {
	if err := Llama2CCompatible(p.Config); err != nil {
		return fmt.Errorf("write llama2.c model %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write llama2.c model: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write llama2.c model %s: %w", path, err)
		}
	}()
	if err = EncodeLlama2C(f, p); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync() // best effort: make the rename itself durable
		d.Close()
	}
	return nil
}
