package model

import (
	"fmt"
	"math"

	"github.com/anetop/anetop/mil"
)

// KernelID names one of the four kernels of the dynamic pipeline. Each is
// compiled once and evaluated for every layer with that layer's surface.
type KernelID int

const (
	AttnFwd KernelID = iota // QKV projections, RoPE, causal attention, output projection
	FFNFwd                  // w1, w3, SwiGLU gate, w2
	FFNBwd                  // w2ᵀ, SiLU backward, w1ᵀ and w3ᵀ
	AttnBwd                 // woᵀ, attention backward (P recomputed), inverse RoPE, wqᵀ, wkᵀ, wvᵀ
	NumKernels
)

// Kernels lists the kernels in the order a step evaluates them first.
var Kernels = [NumKernels]KernelID{AttnFwd, FFNFwd, FFNBwd, AttnBwd}

var kernelNames = [NumKernels]string{"attn_fwd", "ffn_fwd", "ffn_bwd", "attn_bwd"}

func (k KernelID) String() string {
	if k >= 0 && k < NumKernels {
		return kernelNames[k]
	}
	return fmt.Sprintf("KernelID(%d)", int(k))
}

// MaskValue is the additive causal mask for future positions: the lowest
// finite fp16, as the reference uses (ane-anchor §8.9), not −inf, which MIL
// text has no known spelling for and which turns into NaN wherever a softmax
// subtracts it from itself. exp(s − 65504) is 0 for any sane score s.
const MaskValue = -65504

// Build writes kernel k as a MIL program with its weight file (the causal
// mask and the RoPE tables, the only constants: the weights travel in the
// input). The program has one fp16 input, Input(k).Shape(), and one fp16
// output, Output(k).Shape().
func (l *Layout) Build(k KernelID) (*mil.Program, mil.Weights, error) {
	return l.build(k, nil)
}

// build writes kernel k; with static set, weight blocks are constants
// holding static's contents for them instead of slices of the input.
func (l *Layout) build(k KernelID, static blockCapture) (*mil.Program, mil.Weights, error) {
	kb := newKB(l, k)
	kb.static = static
	switch k {
	case AttnFwd:
		kb.attnFwd()
	case FFNFwd:
		kb.ffnFwd()
	case FFNBwd:
		kb.ffnBwd()
	case AttnBwd:
		kb.attnBwd()
	default:
		return nil, nil, fmt.Errorf("model: unknown kernel %v", k)
	}
	p, w, err := kb.b.Build()
	if err != nil {
		return nil, nil, fmt.Errorf("build kernel %v for %v: %w", k, l.Config, err)
	}
	return p, w, nil
}

// kb writes one kernel. Tensors between ops are rank 4; a channel-first
// matrix [n, Seq] is carried as [1, 1, n, Seq] so that it is a matmul operand
// as is, and becomes [1, n, 1, Seq] only to be concatenated into the output.
type kb struct {
	b    *mil.Builder
	l    *Layout
	c    Config
	in   *mil.Var
	used map[string]int
	// static holds the weight blocks' contents when the weights are
	// constants (BuildStatic); nil when they travel in the input.
	static blockCapture

	cos, sin, mask *mil.Var
}

func newKB(l *Layout, k KernelID) *kb {
	b := mil.NewBuilder(mil.IOS18)
	in := b.Input("in", mil.TensorOf(mil.FP16, l.Input(k).Shape()...))
	return &kb{b: b, l: l, c: l.Config, in: in, used: map[string]int{"in": 1, "out": 1}}
}

// nm returns a fresh name based on s.
func (k *kb) nm(s string) string {
	n := k.used[s]
	k.used[s] = n + 1
	if n == 0 {
		return s
	}
	return fmt.Sprintf("%s_%d", s, n)
}

// read slices a block of the input as [1, 1, rows, cols]: a strided view of
// the input, no copy.
func (k *kb) read(blk Block) *mil.Var {
	if k.static != nil && blk.Weight != NoWeight {
		data, ok := k.static[[2]int{blk.Row, blk.Col}]
		if !ok {
			panic(fmt.Sprintf("model: static kernel: no weights staged for %v", blk))
		}
		return k.b.ConstFP16(k.nm(blk.Name), mil.Shape{1, 1, blk.Rows, blk.Cols}, data)
	}
	s := k.b.SliceBySize(k.nm(blk.Name+"_s"), k.in, []int{0, blk.Row, 0, blk.Col}, []int{1, blk.Rows, 1, blk.Cols})
	return k.b.Reshape(k.nm(blk.Name), s, 1, 1, blk.Rows, blk.Cols)
}

// apply returns W·x [1, 1, out, Seq] for the weight in blk and x [1, 1, in, Seq].
func (k *kb) apply(name string, blk Block, w, x *mil.Var) *mil.Var {
	return k.b.MatMul(k.nm(name), w, x, blk.Transposed, false)
}

// applyT returns Wᵀ·dy [1, 1, in, Seq] for dy [1, 1, out, Seq].
func (k *kb) applyT(name string, blk Block, w, dy *mil.Var) *mil.Var {
	return k.b.MatMul(k.nm(name), w, dy, !blk.Transposed, false)
}

func (k *kb) scalar(name string, x float64) *mil.Var {
	return k.b.ConstScalar(k.nm(name), mil.FP16, x)
}

// ropeTables returns cos and sin as [1, 1, HeadDim/2, Seq]: entry (j, t) is
// the angle t·θ^(−2j/HeadDim) of pair j at position t (llama2.c's
// frequencies), rounded once to fp16.
func (k *kb) ropeTables() (cos, sin *mil.Var) {
	if k.cos == nil {
		half, s := k.c.HeadDim/2, k.c.Seq
		cv, sv := RopeTables(k.c)
		k.cos = k.b.ConstFP16("rope_cos", mil.Shape{1, 1, half, s}, cv)
		k.sin = k.b.ConstFP16("rope_sin", mil.Shape{1, 1, half, s}, sv)
	}
	return k.cos, k.sin
}

// RopeTables returns the RoPE cosines and sines as [HeadDim/2][Seq]
// row-major float32: entry (j, t) is cos (sin) of t·θ^(−2j/HeadDim), computed
// in float64. The kernels hold them rounded to fp16.
func RopeTables(c Config) (cos, sin []float32) {
	c = c.Resolved()
	half, s := c.HeadDim/2, c.Seq
	cos, sin = make([]float32, half*s), make([]float32, half*s)
	for j := range half {
		f := math.Pow(c.RopeTheta, -2*float64(j)/float64(c.HeadDim))
		for t := range s {
			a := float64(t) * f
			cos[j*s+t], sin[j*s+t] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return cos, sin
}

// rope rotates the adjacent pairs (2j, 2j+1) of each head of x [1, 1, n, Seq]
// (n = heads·HeadDim, channel-first as the projection wrote it), forward or
// inverse (the transpose, for the backward). Reshaped to
// [1, heads, HeadDim/2, 2·Seq], row (h, j) holds channel 2j of head h followed
// by channel 2j+1, so the two halves of the last axis are the pair's even and
// odd members and the tables broadcast over the heads.
func (k *kb) rope(name string, x *mil.Var, heads int, inverse bool) *mil.Var {
	b, s, half := k.b, k.c.Seq, k.c.HeadDim/2
	cos, sin := k.ropeTables()
	p := b.Reshape(k.nm(name+"_pairs"), x, 1, heads, half, 2*s)
	e := b.SliceBySize(k.nm(name+"_even"), p, []int{0, 0, 0, 0}, []int{1, heads, half, s})
	o := b.SliceBySize(k.nm(name+"_odd"), p, []int{0, 0, 0, s}, []int{1, heads, half, s})
	ec := b.Mul(k.nm(name+"_ec"), e, cos)
	es := b.Mul(k.nm(name+"_es"), e, sin)
	oc := b.Mul(k.nm(name+"_oc"), o, cos)
	os := b.Mul(k.nm(name+"_os"), o, sin)
	var e2, o2 *mil.Var
	if !inverse {
		e2 = b.Sub(k.nm(name+"_e2"), ec, os) // e·cos − o·sin
		o2 = b.Add(k.nm(name+"_o2"), es, oc) // e·sin + o·cos
	} else {
		e2 = b.Add(k.nm(name+"_e2"), ec, os) // e·cos + o·sin
		o2 = b.Sub(k.nm(name+"_o2"), oc, es) // o·cos − e·sin
	}
	r := b.Concat(k.nm(name+"_cat"), 3, false, e2, o2)
	return b.Reshape(k.nm(name), r, 1, 1, heads*k.c.HeadDim, s)
}

// rows turns channel-first heads x [1, 1, heads·HeadDim, Seq] into one row per
// position, [1, heads, Seq, HeadDim], and for the queries stacks each
// key/value group's heads along the rows, [1, KVHeads, Group·Seq, HeadDim]:
// query head h = g·Group + r lands in group g, so every query head meets key
// and value head h/Group in a plain batched matmul, with no tiling of k and v.
func (k *kb) rows(name string, x *mil.Var, heads int, stack bool) *mil.Var {
	b, c := k.b, k.c
	h := b.Reshape(k.nm(name+"_heads"), x, 1, heads, c.HeadDim, c.Seq)
	t := b.Transpose(k.nm(name+"_rows"), h, 0, 1, 3, 2)
	if !stack || c.Group() == 1 {
		return t
	}
	return b.Reshape(k.nm(name+"_group"), t, 1, c.KVHeads, c.Group()*c.Seq, c.HeadDim)
}

// chans is the inverse of rows for the queries: [1, KVHeads, Group·Seq,
// HeadDim] back to channel-first [1, 1, QDim, Seq].
func (k *kb) chans(name string, x *mil.Var) *mil.Var {
	b, c := k.b, k.c
	if c.Group() > 1 {
		x = b.Reshape(k.nm(name+"_heads"), x, 1, c.Heads, c.Seq, c.HeadDim)
	}
	t := b.Transpose(k.nm(name+"_chans"), x, 0, 1, 3, 2)
	return b.Reshape(k.nm(name), t, 1, 1, c.QDim(), c.Seq)
}

// kvHeads views channel-first keys or values [1, 1, KVDim, Seq] as
// [1, KVHeads, HeadDim, Seq]: per head the transpose of the row form, which
// the matmuls take as is.
func (k *kb) kvHeads(name string, x *mil.Var) *mil.Var {
	return k.b.Reshape(k.nm(name), x, 1, k.c.KVHeads, k.c.HeadDim, k.c.Seq)
}

// probs computes the attention probabilities from the scaled, stacked
// queries qs [1, KVHeads, Group·Seq, HeadDim] and the keys kh [1, KVHeads,
// HeadDim, Seq]: the scores, plus the causal mask (explicit: the hardware's
// SDPA ignores masks, ane-anchor §8.1), softmax over the keys. The result is
// [1, KVHeads, Group·Seq, Seq].
func (k *kb) probs(qs, kh *mil.Var) *mil.Var {
	b, c := k.b, k.c
	if k.mask == nil {
		m := make([]float32, c.Seq*c.Seq)
		for t := range c.Seq {
			for u := t + 1; u < c.Seq; u++ {
				m[t*c.Seq+u] = MaskValue
			}
		}
		k.mask = b.ConstFP16("mask", mil.Shape{1, 1, c.Seq, c.Seq}, m)
	}
	sc := b.MatMul(k.nm("scores"), qs, kh, false, false)
	if c.Group() > 1 {
		sc = b.Reshape(k.nm("scores_heads"), sc, 1, c.Heads, c.Seq, c.Seq)
	}
	masked := b.Add(k.nm("masked"), sc, k.mask)
	p := b.Softmax(k.nm("probs"), masked, -1)
	if c.Group() > 1 {
		p = b.Reshape(k.nm("probs_group"), p, 1, c.KVHeads, c.Group()*c.Seq, c.Seq)
	}
	return p
}

// out concatenates channel-first tensors [1, 1, n, Seq] into the single
// output [1, Σn, 1, Seq].
func (k *kb) out(names []string, xs ...*mil.Var) {
	vs := make([]*mil.Var, len(xs))
	for i, x := range xs {
		n := x.Type.Shape[2]
		vs[i] = k.b.Reshape(k.nm(names[i]+"_out"), x, 1, n, 1, k.c.Seq)
	}
	k.b.Output(k.b.Concat("out", 1, false, vs...))
}

// attnFwd: q, k, v = wq·x, wk·x, wv·x; RoPE on q and k; per head
// softmax(q·kᵀ/√HeadDim + mask)·v; o = wo·attn. Outputs o, attn, q, k, v.
func (k *kb) attnFwd() {
	b, c, a := k.b, k.c, &k.l.Attn
	x := k.read(a.X)
	wq, wk, wv, wo := k.read(a.Wq), k.read(a.Wk), k.read(a.Wv), k.read(a.Wo)
	q := k.apply("q_lin", a.Wq, wq, x)
	kk := k.apply("k_lin", a.Wk, wk, x)
	v := k.apply("v", a.Wv, wv, x)
	qr := k.rope("q_rope", q, c.Heads, false)
	kr := k.rope("k_rope", kk, c.KVHeads, false)
	// The 1/√HeadDim scale goes on the queries (QDim·Seq products) rather
	// than the scores (Heads·Seq² products), before the scores can overflow.
	qs := b.Mul(k.nm("q_scaled"), qr, k.scalar("scale", 1/math.Sqrt(float64(c.HeadDim))))
	p := k.probs(k.rows("q", qs, c.Heads, true), k.kvHeads("k_heads", kr))
	// attention = P·v: v per head is [HeadDim, Seq], so P·vᵀ-as-stored.
	av := b.MatMul(k.nm("av"), p, k.kvHeads("v_heads", v), false, true)
	attn := k.chans("attn", av)
	o := k.apply("o", a.Wo, wo, attn)
	k.out([]string{"o", "attn", "q", "k", "v"}, o, attn, qr, kr, v)
}

// ffnFwd: h1, h3 = w1·x, w3·x; g = silu(h1)·h3; f = w2·g. Outputs f, h1, h3, g.
func (k *kb) ffnFwd() {
	b, f := k.b, &k.l.FFN
	x := k.read(f.X)
	w1, w2, w3 := k.read(f.W1), k.read(f.W2), k.read(f.W3)
	h1 := k.apply("h1", f.W1, w1, x)
	h3 := k.apply("h3", f.W3, w3, x)
	// silu as x·sigmoid(x): the op chain the reference runs on the ANE.
	sig := b.Sigmoid(k.nm("sig"), h1)
	silu := b.Mul(k.nm("silu"), h1, sig)
	g := b.Mul(k.nm("g"), silu, h3)
	out := k.apply("f", f.W2, w2, g)
	k.out([]string{"f", "h1", "h3", "g"}, out, h1, h3, g)
}

// ffnBwd: dg = w2ᵀ·df; dh3 = dg·silu(h1); dh1 = dg·h3·σ(h1)·(1 + h1·(1 − σ(h1)));
// dx = w1ᵀ·dh1 + w3ᵀ·dh3. Outputs dx, dh1, dh3.
func (k *kb) ffnBwd() {
	b, f := k.b, &k.l.FFN
	df := k.read(f.DF)
	h1, h3 := k.read(f.H1), k.read(f.H3)
	w1, w2, w3 := k.read(f.W1), k.read(f.W2), k.read(f.W3)
	dg := k.applyT("dg", f.W2, w2, df)
	sig := b.Sigmoid(k.nm("sig"), h1)
	silu := b.Mul(k.nm("silu"), h1, sig)
	dh3 := b.Mul(k.nm("dh3"), dg, silu)
	dsilu := b.Mul(k.nm("dsilu"), dg, h3)
	oneMinus := b.Sub(k.nm("one_minus_sig"), k.scalar("one", 1), sig)
	u := b.Mul(k.nm("h1_one_minus_sig"), h1, oneMinus)
	u1 := b.Add(k.nm("one_plus"), u, k.scalar("one", 1))
	dsd := b.Mul(k.nm("dsilu_dh1"), sig, u1)
	dh1 := b.Mul(k.nm("dh1"), dsilu, dsd)
	dx1 := k.applyT("dx1", f.W1, w1, dh1)
	dx3 := k.applyT("dx3", f.W3, w3, dh3)
	dx := b.Add(k.nm("dx"), dx1, dx3)
	k.out([]string{"dx", "dh1", "dh3"}, dx, dh1, dh3)
}

// attnBwd: dattn = woᵀ·do; the probabilities recomputed from the q and k
// taps; dv = Pᵀ·dA, dP = dA·vᵀ, dS = P⊙(dP − rowsum(P⊙dP)), dq = dS·k/√HD,
// dk = dSᵀ·q/√HD (summed over each group's query heads by the stacked
// matmuls); inverse RoPE on dq and dk; dx = wqᵀ·dq + wkᵀ·dk + wvᵀ·dv.
// Outputs dx, dq, dk, dv.
func (k *kb) attnBwd() {
	b, c, a := k.b, k.c, &k.l.Attn
	do := k.read(a.DO)
	qr, kr, v := k.read(a.Q), k.read(a.K), k.read(a.V)
	wq, wk, wv, wo := k.read(a.Wq), k.read(a.Wk), k.read(a.Wv), k.read(a.Wo)
	scale := k.scalar("scale", 1/math.Sqrt(float64(c.HeadDim)))
	dattn := k.applyT("dattn", a.Wo, wo, do)
	qs := k.rows("q", b.Mul(k.nm("q_scaled"), qr, scale), c.Heads, true)
	kh := k.kvHeads("k_heads", kr)
	vh := k.kvHeads("v_heads", v)
	// Recomputed by attn_fwd's own ops from its fp16 taps, so P is the
	// forward's, not an approximation of it.
	p := k.probs(qs, kh)
	da := k.rows("da", dattn, c.Heads, true)
	// In channel-first form dvᵀ = dAᵀ·P and dkᵀ = qsᵀ·dS per group: the
	// contraction over the stacked rows sums the group's query heads.
	dvh := b.MatMul(k.nm("dv_heads"), da, p, true, false)
	dp := b.MatMul(k.nm("dp"), da, vh, false, false)
	pdp := b.Mul(k.nm("p_dp"), p, dp)
	rs := b.ReduceSum(k.nm("p_dp_sum"), pdp, []int{-1}, true)
	dpc := b.Sub(k.nm("dp_centred"), dp, rs)
	ds := b.Mul(k.nm("ds"), p, dpc)
	dkh := b.MatMul(k.nm("dk_heads"), qs, ds, true, false)
	dqs := b.MatMul(k.nm("dq_rows"), ds, kh, false, true)
	// Gradients with respect to the rotated q and k, channel-first.
	dqr := b.Mul(k.nm("dq_rotated"), k.chans("dq_unscaled", dqs), scale)
	dkr := b.Reshape(k.nm("dk_rotated"), dkh, 1, 1, c.KVDim(), c.Seq)
	dv := b.Reshape(k.nm("dv"), dvh, 1, 1, c.KVDim(), c.Seq)
	dq := k.rope("dq", dqr, c.Heads, true)
	dk := k.rope("dk", dkr, c.KVHeads, true)
	dxq := k.applyT("dxq", a.Wq, wq, dq)
	dxk := k.applyT("dxk", a.Wk, wk, dk)
	dxv := k.applyT("dxv", a.Wv, wv, dv)
	dx := b.Add(k.nm("dx"), b.Add(k.nm("dx_qk"), dxq, dxk), dxv)
	k.out([]string{"dx", "dq", "dk", "dv"}, dx, dq, dk, dv)
}
