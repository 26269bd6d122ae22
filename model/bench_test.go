package model_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/model"
)

// benchKernels compiles the four kernels of a preset on the emulator (timed
// as the "compile" sub-benchmark: print, parse, check and plan all four),
// stages random weights and activations, and times each kernel's
// evaluation, reporting ms per evaluation and achieved GFLOP/s (the
// emulator's FLOP count, which equals Layout.KernelFLOPs), averaged and at
// best: the machine may be shared.
func benchKernels(b *testing.B, preset string) {
	c, err := model.Preset(preset)
	if err != nil {
		b.Fatal(err)
	}
	r := newRig(b, c)
	l := r.l
	rng := rand.New(rand.NewPCG(3, 4))
	p, err := model.NewParams(c)
	if err != nil {
		b.Fatal(err)
	}
	// Layer 0's weights only: the other layers are the same kernels.
	for _, k := range []model.Kind{model.Wq, model.Wk, model.Wv, model.Wo, model.W1, model.W2, model.W3} {
		w := model.Slice(c, p.Data, k, 0)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.02)
		}
	}
	scratch := make([]float32, l.ScratchSize())
	ain, fin := r.in[&l.Attn.Packing], r.in[&l.FFN.Packing]
	l.StageAttnWeights(ain, p.Layer(0), scratch)
	l.StageFFNWeights(fin, p.Layer(0), scratch)
	act, _ := randn(rng, max(c.Dim, c.Hidden, c.QDim())*c.Seq, 1)
	for _, blk := range []model.Block{l.Attn.X, l.Attn.DO, l.Attn.Q, l.Attn.K, l.Attn.V} {
		blk.Write(ain, act[:blk.Size()])
	}
	for _, blk := range []model.Block{l.FFN.X, l.FFN.DF, l.FFN.H1, l.FFN.H3} {
		blk.Write(fin, act[:blk.Size()])
	}
	b.Run("compile", func(b *testing.B) {
		progs := make([]*mil.Program, model.NumKernels)
		weights := make([]mil.Weights, model.NumKernels)
		for _, id := range model.Kernels {
			if progs[id], weights[id], err = l.Build(id); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for range b.N {
			dev, err := sim.New(ane.Options{})
			if err != nil {
				b.Fatal(err)
			}
			for _, id := range model.Kernels {
				if _, err := dev.Compile(id.String(), progs[id], weights[id]); err != nil {
					b.Fatal(err)
				}
			}
			dev.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/4-kernels")
	})
	for _, id := range model.Kernels {
		b.Run(id.String(), func(b *testing.B) {
			r.eval(b, id) // first evaluation allocates the kernel's arena
			b.ResetTimer()
			start := time.Now()
			best := time.Duration(1 << 62)
			for range b.N {
				t := time.Now()
				r.eval(b, id)
				best = min(best, time.Since(t))
			}
			sec := time.Since(start).Seconds() / float64(b.N)
			flops := l.KernelFLOPs(id).Total()
			b.ReportMetric(sec*1e3, "ms/eval")
			b.ReportMetric(flops/sec/1e9, "GFLOP/s")
			// The best evaluation: what the kernel costs when the (shared)
			// machine leaves it alone.
			b.ReportMetric(best.Seconds()*1e3, "best-ms")
			b.ReportMetric(flops/best.Seconds()/1e9, "best-GFLOP/s")
		})
	}
}

// BenchmarkKernelsStories15M: go test ./model -run XXX -bench Kernels
func BenchmarkKernelsStories15M(b *testing.B) { benchKernels(b, "stories15m") }

func BenchmarkKernelsTiny(b *testing.B) { benchKernels(b, "tiny") }

// BenchmarkStepEstimate bounds a training step of the tiny preset from above
// without the engine: every kernel once per layer, plus the CPU's sgemms
// (classifier forward, its input gradient and weight gradient; the layers'
// dW), all serial, as if nothing overlapped. The tiny preset is sized from
// it (see the preset's comment).
func BenchmarkStepEstimate(b *testing.B) {
	for _, name := range []string{"tiny", "stories15m"} {
		b.Run(name, func(b *testing.B) {
			c, _ := model.Preset(name)
			r := newRig(b, c)
			l := r.l
			d, s, v := c.Dim, c.Seq, c.Vocab
			emb := make([]float32, v*d)
			xf := make([]float32, d*s)
			logits := make([]float32, v*s)
			dw := make([]float32, max(c.Hidden, c.Dim)*max(c.Hidden, c.Dim, c.QDim()))
			act := make([]float32, max(c.Hidden, c.Dim, c.QDim())*s)
			for _, id := range model.Kernels {
				r.eval(b, id)
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				for range c.Layers {
					for _, id := range model.Kernels {
						r.eval(b, id)
					}
					// dW = dy·xᵀ for the seven matrices of a layer.
					for _, k := range []model.Kind{model.Wq, model.Wk, model.Wv, model.Wo, model.W1, model.W2, model.W3} {
						sh := c.Shape(k)
						blas.Sgemm(false, true, sh[0], sh[1], s, 1, act, s, act, s, 1, dw, sh[1])
					}
				}
				blas.Sgemm(false, false, v, s, d, 1, emb, d, xf, s, 0, logits, s)
				blas.Sgemm(true, false, d, s, v, 1, emb, d, logits, s, 0, xf, s)
				blas.Sgemm(false, true, v, d, s, 1, logits, s, xf, s, 1, emb, d)
			}
			ms := time.Since(start).Seconds() * 1e3 / float64(b.N)
			b.ReportMetric(ms, "ms/step")
			b.ReportMetric(60e3/ms, "steps/min")
			b.ReportMetric(l.FLOPs().Model/(ms/1e3)/1e9, "model-GFLOP/s")
		})
	}
}
