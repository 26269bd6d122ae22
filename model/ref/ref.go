// Package ref is a float64 reference implementation of anetop's model: the
// forward loss, every parameter's gradient and one AdamW update, in plain
// loops, written for clarity and checked against PyTorch (the torch-tiny
// fixture) and finite differences. The kernels' tests and the engine's
// gradient check compare against it; nothing trains with it.
//
// Tensors are channel-first like the device's: an activation [C, S] is the
// flat slice x[c·S + t], c a channel and t a position. Weights are llama2.c's
// [out, in] row-major, in the flat order of model.Config.Tensors.
package ref

import (
	"errors"
	"fmt"
	"math"

	"github.com/anetop/anetop/model"
)

// linear returns W·x [out, S] for W [out, in] and x [in, S].
func linear(w []float64, out, in int, x []float64, s int) []float64 {
	y := make([]float64, out*s)
	for o := range out {
		yo := y[o*s : (o+1)*s]
		for i := range in {
			wi := w[o*in+i]
			xi := x[i*s : (i+1)*s]
			for t := range s {
				yo[t] += wi * xi[t]
			}
		}
	}
	return y
}

// linearT returns Wᵀ·dy [in, S] for W [out, in] and dy [out, S].
func linearT(w []float64, out, in int, dy []float64, s int) []float64 {
	dx := make([]float64, in*s)
	for o := range out {
		dyo := dy[o*s : (o+1)*s]
		for i := range in {
			wi := w[o*in+i]
			dxi := dx[i*s : (i+1)*s]
			for t := range s {
				dxi[t] += wi * dyo[t]
			}
		}
	}
	return dx
}

// outer returns dy·xᵀ [out, in] for dy [out, S] and x [in, S]: a weight
// gradient summed over the positions.
func outer(dy []float64, out int, x []float64, in, s int) []float64 {
	dw := make([]float64, out*in)
	for o := range out {
		dyo := dy[o*s : (o+1)*s]
		for i := range in {
			xi := x[i*s : (i+1)*s]
			var acc float64
			for t := range s {
				acc += dyo[t] * xi[t]
			}
			dw[o*in+i] = acc
		}
	}
	return dw
}

func add(a, b []float64) []float64 {
	c := make([]float64, len(a))
	for i := range a {
		c[i] = a[i] + b[i]
	}
	return c
}

// RMSNorm returns y = x·g/√(mean_c x² + eps) for x [D, S] and the per
// position factors 1/√(mean + eps) the backward needs.
func RMSNorm(x, g []float64, d, s int, eps float64) (y, rrms []float64) {
	y, rrms = make([]float64, d*s), make([]float64, s)
	for t := range s {
		var ss float64
		for c := range d {
			ss += x[c*s+t] * x[c*s+t]
		}
		r := 1 / math.Sqrt(ss/float64(d)+eps)
		rrms[t] = r
		for c := range d {
			y[c*s+t] = x[c*s+t] * r * g[c]
		}
	}
	return y, rrms
}

// RMSNormBackward returns ∂/∂x and ∂/∂g of RMSNorm given dy:
// dx = r·(g·dy − x·r²·Σ_c(g·dy·x)/D), dg = Σ_t dy·x·r.
func RMSNormBackward(x, g, rrms, dy []float64, d, s int) (dx, dg []float64) {
	dx, dg = make([]float64, d*s), make([]float64, d)
	for t := range s {
		r := rrms[t]
		var dot float64
		for c := range d {
			dot += g[c] * dy[c*s+t] * x[c*s+t]
		}
		k := r * r * dot / float64(d)
		for c := range d {
			i := c*s + t
			dx[i] = r * (g[c]*dy[i] - x[i]*k)
			dg[c] += dy[i] * x[i] * r
		}
	}
	return dx, dg
}

// rope rotates the adjacent pairs (2j, 2j+1) of every head of x [heads·HD, S]
// by the angle t·θ^(−2j/HD), in place; inverse rotates by the opposite angle
// (the transpose, for gradients).
func rope(c model.Config, x []float64, heads int, inverse bool) {
	hd, s := c.HeadDim, c.Seq
	for j := range hd / 2 {
		f := math.Pow(c.RopeTheta, -2*float64(j)/float64(hd))
		for t := range s {
			sn, cs := math.Sincos(float64(t) * f)
			if inverse {
				sn = -sn
			}
			for h := range heads {
				e, o := &x[(h*hd+2*j)*s+t], &x[(h*hd+2*j+1)*s+t]
				*e, *o = *e*cs-*o*sn, *e*sn+*o*cs
			}
		}
	}
}

// AttnTape holds the attention's forward intermediates (channel-first).
type AttnTape struct {
	Q, K, V []float64 // after RoPE (q, k) [QDim, S], [KVDim, S], [KVDim, S]
	P       []float64 // probabilities [Heads][S][S], row t over keys u ≤ t
	Attn    []float64 // the heads' outputs before wo [QDim, S]
	O       []float64 // wo·Attn [Dim, S]
}

// AttnForward runs one attention block on x = RMSNorm(layer input) [Dim, S].
func AttnForward(c model.Config, x, wq, wk, wv, wo []float64) *AttnTape {
	c = c.Resolved()
	d, s, qd, kvd := c.Dim, c.Seq, c.QDim(), c.KVDim()
	t := &AttnTape{Q: linear(wq, qd, d, x, s), K: linear(wk, kvd, d, x, s), V: linear(wv, kvd, d, x, s)}
	rope(c, t.Q, c.Heads, false)
	rope(c, t.K, c.KVHeads, false)
	t.P, t.Attn = Attention(c, t.Q, t.K, t.V)
	t.O = linear(wo, d, qd, t.Attn, s)
	return t
}

// Attention is causal multi-head attention on q [QDim, S], k and v
// [KVDim, S] (q and k already rotated): it returns the probabilities
// [Heads][S][S] and the heads' outputs [QDim, S]. Query head h reads
// key/value head h/Group.
func Attention(c model.Config, q, k, v []float64) (p, attn []float64) {
	c = c.Resolved()
	s, hd := c.Seq, c.HeadDim
	p = make([]float64, c.Heads*s*s)
	attn = make([]float64, c.QDim()*s)
	scale := 1 / math.Sqrt(float64(hd))
	for h := range c.Heads {
		g := h / c.Group()
		for i := range s {
			pr := p[(h*s+i)*s : (h*s+i+1)*s]
			m := math.Inf(-1)
			for u := 0; u <= i; u++ {
				var acc float64
				for e := range hd {
					acc += q[(h*hd+e)*s+i] * k[(g*hd+e)*s+u]
				}
				pr[u] = acc * scale
				m = math.Max(m, pr[u])
			}
			var sum float64
			for u := 0; u <= i; u++ {
				pr[u] = math.Exp(pr[u] - m)
				sum += pr[u]
			}
			for u := 0; u <= i; u++ {
				pr[u] /= sum
			}
			for e := range hd {
				var acc float64
				for u := 0; u <= i; u++ {
					acc += pr[u] * v[(g*hd+e)*s+u]
				}
				attn[(h*hd+e)*s+i] = acc
			}
		}
	}
	return p, attn
}

// SwiGLU returns silu(h1)·h3 elementwise.
func SwiGLU(h1, h3 []float64) []float64 {
	g := make([]float64, len(h1))
	for i, a := range h1 {
		g[i] = a * sigmoid(a) * h3[i]
	}
	return g
}

// AttnGrads are the attention block's gradients. DQ and DK are with respect
// to the projections wq·x and wk·x, before RoPE: what dWq and dWk need and
// what the AttnBwd kernel outputs.
type AttnGrads struct {
	DX                 []float64 // ∂/∂x [Dim, S]
	DAttn              []float64 // ∂/∂Attn [QDim, S]
	DQ, DK, DV         []float64
	DWq, DWk, DWv, DWo []float64
}

// AttnBackward back-propagates dO = ∂loss/∂O through the block.
func AttnBackward(c model.Config, t *AttnTape, x, wq, wk, wv, wo, dO []float64) *AttnGrads {
	c = c.Resolved()
	d, s, hd, qd, kvd := c.Dim, c.Seq, c.HeadDim, c.QDim(), c.KVDim()
	g := &AttnGrads{DWo: outer(dO, d, t.Attn, qd, s), DAttn: linearT(wo, d, qd, dO, s)}
	g.DQ, g.DK, g.DV = make([]float64, qd*s), make([]float64, kvd*s), make([]float64, kvd*s)
	scale := 1 / math.Sqrt(float64(hd))
	dp := make([]float64, s)
	for h := range c.Heads {
		kv := h / c.Group()
		for i := range s {
			p := t.P[(h*s+i)*s : (h*s+i+1)*s]
			var rowsum float64
			for u := 0; u <= i; u++ {
				var acc float64
				for e := range hd {
					da := g.DAttn[(h*hd+e)*s+i]
					g.DV[(kv*hd+e)*s+u] += p[u] * da
					acc += da * t.V[(kv*hd+e)*s+u]
				}
				dp[u] = acc
				rowsum += p[u] * acc
			}
			for u := 0; u <= i; u++ {
				ds := p[u] * (dp[u] - rowsum) * scale
				for e := range hd {
					g.DQ[(h*hd+e)*s+i] += ds * t.K[(kv*hd+e)*s+u]
					g.DK[(kv*hd+e)*s+u] += ds * t.Q[(h*hd+e)*s+i]
				}
			}
		}
	}
	rope(c, g.DQ, c.Heads, true)
	rope(c, g.DK, c.KVHeads, true)
	g.DWq, g.DWk, g.DWv = outer(g.DQ, qd, x, d, s), outer(g.DK, kvd, x, d, s), outer(g.DV, kvd, x, d, s)
	g.DX = add(add(linearT(wq, qd, d, g.DQ, s), linearT(wk, kvd, d, g.DK, s)), linearT(wv, kvd, d, g.DV, s))
	return g
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// FFNTape holds the SwiGLU block's forward intermediates.
type FFNTape struct {
	H1, H3, G []float64 // w1·x, w3·x, silu(H1)·H3 [Hidden, S]
	F         []float64 // w2·G [Dim, S]
}

// FFNForward runs the SwiGLU block w2(silu(w1·x)·w3·x) on x = RMSNorm(x2).
func FFNForward(c model.Config, x, w1, w2, w3 []float64) *FFNTape {
	c = c.Resolved()
	d, h, s := c.Dim, c.Hidden, c.Seq
	t := &FFNTape{H1: linear(w1, h, d, x, s), H3: linear(w3, h, d, x, s)}
	t.G = SwiGLU(t.H1, t.H3)
	t.F = linear(w2, d, h, t.G, s)
	return t
}

// FFNGrads are the SwiGLU block's gradients.
type FFNGrads struct {
	DX            []float64 // ∂/∂x [Dim, S]
	DG            []float64 // ∂/∂G [Hidden, S]
	DH1, DH3      []float64 // ∂/∂H1, ∂/∂H3 [Hidden, S]
	DW1, DW2, DW3 []float64
}

// FFNBackward back-propagates dF = ∂loss/∂F through the block.
func FFNBackward(c model.Config, t *FFNTape, x, w1, w2, w3, dF []float64) *FFNGrads {
	c = c.Resolved()
	d, h, s := c.Dim, c.Hidden, c.Seq
	g := &FFNGrads{DW2: outer(dF, d, t.G, h, s), DG: linearT(w2, d, h, dF, s)}
	g.DH1, g.DH3 = make([]float64, h*s), make([]float64, h*s)
	for i, a := range t.H1 {
		sg := sigmoid(a)
		g.DH3[i] = g.DG[i] * a * sg
		g.DH1[i] = g.DG[i] * t.H3[i] * sg * (1 + a*(1-sg))
	}
	g.DW1, g.DW3 = outer(g.DH1, h, x, d, s), outer(g.DH3, h, x, d, s)
	g.DX = add(linearT(w1, h, d, g.DH1, s), linearT(w3, h, d, g.DH3, s))
	return g
}

// Model is a model's weights in float64.
type Model struct {
	Config model.Config // resolved
	W      []float64    // flat, in the order of Config.Tensors
	// Scored, if set (Vocab long), restricts the loss to the ids it marks:
	// the softmax runs over those logits only and the other classifier
	// rows get no gradient, as in the engine's vocabulary compaction
	// (engine.Config.CompactVocab). Every target must be scored. Nil
	// scores the whole vocabulary.
	Scored []bool
}

// New returns a model with weights w (copied), which must have
// Config.NumParams elements.
func New(c model.Config, w []float64) (*Model, error) {
	if err := c.CheckShape(); err != nil {
		return nil, err
	}
	c = c.Resolved()
	if len(w) != c.NumParams() {
		return nil, fmt.Errorf("ref: %d weights for a model of %d parameters", len(w), c.NumParams())
	}
	return &Model{Config: c, W: append([]float64(nil), w...)}, nil
}

// FromParams converts fp32 parameters to a float64 model.
func FromParams(p *model.Params) *Model {
	w := make([]float64, len(p.Data))
	for i, x := range p.Data {
		w[i] = float64(x)
	}
	return &Model{Config: p.Config, W: w}
}

// LayerPass holds one layer's forward intermediates and, after Backward, its
// gradients.
type LayerPass struct {
	X     []float64 // the layer's input [Dim, S]
	XN    []float64 // RMSNorm(X): the attention's input
	RAttn []float64 // the attention norm's 1/rms per position
	Attn  *AttnTape
	X2    []float64 // X + Attn.O
	XN2   []float64 // RMSNorm(X2): the FFN's input
	RFFN  []float64
	FFN   *FFNTape

	DY        []float64 // ∂loss/∂(layer output) = the FFN's dF
	FFNGrads  *FFNGrads
	DX2       []float64 // ∂loss/∂X2 = the attention's dO
	AttnGrads *AttnGrads
	DX        []float64 // ∂loss/∂X
}

// Pass is one forward pass over a window of tokens.
type Pass struct {
	Tokens, Targets []int
	Loss            float64
	Layers          []*LayerPass
	X               []float64 // the last layer's output [Dim, S]
	XF              []float64 // RMSNorm(X)
	RFinal          []float64
	Logits          []float64 // [Vocab, S]
}

// Forward runs the model on tokens and returns the mean cross-entropy of
// predicting targets (both Seq long) with every intermediate.
func (m *Model) Forward(tokens, targets []int) (*Pass, error) {
	c := m.Config
	d, s, v := c.Dim, c.Seq, c.Vocab
	if len(tokens) != s || len(targets) != s {
		return nil, fmt.Errorf("ref: %d tokens and %d targets for a window of %d", len(tokens), len(targets), s)
	}
	if m.Scored != nil && len(m.Scored) != v {
		return nil, fmt.Errorf("ref: Scored has %d entries for a vocabulary of %d", len(m.Scored), v)
	}
	for i := range s {
		if tokens[i] < 0 || tokens[i] >= v || targets[i] < 0 || targets[i] >= v {
			return nil, fmt.Errorf("ref: token or target at position %d is outside the vocabulary of %d", i, v)
		}
		if !m.scored(targets[i]) {
			return nil, fmt.Errorf("ref: target %d at position %d is not scored", targets[i], i)
		}
	}
	p := &Pass{Tokens: tokens, Targets: targets}
	emb := model.Slice(c, m.W, model.Embed, -1)
	x := make([]float64, d*s)
	for t, tok := range tokens {
		for ch := range d {
			x[ch*s+t] = emb[tok*d+ch]
		}
	}
	for l := range c.Layers {
		w := model.Layer(c, m.W, l)
		lp := &LayerPass{X: x}
		lp.XN, lp.RAttn = RMSNorm(x, w.AttnNorm, d, s, c.NormEps)
		lp.Attn = AttnForward(c, lp.XN, w.Wq, w.Wk, w.Wv, w.Wo)
		lp.X2 = add(x, lp.Attn.O)
		lp.XN2, lp.RFFN = RMSNorm(lp.X2, w.FFNNorm, d, s, c.NormEps)
		lp.FFN = FFNForward(c, lp.XN2, w.W1, w.W2, w.W3)
		x = add(lp.X2, lp.FFN.F)
		p.Layers = append(p.Layers, lp)
	}
	p.X = x
	p.XF, p.RFinal = RMSNorm(x, model.Slice(c, m.W, model.FinalNorm, -1), d, s, c.NormEps)
	p.Logits = linear(m.classifier(), v, d, p.XF, s)
	for t := range s {
		mx := math.Inf(-1)
		for j := range v {
			if m.scored(j) {
				mx = math.Max(mx, p.Logits[j*s+t])
			}
		}
		var sum float64
		for j := range v {
			if m.scored(j) {
				sum += math.Exp(p.Logits[j*s+t] - mx)
			}
		}
		p.Loss += mx + math.Log(sum) - p.Logits[targets[t]*s+t]
	}
	p.Loss /= float64(s)
	return p, nil
}

// scored reports whether id j is in the loss's softmax (Model.Scored).
func (m *Model) scored(j int) bool { return m.Scored == nil || m.Scored[j] }

func (m *Model) classifier() []float64 {
	if m.Config.Tied {
		return model.Slice(m.Config, m.W, model.Embed, -1)
	}
	return model.Slice(m.Config, m.W, model.Classifier, -1)
}

// Backward returns the gradient of p.Loss with respect to every weight, flat
// in the order of Config.Tensors, and fills the layers' gradients. A tied
// classifier's gradient is added to the embedding's.
func (m *Model) Backward(p *Pass) []float64 {
	c := m.Config
	d, s, v := c.Dim, c.Seq, c.Vocab
	grad := make([]float64, len(m.W))
	set := func(k model.Kind, layer int, g []float64) {
		dst := model.Slice(c, grad, k, layer)
		for i := range dst {
			dst[i] += g[i]
		}
	}
	// dlogits = (softmax − onehot)/S, zero on unscored rows.
	dl := make([]float64, v*s)
	for t := range s {
		mx := math.Inf(-1)
		for j := range v {
			if m.scored(j) {
				mx = math.Max(mx, p.Logits[j*s+t])
			}
		}
		var sum float64
		for j := range v {
			if m.scored(j) {
				dl[j*s+t] = math.Exp(p.Logits[j*s+t] - mx)
				sum += dl[j*s+t]
			}
		}
		for j := range v {
			dl[j*s+t] /= sum * float64(s)
		}
		dl[p.Targets[t]*s+t] -= 1 / float64(s)
	}
	cls := model.Classifier
	if c.Tied {
		cls = model.Embed
	}
	set(cls, -1, outer(dl, v, p.XF, d, s))
	dxf := linearT(m.classifier(), v, d, dl, s)
	dx, dgf := RMSNormBackward(p.X, model.Slice(c, m.W, model.FinalNorm, -1), p.RFinal, dxf, d, s)
	set(model.FinalNorm, -1, dgf)
	for l := c.Layers - 1; l >= 0; l-- {
		w := model.Layer(c, m.W, l)
		lp := p.Layers[l]
		lp.DY = dx
		lp.FFNGrads = FFNBackward(c, lp.FFN, lp.XN2, w.W1, w.W2, w.W3, dx)
		dn, dgn := RMSNormBackward(lp.X2, w.FFNNorm, lp.RFFN, lp.FFNGrads.DX, d, s)
		lp.DX2 = add(dx, dn)
		lp.AttnGrads = AttnBackward(c, lp.Attn, lp.XN, w.Wq, w.Wk, w.Wv, w.Wo, lp.DX2)
		da, dga := RMSNormBackward(lp.X, w.AttnNorm, lp.RAttn, lp.AttnGrads.DX, d, s)
		lp.DX = add(lp.DX2, da)
		dx = lp.DX
		set(model.FFNNorm, l, dgn)
		set(model.AttnNorm, l, dga)
		fg, ag := lp.FFNGrads, lp.AttnGrads
		set(model.W1, l, fg.DW1)
		set(model.W2, l, fg.DW2)
		set(model.W3, l, fg.DW3)
		set(model.Wq, l, ag.DWq)
		set(model.Wk, l, ag.DWk)
		set(model.Wv, l, ag.DWv)
		set(model.Wo, l, ag.DWo)
	}
	emb := model.Slice(c, grad, model.Embed, -1)
	for t, tok := range p.Tokens {
		for ch := range d {
			emb[tok*d+ch] += dx[ch*s+t]
		}
	}
	return grad
}

// LossAndGrad is Forward then Backward.
func (m *Model) LossAndGrad(tokens, targets []int) (float64, []float64, error) {
	p, err := m.Forward(tokens, targets)
	if err != nil {
		return 0, nil, err
	}
	return p.Loss, m.Backward(p), nil
}

// AdamW is PyTorch's torch.optim.AdamW (decoupled weight decay, bias
// correction), applying weight decay to matrices only (model.Kind.Matrix).
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
}

// DefaultAdamW is the engine's optimizer: β 0.9/0.95, ε 1e-8, weight decay
// 0.1 (llama2.c's train.py and the reference project), lr 5e-4.
var DefaultAdamW = AdamW{LR: 5e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}

// Step applies update number t (1-based) to the flat weights w of config c
// with gradient g and moments m and v (all in the order of c.Tensors),
// in place: w ← w·(1 − lr·wd) for matrices, then
// w ← w − lr·m̂/(√v̂ + ε) with m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ).
func (o AdamW) Step(c model.Config, w, g, m, v []float64, t int) error {
	n := c.NumParams()
	if len(w) != n || len(g) != n || len(m) != n || len(v) != n {
		return errors.New("ref: AdamW: weights, gradient and moments must all have Config.NumParams elements")
	}
	if t < 1 {
		return errors.New("ref: AdamW: the step number starts at 1")
	}
	bc1 := 1 - math.Pow(o.Beta1, float64(t))
	bc2 := 1 - math.Pow(o.Beta2, float64(t))
	for _, ts := range c.Tensors() {
		decay := 1.0
		if ts.Kind.Matrix() {
			decay = 1 - o.LR*o.WeightDecay
		}
		for i := ts.Offset; i < ts.Offset+ts.Size; i++ {
			w[i] *= decay
			m[i] = o.Beta1*m[i] + (1-o.Beta1)*g[i]
			v[i] = o.Beta2*v[i] + (1-o.Beta2)*g[i]*g[i]
			w[i] -= o.LR * (m[i] / bc1) / (math.Sqrt(v[i]/bc2) + o.Eps)
		}
	}
	return nil
}
