package engine

import (
	"math"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

func openSim(t testing.TB) ane.Device {
	t.Helper()
	dev, err := sim.New(ane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func relL2(got []float64, want []float64) float64 {
	var num, den float64
	for i := range want {
		d := got[i] - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

// checkWindow runs one window of e (built from the reference's weights) on
// x, y and compares its loss with the float64 reference's (1%) and every
// parameter's gradient (relative L2 ≤ 2e-2 per tensor, the issue's
// fp16-derived bound: model's kernels alone stay within 1e-2 and the fp32
// CPU side adds ~1e-6). It returns the engine's unscaled gradient.
func checkWindow(t *testing.T, e *Engine, x, y []int32, wantLoss float64, wantGrad []float64) []float64 {
	t.Helper()
	loss, err := e.window(x, y)
	if err != nil {
		t.Fatal(err)
	}
	e.dw.wait()
	if r := math.Abs(loss-wantLoss) / wantLoss; r > 0.01 {
		t.Errorf("loss %.6f, reference %.6f", loss, wantLoss)
	}
	t.Logf("loss %.6f, reference %.6f", loss, wantLoss)
	got := make([]float64, len(e.grad))
	for i, g := range e.grad {
		got[i] = float64(g) / e.lossScale
	}
	worst := 0.0
	for _, tn := range e.params.Tensors {
		r := relL2(got[tn.Offset:tn.Offset+tn.Size], wantGrad[tn.Offset:tn.Offset+tn.Size])
		worst = max(worst, r)
		if !(r <= 2e-2) {
			t.Errorf("%s: gradient relative L2 error %.3g > 2e-2", tn.Name, r)
		}
	}
	t.Logf("worst per-tensor gradient relative L2 error %.2e", worst)
	return got
}

// gradCheckConfigs are the gradient checks' models: tied MHA, and untied
// GQA with a head width other than Dim/Heads.
var gradCheckConfigs = []struct {
	name string
	c    model.Config
}{
	{"mha", model.Config{Dim: 64, Hidden: 160, Layers: 2, Heads: 4, Seq: 32, Vocab: 48, Tied: true}},
	{"gqa", model.Config{Dim: 64, Hidden: 96, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 24, Seq: 32, Vocab: 40}},
}

// TestGradientCheck runs one engine window on the emulator against the
// float64 reference (checkWindow), then checks the fused AdamW pass against ref.AdamW over two updates.
func TestGradientCheck(t *testing.T) {
	for _, tc := range gradCheckConfigs {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.Resolved()
			p, xi, yi, err := ref.GradCheckCase(c)
			if err != nil {
				t.Fatal(err)
			}
			x, y := make([]int32, c.Seq), make([]int32, c.Seq)
			for i := range x {
				x[i], y[i] = int32(xi[i]), int32(yi[i])
			}
			m := ref.FromParams(p)
			wantLoss, wantGrad, err := m.LossAndGrad(xi, yi)
			if err != nil {
				t.Fatal(err)
			}
			const lr = 1e-3
			e, err := New(Config{Model: c, Device: openSim(t), Params: p, LR: lr, MinLR: lr, Clip: -1, Steps: 10})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			got := checkWindow(t, e, x, y, wantLoss, wantGrad)

			// The optimizer: two updates with the engine's own gradient must
			// equal ref.AdamW's (float64) to float32 rounding.
			w := make([]float64, len(p.Data))
			for i, v := range e.params.Data {
				w[i] = float64(v)
			}
			rm, rv := make([]float64, len(w)), make([]float64, len(w))
			opt := ref.DefaultAdamW
			opt.LR = lr
			saved := append([]float32(nil), e.grad...)
			for step := 1; step <= 2; step++ {
				copy(e.grad, saved)
				if err := e.update(); err != nil {
					t.Fatal(err)
				}
				if err := opt.Step(c, w, got, rm, rv, step); err != nil {
					t.Fatal(err)
				}
				var num, den float64
				for i := range w {
					d := float64(e.params.Data[i]) - w[i]
					num += d * d
					den += (w[i] - float64(p.Data[i])) * (w[i] - float64(p.Data[i]))
				}
				if r := math.Sqrt(num / den); r > 1e-4 {
					t.Errorf("update %d: weights differ from ref.AdamW by %.3g of the update", step, r)
				}
			}
			// And with the reference's gradient: the one-step update
			// lr·g/(|g|+ε) is a sign for most weights, so compare it on the
			// weights whose gradient is not tiny.
			w0 := make([]float64, len(w))
			for i, v := range p.Data {
				w0[i] = float64(v)
			}
			wr := append([]float64(nil), w0...)
			we := append([]float64(nil), w0...)
			clear(rm)
			clear(rv)
			opt.Step(c, wr, wantGrad, rm, rv, 1)
			clear(rm)
			clear(rv)
			opt.Step(c, we, got, rm, rv, 1)
			var bad, n int
			for i := range wr {
				if math.Abs(wantGrad[i]) > 1e-6 {
					n++
					if math.Abs(wr[i]-we[i]) > 0.1*lr {
						bad++
					}
				}
			}
			if float64(bad) > 0.01*float64(n) {
				t.Errorf("update from the reference's gradient: %d of %d weights differ by more than lr/10", bad, n)
			}
			t.Logf("update vs ref gradient: %d of %d weights off by > lr/10", bad, n)
		})
	}
}
