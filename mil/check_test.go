package mil

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkFixture builds a small valid kernel: x·w (1×1 conv), a softmax, a split.
func checkFixture(t testing.TB) *Program {
	t.Helper()
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 1, 8, 1, 4))
	w := b.ConstFP16("w", Shape{4, 8, 1, 1}, make([]float32, 32))
	y := b.Conv("y", x, w, ConvOpts{})
	s := b.Softmax("s", y, 1)
	parts := b.SplitN("p", s, 1, 2)
	q := b.SDPA("a", s, s, s, nil)
	b.Output(parts[0], q)
	p, _, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// opNamed finds an op of the fixture by name.
func opNamed(f *Function, name string) *Operation {
	for _, op := range f.Ops {
		if op.Name == name {
			return op
		}
	}
	panic("no op " + name)
}

func TestCheckValid(t *testing.T) {
	if err := checkFixture(t).Check(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckCatches(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(p *Program, f *Function)
		want   string
	}{
		{"tampered output type", func(p *Program, f *Function) {
			opNamed(f, "y").Outputs[0].Type = TensorOf(FP16, 1, 8, 1, 4)
		}, `conv "y": output y is declared tensor<fp16, [1, 8, 1, 4]> but the op produces tensor<fp16, [1, 4, 1, 4]>`},
		{"tampered dtype", func(p *Program, f *Function) {
			opNamed(f, "s").Outputs[0].Type.DType = FP32
		}, "is declared tensor<fp32"},
		{"position in error", func(p *Program, f *Function) {
			op := opNamed(f, "y")
			op.Pos = Pos{Line: 12, Col: 13}
			op.Outputs[0].Type = TensorOf(FP16, 1)
		}, `conv "y" at 12:13: output y`},
		{"undefined name", func(p *Program, f *Function) {
			opNamed(f, "s").Args[1].Bindings[0].Var = &Var{Name: "ghost", Type: TensorOf(FP16, 1, 4, 1, 4)}
		}, "uses undefined variable ghost"},
		{"stale variable", func(p *Program, f *Function) {
			opNamed(f, "s").Args[1].Bindings[0].Var = &Var{Name: "y", Type: TensorOf(FP16, 1, 4, 1, 4)}
		}, "refers to a variable y that is not the one"},
		{"duplicate name", func(p *Program, f *Function) {
			opNamed(f, "s").Outputs[0].Name = "y"
		}, "variable y is defined twice"},
		{"input shadowed", func(p *Program, f *Function) {
			opNamed(f, "y").Outputs[0].Name = "x"
		}, "variable x is defined twice"},
		{"duplicate op name", func(p *Program, f *Function) {
			opNamed(f, "s").Name = "y"
		}, `op name "y" is used twice`},
		{"use before definition", func(p *Program, f *Function) {
			i := indexOfOp(f, "y")
			y := f.Ops[i]
			f.Ops = append(append(f.Ops[:i:i], f.Ops[i+1:]...), y)
		}, `softmax "s": input x uses y before its definition`},
		{"undefined output", func(p *Program, f *Function) {
			f.Outputs = append(f.Outputs, &Var{Name: "nope"})
		}, "output nope is not defined"},
		{"nil output", func(p *Program, f *Function) { f.Outputs[0] = nil }, "output 0 is nil"},
		{"op not in opset", func(p *Program, f *Function) { f.Opset = "ios17" }, `scaled_dot_product_attention "a": scaled_dot_product_attention is not available in opset ios17`},
		{"unknown opset", func(p *Program, f *Function) { f.Opset = "ios14" }, `unknown opset "ios14"`},
		{"unknown op", func(p *Program, f *Function) { opNamed(f, "s").Type = "softmax2" }, `unknown op "softmax2"`},
		{"missing output", func(p *Program, f *Function) {
			op := opNamed(f, "p")
			op.Outputs = op.Outputs[:1]
		}, "declares 1 outputs, the op produces 2"},
		{"const value replaced", func(p *Program, f *Function) {
			opNamed(f, "s_axis").Outputs[0].Const = IntScalar(Int32, 0)
		}, "does not carry the const's val"},
		{"const value missing", func(p *Program, f *Function) {
			opNamed(f, "s_axis").Outputs[0].Const = nil
		}, "does not carry the const's val"},
		{"runtime var posing as const", func(p *Program, f *Function) {
			opNamed(f, "s").Outputs[0].Const = IntScalar(Int32, 0)
		}, "carries a constant value but is not produced by const"},
		{"output not linked to op", func(p *Program, f *Function) {
			opNamed(f, "s").Outputs[0].Op = nil
		}, "does not point back at its op"},
		{"bad literal", func(p *Program, f *Function) {
			opNamed(f, "s_axis").Attrs[0].Value.Ints[0] = 1 << 40
		}, "out of range"},
		{"reserved name", func(p *Program, f *Function) { f.Inputs[0].Name = "fp16" }, `invalid variable name "fp16"`},
		{"input with op", func(p *Program, f *Function) { f.Inputs[0].Op = f.Ops[0] }, "claims to be produced by an op"},
		{"nil op", func(p *Program, f *Function) { f.Ops[2] = nil }, "statement 2 is nil"},
		{"nil output var", func(p *Program, f *Function) { opNamed(f, "s").Outputs[0] = nil }, "nil variable"},
		{"bad function name", func(p *Program, f *Function) { f.Name = "1main" }, "invalid function name"},
		{"bad version", func(p *Program, f *Function) { p.Version = "one" }, `program version "one"`},
		{"unknown version", func(p *Program, f *Function) { p.Version = "9.9" }, "unsupported program version 9.9: the Neural Engine takes program(1.0)"},
		{"no functions", func(p *Program, f *Function) { p.Functions = nil }, "no functions"},
		{"duplicate function", func(p *Program, f *Function) { p.Functions = append(p.Functions, f) }, `function "main" is defined twice`},
		{"nil function", func(p *Program, f *Function) { p.Functions = append(p.Functions, nil) }, "function 1 is nil"},
		{"invalid input type", func(p *Program, f *Function) { f.Inputs[0].Type.Shape = Shape{1, -3} }, "negative dimension"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := checkFixture(t)
			c.tamper(p, p.Main())
			err := p.Check()
			if err == nil {
				t.Fatalf("tampered program passes Check")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
	var nilProg *Program
	if nilProg.Check() == nil {
		t.Error("nil program passes")
	}
	var nilFn *Function
	if nilFn.Check() == nil {
		t.Error("nil function passes")
	}
}

func indexOfOp(f *Function, name string) int {
	for i, op := range f.Ops {
		if op.Name == name {
			return i
		}
	}
	return -1
}

// TestCheckParsed runs Check on parsed text, where errors carry positions.
func TestCheckParsed(t *testing.T) {
	const head = "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 8, 1, 4]> x) {\n"
	cases := []struct {
		body, out, want string
	}{
		{`            tensor<fp16, [1, 8, 1, 4]> y = relu(x = x)[name = string("y")];`, "y", ""},
		{`            tensor<fp16, [1, 8, 1, 5]> y = relu(x = x)[name = string("y")];`, "y",
			`relu "y" at 4:13: output y is declared tensor<fp16, [1, 8, 1, 5]> but the op produces tensor<fp16, [1, 8, 1, 4]>`},
		{`            tensor<fp16, [1, 8, 1, 4]> y = softmax(axis = int32(4), x = x)[name = string("y")];`, "y",
			`softmax "y" at 4:13: axis 4 is out of range for rank 4`},
		// Omitted optional inputs take their defaults (axis -1).
		{`            tensor<fp16, [1, 8, 1, 4]> y = softmax(x = x)[name = string("y")];`, "y", ""},
		{`            tensor<fp16, [1, 8, 1, 4]> y = mul(x = x, y = fp16(0x1p-1))[name = string("y")];`, "y", ""},
		{`            tensor<fp16, [1, 8, 1, 4]> y = mul(x = x, y = fp32(0x1p-1))[name = string("y")];`, "y", "x is fp16 but y is fp32"},
	}
	for _, c := range cases {
		src := head + c.body + "\n        } -> (" + c.out + ");\n}\n"
		p, err := Parse("t.mil", []byte(src))
		if err != nil {
			t.Fatalf("parse %q: %v", c.body, err)
		}
		err = p.Check()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.body, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want %q", c.body, err, c.want)
		}
	}
}

// TestCheckRobust mutates valid programs at random and makes sure Check never
// panics on what it gets (the emulator calls it on arbitrary parsed input).
func TestCheckRobust(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dims := []int{-1000, -2, UnknownDim, 0, 1, 2, 3, 7, 1 << 20, 1 << 41, 1 << 62}
	ints := []int64{-1 << 40, -1 << 31, -5, -1, 0, 1, 2, 3, 4, 1<<31 - 1, 1 << 40}
	types := OpTypes()
	randShape := func() Shape {
		s := make(Shape, rng.IntN(6))
		if rng.IntN(20) == 0 {
			s = make(Shape, 20+rng.IntN(10))
		}
		for i := range s {
			s[i] = dims[rng.IntN(len(dims))]
		}
		return s
	}
	allVars := func(f *Function) []*Var {
		vs := append([]*Var{}, f.Inputs...)
		for _, op := range f.Ops {
			vs = append(vs, op.Outputs...)
		}
		return vs
	}
	mutations := []func(f *Function){
		func(f *Function) { // reshape a variable
			vs := allVars(f)
			vs[rng.IntN(len(vs))].Type.Shape = randShape()
		},
		func(f *Function) { // change a dtype
			vs := allVars(f)
			vs[rng.IntN(len(vs))].Type.DType = DType(rng.IntN(20))
		},
		func(f *Function) { // retype an op
			f.Ops[rng.IntN(len(f.Ops))].Type = types[rng.IntN(len(types))]
		},
		func(f *Function) { // drop an argument
			op := f.Ops[rng.IntN(len(f.Ops))]
			if len(op.Args) > 0 {
				i := rng.IntN(len(op.Args))
				op.Args = append(op.Args[:i], op.Args[i+1:]...)
			}
		},
		func(f *Function) { // rebind an argument to any variable
			op := f.Ops[rng.IntN(len(f.Ops))]
			if len(op.Args) > 0 {
				vs := allVars(f)
				a := &op.Args[rng.IntN(len(op.Args))]
				a.Bindings = []Binding{{Var: vs[rng.IntN(len(vs))]}}
			}
		},
		func(f *Function) { // corrupt a binding
			op := f.Ops[rng.IntN(len(f.Ops))]
			if len(op.Args) > 0 {
				a := &op.Args[rng.IntN(len(op.Args))]
				switch rng.IntN(4) {
				case 0:
					a.Bindings = nil
				case 1:
					a.Bindings = append(a.Bindings, Binding{})
				case 2:
					a.Tuple = !a.Tuple
				case 3:
					a.Bindings = []Binding{{Value: &Value{Type: Type{DType: Int32, Shape: randShape()}, Ints: []int64{ints[rng.IntN(len(ints))]}}}}
				}
			}
		},
		func(f *Function) { // corrupt a const value
			op := f.Ops[rng.IntN(len(f.Ops))]
			if op.Type != "const" || len(op.Attrs) == 0 {
				return
			}
			v := op.Attrs[0].Value
			switch rng.IntN(4) {
			case 0:
				for i := range v.Ints {
					v.Ints[i] = ints[rng.IntN(len(ints))]
				}
			case 1:
				v.Type.Shape = randShape()
			case 2:
				v.Ints, v.Floats, v.Bools = nil, nil, nil
			case 3:
				v.Type.DType = DType(rng.IntN(20))
			}
			if len(op.Outputs) > 0 && op.Outputs[0] != nil {
				op.Outputs[0].Type = v.Type
			}
		},
		func(f *Function) { // shuffle statements
			i, j := rng.IntN(len(f.Ops)), rng.IntN(len(f.Ops))
			f.Ops[i], f.Ops[j] = f.Ops[j], f.Ops[i]
		},
		func(f *Function) { // attributes on any op
			op := f.Ops[rng.IntN(len(f.Ops))]
			op.Attrs = append(op.Attrs, Attr{Name: []string{"val", "axis", "scale", "name"}[rng.IntN(4)], Value: Int32s(1)})
		},
	}
	for iter := range 3000 {
		p := checkFixture(t)
		f := p.Main()
		n := 1 + rng.IntN(4)
		for range n {
			mutations[rng.IntN(len(mutations))](f)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("iteration %d: Check panicked: %v\n%s", iter, r, Print(p))
				}
			}()
			_ = p.Check()
			for _, op := range f.Ops {
				if spec, ok := LookupOp(op.Type); ok {
					for _, in := range spec.Inputs {
						OpDefault(op, IOS18, in.Name)
						ParamValue(op, IOS18, in.Name)
					}
				}
			}
		}()
	}
}

// FuzzCheck parses arbitrary text and checks it: neither may panic, and a
// program that passes Check passes again after a print/parse round trip.
func FuzzCheck(f *testing.F) {
	for _, dir := range []string{"parse", "golden"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.mil"))
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add(Print(checkFixture(f)))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz.mil", src)
		if err != nil {
			return
		}
		if err := p.Check(); err != nil {
			return
		}
		q, err := Parse("printed.mil", Print(p))
		if err != nil {
			t.Fatalf("printed program does not parse: %v", err)
		}
		if err := q.Check(); err != nil {
			t.Fatalf("checked program fails Check after a round trip: %v", err)
		}
	})
}

// Example of the errors Check reports.
func ExampleFunction_Check() {
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 1, 64, 1, 32))
	b.Output(b.Relu("y", x))
	p, _, _ := b.Build()
	p.Main().Ops[0].Outputs[0].Type = TensorOf(FP16, 1, 32, 1, 32)
	fmt.Println(p.Check())
	// Output:
	// func main: relu "y": output y is declared tensor<fp16, [1, 32, 1, 32]> but the op produces tensor<fp16, [1, 64, 1, 32]>
}
