package mil

import (
	"math"
	"testing"
)

func TestFormatFloat(t *testing.T) {
	// Expected spellings are the ones Apple's compiler writes, quoted in
	// mil-spec §2.5 and §2.8.
	cases := []struct {
		x    float64
		d    DType
		want string
	}{
		{1e-8, FP32, "0x1.5798eep-27"},
		{1e-12, FP32, "0x1.197998p-40"},
		{math.Ldexp(1, -149), FP32, "0x1p-149"},
		{0, FP32, "0x0p+0"},
		{-10000, FP16, "-0x1.388p+13"},
		{math.Ldexp(1, -24), FP16, "0x1p-24"},
		{1e-12, FP16, "0x0p+0"}, // rsqrt's default epsilon vanishes in fp16
		{1e-45, FP16, "0x0p+0"},
		{0.125, FP16, "0x1p-3"},
		{1, FP16, "0x1p+0"},
		{65504, FP16, "0x1.ffcp+15"},
		{65520, FP16, "inf"}, // rounds past the largest finite fp16
		{-65520, FP16, "-inf"},
		{math.NaN(), FP32, "nan"},
		{1.0 / 3, FP16, "0x1.554p-2"},
		{1.0 / 3, FP64, "0x1.5555555555555p-2"},
		{1e5, FP32, "0x1.86ap+16"},
	}
	for _, c := range cases {
		if got := FormatFloat(c.x, c.d); got != c.want {
			t.Errorf("FormatFloat(%g, %v) = %q, want %q", c.x, c.d, got, c.want)
		}
	}
}

func TestRoundFP16(t *testing.T) {
	// Reference: enumerate every finite fp16 value and check that roundFP16
	// picks the nearest one, ties to an even mantissa. Built from the format's
	// definition, independent of the implementation.
	var vals []float64
	for m := 0; m < 1024; m++ { // subnormals and zero
		vals = append(vals, math.Ldexp(float64(m), -24))
	}
	for e := 1; e < 31; e++ {
		for m := 0; m < 1024; m++ {
			vals = append(vals, math.Ldexp(float64(1024+m), e-25))
		}
	}
	// vals is sorted, index parity = mantissa parity.
	for i := 0; i+1 < len(vals); i++ {
		lo, hi := vals[i], vals[i+1]
		mid := (lo + hi) / 2
		even := lo
		if i%2 == 1 {
			even = hi
		}
		for _, c := range []struct{ x, want float64 }{
			{lo, lo}, {mid, even}, {math.Nextafter(mid, 0), lo}, {math.Nextafter(mid, 1e9), hi},
		} {
			if got := roundFP16(c.x); got != c.want {
				t.Fatalf("roundFP16(%v) = %v, want %v", c.x, got, c.want)
			}
			if got := roundFP16(-c.x); got != -c.want {
				t.Fatalf("roundFP16(%v) = %v, want %v", -c.x, got, -c.want)
			}
		}
	}
	if got := roundFP16(math.Nextafter(65520, 0)); got != 65504 {
		t.Errorf("just below 65520 rounds to %v, want 65504", got)
	}
	if got := roundFP16(65520); !math.IsInf(got, 1) {
		t.Errorf("65520 rounds to %v, want +inf", got)
	}
	if got := roundFP16(math.Ldexp(1, -25)); got != 0 {
		t.Errorf("2^-25 (a tie) rounds to %v, want 0", got)
	}
	if got := roundFP16(math.Nextafter(math.Ldexp(1, -25), 1)); got != math.Ldexp(1, -24) {
		t.Errorf("just above 2^-25 rounds to %v, want 2^-24", got)
	}
}

// specProgram builds the example of mil-spec §2.2 by hand.
func specProgram() *Program {
	x := &Var{Name: "x", Type: TensorOf(FP16, 1, 64, 1, 32)}
	r := &Var{Name: "r", Type: TensorOf(FP16, 1, 64, 1, 32)}
	f := &Function{Name: "main", Opset: "ios18", Inputs: []*Var{x, r}}
	konst := func(name string, v *Value) *Var {
		out := &Var{Name: name, Type: v.Type, Const: v}
		op := &Operation{Type: "const", Name: name, Attrs: []Attr{{Name: "val", Value: v}}, Outputs: []*Var{out}}
		out.Op = op
		f.Ops = append(f.Ops, op)
		return out
	}
	arg := func(name string, v *Var) Arg { return Arg{Name: name, Bindings: []Binding{{Var: v}}} }
	pt := konst("pt", StringScalar("valid"))
	st := konst("st", Int32s(1, 1))
	pd := konst("pd", Int32s(0, 0, 0, 0))
	dl := konst("dl", Int32s(1, 1))
	gr := konst("gr", IntScalar(Int32, 1))
	w := konst("w", BlobValue(TensorOf(FP16, 128, 64, 1, 1), "@model_path/weights/weight.bin", 64))
	y := &Var{Name: "y", Type: TensorOf(FP16, 1, 128, 1, 32)}
	// Arguments given out of order: the printer sorts them.
	f.Ops = append(f.Ops, &Operation{Type: "conv", Name: "y", Outputs: []*Var{y}, Args: []Arg{
		arg("x", x), arg("weight", w), arg("strides", st), arg("pad_type", pt),
		arg("pad", pd), arg("groups", gr), arg("dilations", dl),
	}})
	konst("eps", FloatScalar(FP16, math.Ldexp(0x15, -21)))
	s := &Var{Name: "s", Type: TensorOf(FP16, 1, 64, 1, 32)}
	f.Ops = append(f.Ops, &Operation{Type: "add", Name: "s", Outputs: []*Var{s}, Args: []Arg{arg("x", x), arg("y", r)}})
	f.Outputs = []*Var{y, s}
	return &Program{
		Version:   "1.3",
		BuildInfo: []KV{{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}},
		Functions: []*Function{f},
	}
}

func TestPrintSpecExample(t *testing.T) {
	// The text of mil-spec §2.2, typed in by hand.
	want := `program(1.3)
[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}})]
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 32]> x, tensor<fp16, [1, 64, 1, 32]> r) {
            string pt = const()[name = string("pt"), val = string("valid")];
            tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])];
            tensor<int32, [4]> pd = const()[name = string("pd"), val = tensor<int32, [4]>([0, 0, 0, 0])];
            tensor<int32, [2]> dl = const()[name = string("dl"), val = tensor<int32, [2]>([1, 1])];
            int32 gr = const()[name = string("gr"), val = int32(1)];
            tensor<fp16, [128, 64, 1, 1]> w = const()[name = string("w"), val = tensor<fp16, [128, 64, 1, 1]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];
            tensor<fp16, [1, 128, 1, 32]> y = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = w, x = x)[name = string("y")];
            fp16 eps = const()[name = string("eps"), val = fp16(0x1.5p-17)];
            tensor<fp16, [1, 64, 1, 32]> s = add(x = x, y = r)[name = string("s")];
        } -> (y, s);
}
`
	if got := string(Print(specProgram())); got != want {
		t.Errorf("Print mismatch\n got:\n%s\nwant:\n%s", got, want)
	}
}

func TestPrintLegacyDialect(t *testing.T) {
	p := specProgram()
	p.Version = "1.0"
	p.Functions[0].Opset = "ios16"
	// mil-spec §2.2: the 1.0 dialect spells every scalar tensor<T, []>.
	want := `program(1.0)
[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}})]
{
    func main<ios16>(tensor<fp16, [1, 64, 1, 32]> x, tensor<fp16, [1, 64, 1, 32]> r) {
            tensor<string, []> pt = const()[name = tensor<string, []>("pt"), val = tensor<string, []>("valid")];
            tensor<int32, [2]> st = const()[name = tensor<string, []>("st"), val = tensor<int32, [2]>([1, 1])];
            tensor<int32, [4]> pd = const()[name = tensor<string, []>("pd"), val = tensor<int32, [4]>([0, 0, 0, 0])];
            tensor<int32, [2]> dl = const()[name = tensor<string, []>("dl"), val = tensor<int32, [2]>([1, 1])];
            tensor<int32, []> gr = const()[name = tensor<string, []>("gr"), val = tensor<int32, []>(1)];
            tensor<fp16, [128, 64, 1, 1]> w = const()[name = tensor<string, []>("w"), val = tensor<fp16, [128, 64, 1, 1]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(64)))];
            tensor<fp16, [1, 128, 1, 32]> y = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = w, x = x)[name = tensor<string, []>("y")];
            tensor<fp16, []> eps = const()[name = tensor<string, []>("eps"), val = tensor<fp16, []>(0x1.5p-17)];
            tensor<fp16, [1, 64, 1, 32]> s = add(x = x, y = r)[name = tensor<string, []>("s")];
        } -> (y, s);
}
`
	if got := string(Print(p)); got != want {
		t.Errorf("Print mismatch\n got:\n%s\nwant:\n%s", got, want)
	}
}

func TestPrintLiterals(t *testing.T) {
	cases := []struct {
		v    *Value
		want string
	}{
		{FloatTensor(FP32, Shape{2, 3}, []float64{1, 2, 3, 4, 5, 6}),
			"tensor<fp32, [2, 3]>([[0x1p+0, 0x1p+1, 0x1.8p+1], [0x1p+2, 0x1.4p+2, 0x1.8p+2]])"},
		{IntTensor(Int32, Shape{0}, nil), "tensor<int32, [0]>([])"},
		{Bools(true, false), "tensor<bool, [2]>([true, false])"},
		{BoolScalar(true), "bool(true)"},
		{IntScalar(Int8, -3), "int8(-3)"},
		{StringScalar("a\"b\\c\nd"), `string("a\"b\\c\nd")`},
		{IntTensor(Int32, Shape{2, 0}, nil), "tensor<int32, [2, 0]>([[], []])"},
	}
	for _, c := range cases {
		var pr printer
		pr.value(c.v)
		if got := pr.b.String(); got != c.want {
			t.Errorf("got %s, want %s", got, c.want)
		}
	}
}
