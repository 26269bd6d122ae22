package anetest

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
)

// dynMatmul builds the dynamic-weight linear layer of the training kernels
// (ane-anchor §3.5): one input [1, IC, 1, S+OC] holding the activations in
// columns [0, S) and the weights W [IC, OC] in columns [S, S+OC), and one
// output [1, OC, 1, S] = Wᵀ·x.
func dynMatmul(ic, oc, s int) (*mil.Program, mil.Weights, error) {
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, ic, 1, s+oc))
	act := b.SliceBySize("act", x, []int{0, 0, 0, 0}, []int{1, ic, 1, s})
	w := b.SliceBySize("w", x, []int{0, 0, 0, s}, []int{1, ic, 1, oc})
	a := b.Transpose("act_t", b.Reshape("act_r", act, 1, 1, ic, s), 0, 1, 3, 2) // [1,1,S,IC]
	y := b.MatMul("y", a, b.Reshape("w_r", w, 1, 1, ic, oc), false, false)      // [1,1,S,OC]
	out := b.Reshape("out", b.Transpose("y_t", y, 0, 1, 3, 2), 1, oc, 1, s)     // [1,OC,1,S]
	b.Output(out)
	return b.Build()
}

// linearCase is one evaluation of the dynamic matmul: the packed input and
// the float64 product with its bound, computed directly (not through the
// interpreter), so the kernel is checked against plain arithmetic.
type linearCase struct {
	input     []float64 // [IC, S+OC] row-major, fp16 values
	want, tol []float64 // [OC, S]
	sq        int       // S, the row length of want
}

func newLinearCase(name string, ic, oc, s int) *linearCase {
	rng := rngFor(name)
	c := &linearCase{input: make([]float64, ic*(s+oc)), want: make([]float64, oc*s), tol: make([]float64, oc*s), sq: s}
	for i := range c.input {
		c.input[i] = round16(2*rng.Float64() - 1)
	}
	for o := range oc {
		for j := range s {
			sum, abs := 0.0, 0.0
			for i := range ic {
				p := c.input[i*(s+oc)+s+o] * c.input[i*(s+oc)+j] // W[i,o]·x[i,j]
				sum += p
				abs += math.Abs(p)
			}
			c.want[o*s+j] = sum
			// The same rule as the op tests: accumulation plus one
			// rounding of the result (the transposes and reshapes are exact).
			c.tol[o*s+j] = accumulation(ic, abs) + 2*unit*math.Abs(sum) + tinyHalf
		}
	}
	return c
}

func (s *suite) checkLinear(t *testing.T, what string, c *linearCase, got []float64) {
	t.Helper()
	bad := compare(got, c.want, c.tol, s.cfg.scale)
	if len(bad) == 0 {
		return
	}
	var b strings.Builder
	for n, m := range bad {
		if n == 8 {
			fmt.Fprintf(&b, "  … and %d more\n", len(bad)-n)
			break
		}
		fmt.Fprintf(&b, "  y[%d, %d]: got %v, want %v ± %.3g (%s)\n", m.i/c.sq, m.i%c.sq, m.got, m.want, m.tol, m.why)
	}
	t.Errorf("%s: %d of %d outputs outside the bound:\n%s", what, len(bad), len(got), b.String())
}

// dynamicMatmul checks the spatially packed dynamic-weight matmul.
func (s *suite) dynamicMatmul(t *testing.T) {
	const ic, oc, sq = 64, 32, 32
	p, w, err := dynMatmul(ic, oc, sq)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	k := s.compile(t, "dynamic_matmul", p, w)
	c := newLinearCase("dynamic_matmul", ic, oc, sq)
	got := s.eval(t, k, c.input)
	s.checkLinear(t, "dynamic matmul", c, got)
	t.Logf("%d outputs; worst error %.3g of its bound", len(got), worst(got, c.want, c.tol))
}

// perLayerSurfaces evaluates one compiled kernel with a different input
// surface per "layer", as the training loop does, in an order that would
// expose a kernel caching the data of a surface it has seen, and once more
// after rewriting a surface in place.
func (s *suite) perLayerSurfaces(t *testing.T) {
	const ic, oc, sq, layers = 32, 32, 32, 4
	p, w, err := dynMatmul(ic, oc, sq)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	k := s.compile(t, "per_layer_surfaces", p, w)
	cases := make([]*linearCase, layers)
	ins := make([]*ane.Surface, layers)
	outs := make([]*ane.Surface, layers)
	for l := range layers {
		cases[l] = newLinearCase(fmt.Sprintf("layer%d", l), ic, oc, sq)
		if ins[l], err = k.NewSurface(ane.Input, 0); err != nil {
			t.Fatalf("input surface: %v", err)
		}
		if outs[l], err = k.NewSurface(ane.Output, 0); err != nil {
			t.Fatalf("output surface: %v", err)
		}
		writeSurface(t, ins[l], cases[l].input)
	}
	evalLayer := func(step string, l int, out *ane.Surface) {
		fillNaN(t, out)
		if err := k.Eval([]*ane.Surface{ins[l]}, []*ane.Surface{out}); err != nil {
			t.Fatalf("%s: eval layer %d: %v", step, l, err)
		}
		s.checkLinear(t, fmt.Sprintf("%s, layer %d", step, l), cases[l], readSurface(t, out))
	}
	for _, l := range []int{0, 1, 2, 3, 2, 0, 3, 1} {
		evalLayer("bound in turn", l, outs[l])
	}
	// Restage layer 1's surface with new weights, as after an optimizer
	// step: the same binding must see the new data.
	cases[1] = newLinearCase("layer1 updated", ic, oc, sq)
	writeSurface(t, ins[1], cases[1].input)
	evalLayer("after restaging", 1, outs[1])
	evalLayer("after restaging", 0, outs[0])

	// One output surface shared by every layer, the other binding pattern.
	for l := range layers {
		evalLayer("shared output", l, outs[0])
	}
	if st := k.Stats(); st.Evals < 14 {
		t.Errorf("kernel stats count %d evaluations, want at least 14", st.Evals)
	}
}

// tiny builds a small valid kernel: y = relu(x) on [1, 1, 1, 32].
func tiny(t *testing.T, name string) (*mil.Program, mil.Weights) {
	t.Helper()
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, 1, 1, align))
	b.Output(b.Relu(name, x))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p, w
}

// budgetKernel builds a small valid kernel for the budget test:
// y = x + x on [1, 64, 1, 64] fp16. add is an op the reference's kernels
// use (ane-anchor §3.4; relu is not), and 64 channels of 64 elements
// (128-byte rows) meet the reported 64-channel minimum (§8.6), so on the
// hardware a compile fails only for the budget. tag names the output and
// makes the programs distinct, so the content cache compiles each of them.
func budgetKernel(t *testing.T, tag string) (*mil.Program, mil.Weights) {
	t.Helper()
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, 64, 1, 64))
	b.Output(b.Add(tag, x, x))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p, w
}

// budget checks the compile budget on a fresh device with a small limit:
// successful compiles count one each, failed ones none, and past the limit
// Compile fails with ErrBudgetExhausted.
func (s *suite) budget(t *testing.T) {
	const limit = 3
	d := s.mustOpen(t, ane.Options{Budget: limit})
	used, lim := d.Budget()
	if lim != limit {
		t.Fatalf("Budget() limit is %d on a device opened with Options.Budget %d", lim, limit)
	}
	// The failing compile is the same kernel with a wrong declared type.
	bad, _ := budgetKernel(t, "bad")
	breakDeclaredType(bad)
	for used < limit {
		// A failing compile must not use the budget.
		if _, err := d.Compile("bad", bad, nil); err == nil {
			t.Fatalf("an invalid program compiled")
		}
		if u, _ := d.Budget(); u != used {
			t.Fatalf("a failed compile moved the budget from %d to %d used", used, u)
		}
		p, w := budgetKernel(t, fmt.Sprintf("k%d", used))
		k, err := d.Compile(fmt.Sprintf("budget_%d", used), p, w)
		if err != nil {
			t.Fatalf("compile %d of %d: %v", used+1, limit, err)
		}
		k.Close()
		u, _ := d.Budget()
		if u != used+1 {
			t.Fatalf("a successful compile moved the budget from %d to %d used; want %d", used, u, used+1)
		}
		used = u
	}
	p, w := budgetKernel(t, "past")
	var err error
	for range 2 {
		_, err = d.Compile("past_the_limit", p, w)
		if !errors.Is(err, ane.ErrBudgetExhausted) {
			t.Fatalf("compile past the limit: got %v, want ErrBudgetExhausted", err)
		}
		if u, l := d.Budget(); u != limit || l != limit {
			t.Fatalf("after a refused compile the budget is %d/%d, want %d/%d", u, l, limit, limit)
		}
	}
	t.Logf("past the limit: %v", err)
}

// invalidProgram returns a program whose one op has a type the program
// declares wrongly: valid syntax, but not a valid MIL program.
func invalidProgram(t *testing.T) *mil.Program {
	t.Helper()
	p, _ := tiny(t, "y")
	breakDeclaredType(p)
	return p
}

// breakDeclaredType declares the last op's result, and the program's
// output, with twice the op's last dimension.
func breakDeclaredType(p *mil.Program) {
	f := p.Main()
	op := f.Ops[len(f.Ops)-1]
	s := op.Outputs[0].Type.Shape.Clone()
	s[len(s)-1] *= 2
	op.Outputs[0].Type = mil.TensorOf(mil.FP16, s...)
	f.Outputs[0].Type = op.Outputs[0].Type
}

// errorCases checks what a device must refuse, and how.
func (s *suite) errorCases(t *testing.T) {
	s.run(t, "errors/two_inputs_refused", func(t *testing.T) {
		p, w := twoInputs(t)
		used, _ := s.dev.Budget()
		_, err := s.dev.Compile("two_inputs", p, w)
		if !errors.Is(err, ane.ErrUnsupported) {
			t.Errorf("two inputs without Options.MultiIO: got %v, want ErrUnsupported", err)
		}
		if u, _ := s.dev.Budget(); u != used {
			t.Errorf("a refused compile moved the budget from %d to %d", used, u)
		}
	})
	s.run(t, "errors/two_inputs_with_multi_io", func(t *testing.T) {
		d := s.mustOpen(t, ane.Options{MultiIO: true})
		p, w := twoInputs(t)
		k, err := d.Compile("two_inputs", p, w)
		if err != nil {
			t.Fatalf("two inputs with Options.MultiIO: %v", err)
		}
		defer k.Close()
		var in []*ane.Surface
		vals := [][]float64{make([]float64, align), make([]float64, align)}
		for i := range 2 {
			sf, err := k.NewSurface(ane.Input, i)
			if err != nil {
				t.Fatalf("input surface %d: %v", i, err)
			}
			for j := range vals[i] {
				vals[i][j] = round16(float64(j)*0.25 - float64(i)*3)
			}
			writeSurface(t, sf, vals[i])
			in = append(in, sf)
		}
		out, err := k.NewSurface(ane.Output, 0)
		if err != nil {
			t.Fatalf("output surface: %v", err)
		}
		fillNaN(t, out)
		if err := k.Eval(in, []*ane.Surface{out}); err != nil {
			t.Fatalf("eval: %v", err)
		}
		got := readSurface(t, out)
		for j, g := range got {
			// x − y with exact fp16 operands and result.
			if want := vals[0][j] - vals[1][j]; g != want {
				t.Fatalf("y[%d] = %v, want x − y = %v (inputs bound in the wrong order?)", j, g, want)
			}
		}
	})
	s.run(t, "errors/fp32_input_refused", func(t *testing.T) {
		b := mil.NewBuilder(mil.IOS18)
		x := b.Input("x", mil.TensorOf(mil.FP32, 1, 1, 1, align))
		b.Output(b.Cast("y", b.Relu("r", x), mil.FP16))
		p, w, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.dev.Compile("fp32_input", p, w); !errors.Is(err, ane.ErrUnsupported) {
			t.Errorf("fp32 input: got %v, want ErrUnsupported", err)
		}
	})
	s.run(t, "errors/unknown_op_refused", func(t *testing.T) {
		p, w := tiny(t, "y")
		p.Main().Ops[len(p.Main().Ops)-1].Type = "frobnicate"
		_, err := s.dev.Compile("unknown_op", p, w)
		// An op the device does not know is refused either as invalid MIL or
		// as unsupported; both are honest, but it must be one of them.
		if !errorsIs(err, ane.ErrInvalidProgram, ane.ErrUnsupported) {
			t.Errorf("unknown op: got %v, want ErrInvalidProgram or ErrUnsupported", err)
		} else if !strings.Contains(err.Error(), "frobnicate") {
			t.Errorf("unknown op: the error %q does not name the op", err)
		}
	})
	s.run(t, "errors/wrong_declared_type_refused", func(t *testing.T) {
		if _, err := s.dev.Compile("wrong_type", invalidProgram(t), nil); !errors.Is(err, ane.ErrInvalidProgram) {
			t.Errorf("declared type disagrees with the op: got %v, want ErrInvalidProgram", err)
		}
	})
	s.run(t, "errors/eval_wrong_surfaces", func(t *testing.T) {
		p, w := tiny(t, "y")
		k := s.compile(t, "eval_wrong_surfaces", p, w)
		in, err := k.NewSurface(ane.Input, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, err := k.NewSurface(ane.Output, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.NewSurface(ane.Input, 1); err == nil {
			t.Errorf("NewSurface(Input, 1) on a one-input kernel succeeded")
		}
		// A surface of another shape, from another kernel of the device.
		q, qw, err := dynMatmul(8, 8, 32)
		if err != nil {
			t.Fatal(err)
		}
		other := s.compile(t, "eval_wrong_surfaces_other", q, qw)
		wrong, err := other.NewSurface(ane.Input, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			what    string
			in, out []*ane.Surface
		}{
			{"input of the wrong shape", []*ane.Surface{wrong}, []*ane.Surface{out}},
			{"output of the wrong shape", []*ane.Surface{in}, []*ane.Surface{wrong}},
			{"no input", nil, []*ane.Surface{out}},
			{"two inputs", []*ane.Surface{in, in}, []*ane.Surface{out}},
			{"nil output", []*ane.Surface{in}, []*ane.Surface{nil}},
		} {
			switch p, err := evalNoPanic(k, c.in, c.out); {
			case p != nil:
				t.Errorf("eval with %s panicked instead of returning an error: %v", c.what, p)
			case err == nil:
				t.Errorf("eval with %s succeeded", c.what)
			}
		}
		// The kernel still works after refusing bad requests.
		vals := make([]float64, align)
		for i := range vals {
			vals[i] = float64(i) - 16
		}
		writeSurface(t, in, vals)
		if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err != nil {
			t.Fatalf("eval after refusals: %v", err)
		}
		for i, g := range readSurface(t, out) {
			if want := math.Max(vals[i], 0); g != want {
				t.Fatalf("after refusals: y[%d] = %v, want %v", i, g, want)
			}
		}
	})
}

// evalNoPanic evaluates and recovers a panic, which the caller reports: a
// device must refuse bad surfaces with an error, never a panic.
func evalNoPanic(k ane.Kernel, in, out []*ane.Surface) (panicked any, err error) {
	defer func() { panicked = recover() }()
	return nil, k.Eval(in, out)
}

// twoInputs is y = x − z with two fp16 inputs.
func twoInputs(t *testing.T) (*mil.Program, mil.Weights) {
	t.Helper()
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, 1, 1, align))
	z := b.Input("z", mil.TensorOf(mil.FP16, 1, 1, 1, align))
	b.Output(b.Sub("y", x, z))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p, w
}
