package mil

import (
	"errors"
	"strings"
	"testing"
)

// Helpers that build operations directly on the program model, independent of
// the Builder, so inference is tested on its own.

// rv is a runtime variable (a function input) of type t.
func rv(name string, d DType, dims ...int) *Var {
	return &Var{Name: name, Type: TensorOf(d, dims...)}
}

// cv is a const variable holding v.
func cv(name string, v *Value) *Var {
	op := &Operation{Type: "const", Name: name, Attrs: []Attr{{Name: "val", Value: v}}}
	out := &Var{Name: name, Type: v.Type, Const: v, Op: op}
	op.Outputs = []*Var{out}
	return out
}

// mkOp makes an operation named "op" from arguments.
func mkOp(typ string, args ...Arg) *Operation {
	return &Operation{Type: typ, Name: "op", Args: args}
}

// va binds input name to variable v.
func va(name string, v *Var) Arg { return Arg{Name: name, Bindings: []Binding{{Var: v}}} }

// la binds input name to literal v.
func la(name string, v *Value) Arg { return Arg{Name: name, Bindings: []Binding{{Value: v}}} }

// ca binds input name to a const variable holding v.
func ca(name string, v *Value) Arg { return va(name, cv("c_"+name, v)) }

func i32(x int) *Value    { return IntScalar(Int32, int64(x)) }
func bl(x bool) *Value    { return BoolScalar(x) }
func str(s string) *Value { return StringScalar(s) }
func f16(x float64) *Value {
	return FloatScalar(FP16, x)
}

func tt(d DType, dims ...int) Type { return TensorOf(d, dims...) }

const U = UnknownDim

type inferCase struct {
	name   string
	target Target // IOS18 when zero
	op     *Operation
	want   []Type
	errSub string // substring of the expected error; "" means success
	errIn  string // the OpError's input, when checked
}

func runInfer(t *testing.T, cases []inferCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.target
			if target == 0 {
				target = IOS18
			}
			got, err := InferTypes(tc.op, target)
			if tc.errSub != "" {
				if err == nil {
					t.Fatalf("got %v, want error containing %q", got, tc.errSub)
				}
				if !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("error %q does not contain %q", err, tc.errSub)
				}
				if !strings.HasPrefix(err.Error(), tc.op.Type+` "op"`) {
					t.Errorf("error %q does not name the op", err)
				}
				if tc.errIn != "" {
					var oe *OpError
					if !errors.As(err, &oe) || oe.Input != tc.errIn {
						t.Errorf("error input = %+v, want %q", oe, tc.errIn)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d outputs %v, want %v", len(got), got, tc.want)
			}
			for i := range got {
				if !got[i].Equal(tc.want[i]) {
					t.Errorf("output %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestInferGeneric(t *testing.T) {
	x := rv("x", FP16, 2, 3)
	runInfer(t, []inferCase{
		{name: "unknown op", op: mkOp("frobnicate", va("x", x)), errSub: `unknown op "frobnicate"`},
		{name: "unknown input", op: mkOp("relu", va("x", x), va("y", x)), errSub: `unknown input "y"`, errIn: "y"},
		{name: "duplicate input", op: mkOp("relu", va("x", x), va("x", x)), errSub: "given twice"},
		{name: "missing input", op: mkOp("add", va("x", x)), errSub: `missing required input "y"`, errIn: "y"},
		{name: "tuple for single", op: mkOp("relu", Arg{Name: "x", Tuple: true, Bindings: []Binding{{Var: x}}}), errSub: "not a tuple"},
		{name: "two bindings", op: mkOp("relu", Arg{Name: "x", Bindings: []Binding{{Var: x}, {Var: x}}}), errSub: "2 bindings"},
		{name: "empty binding", op: mkOp("relu", Arg{Name: "x", Bindings: []Binding{{}}}), errSub: "empty binding"},
		{name: "no bindings", op: mkOp("relu", Arg{Name: "x"}), errSub: "bound to nothing"},
		{name: "bad literal", op: mkOp("softmax", va("x", x), la("axis", &Value{Type: ScalarOf(Int32), Ints: []int64{1 << 40}})), errSub: "out of range"},
		{name: "literal count", op: mkOp("add", va("x", x), la("y", &Value{Type: tt(FP16, 2), Floats: []float64{1}})), errSub: "has 1 elements, want 2"},
		{name: "stray attribute", op: &Operation{Type: "relu", Name: "op", Args: []Arg{va("x", x)}, Attrs: []Attr{{Name: "alpha", Value: f16(1)}}}, errSub: `unexpected attribute "alpha"`},
		{name: "negative dim", op: mkOp("relu", va("x", &Var{Name: "x", Type: Type{DType: FP16, Shape: Shape{2, -7}}})), errSub: "negative dimension"},
		{name: "huge shape", op: mkOp("relu", va("x", rv("x", FP16, 1<<30, 1<<30))), errSub: "2^40"},
		{name: "huge dim with unknown", op: mkOp("relu", va("x", rv("x", FP16, U, 1<<50))), errSub: "exceeds 2^40"},
		{name: "rank limit", op: mkOp("relu", va("x", rv("x", FP16, make([]int, 17)...))), errSub: "rank 17"},
		{name: "const ok", op: &Operation{Type: "const", Name: "op", Attrs: []Attr{{Name: "val", Value: Int32s(1, 2)}}}, want: []Type{tt(Int32, 2)}},
		{name: "const without val", op: &Operation{Type: "const", Name: "op"}, errSub: "no val"},
		{name: "const with input", op: &Operation{Type: "const", Name: "op", Args: []Arg{va("x", x)}, Attrs: []Attr{{Name: "val", Value: i32(1)}}}, errSub: "unknown input"},
	})
	if _, err := InferTypes(nil, IOS18); err == nil {
		t.Error("nil op accepted")
	}
	if _, err := InferTypes(mkOp("relu", va("x", x)), Target(3)); err == nil {
		t.Error("bad target accepted")
	}
}

func TestInferElementwise(t *testing.T) {
	a := rv("a", FP16, 1, 64, 1, 32)
	runInfer(t, []inferCase{
		{name: "same shape", op: mkOp("add", va("x", a), va("y", a)), want: []Type{tt(FP16, 1, 64, 1, 32)}},
		{name: "scalar y", op: mkOp("mul", va("x", a), ca("y", f16(0.5))), want: []Type{tt(FP16, 1, 64, 1, 32)}},
		{name: "inline scalar x", op: mkOp("sub", la("x", f16(1)), va("y", a)), want: []Type{tt(FP16, 1, 64, 1, 32)}},
		{name: "both sides broadcast", op: mkOp("mul", va("x", rv("x", FP16, 1, 1, 8, 8)), va("y", rv("y", FP16, 1, 2, 1, 8))), want: []Type{tt(FP16, 1, 2, 8, 8)}},
		{name: "rank extension", op: mkOp("add", va("x", rv("x", FP32, 3, 1)), va("y", rv("y", FP32, 4))), want: []Type{tt(FP32, 3, 4)}},
		{name: "mask add", op: mkOp("add", va("x", rv("x", FP16, 1, 2, 8, 8)), va("y", rv("y", FP16, 1, 1, 8, 8))), want: []Type{tt(FP16, 1, 2, 8, 8)}},
		{name: "unknown vs known", op: mkOp("add", va("x", rv("x", FP16, U, 4)), va("y", rv("y", FP16, 3, 1))), want: []Type{tt(FP16, 3, 4)}},
		{name: "unknown vs 1", op: mkOp("add", va("x", rv("x", FP16, U, 1)), va("y", rv("y", FP16, 1, 1))), want: []Type{tt(FP16, U, 1)}},
		{name: "incompatible", op: mkOp("add", va("x", rv("x", FP16, 2, 3)), va("y", rv("y", FP16, 4, 3))), errSub: "cannot broadcast x [2, 3] with y [4, 3]"},
		{name: "dtype mismatch", op: mkOp("add", va("x", rv("x", FP16, 2)), va("y", rv("y", FP32, 2))), errSub: "x is fp16 but y is fp32", errIn: "y"},
		{name: "bool operand", op: mkOp("add", va("x", rv("x", Bool, 2)), va("y", rv("y", Bool, 2))), errSub: "x has dtype bool", errIn: "x"},
		{name: "int32 pow", op: mkOp("pow", va("x", rv("x", Int32, 2)), va("y", rv("y", Int32, 2))), want: []Type{tt(Int32, 2)}},
		{name: "real_div", op: mkOp("real_div", va("x", rv("x", FP32, 2, 1)), va("y", rv("y", FP32, 5))), want: []Type{tt(FP32, 2, 5)}},
		{name: "maximum", op: mkOp("maximum", va("x", rv("x", FP16, 4)), va("y", rv("y", FP16))), want: []Type{tt(FP16, 4)}},
		{name: "minimum", op: mkOp("minimum", va("x", rv("x", FP16)), va("y", rv("y", FP16))), want: []Type{tt(FP16)}},
		{name: "greater is bool", op: mkOp("greater", va("x", rv("x", FP16, 2, 3)), va("y", rv("y", FP16, 3))), want: []Type{tt(Bool, 2, 3)}},
		{name: "less is bool", op: mkOp("less", va("x", rv("x", Int32, 1)), va("y", rv("y", Int32, 4))), want: []Type{tt(Bool, 4)}},
	})
}

func TestBroadcast(t *testing.T) {
	cases := []struct {
		in   []Shape
		want Shape // nil: not broadcastable
	}{
		{[]Shape{{}, {}}, Shape{}},
		{[]Shape{{5}, {}}, Shape{5}},
		{[]Shape{{1, 4}, {3, 1}}, Shape{3, 4}},
		{[]Shape{{2, 1, 4}, {3, 1}}, Shape{2, 3, 4}},
		{[]Shape{{1, 1, 8, 8}, {1, 2, 1, 8}, {8}}, Shape{1, 2, 8, 8}},
		{[]Shape{{3}, {4}}, nil},
		{[]Shape{{2, 3}, {3, 2}}, nil},
		{[]Shape{{U}, {5}}, Shape{5}},
		{[]Shape{{U}, {1}}, Shape{U}},
		{[]Shape{{U}, {U}}, Shape{U}},
		{[]Shape{{0}, {1}}, Shape{0}},
		{[]Shape{{0}, {2}}, nil},
	}
	for _, c := range cases {
		got, ok := Broadcast(c.in...)
		if c.want == nil {
			if ok {
				t.Errorf("Broadcast%v = %v, want failure", c.in, got)
			}
			continue
		}
		if !ok || !got.Equal(c.want) {
			t.Errorf("Broadcast%v = %v, %v; want %v", c.in, got, ok, c.want)
		}
	}
}

func TestInferUnary(t *testing.T) {
	x := rv("x", FP16, 1, 8, 1, 4)
	var cases []inferCase
	for _, op := range []string{"sqrt", "exp", "tanh", "sigmoid", "silu", "relu", "rsqrt", "log"} {
		cases = append(cases,
			inferCase{name: op, op: mkOp(op, va("x", x)), want: []Type{x.Type}},
			inferCase{name: op + " int", op: mkOp(op, va("x", rv("x", Int32, 3))), errSub: "x has dtype int32"},
		)
	}
	cases = append(cases, []inferCase{
		{name: "rsqrt eps", op: mkOp("rsqrt", va("x", x), ca("epsilon", f16(1e-5))), want: []Type{x.Type}},
		{name: "rsqrt fp32 eps ios16", target: IOS16, op: mkOp("rsqrt", va("x", x), ca("epsilon", FloatScalar(FP32, 1e-12))), errSub: "before ios17 they must match", errIn: "epsilon"},
		{name: "log fp32 eps ios17", target: IOS17, op: mkOp("log", va("x", x), ca("epsilon", FloatScalar(FP32, 1e-45))), want: []Type{x.Type}},
		{name: "eps vector", op: mkOp("log", va("x", x), ca("epsilon", FloatTensor(FP16, Shape{1}, []float64{1}))), errSub: "must be a scalar"},
		{name: "eps runtime", op: mkOp("rsqrt", va("x", x), va("epsilon", rv("e", FP16))), errSub: "epsilon (bound to e) must be a compile-time constant", errIn: "epsilon"},
		{name: "eps int", op: mkOp("rsqrt", va("x", x), ca("epsilon", i32(0))), errSub: "epsilon has dtype int32"},

		{name: "clip", op: mkOp("clip", va("x", x), ca("alpha", f16(-1)), ca("beta", f16(1))), want: []Type{x.Type}},
		{name: "clip inverted ios17", target: IOS17, op: mkOp("clip", va("x", x), ca("alpha", f16(1)), ca("beta", f16(1))), errSub: "alpha 1 must be less than beta 1"},
		{name: "clip inverted ios16", target: IOS16, op: mkOp("clip", va("x", x), ca("alpha", f16(1)), ca("beta", f16(0))), want: []Type{x.Type}},
		{name: "clip dtype", op: mkOp("clip", va("x", x), ca("alpha", FloatScalar(FP32, 0)), ca("beta", f16(1))), errSub: "alpha must be a fp16 scalar"},
		{name: "clip missing beta", op: mkOp("clip", va("x", x), ca("alpha", f16(0))), errSub: `missing required input "beta"`},

		{name: "cast", op: mkOp("cast", va("x", x), ca("dtype", str("fp32"))), want: []Type{tt(FP32, 1, 8, 1, 4)}},
		{name: "cast bool to int32", op: mkOp("cast", va("x", rv("x", Bool, 3)), ca("dtype", str("int32"))), want: []Type{tt(Int32, 3)}},
		{name: "cast int8 ios16", target: IOS16, op: mkOp("cast", va("x", x), ca("dtype", str("int8"))), errSub: `cannot cast to "int8" in ios16`},
		{name: "cast int8 ios17", target: IOS17, op: mkOp("cast", va("x", x), ca("dtype", str("int8"))), want: []Type{tt(Int8, 1, 8, 1, 4)}},
		{name: "cast from int8 ios16", target: IOS16, op: mkOp("cast", va("x", rv("x", Int8, 2)), ca("dtype", str("fp16"))), errSub: "x has dtype int8"},
		{name: "cast bad name", op: mkOp("cast", va("x", x), ca("dtype", str("float"))), errSub: `cannot cast to "float"`},
		{name: "cast dtype not string", op: mkOp("cast", va("x", x), ca("dtype", i32(1))), errSub: "dtype must be a string scalar"},

		{name: "softmax default axis", op: mkOp("softmax", va("x", x)), want: []Type{x.Type}},
		{name: "softmax axis 1", op: mkOp("softmax", va("x", x), ca("axis", i32(1))), want: []Type{x.Type}},
		{name: "softmax axis -4", op: mkOp("softmax", va("x", x), ca("axis", i32(-4))), want: []Type{x.Type}},
		{name: "softmax axis 4", op: mkOp("softmax", va("x", x), ca("axis", i32(4))), errSub: "axis 4 is out of range for rank 4", errIn: "axis"},
		{name: "softmax axis -5", op: mkOp("softmax", va("x", x), ca("axis", i32(-5))), errSub: "out of range"},
		{name: "softmax axis vector", op: mkOp("softmax", va("x", x), ca("axis", Int32s(1))), errSub: "int32 scalar"},
		{name: "softmax axis runtime", op: mkOp("softmax", va("x", x), va("axis", rv("a", Int32))), errSub: "compile-time constant"},
		{name: "softmax int", op: mkOp("softmax", va("x", rv("x", Int32, 3))), errSub: "dtype int32"},

		{name: "select 3-way broadcast", op: mkOp("select", va("cond", rv("c", Bool, 1, 1, 4, 4)), ca("a", f16(0)), va("b", rv("b", FP16, 1, 8, 4, 4))), want: []Type{tt(FP16, 1, 8, 4, 4)}},
		{name: "select cond dtype", op: mkOp("select", va("cond", rv("c", FP16, 4)), va("a", rv("a", FP16, 4)), va("b", rv("b", FP16, 4))), errSub: "cond has dtype fp16"},
		{name: "select a/b dtype", op: mkOp("select", va("cond", rv("c", Bool, 4)), va("a", rv("a", FP16, 4)), va("b", rv("b", FP32, 4))), errSub: "a is fp16 but b is fp32"},
		{name: "select shapes", op: mkOp("select", va("cond", rv("c", Bool, 3)), va("a", rv("a", FP16, 4)), va("b", rv("b", FP16, 4))), errSub: "cannot broadcast cond [3]"},
	}...)
	runInfer(t, cases)
}

func TestInferMatmul(t *testing.T) {
	mm := func(x, y *Var, flags ...Arg) *Operation {
		return mkOp("matmul", append([]Arg{va("x", x), va("y", y)}, flags...)...)
	}
	tx, ty := ca("transpose_x", bl(true)), ca("transpose_y", bl(true))
	runInfer(t, []inferCase{
		{name: "dynamic linear", op: mm(rv("x", FP16, 1, 1, 8, 16), rv("y", FP16, 1, 1, 16, 4)), want: []Type{tt(FP16, 1, 1, 8, 4)}},
		{name: "scores", op: mm(rv("q", FP16, 1, 2, 8, 16), rv("k", FP16, 1, 2, 8, 16), ty), want: []Type{tt(FP16, 1, 2, 8, 8)}},
		{name: "transpose_x", op: mm(rv("x", FP16, 1, 2, 16, 8), rv("y", FP16, 1, 2, 16, 4), tx), want: []Type{tt(FP16, 1, 2, 8, 4)}},
		{name: "both transposed", op: mm(rv("x", FP16, 16, 8), rv("y", FP16, 4, 16), tx, ty), want: []Type{tt(FP16, 8, 4)}},
		{name: "explicit false flags", op: mm(rv("x", FP16, 8, 16), rv("y", FP16, 16, 4), ca("transpose_x", bl(false)), la("transpose_y", bl(false))), want: []Type{tt(FP16, 8, 4)}},
		{name: "vector x", op: mm(rv("x", FP16, 16), rv("y", FP16, 16, 4)), want: []Type{tt(FP16, 4)}},
		{name: "vector y", op: mm(rv("x", FP16, 8, 16), rv("y", FP16, 16)), want: []Type{tt(FP16, 8)}},
		{name: "vector dot", op: mm(rv("x", FP16, 16), rv("y", FP16, 16)), want: []Type{tt(FP16)}},
		{name: "vector x batched y", op: mm(rv("x", FP16, 16), rv("y", FP16, 3, 16, 4)), want: []Type{tt(FP16, 3, 4)}},
		{name: "batch broadcast", op: mm(rv("x", FP16, 2, 1, 8, 16), rv("y", FP16, 3, 16, 4)), want: []Type{tt(FP16, 2, 3, 8, 4)}},
		{name: "batch mismatch", op: mm(rv("x", FP16, 2, 8, 16), rv("y", FP16, 3, 16, 4)), errSub: "batch dimensions"},
		{name: "inner mismatch", op: mm(rv("x", FP16, 8, 16), rv("y", FP16, 8, 4)), errSub: "inner dimension 16 but y [8, 4] has 8"},
		{name: "transpose vector", op: mm(rv("x", FP16, 16), rv("y", FP16, 16, 4), tx), errSub: "transpose_x is set but x has rank 1", errIn: "transpose_x"},
		{name: "scalar operand", op: mm(rv("x", FP16), rv("y", FP16, 4)), errSub: "rank ≥ 1"},
		{name: "dtype ios16", target: IOS16, op: mm(rv("x", FP16, 2, 2), cv("w", FloatTensor(FP32, Shape{2, 2}, make([]float64, 4)))), errSub: "before ios17"},
		{name: "const fp32 y ios17", target: IOS17, op: mm(rv("x", FP16, 2, 2), cv("w", FloatTensor(FP32, Shape{2, 2}, make([]float64, 4)))), want: []Type{tt(FP16, 2, 2)}},
		{name: "const fp32 x ios17", target: IOS17, op: mm(cv("w", FloatTensor(FP32, Shape{2, 2}, make([]float64, 4))), rv("y", FP16, 2, 3)), want: []Type{tt(FP16, 2, 3)}},
		{name: "runtime mixed ios17", target: IOS17, op: mm(rv("x", FP16, 2, 2), rv("y", FP32, 2, 2)), errSub: "exactly one is a constant"},
		{name: "flag not bool", op: mm(rv("x", FP16, 2, 2), rv("y", FP16, 2, 2), ca("transpose_y", i32(1))), errSub: "bool scalar"},
		{name: "int32 matmul", op: mm(rv("x", Int32, 2, 3), rv("y", Int32, 3, 2)), want: []Type{tt(Int32, 2, 2)}},
		{name: "unknown inner", op: mm(rv("x", FP16, 2, U), rv("y", FP16, 5, 3)), want: []Type{tt(FP16, 2, 3)}},
	})
}

func TestInferConv(t *testing.T) {
	conv := func(x, w *Var, extra ...Arg) *Operation {
		return mkOp("conv", append([]Arg{va("x", x), va("weight", w)}, extra...)...)
	}
	x := rv("x", FP16, 1, 64, 1, 32)
	w := func(dims ...int) *Var {
		return cv("w", FloatTensor(FP16, Shape(dims), make([]float64, Shape(dims).NumElements())))
	}
	img := rv("img", FP16, 1, 4, 9, 9)
	runInfer(t, []inferCase{
		{name: "1x1", op: conv(x, w(128, 64, 1, 1)), want: []Type{tt(FP16, 1, 128, 1, 32)}},
		{name: "1x1 runtime weight", op: conv(x, rv("w", FP16, 128, 64, 1, 1)), want: []Type{tt(FP16, 1, 128, 1, 32)}},
		{name: "all explicit", op: conv(x, w(128, 64, 1, 1), ca("strides", Int32s(1, 1)), ca("pad_type", str("valid")), ca("pad", Int32s(0, 0, 0, 0)), ca("dilations", Int32s(1, 1)), ca("groups", i32(1))), want: []Type{tt(FP16, 1, 128, 1, 32)}},
		{name: "channels mismatch", op: conv(x, w(128, 32, 1, 1)), errSub: "weight has 32 input channels, x has 64 (groups 1)", errIn: "weight"},
		{name: "groups 2", op: conv(x, w(32, 32, 1, 1), ca("groups", i32(2))), want: []Type{tt(FP16, 1, 32, 1, 32)}},
		{name: "groups not dividing x", op: conv(x, w(30, 1, 1, 1), ca("groups", i32(30))), errSub: "x has 64 channels, not divisible by groups 30"},
		{name: "groups not dividing out", op: conv(x, w(3, 32, 1, 1), ca("groups", i32(2))), errSub: "3 output channels, not divisible by groups 2"},
		{name: "groups zero", op: conv(x, w(32, 32, 1, 1), ca("groups", i32(0))), errSub: "groups 0 must be positive"},
		{name: "depthwise same", op: conv(rv("x", FP16, 1, 64, 8, 8), w(64, 1, 3, 3), ca("groups", i32(64)), ca("pad_type", str("same"))), want: []Type{tt(FP16, 1, 64, 8, 8)}},
		// Spatial sizes by the spec's formulas (mil-spec §4.7), by hand:
		// valid: floor((9-3)/2)+1 = 4.
		{name: "valid stride 2", op: conv(img, w(2, 4, 3, 3), ca("strides", Int32s(2, 2))), want: []Type{tt(FP16, 1, 2, 4, 4)}},
		// same: ceil(9/2) = 5.
		{name: "same stride 2", op: conv(img, w(2, 4, 3, 3), ca("strides", Int32s(2, 2)), ca("pad_type", str("same"))), want: []Type{tt(FP16, 1, 2, 5, 5)}},
		// custom: (9+1+1-3)+1 = 9 and (9+2+2-3)+1 = 11.
		{name: "custom", op: conv(img, w(2, 4, 3, 3), ca("pad_type", str("custom")), ca("pad", Int32s(1, 1, 2, 2))), want: []Type{tt(FP16, 1, 2, 9, 11)}},
		// pad is ignored unless custom.
		{name: "pad ignored", op: conv(img, w(2, 4, 3, 3), ca("pad", Int32s(1, 1, 2, 2))), want: []Type{tt(FP16, 1, 2, 7, 7)}},
		// dilation 2: effective kernel 5; floor((9-5)/1)+1 = 5.
		{name: "dilated", op: conv(img, w(2, 4, 3, 3), ca("dilations", Int32s(2, 2))), want: []Type{tt(FP16, 1, 2, 5, 5)}},
		{name: "dilated runtime weight", op: conv(img, rv("w", FP16, 2, 4, 3, 3), ca("dilations", Int32s(2, 1))), errSub: "runtime weight cannot be used with dilations [2 1]"},
		{name: "same_lower ios15", target: IOS15, op: conv(img, w(2, 4, 3, 3), ca("pad_type", str("same_lower"))), errSub: "same_lower needs ios16"},
		{name: "same_lower ios16", target: IOS16, op: conv(img, w(2, 4, 3, 3), ca("pad_type", str("same_lower"))), want: []Type{tt(FP16, 1, 2, 9, 9)}},
		{name: "bad pad_type", op: conv(img, w(2, 4, 3, 3), ca("pad_type", str("full"))), errSub: `unknown pad_type "full"`},
		{name: "kernel too big", op: conv(img, w(2, 4, 11, 1)), errSub: "larger than the padded input"},
		{name: "negative custom pad", op: conv(img, w(2, 4, 3, 3), ca("pad_type", str("custom")), ca("pad", Int32s(-1, 0, 0, 0))), errSub: "must not be negative"},
		{name: "strides length", op: conv(img, w(2, 4, 3, 3), ca("strides", Int32s(1, 1, 1))), errSub: "strides has 3 elements, want 2"},
		{name: "stride zero", op: conv(img, w(2, 4, 3, 3), ca("strides", Int32s(0, 1))), errSub: "must be positive"},
		{name: "pad length", op: conv(img, w(2, 4, 3, 3), ca("pad", Int32s(0, 0))), errSub: "pad has 2 elements, want 4"},
		{name: "conv1d", op: conv(rv("x", FP16, 1, 4, 10), w(2, 4, 3)), want: []Type{tt(FP16, 1, 2, 8)}},
		{name: "conv3d", op: conv(rv("x", FP32, 1, 2, 4, 5, 6), cv("w", FloatTensor(FP32, Shape{3, 2, 2, 2, 2}, make([]float64, 48)))), want: []Type{tt(FP32, 1, 3, 3, 4, 5)}},
		{name: "rank 2 x", op: conv(rv("x", FP16, 1, 4), w(2, 4)), errSub: "rank 3 to 5"},
		{name: "weight rank", op: conv(x, w(128, 64)), errSub: "weight [128, 64] must have rank 4"},
		{name: "weight dtype ios16", target: IOS16, op: conv(x, rv("w", FP32, 128, 64, 1, 1)), errSub: "before ios17 they must match"},
		{name: "weight dtype ios17", target: IOS17, op: conv(x, rv("w", FP32, 128, 64, 1, 1)), want: []Type{tt(FP16, 1, 128, 1, 32)}},
		{name: "bias", op: conv(x, w(8, 64, 1, 1), ca("bias", FloatTensor(FP16, Shape{8}, make([]float64, 8)))), want: []Type{tt(FP16, 1, 8, 1, 32)}},
		{name: "bias shape", op: conv(x, w(8, 64, 1, 1), ca("bias", FloatTensor(FP16, Shape{4}, make([]float64, 4)))), errSub: "bias [4] must have shape [8]"},
		{name: "runtime bias ios16", target: IOS16, op: conv(x, w(8, 64, 1, 1), va("bias", rv("b", FP16, 8))), errSub: "bias must be a compile-time constant before ios17"},
		{name: "runtime bias ios17", target: IOS17, op: conv(x, w(8, 64, 1, 1), va("bias", rv("b", FP16, 8))), want: []Type{tt(FP16, 1, 8, 1, 32)}},
		{name: "int x", op: conv(rv("x", Int32, 1, 4, 4), w(2, 4, 1)), errSub: "x has dtype int32"},
		{name: "strides runtime", op: conv(img, w(2, 4, 3, 3), va("strides", rv("s", Int32, 2))), errSub: "compile-time constant"},
	})
}

// TestConvAxisBruteForce checks ConvAxis's output sizes and padding against a
// count of the kernel windows that fit in the padded input, and the same
// padding against the spec's formula for its total.
func TestConvAxisBruteForce(t *testing.T) {
	// windows counts start positions p·s with the dilated kernel inside a
	// padded input of length n.
	windows := func(n, k, s, dil int) int {
		count := 0
		for p := 0; ; p++ {
			last := p*s + (k-1)*dil
			if last > n-1 {
				return count
			}
			count++
		}
	}
	for d := 1; d <= 12; d++ {
		for k := 1; k <= 5; k++ {
			for s := 1; s <= 3; s++ {
				for dil := 1; dil <= 3; dil++ {
					keff := (k-1)*dil + 1
					// valid
					out, b, a, err := ConvAxis(PadValid, d, k, s, dil, 7, 7)
					if want := windows(d, k, s, dil); want == 0 {
						if err == nil {
							t.Errorf("valid d=%d k=%d s=%d dil=%d: got %d, want an error (no window fits)", d, k, s, dil, out)
						}
					} else if err != nil || out != want || b != 0 || a != 0 {
						t.Errorf("valid d=%d k=%d s=%d dil=%d: got %d (%d/%d) %v, want %d", d, k, s, dil, out, b, a, err, want)
					}
					// custom
					for _, p := range [][2]int{{0, 0}, {1, 0}, {0, 2}, {2, 1}} {
						out, b, a, err := ConvAxis(PadCustom, d, k, s, dil, p[0], p[1])
						want := windows(d+p[0]+p[1], k, s, dil)
						if want == 0 {
							if err == nil {
								t.Errorf("custom %v d=%d k=%d s=%d dil=%d: got %d, want an error", p, d, k, s, dil, out)
							}
						} else if err != nil || out != want || b != p[0] || a != p[1] {
							t.Errorf("custom %v d=%d k=%d s=%d dil=%d: got %d (%d/%d) %v, want %d", p, d, k, s, dil, out, b, a, err, want)
						}
					}
					// same and same_lower: total pad max(0, s·ceil(d/s) − d + k' − s),
					// output ceil(d/s), which must equal the windows that fit.
					ceil := (d + s - 1) / s
					total := max(0, s*ceil-d+keff-s)
					for _, pt := range []string{PadSame, PadSameLower} {
						out, b, a, err := ConvAxis(pt, d, k, s, dil, 9, 9)
						if err != nil || out != ceil || b+a != total {
							t.Errorf("%s d=%d k=%d s=%d dil=%d: got %d (%d/%d) %v, want %d (total pad %d)", pt, d, k, s, dil, out, b, a, err, ceil, total)
							continue
						}
						if got := windows(d+b+a, k, s, dil); got != out {
							t.Errorf("%s d=%d k=%d s=%d dil=%d: %d windows fit the padded input, output says %d", pt, d, k, s, dil, got, out)
						}
						small, big := total/2, total-total/2
						if pt == PadSame && (b != small || a != big) || pt == PadSameLower && (b != big || a != small) {
							t.Errorf("%s d=%d k=%d s=%d dil=%d: pad %d/%d, want the odd extra %s", pt, d, k, s, dil, b, a, map[string]string{PadSame: "after", PadSameLower: "before"}[pt])
						}
					}
				}
			}
		}
	}
	if _, _, _, err := ConvAxis("bogus", 4, 1, 1, 1, 0, 0); err == nil {
		t.Error("unknown pad type accepted")
	}
	if _, _, _, err := ConvAxis(PadValid, 0, 1, 1, 1, 0, 0); err == nil {
		t.Error("empty axis accepted")
	}
}

func TestInferReduce(t *testing.T) {
	x := rv("x", FP16, 1, 16, 1, 8)
	var cases []inferCase
	for _, op := range []string{"reduce_sum", "reduce_max", "reduce_mean"} {
		cases = append(cases, []inferCase{
			{name: op + " keep", op: mkOp(op, va("x", x), ca("axes", Int32s(1)), ca("keep_dims", bl(true))), want: []Type{tt(FP16, 1, 1, 1, 8)}},
			{name: op + " drop", op: mkOp(op, va("x", x), ca("axes", Int32s(1)), ca("keep_dims", bl(false))), want: []Type{tt(FP16, 1, 1, 8)}},
			{name: op + " default keep", op: mkOp(op, va("x", x), ca("axes", Int32s(1, 3))), want: []Type{tt(FP16, 1, 1)}},
		}...)
	}
	cases = append(cases, []inferCase{
		{name: "all axes", op: mkOp("reduce_sum", va("x", x)), want: []Type{tt(FP16)}},
		{name: "all axes keep", op: mkOp("reduce_sum", va("x", x), ca("keep_dims", bl(true))), want: []Type{tt(FP16, 1, 1, 1, 1)}},
		{name: "negative axis", op: mkOp("reduce_sum", va("x", x), ca("axes", Int32s(-1)), ca("keep_dims", bl(true))), want: []Type{tt(FP16, 1, 16, 1, 1)}},
		{name: "empty axes", op: mkOp("reduce_sum", va("x", x), ca("axes", Int32s())), want: []Type{x.Type}},
		{name: "axis out of range", op: mkOp("reduce_sum", va("x", x), ca("axes", Int32s(4))), errSub: "axes 4 is out of range for rank 4", errIn: "axes"},
		{name: "duplicate axis", op: mkOp("reduce_sum", va("x", x), ca("axes", Int32s(1, -3))), errSub: "lists axis 1 twice"},
		{name: "axes scalar", op: mkOp("reduce_sum", va("x", x), ca("axes", i32(1))), errSub: "rank-1 int32"},
		{name: "axes runtime", op: mkOp("reduce_sum", va("x", x), va("axes", rv("a", Int32, 1))), errSub: "compile-time constant"},
		{name: "axes blob", op: mkOp("reduce_sum", va("x", x), la("axes", BlobValue(tt(Int32, 1), WeightPath, 64))), errSub: "not a BLOBFILE"},
		{name: "bool x", op: mkOp("reduce_max", va("x", rv("x", Bool, 3))), errSub: "dtype bool"},
		{name: "int32 x", op: mkOp("reduce_max", va("x", rv("x", Int32, 3)), ca("axes", Int32s(0))), want: []Type{tt(Int32)}},
	}...)
	runInfer(t, cases)
}

func TestInferReshape(t *testing.T) {
	rs := func(target Target, x *Var, shape ...int) inferCase {
		return inferCase{target: target, op: mkOp("reshape", va("x", x), ca("shape", Int32s(shape...)))}
	}
	ok := func(c inferCase, name string, want Type) inferCase { c.name, c.want = name, []Type{want}; return c }
	bad := func(c inferCase, name, sub string) inferCase { c.name, c.errSub = name, sub; return c }
	x := rv("x", FP16, 1, 16, 1, 8)
	x2 := rv("x", FP16, 2, 50)
	x3 := rv("x", FP16, 4, 3, 2)
	runInfer(t, []inferCase{
		ok(rs(IOS18, x, 1, 2, 8, 8), "plain", tt(FP16, 1, 2, 8, 8)),
		ok(rs(IOS18, x, 1, -1, 8), "minus one", tt(FP16, 1, 16, 8)),
		ok(rs(IOS18, x, -1), "flatten", tt(FP16, 128)),
		ok(rs(IOS18, rv("s", FP16), 1, 1), "scalar to tensor", tt(FP16, 1, 1)),
		ok(rs(IOS18, rv("s", FP16, 1, 1)), "tensor to scalar", tt(FP16)),
		bad(rs(IOS18, x, -1, -1, 8), "two minus ones", "more than one -1"),
		bad(rs(IOS18, x, 1, 2, 3), "count", "x has 128 elements, the target shape 6"),
		bad(rs(IOS18, x, 3, -1), "indivisible", "cannot infer the -1"),
		bad(rs(IOS18, x, -2, 64), "negative", "negative size -2"),
		// 0 before iOS17: same index, needs len(shape) == rank(x).
		ok(rs(IOS16, x, 0, 0, 8, 1), "zero ios16", tt(FP16, 1, 16, 8, 1)),
		bad(rs(IOS16, x2, 1, 0, -1, 0), "zero ios16 rank mismatch", "needs 2 entries"),
		bad(rs(IOS16, x3, 0, -1), "zero ios16 short", "needs 3 entries"),
		// 0 from iOS17: right-aligned, 1 where x has no dim (the reference's
		// own example: [2,50] with [1,0,-1,0] → [1,1,2,50]).
		ok(rs(IOS17, x2, 1, 0, -1, 0), "zero ios17 reference example", tt(FP16, 1, 1, 2, 50)),
		// [4,3,2] with [0,-1]: the 0 is second from the end → x's 3; -1 = 24/3.
		ok(rs(IOS17, x3, 0, -1), "zero ios17 right aligned", tt(FP16, 3, 8)),
		ok(rs(IOS18, x, 0, 0, 8, 1), "zero ios18 same rank", tt(FP16, 1, 16, 8, 1)),
		{name: "shape runtime", op: mkOp("reshape", va("x", x), va("shape", rv("s", Int32, 2))), errSub: "compile-time constant"},
		{name: "shape int16 ios16", target: IOS16, op: mkOp("reshape", va("x", x), ca("shape", IntTensor(Int16, Shape{1}, []int64{128}))), errSub: "rank-1 int32 tensor"},
		{name: "shape int16 ios17", target: IOS17, op: mkOp("reshape", va("x", x), ca("shape", IntTensor(Int16, Shape{1}, []int64{128}))), want: []Type{tt(FP16, 128)}},
		{name: "int8 x ios16", target: IOS16, op: mkOp("reshape", va("x", rv("x", Int8, 4)), ca("shape", Int32s(2, 2))), errSub: "dtype int8"},
		{name: "int8 x ios17", target: IOS17, op: mkOp("reshape", va("x", rv("x", Int8, 4)), ca("shape", Int32s(2, 2))), want: []Type{tt(Int8, 2, 2)}},
		// Right-aligned zeros copy x's unknown dim; the count cannot be checked.
		{name: "unknown x", op: mkOp("reshape", va("x", rv("x", FP16, U, 4)), ca("shape", Int32s(2, 0, 0))), want: []Type{tt(FP16, 2, U, 4)}},
		{name: "unknown x minus one", op: mkOp("reshape", va("x", rv("x", FP16, U, 4)), ca("shape", Int32s(-1))), errSub: "unknown dimensions"},
		{name: "overflowing shape", op: mkOp("reshape", va("x", x), ca("shape", Int32s(1<<30, 1<<30, 1<<30))), errSub: "too many elements"},
		{name: "rank limit", op: mkOp("reshape", va("x", x), ca("shape", Int32s(filled(17, 1)...))), errSub: "more than the maximum rank"},
	})
}

func TestInferTranspose(t *testing.T) {
	x := rv("x", FP16, 1, 2, 8, 4)
	tr := func(perm ...int) *Operation { return mkOp("transpose", va("x", x), ca("perm", Int32s(perm...))) }
	runInfer(t, []inferCase{
		{name: "swap last two", op: tr(0, 1, 3, 2), want: []Type{tt(FP16, 1, 2, 4, 8)}},
		{name: "negative", op: tr(0, 1, -1, -2), want: []Type{tt(FP16, 1, 2, 4, 8)}},
		{name: "rotate", op: tr(3, 0, 1, 2), want: []Type{tt(FP16, 4, 1, 2, 8)}},
		{name: "not a permutation", op: tr(0, 0, 1, 2), errSub: "lists axis 0 twice"},
		{name: "short", op: tr(0, 1, 2), errSub: "perm has 3 elements, want 4"},
		{name: "out of range", op: tr(0, 1, 2, 4), errSub: "out of range"},
		{name: "missing", op: mkOp("transpose", va("x", x)), errSub: `missing required input "perm"`},
		{name: "scalar", op: mkOp("transpose", va("x", rv("s", FP16)), ca("perm", Int32s())), want: []Type{tt(FP16)}},
	})
}

func TestInferSliceBySize(t *testing.T) {
	x := rv("x", FP16, 1, 64, 1, 40)
	sl := func(begin, size []int) *Operation {
		return mkOp("slice_by_size", va("x", x), ca("begin", Int32s(begin...)), ca("size", Int32s(size...)))
	}
	runInfer(t, []inferCase{
		{name: "activations", op: sl([]int{0, 0, 0, 0}, []int{1, 64, 1, 32}), want: []Type{tt(FP16, 1, 64, 1, 32)}},
		{name: "weights", op: sl([]int{0, 0, 0, 32}, []int{1, 64, 1, 8}), want: []Type{tt(FP16, 1, 64, 1, 8)}},
		{name: "to the end", op: sl([]int{0, 0, 0, 32}, []int{-1, -1, -1, -1}), want: []Type{tt(FP16, 1, 64, 1, 8)}},
		{name: "negative begin", op: sl([]int{0, -16, 0, -8}, []int{1, 16, 1, -1}), want: []Type{tt(FP16, 1, 16, 1, 8)}},
		{name: "too long", op: sl([]int{0, 0, 0, 32}, []int{1, 64, 1, 9}), errSub: "begin 32 + size 9 exceeds axis 3 of size 40", errIn: "size"},
		{name: "begin out of range", op: sl([]int{0, 64, 0, 0}, []int{1, 1, 1, 1}), errSub: "begin 64 is out of range", errIn: "begin"},
		{name: "begin too negative", op: sl([]int{0, -65, 0, 0}, []int{1, 1, 1, 1}), errSub: "begin -65 is out of range"},
		{name: "size zero", op: sl([]int{0, 0, 0, 0}, []int{1, 0, 1, 1}), errSub: "size 0 on axis 1"},
		{name: "size -2", op: sl([]int{0, 0, 0, 0}, []int{1, -2, 1, 1}), errSub: "size -2 on axis 1"},
		{name: "rank mismatch", op: sl([]int{0, 0, 0}, []int{1, 1, 1}), errSub: "begin has 3 elements, want 4"},
		{name: "begin runtime", op: mkOp("slice_by_size", va("x", x), va("begin", rv("b", Int32, 4)), ca("size", Int32s(1, 1, 1, 1))), errSub: "compile-time constant"},
		{name: "index int8 ios17", target: IOS17, op: mkOp("slice_by_size", va("x", rv("x", FP16, 4)), ca("begin", IntTensor(Int8, Shape{1}, []int64{1})), ca("size", Int32s(2))), want: []Type{tt(FP16, 2)}},
		{name: "index int8 ios16", target: IOS16, op: mkOp("slice_by_size", va("x", rv("x", FP16, 4)), ca("begin", IntTensor(Int8, Shape{1}, []int64{1})), ca("size", Int32s(2))), errSub: "rank-1 int32"},
	})
}

func TestInferSliceByIndex(t *testing.T) {
	type opts struct {
		stride               []int
		begMask, endMask, sq []bool
	}
	sl := func(x *Var, begin, end []int, o opts) *Operation {
		args := []Arg{va("x", x), ca("begin", Int32s(begin...)), ca("end", Int32s(end...))}
		if o.stride != nil {
			args = append(args, ca("stride", Int32s(o.stride...)))
		}
		for _, m := range []struct {
			name string
			v    []bool
		}{{"begin_mask", o.begMask}, {"end_mask", o.endMask}, {"squeeze_mask", o.sq}} {
			if m.v != nil {
				args = append(args, ca(m.name, Bools(m.v...)))
			}
		}
		return mkOp("slice_by_index", args...)
	}
	v10 := rv("v", FP16, 10)
	m := rv("m", FP16, 4, 6)
	T, F := true, false
	// Expected sizes are Python's len(range(10)[b:e:s]), worked out by hand.
	runInfer(t, []inferCase{
		{name: "2:8:2", op: sl(v10, []int{2}, []int{8}, opts{stride: []int{2}}), want: []Type{tt(FP16, 3)}},
		{name: "defaults", op: sl(v10, []int{2}, []int{8}, opts{}), want: []Type{tt(FP16, 6)}},
		{name: "-3: end mask", op: sl(v10, []int{-3}, []int{0}, opts{endMask: []bool{T}}), want: []Type{tt(FP16, 3)}},
		{name: "8:2:-2", op: sl(v10, []int{8}, []int{2}, opts{stride: []int{-2}}), want: []Type{tt(FP16, 3)}},
		{name: "::-1 masks", op: sl(v10, []int{0}, []int{0}, opts{stride: []int{-1}, begMask: []bool{T}, endMask: []bool{T}}), want: []Type{tt(FP16, 10)}},
		{name: "0:100 clamps", op: sl(v10, []int{0}, []int{100}, opts{}), want: []Type{tt(FP16, 10)}},
		{name: "-100:3 clamps", op: sl(v10, []int{-100}, []int{3}, opts{}), want: []Type{tt(FP16, 3)}},
		{name: "9:-11:-1", op: sl(v10, []int{9}, []int{-11}, opts{stride: []int{-1}}), want: []Type{tt(FP16, 10)}},
		{name: "-1:-11:-3", op: sl(v10, []int{-1}, []int{-11}, opts{stride: []int{-3}}), want: []Type{tt(FP16, 4)}},
		{name: ":5:3 begin mask", op: sl(v10, []int{7}, []int{5}, opts{stride: []int{3}, begMask: []bool{T}}), want: []Type{tt(FP16, 2)}},
		{name: "100:0:-4", op: sl(v10, []int{100}, []int{0}, opts{stride: []int{-4}}), want: []Type{tt(FP16, 3)}},
		{name: "5:-1:-1 empty", op: sl(v10, []int{5}, []int{-1}, opts{stride: []int{-1}}), errSub: "is empty"},
		{name: "5:5 empty", op: sl(v10, []int{5}, []int{5}, opts{}), errSub: "is empty"},
		{name: "squeeze row", op: sl(m, []int{2, 0}, []int{0, 6}, opts{sq: []bool{T, F}}), want: []Type{tt(FP16, 6)}},
		{name: "squeeze negative", op: sl(m, []int{-1, 1}, []int{0, 4}, opts{sq: []bool{T, F}}), want: []Type{tt(FP16, 3)}},
		{name: "squeeze all", op: sl(m, []int{1, 2}, []int{0, 0}, opts{sq: []bool{T, T}}), want: []Type{tt(FP16)}},
		{name: "squeeze out of range", op: sl(m, []int{4, 0}, []int{0, 6}, opts{sq: []bool{T, F}}), errSub: "squeezed index 4 is out of range"},
		{name: "stride 0", op: sl(v10, []int{0}, []int{5}, opts{stride: []int{0}}), errSub: "stride on axis 0 is 0"},
		{name: "mask length", op: sl(m, []int{0, 0}, []int{1, 1}, opts{begMask: []bool{T}}), errSub: "begin_mask has 1 elements, want 2"},
		{name: "mask dtype", op: mkOp("slice_by_index", va("x", v10), ca("begin", Int32s(0)), ca("end", Int32s(1)), ca("end_mask", Int32s(1))), errSub: "rank-1 bool"},
		{name: "end runtime", op: mkOp("slice_by_index", va("x", v10), ca("begin", Int32s(0)), va("end", rv("e", Int32, 1))), errSub: "compile-time constant"},
		{name: "unknown dim", op: sl(rv("u", FP16, U, 4), []int{0, 1}, []int{2, 3}, opts{}), want: []Type{tt(FP16, U, 2)}},
	})
}

func TestSliceRange(t *testing.T) {
	// Each row: Python's range(10)[b:e:s] written out by hand.
	cases := []struct {
		b, e, s    int
		bm, em, sq bool
		start, n   int
	}{
		{2, 8, 2, false, false, false, 2, 3},  // 2 4 6
		{8, 2, -2, false, false, false, 8, 3}, // 8 6 4
		{-3, 0, 1, false, true, false, 7, 3},  // 7 8 9
		{0, 0, -1, true, true, false, 9, 10},  // 9 … 0
		{-1, -11, -3, false, false, false, 9, 4},
		{3, 3, 1, false, false, false, 3, 0},
		{12, 20, 1, false, false, false, 10, 0},
		{-20, 2, 1, false, false, false, 0, 2},
		{4, 99, 1, false, false, true, 4, 1},
		{-2, 0, 1, false, false, true, 8, 1},
		{5, 0, 1, true, false, true, 0, 1},
	}
	for _, c := range cases {
		start, n, err := SliceRange(10, c.b, c.e, c.s, c.bm, c.em, c.sq)
		if err != nil || n != c.n || (n > 0 && start != c.start) {
			t.Errorf("SliceRange(10, %d, %d, %d, %v, %v, %v) = %d, %d, %v; want %d, %d", c.b, c.e, c.s, c.bm, c.em, c.sq, start, n, err, c.start, c.n)
		}
	}
	if _, _, err := SliceRange(10, 0, 1, 0, false, false, false); err == nil {
		t.Error("stride 0 accepted")
	}
	if _, _, err := SliceRange(10, 10, 0, 1, false, false, true); err == nil {
		t.Error("squeeze past the end accepted")
	}
}

func TestInferConcat(t *testing.T) {
	tup := func(vs ...*Var) Arg {
		a := Arg{Name: "values", Tuple: true}
		for _, v := range vs {
			a.Bindings = append(a.Bindings, Binding{Var: v})
		}
		return a
	}
	a, b := rv("a", FP16, 1, 4, 1, 8), rv("b", FP16, 1, 6, 1, 8)
	runInfer(t, []inferCase{
		{name: "channels", op: mkOp("concat", tup(a, b), ca("axis", i32(1)), ca("interleave", bl(false))), want: []Type{tt(FP16, 1, 10, 1, 8)}},
		{name: "negative axis", op: mkOp("concat", tup(a, b, a), ca("axis", i32(-3))), want: []Type{tt(FP16, 1, 14, 1, 8)}},
		{name: "single", op: mkOp("concat", tup(a), ca("axis", i32(3))), want: []Type{tt(FP16, 1, 4, 1, 8)}},
		{name: "interleave", op: mkOp("concat", tup(a, a), ca("axis", i32(3)), ca("interleave", bl(true))), want: []Type{tt(FP16, 1, 4, 1, 16)}},
		{name: "interleave shapes", op: mkOp("concat", tup(a, b), ca("axis", i32(1)), ca("interleave", bl(true))), errSub: "interleave needs identical shapes"},
		{name: "other axis differs", op: mkOp("concat", tup(a, b), ca("axis", i32(3))), errSub: "on every axis but the concat axis"},
		{name: "dtype", op: mkOp("concat", tup(a, rv("c", FP32, 1, 4, 1, 8)), ca("axis", i32(1))), errSub: "all need the same dtype and rank"},
		{name: "rank", op: mkOp("concat", tup(a, rv("c", FP16, 4, 1, 8)), ca("axis", i32(1))), errSub: "all need the same dtype and rank"},
		{name: "not a tuple", op: mkOp("concat", va("values", a), ca("axis", i32(1))), errSub: "must be a tuple"},
		{name: "axis vector", op: mkOp("concat", tup(a, b), ca("axis", Int32s(1))), errSub: "int32 scalar"},
		{name: "axis missing", op: mkOp("concat", tup(a, b)), errSub: `missing required input "axis"`},
		{name: "axis range", op: mkOp("concat", tup(a, b), ca("axis", i32(4))), errSub: "out of range"},
		{name: "scalars", op: mkOp("concat", tup(rv("s", FP16), rv("t", FP16)), ca("axis", i32(0))), errSub: "scalar"},
		{name: "literal member", op: mkOp("concat", Arg{Name: "values", Tuple: true, Bindings: []Binding{{Var: rv("v", Int32, 2)}, {Value: Int32s(5)}}}, ca("axis", i32(0))), want: []Type{tt(Int32, 3)}},
		{name: "unknown axis size", op: mkOp("concat", tup(rv("u", FP16, U, 3), rv("v", FP16, 2, 3)), ca("axis", i32(0))), want: []Type{tt(FP16, U, 3)}},
	})
}

func TestInferSplit(t *testing.T) {
	x := rv("x", FP16, 1, 16, 1, 8)
	sp := func(args ...Arg) *Operation {
		return mkOp("split", append([]Arg{va("x", x), ca("axis", i32(1))}, args...)...)
	}
	runInfer(t, []inferCase{
		{name: "num_splits", op: sp(ca("num_splits", i32(2))), want: []Type{tt(FP16, 1, 8, 1, 8), tt(FP16, 1, 8, 1, 8)}},
		{name: "split_sizes", op: sp(ca("split_sizes", Int32s(4, 12))), want: []Type{tt(FP16, 1, 4, 1, 8), tt(FP16, 1, 12, 1, 8)}},
		{name: "both agree", op: sp(ca("num_splits", i32(3)), ca("split_sizes", Int32s(4, 4, 8))), want: []Type{tt(FP16, 1, 4, 1, 8), tt(FP16, 1, 4, 1, 8), tt(FP16, 1, 8, 1, 8)}},
		{name: "both disagree", op: sp(ca("num_splits", i32(2)), ca("split_sizes", Int32s(4, 4, 8))), errSub: "num_splits 2 disagrees with 3 split_sizes"},
		{name: "sizes sum", op: sp(ca("split_sizes", Int32s(4, 4))), errSub: "sum to 8"},
		{name: "size zero", op: sp(ca("split_sizes", Int32s(0, 16))), errSub: "must be positive"},
		{name: "sizes empty", op: sp(ca("split_sizes", Int32s())), errSub: "split_sizes has 0 entries"},
		{name: "not dividing", op: sp(ca("num_splits", i32(3))), errSub: "num_splits 3 does not divide"},
		{name: "absurd num_splits", op: mkOp("split", va("x", rv("u", FP16, U)), ca("axis", i32(0)), ca("num_splits", i32(1<<30))), errSub: "must be in [1, 65536]"},
		{name: "neither", op: sp(), errSub: "needs num_splits or split_sizes"},
		{name: "axis range", op: mkOp("split", va("x", x), ca("axis", i32(-5)), ca("num_splits", i32(2))), errSub: "out of range"},
		{name: "scalar", op: mkOp("split", va("x", rv("s", FP16)), ca("axis", i32(0)), ca("num_splits", i32(1))), errSub: "cannot split a scalar"},
	})
}

func TestInferExpandSqueeze(t *testing.T) {
	x := rv("x", FP16, 2, 3)
	ed := func(axes ...int) *Operation { return mkOp("expand_dims", va("x", x), ca("axes", Int32s(axes...))) }
	y := rv("y", FP16, 1, 16, 1, 8)
	sq := func(axes ...int) *Operation { return mkOp("squeeze", va("x", y), ca("axes", Int32s(axes...))) }
	runInfer(t, []inferCase{
		{name: "expand front", op: ed(0), want: []Type{tt(FP16, 1, 2, 3)}},
		{name: "expand back", op: ed(-1), want: []Type{tt(FP16, 2, 3, 1)}},
		{name: "expand two", op: ed(0, 3), want: []Type{tt(FP16, 1, 2, 3, 1)}},
		{name: "expand unsorted", op: ed(3, 1), want: []Type{tt(FP16, 2, 1, 3, 1)}},
		{name: "expand scalar", op: mkOp("expand_dims", va("x", rv("s", FP16)), ca("axes", Int32s(0))), want: []Type{tt(FP16, 1)}},
		{name: "expand out of range", op: ed(3), errSub: "axes 3 is out of range for rank 3"},
		{name: "expand -4", op: ed(-4), errSub: "out of range"},
		{name: "expand duplicate", op: ed(0, -4), errSub: "twice"},
		{name: "expand empty", op: ed(), errSub: "axes is empty"},
		{name: "expand missing axes", op: mkOp("expand_dims", va("x", x)), errSub: "missing required input"},
		{name: "squeeze default", op: mkOp("squeeze", va("x", y)), want: []Type{tt(FP16, 16, 8)}},
		{name: "squeeze one", op: sq(0), want: []Type{tt(FP16, 16, 1, 8)}},
		{name: "squeeze negative", op: sq(-2), want: []Type{tt(FP16, 1, 16, 8)}},
		{name: "squeeze non-unit kept", op: sq(1), want: []Type{tt(FP16, 1, 16, 1, 8)}},
		{name: "squeeze to scalar", op: mkOp("squeeze", va("x", rv("o", FP16, 1, 1))), want: []Type{tt(FP16)}},
		{name: "squeeze out of range", op: sq(4), errSub: "out of range"},
		{name: "squeeze scalar", op: mkOp("squeeze", va("x", rv("s", FP16))), errSub: "cannot squeeze a scalar"},
	})
}

func TestInferSDPA(t *testing.T) {
	sdpa := func(q, k, v *Var, extra ...Arg) *Operation {
		return mkOp("scaled_dot_product_attention", append([]Arg{va("query", q), va("key", k), va("value", v)}, extra...)...)
	}
	q := rv("q", FP16, 1, 2, 8, 4)
	runInfer(t, []inferCase{
		{name: "self", op: sdpa(q, q, q), want: []Type{tt(FP16, 1, 2, 8, 4)}},
		{name: "ios17 refused", target: IOS17, op: sdpa(q, q, q), errSub: "not available in opset ios17 (it first appears in ios18)"},
		{name: "ios16 refused", target: IOS16, op: sdpa(q, q, q), errSub: "not available in opset ios16"},
		{name: "value width", op: sdpa(q, q, rv("v", FP16, 1, 2, 8, 6)), want: []Type{tt(FP16, 1, 2, 8, 6)}},
		{name: "cross", op: sdpa(q, rv("k", FP16, 1, 2, 5, 4), rv("v", FP16, 1, 2, 5, 4)), want: []Type{tt(FP16, 1, 2, 8, 4)}},
		{name: "rank 3", op: sdpa(rv("q", FP32, 2, 8, 4), rv("k", FP32, 2, 8, 4), rv("v", FP32, 2, 8, 4)), want: []Type{tt(FP32, 2, 8, 4)}},
		{name: "causal mask", op: sdpa(q, q, q, va("attn_mask", rv("m", FP16, 1, 1, 8, 8))), want: []Type{tt(FP16, 1, 2, 8, 4)}},
		{name: "bool mask 2d", op: sdpa(q, rv("k", FP16, 1, 2, 5, 4), rv("v", FP16, 1, 2, 5, 4), va("attn_mask", rv("m", Bool, 8, 5))), want: []Type{tt(FP16, 1, 2, 8, 4)}},
		{name: "mask too wide", op: sdpa(q, q, q, va("attn_mask", rv("m", FP16, 3, 8, 8))), errSub: "does not broadcast to the scores [1, 2, 8, 8]"},
		{name: "mask grows scores", op: sdpa(q, q, q, va("attn_mask", rv("m", FP16, 2, 1, 8, 8))), errSub: "does not broadcast"},
		{name: "mask dtype", op: sdpa(q, q, q, va("attn_mask", rv("m", Int32, 8, 8))), errSub: "attn_mask has dtype int32"},
		{name: "embedding mismatch", op: sdpa(q, rv("k", FP16, 1, 2, 8, 5), q), errSub: "different embedding sizes"},
		{name: "sequence mismatch", op: sdpa(q, rv("k", FP16, 1, 2, 7, 4), q), errSub: "different sequence lengths"},
		{name: "batch mismatch", op: sdpa(q, rv("k", FP16, 1, 3, 8, 4), rv("v", FP16, 1, 3, 8, 4)), errSub: "batch dimensions"},
		{name: "rank 2", op: sdpa(rv("q", FP16, 8, 4), rv("k", FP16, 8, 4), rv("v", FP16, 8, 4)), errSub: "at least 3"},
		{name: "dtypes", op: sdpa(q, rv("k", FP32, 1, 2, 8, 4), q), errSub: "same dtype"},
	})
}

func TestInferQuantization(t *testing.T) {
	x := rv("x", FP16, 1, 16, 1, 8)
	q8 := rv("q", Int8, 16, 8)
	qd := IntTensor(Int8, Shape{32, 16, 1, 1}, make([]int64, 512))
	attrOp := func(attrs ...Attr) *Operation {
		return &Operation{Type: "constexpr_affine_dequantize", Name: "op", Attrs: attrs}
	}
	at := func(name string, v *Value) Attr { return Attr{Name: name, Value: v} }
	runInfer(t, []inferCase{
		{name: "quantize scalar", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", f16(0.125)), ca("output_dtype", str("int8"))), want: []Type{tt(Int8, 1, 16, 1, 8)}},
		{name: "quantize zero point", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", f16(0.125)), ca("zero_point", IntScalar(UInt8, 128)), ca("output_dtype", str("uint8"))), want: []Type{tt(UInt8, 1, 16, 1, 8)}},
		{name: "quantize zp dtype", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", f16(0.125)), ca("zero_point", IntScalar(UInt8, 1)), ca("output_dtype", str("int8"))), errSub: "zero_point has dtype uint8"},
		{name: "quantize per channel", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", FloatTensor(FP16, Shape{16}, filledF(16, 1))), ca("axis", i32(1)), ca("output_dtype", str("int8"))), want: []Type{tt(Int8, 1, 16, 1, 8)}},
		{name: "quantize vector no axis", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", FloatTensor(FP16, Shape{16}, filledF(16, 1))), ca("output_dtype", str("int8"))), errSub: "axis is required"},
		{name: "quantize scalar with axis", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", f16(1)), ca("axis", i32(1)), ca("output_dtype", str("int8"))), errSub: "axis must not be given"},
		{name: "quantize vector length", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", FloatTensor(FP16, Shape{8}, filledF(8, 1))), ca("axis", i32(1)), ca("output_dtype", str("int8"))), errSub: "scale has 8 entries but axis 1"},
		{name: "quantize output dtype", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", f16(1)), ca("output_dtype", str("int16"))), errSub: `output_dtype "int16"`},
		{name: "quantize scale dtype", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", FloatScalar(FP32, 1)), ca("output_dtype", str("int8"))), errSub: "scale has dtype fp32"},
		{name: "quantize zero scale", target: IOS17, op: mkOp("quantize", va("input", x), ca("scale", f16(0)), ca("output_dtype", str("int8"))), errSub: "all zeros"},
		{name: "quantize ios16", target: IOS16, op: mkOp("quantize", va("input", x), ca("scale", f16(1)), ca("output_dtype", str("int8"))), errSub: "first appears in ios17"},
		{name: "dequantize", target: IOS17, op: mkOp("dequantize", va("input", q8), ca("scale", FloatScalar(FP32, 0.5))), want: []Type{tt(FP32, 16, 8)}},
		{name: "dequantize per channel", target: IOS18, op: mkOp("dequantize", va("input", q8), ca("scale", FloatTensor(FP16, Shape{8}, filledF(8, 1))), ca("zero_point", IntTensor(Int8, Shape{8}, make([]int64, 8))), ca("axis", i32(-1))), want: []Type{tt(FP16, 16, 8)}},
		{name: "dequantize zp rank", target: IOS17, op: mkOp("dequantize", va("input", q8), ca("scale", f16(1)), ca("zero_point", IntTensor(Int8, Shape{8}, make([]int64, 8)))), errSub: "must both be scalars or both vectors"},
		{name: "dequantize float input", target: IOS17, op: mkOp("dequantize", va("input", x), ca("scale", f16(1))), errSub: "input has dtype fp16"},
		{name: "dequantize zp dtype", target: IOS17, op: mkOp("dequantize", va("input", q8), ca("scale", f16(1)), ca("zero_point", IntScalar(UInt8, 0))), errSub: "zero_point has dtype uint8"},

		{name: "affine attrs ios16", target: IOS16, op: attrOp(at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", IntScalar(Int8, 0)), at("axis", i32(0))), want: []Type{tt(FP16, 32, 16, 1, 1)}},
		{name: "affine blob data", target: IOS16, op: attrOp(at("quantized_data", BlobValue(tt(Int8, 32, 16, 1, 1), WeightPath, 64)), at("scale", f16(0.125)), at("zero_point", IntScalar(Int8, 0)), at("axis", i32(0))), want: []Type{tt(FP16, 32, 16, 1, 1)}},
		{name: "affine inputs ios18", target: IOS18, op: mkOp("constexpr_affine_dequantize", la("quantized_data", qd), la("scale", FloatTensor(FP32, Shape{32}, filledF(32, 1))), la("zero_point", IntTensor(Int8, Shape{32}, make([]int64, 32))), la("axis", i32(0))), want: []Type{tt(FP32, 32, 16, 1, 1)}},
		// The reference's W8A8 kernels use the attribute form under ios18; accept it.
		{name: "affine attrs ios18", target: IOS18, op: attrOp(at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", IntScalar(Int8, 0)), at("axis", i32(0))), want: []Type{tt(FP16, 32, 16, 1, 1)}},
		{name: "affine fp32 zero point", target: IOS18, op: attrOp(at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", FloatScalar(FP32, 0.5)), at("axis", i32(0))), want: []Type{tt(FP16, 32, 16, 1, 1)}},
		{name: "affine ios15", target: IOS15, op: attrOp(at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", IntScalar(Int8, 0)), at("axis", i32(0))), errSub: "first appears in ios16"},
		{name: "affine vector length", target: IOS16, op: attrOp(at("quantized_data", qd), at("scale", FloatTensor(FP16, Shape{16}, filledF(16, 1))), at("zero_point", IntTensor(Int8, Shape{16}, make([]int64, 16))), at("axis", i32(0))), errSub: "scale has 16 entries but axis 0"},
		{name: "affine zp dtype", target: IOS16, op: attrOp(at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", IntScalar(UInt8, 0)), at("axis", i32(0))), errSub: "zero_point is uint8 but quantized_data is int8"},
		{name: "affine missing axis", target: IOS16, op: attrOp(at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", IntScalar(Int8, 0))), errSub: `missing required input "axis"`},
		{name: "affine axis range", target: IOS16, op: attrOp(at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", IntScalar(Int8, 0)), at("axis", i32(4))), errSub: "out of range"},
		{name: "affine both forms", target: IOS18, op: &Operation{Type: "constexpr_affine_dequantize", Name: "op", Args: []Arg{la("axis", i32(0))}, Attrs: []Attr{at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", IntScalar(Int8, 0)), at("axis", i32(0))}}, errSub: "both as an input and as an attribute"},
		{name: "affine runtime data", target: IOS18, op: mkOp("constexpr_affine_dequantize", va("quantized_data", rv("d", Int8, 4)), la("scale", f16(1)), la("zero_point", IntScalar(Int8, 0)), la("axis", i32(0))), errSub: "compile-time constant"},
		{name: "affine unknown attr", target: IOS16, op: attrOp(at("quantized_data", qd), at("scale", f16(0.125)), at("zero_point", IntScalar(Int8, 0)), at("axis", i32(0)), at("bias", f16(0))), errSub: `unexpected attribute "bias"`},
	})
}

func filledF(n int, x float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = x
	}
	return s
}

func TestOpDefaults(t *testing.T) {
	x := rv("x", FP16, 1, 8, 1, 4)
	conv := mkOp("conv", va("x", x), va("weight", rv("w", FP16, 6, 8, 1, 1)))
	cases := []struct {
		op    *Operation
		input string
		want  *Value // nil: no default
	}{
		{conv, "strides", Int32s(1, 1)},
		{conv, "dilations", Int32s(1, 1)},
		{conv, "pad", Int32s(0, 0, 0, 0)},
		{conv, "pad_type", str("valid")},
		{conv, "groups", i32(1)},
		{conv, "bias", FloatTensor(FP16, Shape{6}, make([]float64, 6))},
		{conv, "x", nil},
		{conv, "nonsense", nil},
		{mkOp("conv", va("x", rv("x", FP16, 1, 2, 10)), va("weight", rv("w", FP16, 1, 2, 3))), "pad", Int32s(0, 0)},
		// fp16 defaults underflow exactly as shipped models do (mil-spec §2.8).
		{mkOp("rsqrt", va("x", x)), "epsilon", FloatScalar(FP16, 0)},
		{mkOp("rsqrt", va("x", rv("x", FP32, 2))), "epsilon", FloatScalar(FP32, 1e-12)},
		{mkOp("log", va("x", rv("x", FP32, 2))), "epsilon", FloatScalar(FP32, 1e-45)},
		{mkOp("softmax", va("x", x)), "axis", i32(-1)},
		{mkOp("matmul", va("x", x), va("y", x)), "transpose_y", bl(false)},
		{mkOp("reduce_sum", va("x", x)), "axes", Int32s(0, 1, 2, 3)},
		{mkOp("reduce_mean", va("x", x)), "keep_dims", bl(false)},
		{mkOp("squeeze", va("x", x)), "axes", Int32s(0, 2)},
		{mkOp("slice_by_index", va("x", x)), "stride", Int32s(1, 1, 1, 1)},
		{mkOp("slice_by_index", va("x", x)), "squeeze_mask", Bools(false, false, false, false)},
		{mkOp("concat"), "interleave", bl(false)},
		{mkOp("split", va("x", x)), "num_splits", nil},
		{mkOp("quantize", va("input", x), ca("scale", f16(1)), ca("output_dtype", str("uint8"))), "zero_point", IntScalar(UInt8, 0)},
		{mkOp("dequantize", va("input", q8var()), ca("scale", FloatTensor(FP16, Shape{3}, filledF(3, 1)))), "zero_point", IntTensor(Int8, Shape{3}, []int64{0, 0, 0})},
		{mkOp("quantize", va("input", x)), "axis", nil},
		{mkOp("scaled_dot_product_attention"), "attn_mask", nil},
	}
	for _, c := range cases {
		got, ok := OpDefault(c.op, IOS18, c.input)
		if c.want == nil {
			if ok {
				t.Errorf("%s.%s: default %v, want none", c.op.Type, c.input, got)
			}
			continue
		}
		if !ok || !sameValue(got, c.want) {
			t.Errorf("%s.%s: default %+v, want %+v", c.op.Type, c.input, got, c.want)
		}
	}
	if _, ok := OpDefault(nil, IOS18, "x"); ok {
		t.Error("nil op has defaults")
	}
}

func q8var() *Var { return rv("q", Int8, 2, 3) }

func TestParamValue(t *testing.T) {
	x := rv("x", FP16, 2, 3)
	op := mkOp("reduce_sum", va("x", x), ca("axes", Int32s(1)))
	if v, ok := ParamValue(op, IOS18, "axes"); !ok || !sameValue(v, Int32s(1)) {
		t.Errorf("explicit axes = %v, %v", v, ok)
	}
	if v, ok := ParamValue(op, IOS18, "keep_dims"); !ok || !sameValue(v, bl(false)) {
		t.Errorf("default keep_dims = %v, %v", v, ok)
	}
	if _, ok := ParamValue(op, IOS18, "x"); ok {
		t.Error("runtime input reported as a constant")
	}
	inline := mkOp("matmul", va("x", x), va("y", x), la("transpose_y", bl(true)))
	if v, ok := ParamValue(inline, IOS18, "transpose_y"); !ok || !sameValue(v, bl(true)) {
		t.Errorf("inline flag = %v, %v", v, ok)
	}
	attr := &Operation{Type: "constexpr_affine_dequantize", Name: "w", Attrs: []Attr{{Name: "axis", Value: i32(1)}}}
	if v, ok := ParamValue(attr, IOS16, "axis"); !ok || !sameValue(v, i32(1)) {
		t.Errorf("constexpr attribute = %v, %v", v, ok)
	}
}

func TestTargets(t *testing.T) {
	for _, c := range []struct {
		t       Target
		opset   string
		version string
	}{{IOS15, "ios15", "1.0"}, {IOS16, "ios16", "1.0"}, {IOS17, "ios17", "1.0"}, {IOS18, "ios18", "1.3"}} {
		if c.t.Opset() != c.opset || c.t.Version() != c.version || !c.t.Valid() {
			t.Errorf("%d: opset %s version %s", int(c.t), c.t.Opset(), c.t.Version())
		}
		if got, ok := ParseTarget(c.opset); !ok || got != c.t {
			t.Errorf("ParseTarget(%s) = %v, %v", c.opset, got, ok)
		}
	}
	for _, s := range []string{"ios14", "ios19", "CoreML8", ""} {
		if _, ok := ParseTarget(s); ok {
			t.Errorf("ParseTarget(%q) accepted", s)
		}
	}
	if got := OpTypes(); len(got) < 39 || !strings.Contains(strings.Join(got, " "), "scaled_dot_product_attention") {
		t.Errorf("OpTypes = %v", got)
	}
}
