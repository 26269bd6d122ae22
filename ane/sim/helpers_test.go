package sim

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

// prog wraps statements into a one-function program(1.3) with the given inputs
// ("tensor<fp16, [1, 4]> x, ...") and outputs.
func prog(inputs, body, outputs string) string {
	return fmt.Sprintf("program(1.3)\n{\n    func main<ios18>(%s) {\n%s\n        } -> (%s);\n}\n", inputs, body, outputs)
}

func newDev(t testing.TB, opts ane.Options) *Device {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func compile(t testing.TB, d *Device, text string, w mil.Weights) ane.Kernel {
	t.Helper()
	k, err := d.CompileText(t.Name(), []byte(text), w)
	if err != nil {
		t.Fatalf("compile: %v\n%s", err, numbered(text))
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func numbered(text string) string {
	var b strings.Builder
	for i, l := range strings.Split(text, "\n") {
		fmt.Fprintf(&b, "%3d %s\n", i+1, l)
	}
	return b.String()
}

// run compiles text with one device and evaluates it on the given inputs
// (float32, rounded to fp16 on staging), returning the outputs as float32.
func run(t testing.TB, text string, opts ane.Options, w mil.Weights, ins ...[]float32) [][]float32 {
	t.Helper()
	d := newDev(t, opts)
	k := compile(t, d, text, w)
	return eval(t, k, ins...)
}

func eval(t testing.TB, k ane.Kernel, ins ...[]float32) [][]float32 {
	t.Helper()
	var in, out []*ane.Surface
	for i, x := range ins {
		s, err := k.NewSurface(ane.Input, i)
		if err != nil {
			t.Fatal(err)
		}
		if len(x) != s.Rows()*s.Cols() {
			t.Fatalf("input %d: %d values for shape %v", i, len(x), s.Shape())
		}
		s.WriteBlock(0, 0, s.Rows(), s.Cols(), x, s.Cols())
		in = append(in, s)
	}
	for i := range k.Outputs() {
		s, err := k.NewSurface(ane.Output, i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := k.Eval(in, out); err != nil {
		t.Fatalf("eval: %v", err)
	}
	var res [][]float32
	for _, s := range out {
		r := make([]float32, s.Rows()*s.Cols())
		s.ReadBlock(0, 0, s.Rows(), s.Cols(), r, s.Cols())
		res = append(res, r)
	}
	return res
}

// r16 rounds to fp16 as staging does; tests compute references from the
// values the device actually sees.
func r16(x float64) float64 { return float64(fp16.Round(float32(x))) }

func r16s(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = r16(float64(x))
	}
	return out
}

// ulp16 is the spacing of fp16 values at |x|: the unit of the tolerances.
func ulp16(x float64) float64 {
	a := math.Abs(x)
	if a < 0x1p-14 {
		return 0x1p-24
	}
	_, e := math.Frexp(a) // a = f·2^e, f in [0.5,1)
	return math.Ldexp(1, e-11)
}

// near checks got against a float64 reference want: |got−want| ≤ ulps·ulp16(want) + abs.
func near(t testing.TB, what string, got []float32, want []float64, ulps, abs float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		g, w := float64(got[i]), want[i]
		if math.IsInf(w, 0) || math.IsNaN(w) {
			if !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
				t.Errorf("%s[%d] = %v, want %v", what, i, g, w)
				bad++
			}
		} else if d := math.Abs(g - w); !(d <= ulps*ulp16(w)+abs) {
			t.Errorf("%s[%d] = %v, want %v (diff %.3g, tol %.3g)", what, i, g, w, d, ulps*ulp16(w)+abs)
			bad++
		}
		if bad > 10 {
			t.Fatalf("%s: too many mismatches", what)
		}
	}
}

// rng is a small deterministic generator.
type rng uint64

func (r *rng) next() float64 {
	*r = *r*6364136223846793005 + 1442695040888963407
	return float64(uint64(*r)>>11) / (1 << 53)
}

func randn(seed uint64, n int, scale float64) []float32 {
	r := rng(seed)
	out := make([]float32, n)
	for i := range out {
		out[i] = float32((r.next()*2 - 1) * scale)
	}
	return out
}
