package model

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Kind is what a parameter tensor is.
type Kind int

// The parameter kinds, in llama2.c's file order (the classifier, present only
// when untied, comes last).
const (
	Embed      Kind = iota // token embedding [Vocab, Dim]
	AttnNorm               // attention RMSNorm gain [Dim]
	Wq                     // [QDim, Dim]
	Wk                     // [KVDim, Dim]
	Wv                     // [KVDim, Dim]
	Wo                     // [Dim, QDim]
	FFNNorm                // FFN RMSNorm gain [Dim]
	W1                     // gate [Hidden, Dim]
	W2                     // down [Dim, Hidden]
	W3                     // up [Hidden, Dim]
	FinalNorm              // final RMSNorm gain [Dim]
	Classifier             // [Vocab, Dim], untied models only
	numKinds
)

var kindNames = [numKinds]string{"embed", "attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3", "norm", "classifier"}

func (k Kind) String() string {
	if k >= 0 && k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// PerLayer reports whether every layer has a tensor of this kind.
func (k Kind) PerLayer() bool { return k >= AttnNorm && k <= W3 }

// Matrix reports whether the kind is a 2-D weight: the tensors AdamW decays
// (weight decay on matrices only, norms excluded) and the ones initialised
// randomly.
func (k Kind) Matrix() bool { return k != AttnNorm && k != FFNNorm && k != FinalNorm }

// Tensor is one parameter tensor inside a flat parameter buffer. Matrices are
// llama2.c's (and PyTorch nn.Linear's) [out, in], row-major.
type Tensor struct {
	Name   string // llama2.c's model.py name, e.g. "layers.0.attention.wq.weight"
	Kind   Kind
	Layer  int   // the layer, or -1
	Shape  []int // [out, in] or [n]
	Offset int   // of the first element in the flat buffer
	Size   int   // elements
}

// HFName is the Hugging Face Llama name of the tensor. Note that Hugging
// Face's RoPE rotates halves rather than adjacent pairs, so an export must
// permute the rows of wq and wk (llama2.c's export.py does); the name alone
// does not make the weights compatible.
func (t Tensor) HFName() string {
	l := fmt.Sprintf("model.layers.%d.", t.Layer)
	switch t.Kind {
	case Embed:
		return "model.embed_tokens.weight"
	case AttnNorm:
		return l + "input_layernorm.weight"
	case Wq:
		return l + "self_attn.q_proj.weight"
	case Wk:
		return l + "self_attn.k_proj.weight"
	case Wv:
		return l + "self_attn.v_proj.weight"
	case Wo:
		return l + "self_attn.o_proj.weight"
	case FFNNorm:
		return l + "post_attention_layernorm.weight"
	case W1:
		return l + "mlp.gate_proj.weight"
	case W2:
		return l + "mlp.down_proj.weight"
	case W3:
		return l + "mlp.up_proj.weight"
	case FinalNorm:
		return "model.norm.weight"
	case Classifier:
		return "lm_head.weight"
	}
	return t.Name
}

func tensorName(k Kind, layer int) string {
	l := fmt.Sprintf("layers.%d.", layer)
	switch k {
	case Embed:
		return "tok_embeddings.weight"
	case AttnNorm:
		return l + "attention_norm.weight"
	case Wq, Wk, Wv, Wo:
		return l + "attention." + k.String() + ".weight"
	case FFNNorm:
		return l + "ffn_norm.weight"
	case W1, W2, W3:
		return l + "feed_forward." + k.String() + ".weight"
	case FinalNorm:
		return "norm.weight"
	case Classifier:
		return "output.weight"
	}
	return k.String()
}

// Shape returns the shape of a tensor of kind k: [out, in] for matrices, [n]
// for norm gains.
func (c Config) Shape(k Kind) []int {
	r, cols := c.dims(k)
	if cols == 0 {
		return []int{r}
	}
	return []int{r, cols}
}

// dims is Shape without the allocation: rows and columns, columns 0 for a
// vector.
func (c Config) dims(k Kind) (rows, cols int) {
	c = c.Resolved()
	switch k {
	case Embed, Classifier:
		return c.Vocab, c.Dim
	case AttnNorm, FFNNorm, FinalNorm:
		return c.Dim, 0
	case Wq:
		return c.Heads * c.HeadDim, c.Dim
	case Wk, Wv:
		return c.KVHeads * c.HeadDim, c.Dim
	case Wo:
		return c.Dim, c.Heads * c.HeadDim
	case W1, W3:
		return c.Hidden, c.Dim
	case W2:
		return c.Dim, c.Hidden
	}
	return 0, 0
}

// Size is the number of elements of a tensor of kind k.
func (c Config) Size(k Kind) int {
	r, cols := c.dims(k)
	if cols == 0 {
		return r
	}
	return r * cols
}

// Tensors lists the parameters in llama2.c's legacy file order: the
// embedding, then each per-layer kind for all layers (all attention norms,
// all wq, …, all w3), the final norm, and the classifier when untied. The
// flat buffers (weights, gradients, Adam moments) use this order, so a
// llama2.c model.bin is read and written as one copy.
func (c Config) Tensors() []Tensor {
	c = c.Resolved()
	var ts []Tensor
	off := 0
	add := func(k Kind, layer int) {
		n := c.Size(k)
		ts = append(ts, Tensor{Name: tensorName(k, layer), Kind: k, Layer: layer, Shape: c.Shape(k), Offset: off, Size: n})
		off += n
	}
	add(Embed, -1)
	for k := AttnNorm; k <= W3; k++ {
		for l := range c.Layers {
			add(k, l)
		}
	}
	add(FinalNorm, -1)
	if !c.Tied {
		add(Classifier, -1)
	}
	return ts
}

// NumParams is the number of parameters (the tied classifier counted once).
func (c Config) NumParams() int {
	c = c.Resolved()
	d, q, kv := c.Dim, c.QDim(), c.KVDim()
	perLayer := 2*d + 2*q*d + 2*kv*d + 3*c.Hidden*d
	n := c.Vocab*d + c.Layers*perLayer + d
	if !c.Tied {
		n += c.Vocab * d
	}
	return n
}

// Offset returns the offset of tensor (k, layer) in a flat buffer; layer is
// ignored for kinds that are not per layer. It is -1 for an untied
// classifier's absence.
func (c Config) Offset(k Kind, layer int) int {
	c = c.Resolved()
	if k == Embed {
		return 0
	}
	off := c.Size(Embed)
	for kk := AttnNorm; kk <= W3; kk++ {
		if kk == k {
			return off + layer*c.Size(kk)
		}
		off += c.Layers * c.Size(kk)
	}
	if k == FinalNorm {
		return off
	}
	off += c.Size(FinalNorm)
	if k == Classifier && !c.Tied {
		return off
	}
	return -1
}

// LayerOf is one layer's tensors as slices of a flat buffer (weights,
// gradients or moments; float32 on the engine side, float64 in the
// reference).
type LayerOf[T any] struct {
	AttnNorm, Wq, Wk, Wv, Wo, FFNNorm, W1, W2, W3 []T
}

// Layer returns layer l's tensors within data, a flat buffer in the order of
// c.Tensors.
func Layer[T any](c Config, data []T, l int) LayerOf[T] {
	c = c.Resolved()
	t := func(k Kind) []T {
		off, n := c.Offset(k, l), c.Size(k)
		return data[off : off+n : off+n]
	}
	return LayerOf[T]{AttnNorm: t(AttnNorm), Wq: t(Wq), Wk: t(Wk), Wv: t(Wv), Wo: t(Wo),
		FFNNorm: t(FFNNorm), W1: t(W1), W2: t(W2), W3: t(W3)}
}

// Slice returns tensor (k, layer) within data.
func Slice[T any](c Config, data []T, k Kind, layer int) []T {
	off := c.Offset(k, layer)
	if off < 0 {
		return nil
	}
	n := c.Size(k)
	return data[off : off+n : off+n]
}

// Params is a model's fp32 master weights, one flat buffer in the order of
// Config.Tensors. Gradients and Adam's moments use the same layout.
type Params struct {
	Config  Config // resolved
	Tensors []Tensor
	Data    []float32
}

// NewParams returns zeroed parameters for c, which must pass CheckShape.
func NewParams(c Config) (*Params, error) {
	if err := c.CheckShape(); err != nil {
		return nil, err
	}
	c = c.Resolved()
	return &Params{Config: c, Tensors: c.Tensors(), Data: make([]float32, c.NumParams())}, nil
}

// Layer returns layer l's tensors.
func (p *Params) Layer(l int) LayerOf[float32] { return Layer(p.Config, p.Data, l) }

// Embed is the token embedding [Vocab, Dim].
func (p *Params) Embed() []float32 { return Slice(p.Config, p.Data, Embed, -1) }

// FinalNorm is the final RMSNorm gain [Dim].
func (p *Params) FinalNorm() []float32 { return Slice(p.Config, p.Data, FinalNorm, -1) }

// Classifier is the classifier [Vocab, Dim]: the embedding when tied.
func (p *Params) Classifier() []float32 {
	if p.Config.Tied {
		return p.Embed()
	}
	return Slice(p.Config, p.Data, Classifier, -1)
}

// Tensor returns the named tensor's data (llama2.c or Hugging Face name), or
// nil.
func (p *Params) Tensor(name string) []float32 {
	for _, t := range p.Tensors {
		if t.Name == name || t.HFName() == name {
			return p.Data[t.Offset : t.Offset+t.Size : t.Offset+t.Size]
		}
	}
	return nil
}

// InitStd is the standard deviation of the initial matrices (GPT-2's and
// llama2.c's 0.02).
const InitStd = 0.02

// Init fills the parameters from a seeded generator: every matrix normal
// with std InitStd, wo and w2 (the projections that write into the residual
// stream) with InitStd/√(2·Layers), norm gains 1. The scaled residual
// projections keep the stream's variance from growing with depth, which is
// how llama2.c and GPT-2 train deep stacks with plain residuals (the
// reference project's 1/√(2L) residual scaling is not used: it would change
// what the weights mean). Tensors are drawn in file order, so the same seed
// gives the same model on every machine.
func (p *Params) Init(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x616e65746f70)) // "anetop"
	scaled := InitStd / math.Sqrt(2*float64(p.Config.Layers))
	for _, t := range p.Tensors {
		d := p.Data[t.Offset : t.Offset+t.Size]
		switch {
		case !t.Kind.Matrix():
			for i := range d {
				d[i] = 1
			}
		default:
			std := InitStd
			if t.Kind == Wo || t.Kind == W2 {
				std = scaled
			}
			for i := range d {
				d[i] = float32(rng.NormFloat64() * std)
			}
		}
	}
}
