package engine

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/model"
)

// SampleOptions choose how Generate picks tokens.
type SampleOptions struct {
	// Temperature 0 is greedy (argmax); otherwise logits are divided by it.
	Temperature float64
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP (nucleus sampling); 0 or ≥ 1 keeps all.
	TopP float64
	// Seed seeds the generator: the same seed, weights and prompt give the
	// same text.
	Seed uint64
}

// Generate continues prompt by n tokens from the current weights. It runs
// the model forward on the CPU in float32 over the last Seq tokens for every
// new token: no KV cache, quadratic in the context, simple and exact enough
// for the sample panel. It must not run concurrently with Step.
func (e *Engine) Generate(prompt []int32, n int, opt SampleOptions) ([]int32, error) {
	e.settle() // an error stays in optErr and fails the next Step
	return Generate(e.params, prompt, n, opt)
}

// Generate continues prompt by n tokens with the model p (see
// Engine.Generate).
func Generate(p *model.Params, prompt []int32, n int, opt SampleOptions) ([]int32, error) {
	c := p.Config
	if len(prompt) == 0 {
		return nil, errors.New("engine: sampling needs a prompt of at least one token")
	}
	for _, t := range prompt {
		if t < 0 || int(t) >= c.Vocab {
			return nil, fmt.Errorf("engine: prompt token %d outside the vocabulary of %d", t, c.Vocab)
		}
	}
	f := newCPUForward(c)
	rng := rand.New(rand.NewPCG(opt.Seed, 0x73616d70))
	toks := slices.Clone(prompt)
	probs := make([]float64, c.Vocab)
	idx := make([]int, c.Vocab)
	for range n {
		ctx := toks[max(0, len(toks)-c.Seq):]
		logits := f.lastLogits(p, ctx)
		toks = append(toks, pick(logits, probs, idx, opt, rng))
	}
	return toks[len(prompt):], nil
}

func pick(logits []float32, probs []float64, idx []int, opt SampleOptions, rng *rand.Rand) int32 {
	best := 0
	for j, z := range logits {
		if z > logits[best] {
			best = j
		}
	}
	if opt.Temperature <= 0 {
		return int32(best)
	}
	var sum float64
	for j, z := range logits {
		probs[j] = math.Exp(float64(z-logits[best]) / opt.Temperature)
		sum += probs[j]
	}
	for j := range probs {
		probs[j] /= sum
		idx[j] = j
	}
	keep := len(idx)
	if opt.TopP > 0 && opt.TopP < 1 {
		slices.SortFunc(idx, func(a, b int) int {
			switch {
			case probs[a] > probs[b]:
				return -1
			case probs[a] < probs[b]:
				return 1
			}
			return a - b
		})
		var cum float64
		for i, j := range idx {
			cum += probs[j]
			if cum >= opt.TopP {
				keep = i + 1
				break
			}
		}
	}
	var mass float64
	for _, j := range idx[:keep] {
		mass += probs[j]
	}
	u := rng.Float64() * mass
	for _, j := range idx[:keep] {
		u -= probs[j]
		if u <= 0 {
			return int32(j)
		}
	}
	return int32(idx[keep-1])
}

// cpuForward is a float32 forward pass on the CPU, position-major ([T, C]
// rows per token), for sampling.
type cpuForward struct {
	c                          model.Config
	x, xn, q, k, v, att, o, h1 []float32
	h3, logits, scores         []float32
}

func newCPUForward(c model.Config) *cpuForward {
	s, d, q, kv, h := c.Seq, c.Dim, c.QDim(), c.KVDim(), c.Hidden
	f := func(n int) []float32 { return make([]float32, n) }
	return &cpuForward{c: c, x: f(s * d), xn: f(s * d), q: f(s * q), k: f(s * kv), v: f(s * kv), att: f(s * q),
		o: f(s * d), h1: f(s * h), h3: f(s * h), logits: f(c.Vocab), scores: f(s)}
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

// ropeRows rotates adjacent pairs of every head of x [t, heads·hd] by the
// angle pos·θ^(−2j/hd) (llama2.c's RoPE).
func ropeRows(x []float32, t, heads, hd int, theta float64) {
	for j := range hd / 2 {
		fr := math.Pow(theta, -2*float64(j)/float64(hd))
		for pos := range t {
			sn, cs := math.Sincos(float64(pos) * fr)
			s32, c32 := float32(sn), float32(cs)
			for h := range heads {
				i := pos*heads*hd + h*hd + 2*j
				a, b := x[i], x[i+1]
				x[i], x[i+1] = a*c32-b*s32, a*s32+b*c32
			}
		}
	}
}

// linearRows computes y [t, out] = x [t, in] · wᵀ for w [out, in].
func linearRows(y, x, w []float32, t, out, in int, beta float32) {
	blas.Sgemm(false, true, t, out, in, 1, x, in, w, in, beta, y, out)
}

func (f *cpuForward) lastLogits(p *model.Params, toks []int32) []float32 {
	c, t, d := f.c, len(toks), f.c.Dim
	f.forward(p, toks)
	last := f.x[(t-1)*d : t*d]
	normRows(f.xn[:d], last, p.FinalNorm(), 1, d, c.NormEps)
	linearRows(f.logits, f.xn[:d], p.Classifier(), 1, c.Vocab, d, 0)
	return f.logits
}

// forward runs the layers over toks, leaving the residual stream, [t, Dim]
// rows before the final norm, in f.x.
func (f *cpuForward) forward(p *model.Params, toks []int32) {
	c := f.c
	t, d, hd, qd, kvd, hid := len(toks), c.Dim, c.HeadDim, c.QDim(), c.KVDim(), c.Hidden
	emb := p.Embed()
	for i, tok := range toks {
		copy(f.x[i*d:(i+1)*d], emb[int(tok)*d:int(tok+1)*d])
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	for l := range c.Layers {
		w := p.Layer(l)
		normRows(f.xn, f.x, w.AttnNorm, t, d, c.NormEps)
		linearRows(f.q, f.xn, w.Wq, t, qd, d, 0)
		linearRows(f.k, f.xn, w.Wk, t, kvd, d, 0)
		linearRows(f.v, f.xn, w.Wv, t, kvd, d, 0)
		ropeRows(f.q, t, c.Heads, hd, c.RopeTheta)
		ropeRows(f.k, t, c.KVHeads, hd, c.RopeTheta)
		group := c.Heads / c.KVHeads
		for h := range c.Heads {
			kh := h / group
			for i := range t {
				qi := f.q[i*qd+h*hd : i*qd+h*hd+hd]
				sc := f.scores[:i+1]
				mx := float32(math.Inf(-1))
				for j := range i + 1 {
					kj := f.k[j*kvd+kh*hd : j*kvd+kh*hd+hd]
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
					vj := f.v[j*kvd+kh*hd : j*kvd+kh*hd+hd]
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
}
