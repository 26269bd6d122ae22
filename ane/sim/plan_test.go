package sim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
)

func planOf(k ane.Kernel) *plan { return k.(*kernel).plan }

// The dynamic linear kernel's slices, reshapes and transposes are all views:
// the plan is a single sgemm step.
func TestViewsAreFree(t *testing.T) {
	p, w := dynMatmul(t, 64, 48, 32)
	k, err := newDev(t, ane.Options{}).Compile("dyn", p, w)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(planOf(k).steps); n != 1 {
		t.Errorf("plan has %d steps, want 1 (views must not copy)", n)
	}
}

// A chain of elementwise ops reuses buffers whose values are dead.
func TestBufferReuse(t *testing.T) {
	var body strings.Builder
	prev := "x"
	for i := range 10 {
		fmt.Fprintf(&body, "            tensor<fp16, [1, 64, 1, 64]> r%d = mul(x = %s, y = fp16(0x1p+0))[name = string(\"r%d\")];\n", i, prev, i)
		prev = fmt.Sprintf("r%d", i)
	}
	text := prog("tensor<fp16, [1, 64, 1, 64]> x", strings.TrimRight(body.String(), "\n"), prev)
	d := newDev(t, ane.Options{})
	k := compile(t, d, text, nil)
	if a := planOf(k).arena; a > 3*64*64 {
		t.Errorf("arena %d elements for a chain of 10 ops on 4096 elements, want ≤ 3 buffers", a)
	}
	x := randn(3, 64*64, 2)
	got := eval(t, k, x)[0]
	near(t, "chain", got, r16s(x), 0, 0)
}

// Kernels written with mil's builder, including constexpr weights in both
// serialisations (attributes up to iOS17, inputs from iOS18), go through
// Compile: printed, parsed back, run.
func TestBuilderConstexpr(t *testing.T) {
	for _, target := range []mil.Target{mil.IOS17, mil.IOS18} {
		t.Run(target.String(), func(t *testing.T) {
			b := mil.NewBuilder(target)
			x := b.Input("x", mil.TensorOf(mil.FP16, 1, 3))
			q := b.Blob(mil.TensorOf(mil.Int8, 2, 3), []byte{0, 1, 2, 255, 128, 127})
			wq := b.ConstexprAffineDequantize("wq", q, mil.QuantParams{
				Scale: mil.FloatTensor(mil.FP16, mil.Shape{2}, []float64{0.25, 2}), Axis: 0,
				ZeroPoint: mil.IntTensor(mil.Int8, mil.Shape{2}, []int64{1, -1})})
			y := b.MatMul("y", x, wq, false, true)
			b.Output(y)
			p, w, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			k, err := newDev(t, ane.Options{}).Compile("cq", p, w)
			if err != nil {
				t.Fatalf("%v\n%s", err, numbered(string(mil.Print(p))))
			}
			got := eval(t, k, []float32{1, 10, 100})[0]
			deq := []float64{-0.25, 0, 0.25, 0, 2 * -127, 2 * 128}
			near(t, "y", got, []float64{r16(deq[0] + 10*deq[1] + 100*deq[2]), r16(deq[3] + 10*deq[4] + 100*deq[5])}, 0, 0)
		})
	}
}
