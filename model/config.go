package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// MaxAxis is the largest size of a tensor axis the ANE is reported to accept
// (ane-anchor §8.20), the cap the emulator enforces as sim.MaxAxis. The
// channel axis of a rank-4 tensor is exempt there (32000-channel kernels
// run), so the kernels put their long dimensions on the channel axis; every
// other axis of every kernel tensor must stay within this cap. A test checks
// that the two constants agree (model does not import the emulator).
const MaxAxis = 16384

// SeqAlign is the multiple the sequence length must be. Seq is the row length
// (spatial axis) of every output surface and of every activation block, and
// the inner dimension of the attention's P·V matmul and of the backward
// matmuls (dV, dK, dQ). The reference only ever ran rows that are multiples
// of 64 bytes (32 fp16), M5 reportedly wants 128-byte aligned surfaces, and
// on M1 a matmul whose inner dimension is not a multiple of 32 silently
// returns zeros (ane-anchor §1.5, §8.20, its issue #47). 32 satisfies all
// three for the sequence axis.
const SeqAlign = 32

// Defaults of llama2.c, which hard-codes them (no file stores them).
const (
	DefaultRopeTheta = 10000
	DefaultNormEps   = 1e-5
)

// Config is the shape of a llama2.c Llama: RMSNorm, RoPE on adjacent pairs,
// SwiGLU, no biases, plain residuals, a classifier tied to the embedding or
// not. Zero KVHeads, HeadDim, RopeTheta and NormEps mean their defaults
// (Heads, Dim/Heads, 10000, 1e-5); Resolved fills them in.
type Config struct {
	Dim       int     // model width D
	Hidden    int     // FFN inner width H (rows of w1 and w3)
	Layers    int     // transformer blocks L
	Heads     int     // query heads
	KVHeads   int     // key/value heads (GQA when fewer than Heads); 0 means Heads
	HeadDim   int     // per-head width; 0 means Dim/Heads
	Seq       int     // sequence length S of a training window
	Vocab     int     // vocabulary size V
	RopeTheta float64 // RoPE base; 0 means 10000
	NormEps   float64 // RMSNorm epsilon; 0 means 1e-5
	Tied      bool    // the classifier is the token embedding (llama2.c's default)
}

// Resolved returns c with its defaults filled in. Every function of the
// package resolves the config it is given, so callers need not.
func (c Config) Resolved() Config {
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Dim / c.Heads
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = DefaultRopeTheta
	}
	if c.NormEps == 0 {
		c.NormEps = DefaultNormEps
	}
	return c
}

// QDim is the width of the queries, Heads·HeadDim.
func (c Config) QDim() int { c = c.Resolved(); return c.Heads * c.HeadDim }

// KVDim is the width of the keys and of the values, KVHeads·HeadDim.
func (c Config) KVDim() int { c = c.Resolved(); return c.KVHeads * c.HeadDim }

// Group is the number of query heads sharing one key/value head,
// Heads/KVHeads: query head h reads key/value head h/Group (llama2.c's and
// Hugging Face's mapping).
func (c Config) Group() int {
	c = c.Resolved()
	if c.KVHeads <= 0 {
		return 0
	}
	return c.Heads / c.KVHeads
}

func (c Config) String() string {
	r := c.Resolved()
	s := fmt.Sprintf("dim %d, hidden %d, %d layers, %d heads", r.Dim, r.Hidden, r.Layers, r.Heads)
	if r.KVHeads != r.Heads {
		s += fmt.Sprintf(" (%d kv)", r.KVHeads)
	}
	if r.Heads > 0 && r.HeadDim != r.Dim/r.Heads {
		s += fmt.Sprintf(", head dim %d", r.HeadDim)
	}
	s += fmt.Sprintf(", seq %d, vocab %d", r.Seq, r.Vocab)
	if !r.Tied {
		s += ", untied classifier"
	}
	return s
}

// MaxParams bounds the parameter count of a config (a trillion: far beyond
// what the ANE could train, and small enough that sizes never overflow).
const MaxParams = 1 << 40

// maxDim bounds every size before any product is formed, so that shape
// arithmetic cannot overflow on absurd input (a file header, a flag).
const maxDim = 1 << 24

// CheckShape reports whether c describes a well-formed model, whatever the
// device: positive sizes, heads dividing the width, key/value heads dividing
// the query heads, an even head width (RoPE rotates pairs). The float64
// reference and file readers use it; training on a device needs Validate.
func (c Config) CheckShape() error {
	derived := c.HeadDim == 0
	c = c.Resolved()
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	for _, f := range []struct {
		name string
		v    int
	}{{"Dim", c.Dim}, {"Hidden", c.Hidden}, {"Layers", c.Layers}, {"Heads", c.Heads},
		{"KVHeads", c.KVHeads}, {"HeadDim", c.HeadDim}, {"Seq", c.Seq}, {"Vocab", c.Vocab}} {
		switch {
		case f.name == "HeadDim" && derived:
			// Dim/Heads: a bad Dim or Heads is reported below or above.
		case f.v <= 0:
			bad("%s is %d; it must be positive", f.name, f.v)
		case f.v > maxDim:
			bad("%s is %d; it must be at most %d", f.name, f.v, maxDim)
		}
	}
	if len(errs) > 0 {
		return configError(errs)
	}
	// In float64, so that absurd sizes cannot overflow int arithmetic.
	d, q, kv := float64(c.Dim), float64(c.Heads*c.HeadDim), float64(c.KVHeads*c.HeadDim)
	if n := 2*float64(c.Vocab)*d + float64(c.Layers)*(2*d+2*q*d+2*kv*d+3*float64(c.Hidden)*d); n > MaxParams {
		bad("the model has about %.3g parameters, more than the %.3g anetop can hold", n, float64(MaxParams))
		return configError(errs)
	}
	if derived && (c.Dim%c.Heads != 0 || c.HeadDim == 0) {
		bad("Heads (%d) must divide Dim (%d), or set HeadDim explicitly", c.Heads, c.Dim)
	}
	if c.KVHeads > c.Heads || c.Heads%c.KVHeads != 0 {
		bad("KVHeads (%d) must divide Heads (%d): each key/value head serves a whole group of query heads", c.KVHeads, c.Heads)
	}
	if c.HeadDim%2 != 0 {
		bad("HeadDim is %d; it must be even, because RoPE rotates adjacent pairs", c.HeadDim)
	}
	if c.Vocab < 2 {
		bad("Vocab is %d; a language model needs at least 2 tokens", c.Vocab)
	}
	if !(c.RopeTheta > 1) || math.IsInf(c.RopeTheta, 0) {
		bad("RopeTheta is %v; it must be a finite number above 1 (llama2.c uses 10000)", c.RopeTheta)
	}
	if !(c.NormEps > 0) || c.NormEps > 1 {
		bad("NormEps is %v; it must be in (0, 1] (llama2.c uses 1e-5)", c.NormEps)
	}
	if len(errs) > 0 {
		return configError(errs)
	}
	return nil
}

// Validate reports whether c can be trained on the device: CheckShape, and
// the hardware's limits on the kernels' actual tensors. The sequence length
// must be a multiple of SeqAlign, and every axis of every kernel tensor
// except the channel axis must be at most MaxAxis: the packed width of each
// input surface, Seq, the matrix sides Dim, Hidden, QDim and KVDim (a weight
// block becomes a [1, 1, rows, cols] matmul operand), and Group·Seq (the
// attention stacks the query heads of a group along the rows). The error
// names every bad field and the limit it breaks.
func (c Config) Validate() error {
	if err := c.CheckShape(); err != nil {
		return err
	}
	c = c.Resolved()
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if c.Seq%SeqAlign != 0 {
		bad("Seq is %d; it must be a multiple of %d: it is the row length of the kernels' fp16 surfaces "+
			"and the inner dimension of the attention matmuls, which the ANE wants in multiples of %d (64 bytes)",
			c.Seq, SeqAlign, SeqAlign)
	}
	for _, f := range []struct {
		name string
		v    int
		why  string
	}{
		{"Seq", c.Seq, "the spatial axis of every kernel tensor"},
		{"Dim", c.Dim, "a row count of the weight blocks"},
		{"Hidden", c.Hidden, "a row count of the FFN weight blocks"},
		{"QDim (Heads·HeadDim)", c.QDim(), "a row count of the attention weight blocks"},
		{"KVDim (KVHeads·HeadDim)", c.KVDim(), "a row count of the key/value weight blocks"},
		{"Group·Seq (Heads/KVHeads·Seq)", c.Group() * c.Seq, "the rows of a key/value group's attention scores"},
	} {
		if f.v > MaxAxis {
			bad("%s is %d, more than the ANE's %d elements per axis (%s)", f.name, f.v, MaxAxis, f.why)
		}
	}
	if len(errs) > 0 {
		return configError(errs)
	}
	l := newLayout(c)
	for _, s := range []struct {
		p     *Packing
		grows string
	}{{&l.Attn.Packing, "min(Dim, QDim) and min(Dim, KVDim)"}, {&l.FFN.Packing, "min(Dim, Hidden)"}} {
		if s.p.Width > MaxAxis {
			bad("the %s surface packs %d columns (activations and weights side by side), more than the ANE's %d "+
				"elements per axis; its width grows with Seq and %s, so reduce those "+
				"(splitting a kernel's weights into tiles is not implemented)", s.p.Name, s.p.Width, MaxAxis, s.grows)
		}
	}
	if len(errs) > 0 {
		return configError(errs)
	}
	return nil
}

func configError(errs []string) error {
	return errors.New("model config: " + strings.Join(errs, "; "))
}

// Presets are the named configurations, by name. Tiny is the default.
var presets = map[string]Config{
	// tiny trains visibly in about a minute on two CPU cores on the emulator
	// with the small built-in data: 0.71M parameters, a 512-token vocabulary
	// (a small BPE, as llama2.c's tok512). BenchmarkStepEstimate (the four
	// kernels per layer plus the classifier and dW sgemms, nothing
	// overlapped) measured 33–41 ms a step on two shared cores: about 1500
	// to 1800 steps, 200k tokens, a minute. Head width 32 keeps the
	// attention matmuls' inner dimension a multiple of 32.
	"tiny": {Dim: 128, Hidden: 384, Layers: 3, Heads: 4, KVHeads: 4, Seq: 128, Vocab: 512, Tied: true},
	// llama2.c's TinyStories models (karpathy/llama2.c README). stories42m and
	// stories110m were trained with seq 1024 in llama2.c; the presets use 256,
	// the reference project's training window. Loading their model.bin keeps
	// the file's seq_len.
	"stories15m":  {Dim: 288, Hidden: 768, Layers: 6, Heads: 6, KVHeads: 6, Seq: 256, Vocab: 32000, Tied: true},
	"stories42m":  {Dim: 512, Hidden: 1376, Layers: 8, Heads: 8, KVHeads: 8, Seq: 256, Vocab: 32000, Tied: true},
	"stories110m": {Dim: 768, Hidden: 2048, Layers: 12, Heads: 12, KVHeads: 12, Seq: 256, Vocab: 32000, Tied: true},
	// qwen3-0.6b-shape has Qwen3-0.6B's shape and hyper-parameters (GQA 16/8,
	// head dim 128 ≠ dim/heads, θ 1e6, eps 1e-6, tied) but is llama2.c's
	// architecture: no per-head q/k RMSNorm and RoPE on adjacent pairs rather
	// than Hugging Face's halves. It cannot load Qwen3's weights.
	"qwen3-0.6b-shape": {Dim: 1024, Hidden: 3072, Layers: 28, Heads: 16, KVHeads: 8, HeadDim: 128, Seq: 256,
		Vocab: 151936, RopeTheta: 1e6, NormEps: 1e-6, Tied: true},
}

// DefaultPreset is the preset used when none is named.
const DefaultPreset = "tiny"

// Preset returns the named configuration, resolved.
func Preset(name string) (Config, error) {
	c, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown model preset %q; choose one of %s", name, strings.Join(PresetNames(), ", "))
	}
	return c.Resolved(), nil
}

// PresetNames lists the presets, the default first.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		if n != DefaultPreset {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return append([]string{DefaultPreset}, names...)
}
