package mil

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// mustParse parses src and checks the program's internal links.
func mustParse(t *testing.T, src string) *Program {
	t.Helper()
	p, err := Parse("test.mil", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	if err := checkLinks(p); err != nil {
		t.Fatalf("links: %v", err)
	}
	return p
}

// checkLinks verifies what the printed text cannot show: every binding points
// at the very Var its definition created, each output's Op is its producer,
// const outputs carry their value, and arguments and attributes are sorted.
func checkLinks(p *Program) error {
	for _, f := range p.Functions {
		defined := map[*Var]bool{}
		for _, v := range f.Inputs {
			if v.Op != nil || v.Const != nil {
				return errors.New("input " + v.Name + " has an op or a const")
			}
			defined[v] = true
		}
		for _, op := range f.Ops {
			if !slices.IsSortedFunc(op.Args, func(a, b Arg) int { return strings.Compare(a.Name, b.Name) }) {
				return errors.New(op.Where() + ": args not sorted")
			}
			if !slices.IsSortedFunc(op.Attrs, func(a, b Attr) int { return strings.Compare(a.Name, b.Name) }) {
				return errors.New(op.Where() + ": attrs not sorted")
			}
			for _, a := range op.Attrs {
				if a.Name == "name" {
					return errors.New(op.Where() + ": name kept as attr")
				}
				if err := a.Value.Check(); err != nil {
					return err
				}
			}
			for _, a := range op.Args {
				if len(a.Bindings) == 0 || (!a.Tuple && len(a.Bindings) != 1) {
					return errors.New(op.Where() + ": bad binding count for " + a.Name)
				}
				for _, b := range a.Bindings {
					if (b.Var == nil) == (b.Value == nil) {
						return errors.New(op.Where() + ": binding must be a var or a value")
					}
					if b.Var != nil && !defined[b.Var] {
						return errors.New(op.Where() + ": binding to a var not defined before: " + b.Var.Name)
					}
					if b.Value != nil {
						if err := b.Value.Check(); err != nil {
							return err
						}
					}
				}
			}
			for _, v := range op.Outputs {
				if v.Op != op {
					return errors.New(op.Where() + ": output's Op is not the op")
				}
				if op.Type == "const" && len(op.Outputs) == 1 && v.Const != op.Attr("val") {
					return errors.New(op.Where() + ": const output without its value")
				}
				if op.Type != "const" && v.Const != nil {
					return errors.New(op.Where() + ": non-const output with a value")
				}
				defined[v] = true
			}
		}
		for _, v := range f.Outputs {
			if !defined[v] {
				return errors.New("function output " + v.Name + " is not a defined var")
			}
		}
	}
	return nil
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "parse", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertReprint checks that src is already in canonical form.
func assertReprint(t *testing.T, p *Program, src string) {
	t.Helper()
	if got := string(Print(p)); got != src {
		t.Errorf("Print(Parse(src)) differs from src\n got:\n%s\nwant:\n%s", got, src)
	}
}

// assertRoundTrip checks that the printed program parses back to the same text.
func assertRoundTrip(t *testing.T, p *Program) {
	t.Helper()
	out := Print(p)
	q, err := Parse("printed.mil", out)
	if err != nil {
		t.Fatalf("printed program does not parse: %v\n%s", err, out)
	}
	if again := Print(q); !bytes.Equal(again, out) {
		t.Errorf("reprint differs\nfirst:\n%s\nsecond:\n%s", out, again)
	}
}

func TestParseSpecExample(t *testing.T) {
	src := readTestdata(t, "spec_ios18.mil")
	p := mustParse(t, src)
	assertReprint(t, p, src)
	// Independent reference: the program built by hand in print_test.go.
	if want := string(Print(specProgram())); src != want {
		t.Fatalf("fixture and specProgram disagree")
	}
	f := p.Main()
	if f == nil || f.Opset != "ios18" || len(f.Inputs) != 2 || len(f.Ops) != 9 {
		t.Fatalf("unexpected function %+v", f)
	}
	if f.Pos != (Pos{4, 5}) {
		t.Errorf("function pos %v, want 4:5", f.Pos)
	}
	x := f.Inputs[0]
	if x.Name != "x" || !x.Type.Equal(TensorOf(FP16, 1, 64, 1, 32)) {
		t.Errorf("input x = %+v", x)
	}
	conv := f.Ops[6]
	if conv.Type != "conv" || conv.Name != "y" || conv.Pos != (Pos{11, 13}) {
		t.Errorf("conv op %s at %v", conv.Where(), conv.Pos)
	}
	if conv.Input("x") != x || conv.Input("weight") != f.Ops[5].Outputs[0] {
		t.Error("conv bindings do not point at the defining vars")
	}
	w := f.Ops[5].Outputs[0]
	if w.Const == nil || w.Const.Blob == nil || *w.Const.Blob != (BlobRef{"@model_path/weights/weight.bin", 64}) {
		t.Errorf("weight const = %+v", w.Const)
	}
	pt := f.Ops[0].Outputs[0]
	if s, _ := pt.Const.AsString(); s != "valid" || !pt.Type.Equal(ScalarOf(String)) {
		t.Errorf("pt = %+v", pt)
	}
	eps := f.Ops[7].Outputs[0].Const
	if x, _ := eps.AsFloat(); x != 0x1.5p-17 {
		t.Errorf("eps = %v", x)
	}
	if len(f.Outputs) != 2 || f.Outputs[0] != conv.Outputs[0] || f.Outputs[1] != f.Ops[8].Outputs[0] {
		t.Error("function outputs do not point at the op outputs")
	}
	if !slices.Equal(p.BuildInfo, []KV{{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}}) {
		t.Errorf("buildInfo %v", p.BuildInfo)
	}
}

func TestParseLegacyDialect(t *testing.T) {
	p := specProgram()
	p.Version = "1.0"
	p.Functions[0].Opset = "ios16"
	src := string(Print(p))
	q := mustParse(t, src)
	if !q.Legacy() {
		t.Error("1.0 program not legacy")
	}
	assertReprint(t, q, src)
	gr := q.Main().Ops[4].Outputs[0]
	if !gr.Type.Equal(ScalarOf(Int32)) || gr.Const.Ints[0] != 1 {
		t.Errorf("tensor<int32, []> scalar parsed as %v %v", gr.Type, gr.Const)
	}
}

func TestParseCompilerAdd(t *testing.T) {
	src := readTestdata(t, "add_ios16.mil")
	p := mustParse(t, src)
	assertReprint(t, p, src)
	if p.Version != "1.0" || len(p.BuildInfo) != 4 || p.BuildInfo[2] != (KV{"coremltools-source-dialect", "TorchScript"}) {
		t.Errorf("header %q %v", p.Version, p.BuildInfo)
	}
	op := p.Main().Ops[0]
	// The var name and the op name differ in compiler output.
	if op.Type != "add" || op.Name != "op_4_cast_fp16" || op.Outputs[0].Name != "var_4" || op.Pos != (Pos{5, 13}) {
		t.Errorf("op %s out %s at %v", op.Where(), op.Outputs[0].Name, op.Pos)
	}
}

func TestParseCompilerConv(t *testing.T) {
	src := readTestdata(t, "conv_ios17.mil")
	p := mustParse(t, src)
	assertReprint(t, p, src)
	f := p.Main()
	byName := map[string]*Var{}
	for _, op := range f.Ops {
		byName[op.Outputs[0].Name] = op.Outputs[0]
	}
	bias := byName["conv_bias_to_fp16"].Const
	if want := []float64{0x1p-24, -10000, 0, 65504}; !slices.Equal(bias.Floats, want) {
		t.Errorf("bias %v, want %v", bias.Floats, want)
	}
	if x, _ := byName["var_9_epsilon_0"].Const.AsFloat(); x != math.Ldexp(1, -149) {
		t.Errorf("fp32 epsilon %v", x)
	}
	table := byName["table"].Const
	want := []float64{float64(float32(1e-8)), float64(float32(1e-12)), 1, -0.5, 3, 0}
	if !table.Type.Equal(TensorOf(FP32, 2, 3)) || !slices.Equal(table.Floats, want) {
		t.Errorf("table %v %v", table.Type, table.Floats)
	}
	conv := byName["var_7_cast_fp16"].Op
	var names []string
	for _, a := range conv.Args {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "bias,dilations,groups,pad,pad_type,strides,weight,x" {
		t.Errorf("conv args %v", names)
	}
	w := byName["conv_weight_to_fp16"].Const
	if w.Blob == nil || w.Blob.Offset != 64 || !w.Type.Equal(TensorOf(FP16, 4, 8, 1, 1)) {
		t.Errorf("weight %+v", w)
	}
	if b, ok := byName["keep"].Const.AsBool(); !ok || !b {
		t.Error("bool const")
	}
}

func TestParseHandwritten(t *testing.T) {
	src := readTestdata(t, "handwritten_ios18.mil")
	p := mustParse(t, src)
	assertRoundTrip(t, p)
	f := p.Main()
	ops := map[string]*Operation{}
	for _, op := range f.Ops {
		ops[op.Name] = op
	}
	// No name attribute: the first output's name stands in.
	if op := ops["scs"]; op == nil || op.Type != "mul" {
		t.Errorf("unnamed mul: %v", op)
	}
	if op := ops["g0"]; op == nil || op.Type != "split" || len(op.Outputs) != 2 || op.Outputs[1].Name != "g1" {
		t.Errorf("unparenthesised split: %v", op)
	}
	sp := ops["sp"]
	if sp == nil || len(sp.Outputs) != 2 || sp.Outputs[0].Name != "h0" || sp.Pos != (Pos{19, 5}) {
		t.Fatalf("parenthesised split: %+v", sp)
	}
	if n, _ := sp.Arg("num_splits").Bindings[0].Value.AsFloat(); n != 2 {
		t.Errorf("inline num_splits %v", n)
	}
	mm := ops["mm"]
	tx, _ := mm.Arg("transpose_x").Bindings[0].Value.AsBool()
	ty, _ := mm.Arg("transpose_y").Bindings[0].Value.AsBool()
	if tx || !ty || mm.Input("x") == nil {
		t.Errorf("matmul flags %v %v", tx, ty)
	}
	one := ops["one"].Arg("values")
	if !one.Tuple || len(one.Bindings) != 1 || one.Bindings[0].Var != ops["sm"].Outputs[0] {
		t.Errorf("one-element tuple %+v", one)
	}
	two := ops["two"].Arg("values")
	if !two.Tuple || len(two.Bindings) != 2 || two.Bindings[1].Var != ops["one"].Outputs[0] {
		t.Errorf("two-element tuple %+v", two)
	}
	// Decimal floats are rounded to fp16 once.
	for name, want := range map[string]float64{"sc": 0.125, "ep": roundFP16(0.00001), "neg": -10000, "big": roundFP16(1e-5)} {
		if x, _ := ops[name].Outputs[0].Const.AsFloat(); x != want {
			t.Errorf("%s = %v, want %v", name, x, want)
		}
	}
	qw := ops["qw"]
	if len(qw.Args) != 0 || len(qw.Attrs) != 4 || qw.Attrs[1].Name != "quantized_data" || qw.Attrs[1].Value.Blob.Path != "@model_path/weights/q.bin" {
		t.Errorf("constexpr attributes %+v", qw.Attrs)
	}
	if qw.Outputs[0].Const != nil {
		t.Error("constexpr output must not be a const")
	}
	if len(f.Outputs) != 2 || f.Outputs[1].Name != "h1" {
		t.Errorf("outputs %v", f.Outputs)
	}
}

// Every fixture is a valid program, so the checker (type inference against
// the declared outputs) must accept what the parser builds.
func TestParseFixturesCheck(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "parse", "*.mil"))
	if err != nil || len(files) < 4 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	for _, name := range files {
		p := mustParse(t, readTestdata(t, filepath.Base(name)))
		if err := p.Check(); err != nil {
			t.Errorf("%s: Check: %v", name, err)
		}
		assertRoundTrip(t, p)
	}
}

// The same program in many layouts must parse to the same thing.
func TestParseWhitespace(t *testing.T) {
	canonical := readTestdata(t, "spec_ios18.mil")
	variants := map[string]string{
		"crlf": strings.ReplaceAll(canonical, "\n", "\r\n"),
		"tabs": strings.ReplaceAll(canonical, "    ", "\t"),
		"compact": strings.NewReplacer(", ", ",", " = ", "=", "\n            ", "\n",
			"    func", "func").Replace(canonical),
		"blank lines": strings.ReplaceAll(canonical, ";\n", ";\n\n\n"),
		"one line":    strings.ReplaceAll(canonical, "\n", " "),
		"spread": strings.NewReplacer("->", " -> ", "(", " ( ", ")", " ) ", "[", " [ ", "]", " ] ",
			"<", " < ", ">", " > ", ",", " , ", "=", " = ").Replace(canonical),
		"bom": "\xEF\xBB\xBF" + canonical,
	}
	for name, src := range variants {
		t.Run(name, func(t *testing.T) {
			p := mustParse(t, src)
			assertReprint(t, p, canonical)
		})
	}
	// Positions count lines across CRLF and columns in bytes.
	p := mustParse(t, variants["crlf"])
	if pos := p.Main().Ops[6].Pos; pos != (Pos{11, 13}) {
		t.Errorf("CRLF position %v, want 11:13", pos)
	}
	p = mustParse(t, variants["tabs"])
	if pos := p.Main().Ops[0].Pos; pos != (Pos{5, 4}) {
		t.Errorf("tab position %v, want 5:4", pos)
	}
}

// wrap puts statements into a one-function ios18 program: line 4 is the
// first statement.
func wrap(body, ret string) string {
	return "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4]> x) {\n" + body + "\n        } -> (" + ret + ");\n}\n"
}

func TestParseMixedDialects(t *testing.T) {
	src := `program(1.3)
[buildInfo = dict<tensor<string, []>, string>({{"k", "v"}})]
{
    func main<ios17>(tensor<fp16, []> a, fp16 b) {
            tensor<fp16, []> c = add(x = a, y = fp16(1))[name = tensor<string, []>("c")];
            fp16 d = add(x = c, y = tensor<fp16, []>(0x1p+1))[name = string("d")];
        } -> (d);
}
`
	p := mustParse(t, src)
	f := p.Main()
	for _, v := range []*Var{f.Inputs[0], f.Inputs[1], f.Ops[0].Outputs[0], f.Ops[1].Outputs[0]} {
		if !v.Type.Equal(ScalarOf(FP16)) {
			t.Errorf("%s has type %v", v.Name, v.Type)
		}
	}
	if x, _ := f.Ops[1].Arg("y").Bindings[0].Value.AsFloat(); x != 2 {
		t.Errorf("inline tensor<fp16, []> literal = %v", x)
	}
	if f.Ops[0].Name != "c" || f.Opset != "ios17" {
		t.Error("names")
	}
	assertRoundTrip(t, p)
	// Printed in the program's own (1.3) dialect.
	if !strings.Contains(string(Print(p)), "fp16 d = add(x = c, y = fp16(0x1p+1))[name = string(\"d\")];") {
		t.Errorf("print:\n%s", Print(p))
	}
}

func TestParseConstexpr(t *testing.T) {
	// opset ≤ iOS17: every parameter in the attribute bracket, in any order.
	attrForm := `program(1.0)
{
    func main<ios17>(tensor<fp16, [1, 4, 1, 1]> x) {
            tensor<fp16, [2, 4, 1, 1]> w = constexpr_affine_dequantize()[zero_point = tensor<int8, []>(0), scale = tensor<fp16, []>(0x1p-3), quantized_data = tensor<int8, [2, 4, 1, 1]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(128))), name = tensor<string, []>("w"), axis = tensor<int32, []>(0)];
        } -> (w);
}
`
	p := mustParse(t, attrForm)
	op := p.Main().Ops[0]
	var names []string
	for _, a := range op.Attrs {
		names = append(names, a.Name)
	}
	if op.Name != "w" || len(op.Args) != 0 || strings.Join(names, ",") != "axis,quantized_data,scale,zero_point" {
		t.Errorf("attrs %v, args %v", names, op.Args)
	}
	if b := op.Attr("quantized_data").Blob; b == nil || b.Offset != 128 {
		t.Errorf("blob %+v", b)
	}
	assertRoundTrip(t, p)

	// iOS18: parameters are inputs, inline or bound to another constexpr.
	inputForm := wrap(`            tensor<int8, [2, 2]> q = constexpr_cast()[name = string("q0"), val = tensor<int8, [2, 2]>([[1, 2], [3, 4]])];
            tensor<fp16, [2, 2]> w = constexpr_blockwise_shift_scale(data = q, scale = tensor<fp16, [2, 1]>([[0x1p-3], [0x1p-2]]))[name = string("w")];`, "x")
	p = mustParse(t, inputForm)
	op = p.Main().Ops[1]
	if op.Input("data") != p.Main().Ops[0].Outputs[0] || op.Arg("scale").Bindings[0].Value.Floats[1] != 0.25 {
		t.Errorf("inputs %+v", op.Args)
	}
	assertRoundTrip(t, p)
}

func TestParseBlobfile(t *testing.T) {
	want := BlobRef{"@model_path/weights/w.bin", 192}
	for _, blob := range []string{
		`BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(192))`,
		`BLOBFILE(path = tensor<string, []>("@model_path/weights/w.bin"), offset = tensor<uint64, []>(192))`,
		`BLOBFILE(offset=uint64(192),path=tensor<string, []>("@model_path/weights/w.bin"))`,
	} {
		src := wrap(`            tensor<fp16, [4, 4]> w = const()[name = string("w"), val = tensor<fp16, [4, 4]>(`+blob+`)];`, "w")
		p := mustParse(t, src)
		v := p.Main().Ops[0].Outputs[0].Const
		if v.Blob == nil || *v.Blob != want || !v.Type.Equal(TensorOf(FP16, 4, 4)) || v.Floats != nil {
			t.Errorf("%s: %+v", blob, v)
		}
		assertRoundTrip(t, p)
	}
}

func TestParseNestedLiterals(t *testing.T) {
	cases := []struct {
		lit  string
		typ  Type
		want []int64
	}{
		{"tensor<int32, [2, 3]>([[1, 2, 3], [4, 5, 6]])", TensorOf(Int32, 2, 3), []int64{1, 2, 3, 4, 5, 6}},
		{"tensor<int32, [2, 1, 2]>([[[1,2]],[[3,4]]])", TensorOf(Int32, 2, 1, 2), []int64{1, 2, 3, 4}},
		{"tensor<int32, [0]>([])", TensorOf(Int32, 0), []int64{}},
		{"tensor<int32, [2, 0]>([[], []])", TensorOf(Int32, 2, 0), []int64{}},
		{"tensor<int32, [0, 3]>([])", TensorOf(Int32, 0, 3), []int64{}},
		{"tensor<int32, [1]>([-7])", TensorOf(Int32, 1), []int64{-7}},
	}
	for _, c := range cases {
		p := mustParse(t, wrap("            "+c.typ.String()+" v = const()[name = string(\"v\"), val = "+c.lit+"];", "x"))
		v := p.Main().Ops[0].Outputs[0].Const
		if !v.Type.Equal(c.typ) || !slices.Equal(v.Ints, c.want) || v.Ints == nil {
			t.Errorf("%s: %v %v", c.lit, v.Type, v.Ints)
		}
		assertRoundTrip(t, p)
	}
	s := mustParse(t, wrap(`            tensor<string, [2]> v = const()[val = tensor<string, [2]>(["a", "b"])];`, "x"))
	if v := s.Main().Ops[0].Outputs[0].Const; !slices.Equal(v.Strings, []string{"a", "b"}) {
		t.Errorf("strings %v", v.Strings)
	}
	b := mustParse(t, wrap(`            tensor<bool, [1, 2]> v = const()[val = tensor<bool, [1, 2]>([[true, false]])];`, "x"))
	if v := b.Main().Ops[0].Outputs[0].Const; !slices.Equal(v.Bools, []bool{true, false}) {
		t.Errorf("bools %v", v.Bools)
	}
}

func TestParseStringEscapes(t *testing.T) {
	p := mustParse(t, wrap(`            string s = const()[name = string("a\"b\\c\nd"), val = string("tab	and \\n `+"\u00e9\r\x01"+`")];`, "x"))
	op := p.Main().Ops[0]
	if op.Name != "a\"b\\c\nd" {
		t.Errorf("name %q", op.Name)
	}
	if s, _ := op.Outputs[0].Const.AsString(); s != "tab\tand \\n \u00e9\r\x01" {
		t.Errorf("val %q", s)
	}
	assertRoundTrip(t, p)
}

func TestParseFloatLiterals(t *testing.T) {
	cases := []struct {
		d    DType
		lit  string
		want float64
	}{
		{FP16, "0x1p-24", math.Ldexp(1, -24)},
		{FP16, "0X1P-24", math.Ldexp(1, -24)},
		{FP16, "-0x1.388p+13", -10000},
		{FP16, "0x1.388P13", 10000},
		{FP16, "0x0p+0", 0},
		{FP16, "0x.8p1", 1},
		{FP16, "0xAbp-2", 42.75},
		{FP16, "-0x0p+0", math.Copysign(0, -1)},
		{FP16, "0.00001", roundFP16(0.00001)},
		{FP16, "-10000.0", -10000},
		{FP16, "1e-5", roundFP16(1e-5)},
		{FP16, "1E+2", 100},
		{FP16, "1.", 1},
		{FP16, "-1", -1},
		{FP16, "0.1", roundFP16(0.1)},
		{FP16, "65519", 65504},
		{FP16, "65520", math.Inf(1)}, // overflow rounds to inf as an IEEE conversion does
		{FP16, "inf", math.Inf(1)},
		{FP16, "-inf", math.Inf(-1)},
		{FP16, "1e400", math.Inf(1)},
		{FP16, "1e-400", 0},
		{FP32, "0.1", float64(float32(0.1))},
		{FP32, "0x1.5798eep-27", float64(float32(1e-8))},
		{FP32, "1e39", math.Inf(1)},
		{FP64, "0.1", 0.1},
		{BF16, "0.1", roundBF16(0.1)},
		// Double rounding through float64 would give 1+2^-23; a single
		// rounding of the decimal to fp32 gives 1.
		{FP32, "1.00000005960464477539062500000000000000000000000000001", 1 + 0x1p-23},
		{FP32, "1.0000000596046447753906249", 1},
	}
	for _, c := range cases {
		src := wrap("            "+c.d.String()+" v = const()[name = string(\"v\"), val = "+c.d.String()+"("+c.lit+")];", "x")
		p := mustParse(t, src)
		got, _ := p.Main().Ops[0].Outputs[0].Const.AsFloat()
		if got != c.want || math.Signbit(got) != math.Signbit(c.want) {
			t.Errorf("%v(%s) = %v, want %v", c.d, c.lit, got, c.want)
		}
		assertRoundTrip(t, p)
	}
	p := mustParse(t, wrap(`            fp16 v = const()[name = string("v"), val = fp16(nan)];`, "x"))
	if got, _ := p.Main().Ops[0].Outputs[0].Const.AsFloat(); !math.IsNaN(got) {
		t.Errorf("nan parsed as %v", got)
	}
	assertRoundTrip(t, p)
}

// Every float the printer writes reads back as the same bits, for random bit
// patterns in every float dtype; decimal spellings read back rounded once.
func TestParseFloatRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range []DType{FP16, BF16, FP32, FP64} {
		for range 2000 {
			x := math.Float64frombits(rng.Uint64())
			if rng.IntN(2) == 0 { // also values in the dtype's normal range
				x = math.Ldexp(rng.Float64()-0.5, rng.IntN(40)-20)
			}
			want := RoundFloat(x, d)
			lits := []string{FormatFloat(x, d)}
			if !math.IsInf(want, 0) && !math.IsNaN(want) {
				lits = append(lits, strconv.FormatFloat(want, 'g', -1, 64))
			}
			for _, lit := range lits {
				p, err := Parse("f.mil", []byte(wrap("            "+d.String()+" v = const()[val = "+d.String()+"("+lit+")];", "x")))
				if err != nil {
					t.Fatalf("%v(%s): %v", d, lit, err)
				}
				got := p.Main().Ops[0].Outputs[0].Const.Floats[0]
				if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
					t.Fatalf("%v(%s) = %v, want %v", d, lit, got, want)
				}
			}
		}
	}
}

func TestParseIntLiterals(t *testing.T) {
	for _, c := range []struct {
		d   DType
		lit string
		ok  bool
	}{
		{Int8, "-128", true}, {Int8, "127", true}, {Int8, "128", false}, {Int8, "-129", false},
		{UInt8, "255", true}, {UInt8, "256", false}, {UInt8, "-1", false}, {UInt8, "-0", true},
		{Int16, "-32768", true}, {Int16, "32768", false},
		{Int32, "2147483647", true}, {Int32, "2147483648", false},
		{UInt32, "4294967295", true}, {UInt32, "4294967296", false},
		{Int64, "-9223372036854775808", true}, {Int64, "9223372036854775808", false},
		{UInt64, "9223372036854775807", true}, {UInt64, "18446744073709551615", false},
		{Int32, "007", true}, {Int32, "1.0", false}, {Int32, "1e3", false}, {Int32, "0x1p0", false},
	} {
		src := wrap("            "+c.d.String()+" v = const()[name = string(\"v\"), val = "+c.d.String()+"("+c.lit+")];", "x")
		_, err := Parse("t.mil", []byte(src))
		if (err == nil) != c.ok {
			t.Errorf("%v(%s): err = %v, want ok=%v", c.d, c.lit, err, c.ok)
		}
	}
}

func TestParseShapes(t *testing.T) {
	src := `program(1.3)
{
    func main<ios17>(tensor<int32, [1, ?]> ids, tensor<fp16, [?, ?, 0]> e) [FlexibleShapeInformation = tuple<tuple<string, dict<string, tensor<int32, [?]>>>, tuple<string, dict<string, list<tensor<int32, [2]>, ?>>>>((("DefaultShapes", {{"ids", [1, 1]}}), ("RangeDims", {{"ids", [[1, 1], [1, 512]]}})))] {
            tensor<int32, [1, ?]> y = identity(x = ids)[name = string("y")];
        } -> (y);
}
`
	p := mustParse(t, src)
	f := p.Main()
	if !f.Inputs[0].Type.Equal(TensorOf(Int32, 1, UnknownDim)) || !f.Inputs[1].Type.Equal(TensorOf(FP16, UnknownDim, UnknownDim, 0)) {
		t.Errorf("inputs %v %v", f.Inputs[0].Type, f.Inputs[1].Type)
	}
	assertRoundTrip(t, p)
}

func TestParseBuildInfo(t *testing.T) {
	body := "{\n    func main<ios18>() {\n        } -> ();\n}\n"
	for _, c := range []struct {
		attr string
		want []KV
	}{
		{"", nil},
		{"[buildInfo = dict<string, string>({})]\n", []KV{}},
		{`[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"a", ""}, {"b\"", "c"}})]` + "\n", []KV{{"a", ""}, {"b\"", "c"}}},
		{`[buildInfo=dict<string,string>({{"a","b"}})]`, []KV{{"a", "b"}}},
	} {
		p := mustParse(t, "program(1.3)\n"+c.attr+body)
		if (p.BuildInfo == nil) != (c.want == nil) || !slices.Equal(p.BuildInfo, c.want) {
			t.Errorf("%s: buildInfo %#v, want %#v", c.attr, p.BuildInfo, c.want)
		}
		if f := p.Main(); len(f.Inputs) != 0 || len(f.Ops) != 0 || len(f.Outputs) != 0 {
			t.Error("empty function")
		}
		assertRoundTrip(t, p)
	}
}

func TestParseMultipleFunctions(t *testing.T) {
	src := `program(1.3)
{
    func main<ios18>(tensor<fp16, [2]> x) {
            tensor<fp16, [2]> y = relu(x = x)[name = string("y")];
        } -> (y);
    func other<ios18>(tensor<fp16, [2]> x) {
            tensor<fp16, [2]> y = sigmoid(x = x)[name = string("y")];
        } -> (y);
}
`
	p := mustParse(t, src)
	if len(p.Functions) != 2 || p.Functions[1].Name != "other" || p.Functions[1].Pos != (Pos{6, 5}) {
		t.Fatalf("functions %+v", p.Functions)
	}
	// Each function has its own scope: x and y are distinct per function.
	if p.Functions[0].Inputs[0] == p.Functions[1].Inputs[0] || p.Functions[1].Ops[0].Input("x") != p.Functions[1].Inputs[0] {
		t.Error("scopes leak between functions")
	}
	assertReprint(t, p, src)
}

func TestParseInlineLiteralArgs(t *testing.T) {
	p := mustParse(t, wrap(`            tensor<fp16, [1, 4]> y = clip(alpha = fp16(-1), beta = tensor<fp16, [1, 1]>([[0x1p+0]]), x = x);
            tensor<fp16, [1, 4]> z = foo(flag = false, xs = (x, fp16(2), y, true));`, "z"))
	f := p.Main()
	y := f.Ops[0]
	if y.Name != "y" || y.Arg("alpha").Bindings[0].Value.Floats[0] != -1 || y.Input("x") != f.Inputs[0] {
		t.Errorf("clip %+v", y.Args)
	}
	xs := f.Ops[1].Arg("xs")
	if len(xs.Bindings) != 4 || xs.Bindings[0].Var != f.Inputs[0] || xs.Bindings[2].Var != y.Outputs[0] {
		t.Errorf("mixed tuple %+v", xs)
	}
	if b, ok := xs.Bindings[3].Value.AsBool(); !ok || !b {
		t.Error("bare true in tuple")
	}
	if b, ok := f.Ops[1].Arg("flag").Bindings[0].Value.AsBool(); !ok || b {
		t.Error("bare false")
	}
	assertRoundTrip(t, p)
}

// Variables may carry the names of dtypes anetop does not support, and of the
// literal words inf and nan; the parser must not mistake them for literals.
func TestParseNamesThatLookLikeLiterals(t *testing.T) {
	p := mustParse(t, wrap(`            tensor<fp16, [1, 4]> int4 = relu(x = x);
            tensor<fp16, [1, 4]> inf = relu(x = int4);
            tensor<fp16, [1, 4]> n@1 = add(x = inf, y = (int4));
            tensor<fp16, [1, 4]> nan = add(x = n@1, y = inf);`, "nan"))
	f := p.Main()
	if f.Ops[1].Input("x") != f.Ops[0].Outputs[0] || f.Ops[2].Input("x") != f.Ops[1].Outputs[0] ||
		f.Ops[2].Arg("y").Bindings[0].Var != f.Ops[0].Outputs[0] || f.Ops[3].Input("x") != f.Ops[2].Outputs[0] {
		t.Error("names resolved wrongly")
	}
	assertRoundTrip(t, p)
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		src  string
		want string
	}{
		{"", `f.mil:1:1: expected "program" at the start of the file, found end of file`},
		{"program(1.3", `f.mil:1:12: expected ")" after program version, found end of file`},
		{"program(-1)\n{\n}\n", `f.mil:1:9: expected program version such as 1.3, found "-1"`},
		{"program(9.9)\n{\n}\n", `f.mil:1:9: unsupported program version 9.9: the Neural Engine takes program(1.0) (opsets ios15 to ios17) or program(1.3) (ios18)`},
		{"program(1)\n{\n}\n", `f.mil:1:9: unsupported program version 1: the Neural Engine takes program(1.0) (opsets ios15 to ios17) or program(1.3) (ios18)`},
		{"program(1.30)\n{\n}\n", `f.mil:1:9: unsupported program version 1.30: the Neural Engine takes program(1.0) (opsets ios15 to ios17) or program(1.3) (ios18)`},
		{"program(2.0)\n{\n}\n", `f.mil:1:9: unsupported program version 2.0: the Neural Engine takes program(1.0) (opsets ios15 to ios17) or program(1.3) (ios18)`},
		{"program(1.3)\n{\n}\n}", `f.mil:4:1: expected end of file after the program's closing "}", found "}"`},
		{"program(1.3)\n[foo = dict<string, string>({})]\n{\n}\n", `f.mil:2:2: unknown program attribute "foo" (only buildInfo is supported)`},
		{"program(1.3)\n[buildInfo = dict<string, fp16>({})]\n{\n}\n", `f.mil:2:27: buildInfo keys and values must be strings, found fp16`},
		{"program(1.3)\n[buildInfo = dict<string, string>({{\"a\", \"b\"}}, {\"c\", \"d\"}})]\n{\n}\n", `f.mil:2:47: expected ")" after dict value, found ","`},
		{"program(1.3)\n[buildInfo = dict<string, string>({{{\"a\", \"b\"}}})]\n{\n}\n", `f.mil:2:37: expected string as dict key, found "{"`},
		{wrap(`            tensor<fp16, [1, 4]> y = add(x = x, y = x;`, "y"), `f.mil:4:54: expected "," or ")" after argument, found ";"`},
		{wrap(`            tensor<fp16, [1, 4]> y = add(x = x, y = r)[name = string("y")];`, "y"), `f.mil:4:53: undefined variable "r"`},
		{wrap(`            tensor<fp16, [1, 4]> x = relu(x = x);`, "x"), `f.mil:4:34: variable "x" redefined (first defined at 3:43)`},
		{wrap(`            tensor<fp16, [1, 4]> y = relu(x = y);`, "y"), `f.mil:4:47: undefined variable "y"`},
		{wrap(`            tensor<fp16, [1, 4]> y = add(x = x, x = x);`, "y"), `f.mil:4:49: duplicate argument "x"`},
		{wrap(`            tensor<fp16, [1, 4]> y = relu(x = x)[name = string("a"), name = string("b")];`, "y"), `f.mil:4:70: duplicate attribute "name"`},
		{wrap(`            tensor<fp17, [1, 4]> y = relu(x = x);`, "y"), `f.mil:4:20: unknown type "fp17"`},
		{wrap(`            tensor<int4, [1, 4]> y = relu(x = x);`, "y"), `f.mil:4:20: dtype int4 is not supported by anetop`},
		{wrap(`            tensor<fp16, [1, 4]> fp16 = relu(x = x);`, "fp16"), `f.mil:4:34: "fp16" is a reserved word and cannot name a variable`},
		{wrap(`            tensor<fp16, [2, 2]> c = const()[name = string("c"), val = tensor<fp16, [2, 2]>([1, 2, 3, 4])];`, "x"),
			`f.mil:4:94: expected "[": a literal of tensor<fp16, [2, 2]> must be nested to rank 2, found "1"`},
		{wrap(`            tensor<fp16, [3]> c = const()[name = string("c"), val = tensor<fp16, [3]>([1, 2])];`, "x"),
			`f.mil:4:92: too few elements in dimension 0 of tensor<fp16, [3]> literal: got 2, want 3`},
		{wrap(`            tensor<fp16, [1, 1]> c = const()[name = string("c"), val = tensor<fp16, [1, 1]>([[1, 2]])];`, "x"),
			`f.mil:4:98: too many elements in dimension 1 of tensor<fp16, [1, 1]> literal: want 1`},
		{wrap(`            tensor<int32, [2]> c = const()[val = tensor<int32, [2]>([1,])];`, "x"), `f.mil:4:72: expected literal element after ",", found "]"`},
		{wrap(`            tensor<int32, [2]> c = const()[val = tensor<int32, [2]>([])];`, "x"),
			`f.mil:4:70: too few elements in dimension 0 of tensor<int32, [2]> literal: got 0, want 2`},
		{wrap(`            int8 c = const()[name = string("c"), val = int8(200)];`, "x"), `f.mil:4:61: int8 literal 200 is out of range [-128, 127]`},
		{wrap(`            int32 c = const()[name = string("c"), val = int32(1.5)];`, "x"), `f.mil:4:63: int32 literal must be an integer, found "1.5"`},
		{wrap(`            bool c = const()[name = string("c"), val = bool(1)];`, "x"), `f.mil:4:61: expected true or false, found "1"`},
		{wrap(`            fp16 c = const()[name = string("c"), val = fp16("1")];`, "x"), `f.mil:4:61: expected fp16 literal, found string "1"`},
		{wrap(`            tensor<fp16, [1, 4]> y = relu(x = x)`, "y"), `f.mil:5:9: expected ";" after statement, found "}"`},
		{wrap(`            tensor<fp16, [1, 4]> y = relu(x = x);`, "z"), `f.mil:5:15: function returns undefined variable "z"`},
		{wrap(`            string c = const()[name = string("a\q")];`, "x"), `f.mil:4:48: unknown escape sequence "\q" in string (only \", \\ and \n)`},
		{wrap(`            string c = const()[name = string("abc`, "x"), `f.mil:4:46: unterminated string literal`},
		{wrap(`            fp16 c = const()[name = string("c"), val = fp16(0x1.8)];`, "x"), `f.mil:4:61: malformed number "0x1.8": a hex float needs a p exponent`},
		{wrap(`            fp16 c = const()[val = fp16(1)]; // one`, "x"), `f.mil:4:46: comments are not part of MIL text`},
		{wrap(`            tensor<fp16, [4, 4]> w = const()[val = tensor<fp16, [4, 4]>(BLOBFILE(path = string("w.bin")))];`, "x"),
			`f.mil:4:104: expected "," between BLOBFILE path and offset, found ")"`},
		{wrap(`            tensor<fp16, [4, 4]> w = const()[val = tensor<fp16, [4, 4]>(BLOBFILE(path = string("w.bin"), offset = int32(64)))];`, "x"),
			`f.mil:4:115: BLOBFILE offset must be a uint64, found int32`},
		{wrap(`            tensor<bool, [4]> w = const()[val = tensor<bool, [4]>(BLOBFILE(path = string("w.bin"), offset = uint64(64)))];`, "x"),
			`f.mil:4:49: dtype bool cannot be stored in a weight blob`},
		{wrap(`            tensor<fp16, [4]> w = const()[val = tensor<fp16, [4]>(BLOBFILE(path = string(BLOBFILE(path = string("w.bin"), offset = uint64(64))), offset = uint64(64)))];`, "x"),
			`f.mil:4:90: BLOBFILE is not allowed here`},
		{wrap(`            tensor<fp16, [1, ?]> c = const()[val = tensor<fp16, [1, ?]>([[1]])];`, "x"),
			`f.mil:4:52: literal of type tensor<fp16, [1, ?]> has an unknown dimension`},
		{wrap(`            tensor<fp16, [1048576, 1048576, 2]> y = relu(x = x);`, "y"),
			`f.mil:4:13: shape [1048576, 1048576, 2] has more than 2^40 elements`},
		{wrap(`            tensor<fp16, [1, -4]> y = relu(x = x);`, "y"), `f.mil:4:30: expected dimension (a non-negative integer or "?"), found "-4"`},
		{wrap(`            tensor<fp16, [1, 4]> y = relu(x = x)[name = int32(1)];`, "y"), `f.mil:4:57: name attribute must be a string, found int32`},
		{wrap(`            tensor<fp16, [1, 4]> y = relu(x = x)[val = x];`, "y"), `f.mil:4:56: expected typed value for attribute "val", found "x"`},
		{wrap(`            tensor<fp16, [1, 4]> y = concat(values = (), axis = int32(0));`, "y"), `f.mil:4:55: expected variable or value for argument "values", found ")"`},
		{wrap(`            tensor<fp16, [1, 4]> y = relu(x = program);`, "y"), `f.mil:4:47: expected variable or value for argument "x", found "program"`},
		{wrap(`            tensor<fp16, [1, 4]> y = relu(x = x) {`, "y"), `f.mil:4:50: expected ";" after statement, found "{"`},
		{wrap(`            tensor<fp16, [1, 4]> int4 = relu(x = x);
            tensor<fp16, [1, 4]> y = add(x = int4, y = int4(3));`, "y"), `f.mil:5:56: dtype int4 is not supported by anetop`},
		{wrap(`            tuple<fp16> y = relu(x = x);`, "y"), `f.mil:4:13: type tuple<...> is not supported here`},
		{"program(1.3)\n{\n    func main<ios18>() {\n        } -> ();\n    func main<ios18>() {\n        } -> ();\n}\n", `f.mil:5:10: function "main" redefined`},
		{"program(1.3)\n{\n    func main<ios18>() [a = (] {\n        } -> ();\n}\n", `f.mil:3:30: expected ")" in function attributes, found "]"`},
	}
	for _, c := range cases {
		_, err := Parse("f.mil", []byte(c.src))
		if err == nil {
			t.Errorf("no error for\n%s\nwant %s", c.src, c.want)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("error %v is not a *ParseError", err)
		}
		if err.Error() != c.want {
			t.Errorf("error\n got %s\nwant %s\nsrc:\n%s", err, c.want, c.src)
		}
	}
}

func TestParseErrorFormat(t *testing.T) {
	_, err := Parse("", []byte("programme"))
	if err == nil || err.Error() != `1:1: expected "program" at the start of the file, found "programme"` {
		t.Errorf("err = %v", err)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 1 || pe.Col != 1 || pe.File != "" {
		t.Errorf("fields %+v", pe)
	}
}

// A large program (a few thousand ops and a big inline tensor, about 1 MB)
// must parse; BenchmarkParse measures how fast.
func TestParseLarge(t *testing.T) {
	src := largeProgram(3000, 100000)
	if len(src) < 1<<20 {
		t.Fatalf("program is only %d bytes", len(src))
	}
	p := mustParse(t, string(src))
	if n := len(p.Main().Ops); n != 3002 {
		t.Errorf("%d ops", n)
	}
	assertRoundTrip(t, p)
}

// Statements with many arguments must not be quadratic in the duplicate check.
func TestParseManyArgs(t *testing.T) {
	var b strings.Builder
	b.WriteString("            tensor<fp16, [1, 4]> y = many(")
	for i := range 50000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("a")
		b.WriteString(strings.Repeat("b", i%7))
		b.WriteString(strconv.Itoa(i))
		b.WriteString(" = x")
	}
	b.WriteString(");")
	p := mustParse(t, wrap(b.String(), "y"))
	if len(p.Main().Ops[0].Args) != 50000 {
		t.Error("args lost")
	}
}

func largeProgram(ops, elems int) []byte {
	var b bytes.Buffer
	b.WriteString("program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 64, 1, 32]> x) {\n")
	b.WriteString("            tensor<fp16, [" + strconv.Itoa(elems) + "]> big = const()[name = string(\"big\"), val = tensor<fp16, [" + strconv.Itoa(elems) + "]>([")
	for i := range elems {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(FormatFloat(float64(i%2048)/1024, FP16))
	}
	b.WriteString("])];\n")
	b.WriteString("            fp16 h = const()[name = string(\"h\"), val = fp16(0x1p-1)];\n")
	prev := "x"
	for i := range ops {
		name := "v" + strconv.Itoa(i)
		b.WriteString("            tensor<fp16, [1, 64, 1, 32]> " + name + " = mul(x = " + prev + ", y = h)[name = string(\"" + name + "\")];\n")
		prev = name
	}
	b.WriteString("        } -> (" + prev + ");\n}\n")
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	src := largeProgram(3000, 100000)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Parse("big.mil", src); err != nil {
			b.Fatal(err)
		}
	}
}
