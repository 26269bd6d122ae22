package model_test

import (
	"math"
	"testing"

	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

// outerAcc adds dy·xᵀ [out, in] into dw, for dy [out, S] and x [in, S]: the
// CPU's weight gradient.
func outerAcc(dw []float64, dy []float32, out int, x []float64, in, s int) {
	for o := range out {
		for i := range in {
			var acc float64
			for t := range s {
				acc += float64(dy[o*s+t]) * x[i*s+t]
			}
			dw[o*in+i] += acc
		}
	}
}

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// TestPipelineGradients trains nothing but checks the kernels' interface end
// to end: a whole model's forward and backward run through the four kernels
// on the emulator, with the CPU's share (embedding, RMSNorm, residuals,
// classifier, cross-entropy, dW = dy·xᵀ from the taps) done in float64 as
// the engine will do it in fp32, exactly as the package doc's step order
// says. The loss and every parameter's gradient must match the float64
// reference: loss within 1%, gradients within 2e-2 relative L2 per tensor
// (the gradient-check bound). The loss gradient is scaled by 1024
// on the device and unscaled on the CPU, as fp16 gradients need.
func TestPipelineGradients(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    model.Config
	}{
		{"mha", model.Config{Dim: 64, Hidden: 160, Layers: 2, Heads: 4, Seq: 32, Vocab: 48, Tied: true}},
		{"gqa", model.Config{Dim: 64, Hidden: 96, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 24, Seq: 32, Vocab: 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.Resolved()
			const lossScale = 1024
			r := newRig(t, c)
			l := r.l
			p, in, tg, err := ref.GradCheckCase(c)
			if err != nil {
				t.Fatal(err)
			}
			m := ref.FromParams(p)
			wantLoss, wantGrad, err := m.LossAndGrad(in, tg)
			if err != nil {
				t.Fatal(err)
			}

			d, s, v := c.Dim, c.Seq, c.Vocab
			w := m.W
			grad := make([]float64, len(w))
			scratch := make([]float32, l.ScratchSize())
			ain, fin := r.in[&l.Attn.Packing], r.in[&l.FFN.Packing]
			type saved struct {
				x, xn, rAttn, x2, xn2, rFFN []float64
				attn, g                     []float32
			}
			// Per-layer surfaces: this rig has one of each, so the taps the
			// backward needs are kept on the CPU side here; the engine keeps
			// one surface per layer and copies them in place.
			type taps struct{ q, k, v, h1, h3 []float32 }
			var layers []saved
			var kept []taps

			emb := model.Slice(c, w, model.Embed, -1)
			x := make([]float64, d*s)
			for tt, tok := range in {
				for ch := range d {
					x[ch*s+tt] = emb[tok*d+ch]
				}
			}
			for li := range c.Layers {
				lw := model.Layer(c, w, li)
				sv := saved{x: x}
				sv.xn, sv.rAttn = ref.RMSNorm(x, lw.AttnNorm, d, s, c.NormEps)
				l.StageAttnWeights(ain, p.Layer(li), scratch)
				l.Attn.X.Write(ain, to32(sv.xn))
				r.eval(t, model.AttnFwd)
				o := r.read(model.AttnFwd, l.AttnFwdOut.O)
				sv.attn = r.read(model.AttnFwd, l.AttnFwdOut.Attn)
				tp := taps{q: r.read(model.AttnFwd, l.AttnFwdOut.Q), k: r.read(model.AttnFwd, l.AttnFwdOut.K), v: r.read(model.AttnFwd, l.AttnFwdOut.V)}
				sv.x2 = make([]float64, d*s)
				for i := range sv.x2 {
					sv.x2[i] = x[i] + float64(o[i])
				}
				sv.xn2, sv.rFFN = ref.RMSNorm(sv.x2, lw.FFNNorm, d, s, c.NormEps)
				l.StageFFNWeights(fin, p.Layer(li), scratch)
				l.FFN.X.Write(fin, to32(sv.xn2))
				r.eval(t, model.FFNFwd)
				f := r.read(model.FFNFwd, l.FFNFwdOut.F)
				sv.g = r.read(model.FFNFwd, l.FFNFwdOut.G)
				tp.h1, tp.h3 = r.read(model.FFNFwd, l.FFNFwdOut.H1), r.read(model.FFNFwd, l.FFNFwdOut.H3)
				x = make([]float64, d*s)
				for i := range x {
					x[i] = sv.x2[i] + float64(f[i])
				}
				layers = append(layers, sv)
				kept = append(kept, tp)
			}

			// Classifier and cross-entropy on the CPU.
			fn := model.Slice(c, w, model.FinalNorm, -1)
			xf, rf := ref.RMSNorm(x, fn, d, s, c.NormEps)
			clsKind := model.Classifier
			if c.Tied {
				clsKind = model.Embed
			}
			cls := model.Slice(c, w, clsKind, -1)
			dlog := make([]float64, v*s)
			loss := 0.0
			for tt := range s {
				mx := math.Inf(-1)
				lg := make([]float64, v)
				for j := range v {
					for ch := range d {
						lg[j] += cls[j*d+ch] * xf[ch*s+tt]
					}
					mx = math.Max(mx, lg[j])
				}
				sum := 0.0
				for j := range v {
					sum += math.Exp(lg[j] - mx)
				}
				loss += mx + math.Log(sum) - lg[tg[tt]]
				for j := range v {
					dlog[j*s+tt] = math.Exp(lg[j]-mx) / sum / float64(s)
				}
				dlog[tg[tt]*s+tt] -= 1 / float64(s)
			}
			loss /= float64(s)
			if e := math.Abs(loss-wantLoss) / wantLoss; e > 0.01 {
				t.Errorf("loss %.6f, reference %.6f (%.2g relative)", loss, wantLoss, e)
			}
			t.Logf("loss %.6f, reference %.6f", loss, wantLoss)
			gcls := model.Slice(c, grad, clsKind, -1)
			dxf := make([]float64, d*s)
			for j := range v {
				for ch := range d {
					for tt := range s {
						gcls[j*d+ch] += dlog[j*s+tt] * xf[ch*s+tt]
						dxf[ch*s+tt] += cls[j*d+ch] * dlog[j*s+tt]
					}
				}
			}
			dx, dgf := ref.RMSNormBackward(x, fn, rf, dxf, d, s)
			copy(model.Slice(c, grad, model.FinalNorm, -1), dgf)
			for i := range dx {
				dx[i] *= lossScale // the device sees scaled gradients
			}

			for li := c.Layers - 1; li >= 0; li-- {
				sv, tp := layers[li], kept[li]
				lw := model.Layer(c, w, li)
				lg := model.Layer(c, grad, li)
				// FFN backward.
				l.StageFFNWeights(fin, p.Layer(li), scratch)
				l.FFN.H1.Write(fin, tp.h1)
				l.FFN.H3.Write(fin, tp.h3)
				df := to32(dx)
				l.FFN.DF.Write(fin, df)
				r.eval(t, model.FFNBwd)
				dh1 := r.read(model.FFNBwd, l.FFNBwdOut.DH1)
				dh3 := r.read(model.FFNBwd, l.FFNBwdOut.DH3)
				outerAcc(lg.W1, dh1, c.Hidden, sv.xn2, d, s)
				outerAcc(lg.W3, dh3, c.Hidden, sv.xn2, d, s)
				outerAcc(lg.W2, df, d, to64(sv.g), c.Hidden, s)
				dn, dgn := ref.RMSNormBackward(sv.x2, lw.FFNNorm, sv.rFFN, to64(r.read(model.FFNBwd, l.FFNBwdOut.DX)), d, s)
				dx2 := make([]float64, d*s)
				for i := range dx2 {
					dx2[i] = dx[i] + dn[i]
				}
				for i, g := range dgn {
					lg.FFNNorm[i] += g
				}
				// Attention backward.
				l.StageAttnWeights(ain, p.Layer(li), scratch)
				l.Attn.Q.Write(ain, tp.q)
				l.Attn.K.Write(ain, tp.k)
				l.Attn.V.Write(ain, tp.v)
				do := to32(dx2)
				l.Attn.DO.Write(ain, do)
				r.eval(t, model.AttnBwd)
				outerAcc(lg.Wo, do, d, to64(sv.attn), c.QDim(), s)
				outerAcc(lg.Wq, r.read(model.AttnBwd, l.AttnBwdOut.DQ), c.QDim(), sv.xn, d, s)
				outerAcc(lg.Wk, r.read(model.AttnBwd, l.AttnBwdOut.DK), c.KVDim(), sv.xn, d, s)
				outerAcc(lg.Wv, r.read(model.AttnBwd, l.AttnBwdOut.DV), c.KVDim(), sv.xn, d, s)
				da, dga := ref.RMSNormBackward(sv.x, lw.AttnNorm, sv.rAttn, to64(r.read(model.AttnBwd, l.AttnBwdOut.DX)), d, s)
				for i, g := range dga {
					lg.AttnNorm[i] += g
				}
				dx = make([]float64, d*s)
				for i := range dx {
					dx[i] = dx2[i] + da[i]
				}
			}
			// Everything below the classifier came scaled: unscale the layers'
			// gradients and the stream before the embedding's lookup part.
			for _, tn := range p.Tensors {
				if tn.Kind.PerLayer() {
					for i := tn.Offset; i < tn.Offset+tn.Size; i++ {
						grad[i] /= lossScale
					}
				}
			}
			ge := model.Slice(c, grad, model.Embed, -1)
			for tt, tok := range in {
				for ch := range d {
					ge[tok*d+ch] += dx[ch*s+tt] / lossScale
				}
			}
			worst := 0.0
			for _, tn := range p.Tensors {
				got, want := grad[tn.Offset:tn.Offset+tn.Size], wantGrad[tn.Offset:tn.Offset+tn.Size]
				var num, den float64
				for i := range want {
					num += (got[i] - want[i]) * (got[i] - want[i])
					den += want[i] * want[i]
				}
				e := math.Sqrt(num / den)
				worst = math.Max(worst, e)
				if e > 2e-2 {
					t.Errorf("%s: relative L2 error %.3g > 2e-2", tn.Name, e)
				}
			}
			t.Logf("worst gradient relative L2 error %.2e", worst)
		})
	}
}
