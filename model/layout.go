package model

import (
	"fmt"

	"github.com/anetop/anetop/mil"
)

// NoWeight marks a Block that holds activations.
const NoWeight Kind = -1

// Block is a rectangle of a kernel surface: rows are channels, columns are
// the spatial (last) axis, as ane.Surface's WriteBlock and ReadBlock address
// them. Activation blocks are Seq columns wide and hold a channel-first
// [C, Seq] tensor. A weight block holds a weight either as llama2.c stores it
// ([out, in]) or transposed ([in, out]); Transposed says which.
type Block struct {
	Name       string
	Row, Col   int
	Rows, Cols int
	Weight     Kind // the parameter in a weight block; NoWeight for activations
	Transposed bool // the block holds Wᵀ, [in, out]
}

// Size is the number of elements, Rows·Cols.
func (b Block) Size() int { return b.Rows * b.Cols }

func (b Block) String() string {
	s := fmt.Sprintf("%s rows [%d,%d) cols [%d,%d)", b.Name, b.Row, b.Row+b.Rows, b.Col, b.Col+b.Cols)
	if b.Transposed {
		s += " transposed"
	}
	return s
}

// Packing is the geometry of one kernel surface, [1, Channels, 1, Width]
// fp16, and the blocks it is made of.
type Packing struct {
	Name     string
	Channels int
	Width    int
	Blocks   []Block
}

// Shape is the surface's tensor shape.
func (p *Packing) Shape() mil.Shape { return mil.Shape{1, p.Channels, 1, p.Width} }

// Block returns the named block.
func (p *Packing) Block(name string) (Block, bool) {
	for _, b := range p.Blocks {
		if b.Name == name {
			return b, true
		}
	}
	return Block{}, false
}

// AttnIn is the attention surface of a layer, the single input of both
// attention kernels: AttnFwd reads X and the weights, AttnBwd reads DO, the
// taps Q, K, V and the weights. The engine keeps one per layer with the
// weights staged once per optimizer update, so the forward and the backward
// share one fp16 copy of the weights.
type AttnIn struct {
	Packing
	X  Block // RMSNorm(x) [Dim, Seq]: AttnFwd's input
	DO Block // ∂loss/∂o [Dim, Seq], o the attention's output projection: AttnBwd's input
	Q  Block // q after RoPE [QDim, Seq]: AttnFwd's tap, copied in for AttnBwd
	K  Block // k after RoPE [KVDim, Seq]: likewise
	V  Block // v [KVDim, Seq]: likewise

	// The layer's weights, [out, in] or transposed (Block.Transposed).
	Wq, Wk, Wv, Wo Block
}

// FFNIn is the FFN surface of a layer, the single input of both FFN kernels:
// FFNFwd reads X and the weights, FFNBwd reads DF, the taps H1, H3 and the
// weights.
type FFNIn struct {
	Packing
	X  Block // RMSNorm(x2) [Dim, Seq]: FFNFwd's input
	DF Block // ∂loss/∂f [Dim, Seq], f the FFN's output: FFNBwd's input
	H1 Block // w1·X [Hidden, Seq]: FFNFwd's tap, copied in for FFNBwd
	H3 Block // w3·X [Hidden, Seq]: likewise

	// The layer's weights, [out, in] or transposed (Block.Transposed).
	W1, W2, W3 Block
}

// AttnFwdOut is AttnFwd's output, [1, Dim+2·QDim+2·KVDim, 1, Seq].
type AttnFwdOut struct {
	Packing
	O    Block // wo·attn [Dim]: the residual branch, x2 = x + O
	Attn Block // the heads' outputs before wo [QDim]: for dWo = DO·Attnᵀ
	Q    Block // q after RoPE [QDim]: copy to AttnIn.Q
	K    Block // k after RoPE [KVDim]: copy to AttnIn.K
	V    Block // v [KVDim]: copy to AttnIn.V
}

// FFNFwdOut is FFNFwd's output, [1, Dim+3·Hidden, 1, Seq].
type FFNFwdOut struct {
	Packing
	F  Block // w2·G [Dim]: the residual branch, x' = x2 + F
	H1 Block // w1·X [Hidden]: copy to FFNIn.H1
	H3 Block // w3·X [Hidden]: copy to FFNIn.H3
	G  Block // silu(H1)·H3 [Hidden]: for dW2 = DF·Gᵀ
}

// FFNBwdOut is FFNBwd's output, [1, Dim+2·Hidden, 1, Seq].
type FFNBwdOut struct {
	Packing
	DX  Block // ∂loss/∂X [Dim]: into the FFN RMSNorm's backward
	DH1 Block // ∂loss/∂H1 [Hidden]: for dW1 = DH1·Xᵀ
	DH3 Block // ∂loss/∂H3 [Hidden]: for dW3 = DH3·Xᵀ
}

// AttnBwdOut is AttnBwd's output, [1, Dim+QDim+2·KVDim, 1, Seq].
type AttnBwdOut struct {
	Packing
	DX Block // ∂loss/∂X [Dim]: into the attention RMSNorm's backward
	DQ Block // ∂loss/∂(wq·X), before RoPE [QDim]: for dWq = DQ·Xᵀ
	DK Block // ∂loss/∂(wk·X), before RoPE [KVDim]: for dWk = DK·Xᵀ
	DV Block // ∂loss/∂(wv·X) [KVDim]: for dWv = DV·Xᵀ
}

// Layout is where every tensor lives in the kernels' surfaces, for one
// config: the engine stages weights and activations and reads taps through
// it, never through offsets of its own.
type Layout struct {
	Config     Config // resolved
	Attn       AttnIn
	FFN        FFNIn
	AttnFwdOut AttnFwdOut
	FFNFwdOut  FFNFwdOut
	FFNBwdOut  FFNBwdOut
	AttnBwdOut AttnBwdOut
}

// NewLayout validates c and lays out its kernels' surfaces.
func NewLayout(c Config) (*Layout, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newLayout(c), nil
}

// packer places blocks in column strips: a block goes below the blocks of an
// existing strip of the same width if the rows fit in the channels, else it
// opens a new strip at the right. Blocks shorter than the surface (k and v
// under GQA, the Dim-row activations of a Hidden-row surface) thus share
// columns instead of wasting padding rows.
type packer struct {
	p      *Packing
	strips []struct{ col, cols, used int }
}

func (pk *packer) place(name string, rows, cols int, w Kind, transposed bool) Block {
	b := Block{Name: name, Rows: rows, Cols: cols, Weight: w, Transposed: transposed}
	placed := false
	for i := range pk.strips {
		s := &pk.strips[i]
		if s.cols == cols && s.used+rows <= pk.p.Channels {
			b.Row, b.Col = s.used, s.col
			s.used += rows
			placed = true
			break
		}
	}
	if !placed {
		b.Col = pk.p.Width
		pk.strips = append(pk.strips, struct{ col, cols, used int }{pk.p.Width, cols, rows})
		pk.p.Width += cols
	}
	pk.p.Blocks = append(pk.p.Blocks, b)
	return b
}

// weight places W [out, in] with its longer side along the channels (raw when
// out ≥ in, else transposed), so the surface is as narrow as the weights
// allow and both the forward (W·x) and the backward (Wᵀ·dy) read the same
// block.
func (pk *packer) weight(c Config, k Kind) Block {
	sh := c.Shape(k)
	out, in := sh[0], sh[1]
	if out >= in {
		return pk.place(k.String(), out, in, k, false)
	}
	return pk.place(k.String(), in, out, k, true)
}

func channelBlocks(name string, seq int, names []string, rows []int) Packing {
	p := Packing{Name: name, Width: seq}
	for i, n := range names {
		p.Blocks = append(p.Blocks, Block{Name: n, Row: p.Channels, Rows: rows[i], Cols: seq, Weight: NoWeight})
		p.Channels += rows[i]
	}
	return p
}

func newLayout(c Config) *Layout {
	c = c.Resolved()
	d, h, q, kv, s := c.Dim, c.Hidden, c.QDim(), c.KVDim(), c.Seq
	l := &Layout{Config: c}

	a := &l.Attn
	a.Name, a.Channels = "attention", max(d, q, kv)
	pk := packer{p: &a.Packing}
	a.X = pk.place("x", d, s, NoWeight, false)
	a.DO = pk.place("do", d, s, NoWeight, false)
	a.Q = pk.place("q", q, s, NoWeight, false)
	a.K = pk.place("k", kv, s, NoWeight, false)
	a.V = pk.place("v", kv, s, NoWeight, false)
	a.Wq = pk.weight(c, Wq)
	a.Wk = pk.weight(c, Wk)
	a.Wv = pk.weight(c, Wv)
	a.Wo = pk.weight(c, Wo)

	f := &l.FFN
	f.Name, f.Channels = "ffn", max(d, h)
	pk = packer{p: &f.Packing}
	f.X = pk.place("x", d, s, NoWeight, false)
	f.DF = pk.place("df", d, s, NoWeight, false)
	f.H1 = pk.place("h1", h, s, NoWeight, false)
	f.H3 = pk.place("h3", h, s, NoWeight, false)
	f.W1 = pk.weight(c, W1)
	f.W2 = pk.weight(c, W2)
	f.W3 = pk.weight(c, W3)

	l.AttnFwdOut.Packing = channelBlocks("attn_fwd out", s, []string{"o", "attn", "q", "k", "v"}, []int{d, q, q, kv, kv})
	bs := l.AttnFwdOut.Blocks
	l.AttnFwdOut.O, l.AttnFwdOut.Attn, l.AttnFwdOut.Q, l.AttnFwdOut.K, l.AttnFwdOut.V = bs[0], bs[1], bs[2], bs[3], bs[4]

	l.FFNFwdOut.Packing = channelBlocks("ffn_fwd out", s, []string{"f", "h1", "h3", "g"}, []int{d, h, h, h})
	bs = l.FFNFwdOut.Blocks
	l.FFNFwdOut.F, l.FFNFwdOut.H1, l.FFNFwdOut.H3, l.FFNFwdOut.G = bs[0], bs[1], bs[2], bs[3]

	l.FFNBwdOut.Packing = channelBlocks("ffn_bwd out", s, []string{"dx", "dh1", "dh3"}, []int{d, h, h})
	bs = l.FFNBwdOut.Blocks
	l.FFNBwdOut.DX, l.FFNBwdOut.DH1, l.FFNBwdOut.DH3 = bs[0], bs[1], bs[2]

	l.AttnBwdOut.Packing = channelBlocks("attn_bwd out", s, []string{"dx", "dq", "dk", "dv"}, []int{d, q, kv, kv})
	bs = l.AttnBwdOut.Blocks
	l.AttnBwdOut.DX, l.AttnBwdOut.DQ, l.AttnBwdOut.DK, l.AttnBwdOut.DV = bs[0], bs[1], bs[2], bs[3]
	return l
}

// Input returns the packing of kernel k's input surface.
func (l *Layout) Input(k KernelID) *Packing {
	if k == AttnFwd || k == AttnBwd {
		return &l.Attn.Packing
	}
	return &l.FFN.Packing
}

// Output returns the packing of kernel k's output surface.
func (l *Layout) Output(k KernelID) *Packing {
	switch k {
	case AttnFwd:
		return &l.AttnFwdOut.Packing
	case FFNFwd:
		return &l.FFNFwdOut.Packing
	case FFNBwd:
		return &l.FFNBwdOut.Packing
	default:
		return &l.AttnBwdOut.Packing
	}
}
