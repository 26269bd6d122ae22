package engine

import (
	"math"

	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/model"
)

// cpuForward is a float32 forward pass on the CPU, position-major ([T, C]
// rows per token), for sampling and validation. It keeps every layer's keys
// and values, so a sampler feeds one new token at a time instead of the
// whole context again: a token costs one row through the layers plus its
// attention over the cache.
type cpuForward struct {
	c                     model.Config
	x, xn, q, att, h1, h3 []float32   // [Seq, ·] rows of the tokens being fed
	k, v                  [][]float32 // per layer, [Seq, KVDim]: the cache
	n                     int         // positions in the cache
	logits, scores        []float32
}

func newCPUForward(c model.Config) *cpuForward {
	s, d, q, kv, h := c.Seq, c.Dim, c.QDim(), c.KVDim(), c.Hidden
	f := func(n int) []float32 { return make([]float32, n) }
	cf := &cpuForward{c: c, x: f(s * d), xn: f(s * d), q: f(s * q), att: f(s * q),
		h1: f(s * h), h3: f(s * h), logits: f(c.Vocab), scores: f(s),
		k: make([][]float32, c.Layers), v: make([][]float32, c.Layers)}
	for l := range c.Layers {
		cf.k[l], cf.v[l] = f(s*kv), f(s*kv)
	}
	return cf
}

// normRows is RMSNorm over each of the t rows of x [t, d].
func normRows(y, x, g []float32, t, d int, eps float64) {
	for i := range t {
		row, out := x[i*d:(i+1)*d], y[i*d:(i+1)*d]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		r := float32(1 / math.Sqrt(ss/float64(d)+eps))
		for j, v := range row {
			out[j] = v * r * g[j]
		}
	}
}

// ropeRows rotates adjacent pairs of every head of x [t, heads·hd], row i
// being position pos0+i, by the angle pos·θ^(−2j/hd) (llama2.c's RoPE).
func ropeRows(x []float32, t, pos0, heads, hd int, theta float64) {
	for j := range hd / 2 {
		fr := math.Pow(theta, -2*float64(j)/float64(hd))
		for i := range t {
			sn, cs := math.Sincos(float64(pos0+i) * fr)
			s32, c32 := float32(sn), float32(cs)
			for h := range heads {
				at := i*heads*hd + h*hd + 2*j
				a, b := x[at], x[at+1]
				x[at], x[at+1] = a*c32-b*s32, a*s32+b*c32
			}
		}
	}
}

// linearRows computes y [t, out] = x [t, in] · wᵀ for w [out, in].
func linearRows(y, x, w []float32, t, out, in int, beta float32) {
	blas.Sgemm(false, true, t, out, in, 1, x, in, w, in, beta, y, out)
}

// reset empties the cache: the next feed starts at position 0.
func (f *cpuForward) reset() { f.n = 0 }

// forward runs toks from position 0, leaving the residual stream, [t, Dim]
// rows before the final norm, in f.x.
func (f *cpuForward) forward(p *model.Params, toks []int32) {
	f.reset()
	f.feed(p, toks)
}

// lastLogits returns the logits after the last of toks, run from position 0.
func (f *cpuForward) lastLogits(p *model.Params, toks []int32) []float32 {
	f.reset()
	return f.next(p, toks)
}

// next feeds toks after the cached positions and returns the logits after
// the last of them. The cache must have room: f.n+len(toks) ≤ Seq.
func (f *cpuForward) next(p *model.Params, toks []int32) []float32 {
	c, t, d := f.c, len(toks), f.c.Dim
	f.feed(p, toks)
	last := f.x[(t-1)*d : t*d]
	normRows(f.xn[:d], last, p.FinalNorm(), 1, d, c.NormEps)
	linearRows(f.logits, f.xn[:d], p.Classifier(), 1, c.Vocab, d, 0)
	return f.logits
}

// feed runs toks at positions f.n, f.n+1, … through the layers, appending
// their keys and values to the cache, and leaves their residual rows
// before the final norm in f.x[:len(toks)·Dim].
func (f *cpuForward) feed(p *model.Params, toks []int32) {
	c := f.c
	t, n0, d, hd, qd, kvd, hid := len(toks), f.n, c.Dim, c.HeadDim, c.QDim(), c.KVDim(), c.Hidden
	if n0+t > c.Seq {
		panic("engine: cpuForward fed past its context") // callers slide the window first
	}
	emb := p.Embed()
	for i, tok := range toks {
		copy(f.x[i*d:(i+1)*d], emb[int(tok)*d:int(tok+1)*d])
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	group := c.Heads / c.KVHeads
	for l := range c.Layers {
		w := p.Layer(l)
		kc, vc := f.k[l], f.v[l]
		knew, vnew := kc[n0*kvd:(n0+t)*kvd], vc[n0*kvd:(n0+t)*kvd]
		normRows(f.xn, f.x, w.AttnNorm, t, d, c.NormEps)
		linearRows(f.q, f.xn, w.Wq, t, qd, d, 0)
		linearRows(knew, f.xn, w.Wk, t, kvd, d, 0)
		linearRows(vnew, f.xn, w.Wv, t, kvd, d, 0)
		ropeRows(f.q, t, n0, c.Heads, hd, c.RopeTheta)
		ropeRows(knew, t, n0, c.KVHeads, hd, c.RopeTheta)
		for h := range c.Heads {
			kh := h / group
			for i := range t {
				pos := n0 + i // attends to positions 0..pos
				qi := f.q[i*qd+h*hd : i*qd+h*hd+hd]
				sc := f.scores[:pos+1]
				mx := float32(math.Inf(-1))
				for j := range sc {
					kj := kc[j*kvd+kh*hd : j*kvd+kh*hd+hd]
					var dot float32
					for e, qv := range qi {
						dot += qv * kj[e]
					}
					sc[j] = dot * scale
					mx = max(mx, sc[j])
				}
				var sum float32
				for j := range sc {
					sc[j] = float32(math.Exp(float64(sc[j] - mx)))
					sum += sc[j]
				}
				out := f.att[i*qd+h*hd : i*qd+h*hd+hd]
				clear(out)
				for j, pj := range sc {
					vj := vc[j*kvd+kh*hd : j*kvd+kh*hd+hd]
					for e := range out {
						out[e] += pj / sum * vj[e]
					}
				}
			}
		}
		linearRows(f.x, f.att, w.Wo, t, d, qd, 1) // x += attn·woᵀ
		normRows(f.xn, f.x, w.FFNNorm, t, d, c.NormEps)
		linearRows(f.h1, f.xn, w.W1, t, hid, d, 0)
		linearRows(f.h3, f.xn, w.W3, t, hid, d, 0)
		for i := range t * hid {
			a := f.h1[i]
			f.h1[i] = a / (1 + float32(math.Exp(float64(-a)))) * f.h3[i]
		}
		linearRows(f.x, f.h1, w.W2, t, d, hid, 1) // x += g·w2ᵀ
	}
	f.n = n0 + t
}
