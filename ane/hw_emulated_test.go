package ane_test

import (
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/anetest"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/mil"
)

// TestConformanceOverTheDeviceLogic runs the device conformance suite on the
// Neural Engine device's own logic (program cache, budget, surfaces with the
// compiled layout, request cache, validation) over a fake framework that
// computes with the emulator. Rows are padded by 64 bytes beyond what the
// rows need, which no real kernel needs, so a reader or writer that ignores
// the stride fails.
func TestConformanceOverTheDeviceLogic(t *testing.T) {
	open := func(o ane.Options) (ane.Device, error) {
		return ane.NewEmulatedEngine(t, o, 64, sim.CompileTextOptions), nil
	}
	dev, _ := open(ane.Options{})
	anetest.Run(t, dev, anetest.WithOpen(open))
	st := dev.(*ane.NeuralEngine).Stats()
	t.Logf("device stats after the suite: %+v", st)
	if st.Evals == 0 || st.Requests == 0 {
		t.Errorf("the suite ran no evaluations through the device: %+v", st)
	}
}

// TestFLOPsAgreeWithTheEmulator checks ane.ProgramFLOPs against the
// emulator's own count on programs with every kind of op it counts.
func TestFLOPsAgreeWithTheEmulator(t *testing.T) {
	build := map[string]func(b *mil.Builder){
		"dynamic matmul": func(b *mil.Builder) {
			x := b.Input("x", mil.TensorOf(mil.FP16, 1, 64, 1, 32+48))
			act := b.SliceBySize("act", x, []int{0, 0, 0, 0}, []int{1, 64, 1, 32})
			w := b.SliceBySize("w", x, []int{0, 0, 0, 32}, []int{1, 64, 1, 48})
			a := b.Transpose("at", b.Reshape("ar", act, 1, 1, 64, 32), 0, 1, 3, 2)
			y := b.MatMul("y", a, b.Reshape("wr", w, 1, 1, 64, 48), false, false)
			b.Output(b.Reshape("out", b.Transpose("yt", y, 0, 1, 3, 2), 1, 48, 1, 32))
		},
		"transposed matmul": func(b *mil.Builder) {
			x := b.Input("x", mil.TensorOf(mil.FP16, 1, 1, 64, 32))
			b.Output(b.MatMul("y", x, x, true, false))
		},
		"conv, softmax, reductions, elementwise": func(b *mil.Builder) {
			x := b.Input("x", mil.TensorOf(mil.FP16, 1, 16, 1, 32))
			vals := make([]float32, 8*16)
			for i := range vals {
				vals[i] = float32(i%5) / 8
			}
			c := b.Conv("c", x, b.ConstFP16("w", mil.Shape{8, 16, 1, 1}, vals), mil.ConvOpts{})
			s := b.Softmax("s", b.Silu("a", c), 1)
			r := b.ReduceSum("r", s, []int{1}, true)
			m := b.ReduceMax("m", s, []int{3}, true)
			b.Output(b.Mul("y", b.Sub("d", s, r), m))
		},
		"attention": func(b *mil.Builder) {
			x := b.Input("x", mil.TensorOf(mil.FP16, 1, 2, 32, 16))
			b.Output(b.SDPA("y", x, x, x, nil))
		},
	}
	for name, f := range build {
		b := mil.NewBuilder(mil.IOS18)
		f(b)
		p, w, err := b.Build()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		k, err := sim.CompileText(name, mil.Print(p), w)
		if err != nil {
			t.Fatalf("%s: emulator: %v", name, err)
		}
		if got, want := ane.ProgramFLOPs(p.Main()), k.FLOPs(); got != want || got == 0 {
			t.Errorf("%s: ProgramFLOPs = %v, the emulator counts %v", name, got, want)
		}
		k.Close()
	}
}
