package mil

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// stmt returns the printed statement that defines name.
func stmt(t *testing.T, p *Program, name string) string {
	t.Helper()
	for _, line := range strings.Split(string(Print(p)), "\n") {
		if strings.Contains(line, " "+name+" = ") || strings.Contains(line, " "+name+", ") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no statement defines %s in\n%s", name, Print(p))
	return ""
}

func mustBuild(t *testing.T, b *Builder) (*Program, Weights) {
	t.Helper()
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p, w
}

func TestBuilderProgramShape(t *testing.T) {
	for _, c := range []struct {
		target  Target
		version string
		opset   string
		info    string
	}{
		{IOS18, "1.3", "ios18", `[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]`},
		{IOS16, "1.0", "ios16", `[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]`},
	} {
		b := NewBuilder(c.target)
		if b.Target() != c.target {
			t.Errorf("Target() = %v", b.Target())
		}
		x := b.Input("x", TensorOf(FP16, 1, 4, 1, 2))
		b.Output(b.Relu("y", x))
		p, w := mustBuild(t, b)
		if p.Version != c.version || p.Main() == nil || p.Main().Opset != c.opset {
			t.Errorf("%v: version %q opset %q", c.target, p.Version, p.Main().Opset)
		}
		if len(w) != 0 {
			t.Errorf("%v: weights %v for a program without blobs", c.target, w)
		}
		lines := strings.Split(string(Print(p)), "\n")
		if lines[0] != "program("+c.version+")" || lines[1] != c.info {
			t.Errorf("%v: header\n%s\n%s", c.target, lines[0], lines[1])
		}
	}
}

func TestBuilderParams(t *testing.T) {
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 1, 8, 1, 4))
	w := b.Input("w", TensorOf(FP16, 4, 8, 1, 1))
	y := b.Conv("q", x, w, ConvOpts{})
	s := b.ReduceSum("ss", y, []int{1}, true)
	m := b.MatMul("mm", y, y, false, true)
	b.Output(s, m)
	p, _ := mustBuild(t, b)

	// Every optional input of conv is written, as its own const named
	// <op>_<param>, alphabetically before the op; args sorted by name.
	var body []string
	for _, op := range p.Main().Ops {
		body = append(body, op.Outputs[0].Name)
	}
	want := "q_dilations q_groups q_pad q_pad_type q_strides q ss_axes ss_keep_dims ss mm_transpose_x mm_transpose_y mm"
	if got := strings.Join(body, " "); got != want {
		t.Errorf("statement order\n got %s\nwant %s", got, want)
	}
	if got, want := stmt(t, p, "q"), `tensor<fp16, [1, 4, 1, 4]> q = conv(dilations = q_dilations, groups = q_groups, pad = q_pad, pad_type = q_pad_type, strides = q_strides, weight = w, x = x)[name = string("q")];`; got != want {
		t.Errorf("conv\n got %s\nwant %s", got, want)
	}
	for name, want := range map[string]string{
		"q_dilations":    `tensor<int32, [2]> q_dilations = const()[name = string("q_dilations"), val = tensor<int32, [2]>([1, 1])];`,
		"q_groups":       `int32 q_groups = const()[name = string("q_groups"), val = int32(1)];`,
		"q_pad":          `tensor<int32, [4]> q_pad = const()[name = string("q_pad"), val = tensor<int32, [4]>([0, 0, 0, 0])];`,
		"q_pad_type":     `string q_pad_type = const()[name = string("q_pad_type"), val = string("valid")];`,
		"mm_transpose_y": `bool mm_transpose_y = const()[name = string("mm_transpose_y"), val = bool(true)];`,
		"mm":             `tensor<fp16, [1, 4, 1, 1]> mm = matmul(transpose_x = mm_transpose_x, transpose_y = mm_transpose_y, x = q, y = q)[name = string("mm")];`,
	} {
		if got := stmt(t, p, name); got != want {
			t.Errorf("%s\n got %s\nwant %s", name, got, want)
		}
	}
}

func TestBuilderOpsAgreeWithInference(t *testing.T) {
	// Each builder method against the type worked out by hand.
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 1, 16, 1, 8))
	half := b.ConstScalar("half", FP16, 0.5)
	mask := b.Input("mask", TensorOf(FP16, 1, 1, 8, 8))
	q := b.Input("qh", TensorOf(FP16, 1, 2, 8, 8))
	cond := b.Greater("gt", x, half)
	i8 := b.Quantize("qz", x, Int8, QuantParams{Scale: FloatScalar(FP16, 0.125)})
	checks := []struct {
		v    *Var
		want Type
	}{
		{b.Add("add", x, half), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Sub("sub", half, x), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Mul("mul", x, x), TensorOf(FP16, 1, 16, 1, 8)},
		{b.RealDiv("div", x, half), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Pow("pow", x, half), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Maximum("max", x, half), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Minimum("min", x, half), TensorOf(FP16, 1, 16, 1, 8)},
		{cond, TensorOf(Bool, 1, 16, 1, 8)},
		{b.Less("lt", x, half), TensorOf(Bool, 1, 16, 1, 8)},
		{b.Sqrt("sqrt", x), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Rsqrt("rsqrt", x, 1e-5), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Exp("exp", x), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Log("log", x, 1e-5), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Tanh("tanh", x), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Sigmoid("sig", x), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Silu("silu", x), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Relu("relu", x), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Clip("clip", x, -1, 1), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Cast("cast", x, FP32), TensorOf(FP32, 1, 16, 1, 8)},
		{b.Softmax("sm", x, 1), TensorOf(FP16, 1, 16, 1, 8)},
		{b.Select("sel", cond, x, half), TensorOf(FP16, 1, 16, 1, 8)},
		{b.ReduceMax("rmax", x, []int{3}, false), TensorOf(FP16, 1, 16, 1)},
		{b.ReduceMean("rmean", x, nil, false), TensorOf(FP16)},
		{b.Reshape("rs", x, 1, 2, 8, 8), TensorOf(FP16, 1, 2, 8, 8)},
		{b.Transpose("tr", x, 0, 3, 2, 1), TensorOf(FP16, 1, 8, 1, 16)},
		{b.SliceBySize("sbs", x, []int{0, 4, 0, 0}, []int{1, 8, 1, -1}), TensorOf(FP16, 1, 8, 1, 8)},
		{b.SliceByIndex("sbi", x, []int{0, 0, 0, 1}, []int{1, 16, 1, 8}, SliceOpts{Stride: []int{1, 2, 1, 2}}), TensorOf(FP16, 1, 8, 1, 4)},
		{b.SliceByIndex("sbq", x, []int{0, 3, 0, 0}, []int{0, 0, 0, 0}, SliceOpts{SqueezeMask: []bool{true, true, true, false}, EndMask: []bool{false, false, false, true}}), TensorOf(FP16, 8)},
		{b.Concat("cat", 1, false, x, x, x), TensorOf(FP16, 1, 48, 1, 8)},
		{b.Concat("cati", 3, true, x, x), TensorOf(FP16, 1, 16, 1, 16)},
		{b.ExpandDims("ed", x, 0), TensorOf(FP16, 1, 1, 16, 1, 8)},
		{b.Squeeze("sq", x), TensorOf(FP16, 16, 8)},
		{b.Squeeze("sq2", x, 2), TensorOf(FP16, 1, 16, 8)},
		{b.SDPA("att", q, q, q, mask), TensorOf(FP16, 1, 2, 8, 8)},
		{b.SDPA("att0", q, q, q, nil), TensorOf(FP16, 1, 2, 8, 8)},
		{i8, TensorOf(Int8, 1, 16, 1, 8)},
		{b.Dequantize("dq", i8, QuantParams{Scale: FloatTensor(FP32, Shape{16}, filledF(16, 0.5)), Axis: 1}), TensorOf(FP32, 1, 16, 1, 8)},
	}
	parts := b.Split("sp", x, 3, []int{2, 6})
	even := b.SplitN("sn", x, 1, 4)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.v.Type.Equal(c.want) {
			t.Errorf("%s: %v, want %v", c.v.Name, c.v.Type, c.want)
		}
	}
	if len(parts) != 2 || parts[0].Name != "sp_0" || !parts[1].Type.Equal(TensorOf(FP16, 1, 16, 1, 6)) {
		t.Errorf("split: %v %v", parts[0], parts[1])
	}
	if len(even) != 4 || even[3].Name != "sn_3" || !even[3].Type.Equal(TensorOf(FP16, 1, 4, 1, 8)) {
		t.Errorf("split n: %v", even)
	}
	b.Output(checks[0].v)
	p, _ := mustBuild(t, b)
	if got, want := stmt(t, p, "sp_0"), `tensor<fp16, [1, 16, 1, 2]> sp_0, tensor<fp16, [1, 16, 1, 6]> sp_1 = split(axis = sp_axis, split_sizes = sp_split_sizes, x = x)[name = string("sp")];`; got != want {
		t.Errorf("split\n got %s\nwant %s", got, want)
	}
	// Quantize writes its zero point even when the caller gives none.
	if got, want := stmt(t, p, "qz_zero_point"), `int8 qz_zero_point = const()[name = string("qz_zero_point"), val = int8(0)];`; got != want {
		t.Errorf("zero point\n got %s\nwant %s", got, want)
	}
	if got, want := stmt(t, p, "dq"), `tensor<fp32, [1, 16, 1, 8]> dq = dequantize(axis = dq_axis, input = qz, scale = dq_scale, zero_point = dq_zero_point)[name = string("dq")];`; got != want {
		t.Errorf("dequantize\n got %s\nwant %s", got, want)
	}
	// All slice_by_index inputs are explicit.
	if got, want := stmt(t, p, "sbi"), `tensor<fp16, [1, 8, 1, 4]> sbi = slice_by_index(begin = sbi_begin, begin_mask = sbi_begin_mask, end = sbi_end, end_mask = sbi_end_mask, squeeze_mask = sbi_squeeze_mask, stride = sbi_stride, x = x)[name = string("sbi")];`; got != want {
		t.Errorf("slice_by_index\n got %s\nwant %s", got, want)
	}
	if got, want := stmt(t, p, "rmean_axes"), `tensor<int32, [4]> rmean_axes = const()[name = string("rmean_axes"), val = tensor<int32, [4]>([0, 1, 2, 3])];`; got != want {
		t.Errorf("all axes\n got %s\nwant %s", got, want)
	}
	if got, want := stmt(t, p, "rsqrt_epsilon"), `fp16 rsqrt_epsilon = const()[name = string("rsqrt_epsilon"), val = fp16(0x1.5p-17)];`; got != want {
		t.Errorf("epsilon\n got %s\nwant %s", got, want)
	}
}

func TestBuilderConvOpts(t *testing.T) {
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 1, 4, 9, 9))
	w := b.ConstFP16("w", Shape{8, 2, 3, 3}, make([]float32, 144))
	bias := b.ConstFP16("bias", Shape{8}, make([]float32, 8))
	y := b.Conv("y", x, w, ConvOpts{Bias: bias, Strides: []int{2, 1}, PadType: PadCustom, Pad: []int{1, 1, 0, 2}, Groups: 2})
	b.Output(y)
	p, _ := mustBuild(t, b)
	// (9+2-3)/2+1 = 5, (9+2-3)/1+1 = 9.
	if !y.Type.Equal(TensorOf(FP16, 1, 8, 5, 9)) {
		t.Errorf("conv type %v", y.Type)
	}
	if got, want := stmt(t, p, "y"), `tensor<fp16, [1, 8, 5, 9]> y = conv(bias = bias, dilations = y_dilations, groups = y_groups, pad = y_pad, pad_type = y_pad_type, strides = y_strides, weight = w, x = x)[name = string("y")];`; got != want {
		t.Errorf("conv\n got %s\nwant %s", got, want)
	}
	if got := stmt(t, p, "bias"); !strings.Contains(got, "tensor<fp16, [8]>([0x0p+0, 0x0p+0") {
		t.Errorf("a small bias should be inline: %s", got)
	}
}

func TestBuilderErrors(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *Builder, x *Var)
		want  string
	}{
		{"reserved name", func(b *Builder, x *Var) { b.Relu("fp16", x) }, `invalid name "fp16"`},
		{"bad name", func(b *Builder, x *Var) { b.Relu("1y", x) }, `invalid name "1y"`},
		{"duplicate name", func(b *Builder, x *Var) { b.Relu("x", x) }, `name "x" is already used`},
		{"param name clash", func(b *Builder, x *Var) { b.Relu("s_axis", x); b.Softmax("s", x, 1) }, `name "s_axis" is already used`},
		{"nil input", func(b *Builder, x *Var) { b.Add("y", x, nil) }, `add "y": input y is nil`},
		{"foreign var", func(b *Builder, x *Var) { b.Add("y", x, NewBuilder(IOS18).Input("z", x.Type)) }, "not a variable of this builder"},
		{"shape error", func(b *Builder, x *Var) { b.Reshape("r", x, 3, 3) }, `reshape "r": reshape of x [1, 8, 1, 4] to [3 3]: x has 32 elements, the target shape 9`},
		{"sdpa on ios16", func(b *Builder, x *Var) { b.SDPA("a", x, x, x, nil) }, `scaled_dot_product_attention "a": scaled_dot_product_attention is not available in opset ios16`},
		{"conv channels", func(b *Builder, x *Var) {
			b.Conv("q", x, b.Input("w", TensorOf(FP16, 4, 32, 1, 1)), ConvOpts{})
		}, `conv "q": weight has 32 input channels, x has 8 (groups 1)`},
		{"nan const", func(b *Builder, x *Var) { b.ConstScalar("c", FP16, math.NaN()) }, "-65504"},
		{"inf const", func(b *Builder, x *Var) { b.Const("c", FloatTensor(FP32, Shape{2}, []float64{0, math.Inf(-1)})) }, "ConstBlob"},
		{"overflowing fp16", func(b *Builder, x *Var) { b.ConstScalar("c", FP16, 1e6) }, "write non-finite values to a blob"},
		{"overflowing ConstFP16", func(b *Builder, x *Var) { b.ConstFP16("c", Shape{2}, []float32{1, 70000}) }, "not finite in fp16"},
		{"ConstFP16 count", func(b *Builder, x *Var) { b.ConstFP16("c", Shape{2, 2}, []float32{1}) }, "needs 4 values, got 1"},
		{"blob size", func(b *Builder, x *Var) { b.ConstBlob("c", TensorOf(FP16, 4), make([]byte, 6)) }, "needs 8 bytes, got 6"},
		{"blob dtype", func(b *Builder, x *Var) { b.ConstBlob("c", TensorOf(Bool, 4), make([]byte, 4)) }, "cannot be stored in a weight blob"},
		{"blob in Const", func(b *Builder, x *Var) { b.Const("c", BlobValue(TensorOf(FP16, 1), WeightPath, 64)) }, "must come from ConstBlob"},
		{"invalid literal", func(b *Builder, x *Var) { b.Const("c", &Value{Type: TensorOf(Int32, 2), Ints: []int64{1}}) }, "has 1 elements, want 2"},
		{"int ConstScalar", func(b *Builder, x *Var) { b.ConstScalar("c", Int32, 1) }, "needs a float dtype"},
		{"dynamic input", func(b *Builder, x *Var) { b.Input("d", TensorOf(FP16, 1, UnknownDim)) }, "unknown dimensions"},
		{"output twice", func(b *Builder, x *Var) { b.Output(x, x) }, "listed twice"},
		{"nil output", func(b *Builder, x *Var) { b.Output(nil) }, "output is nil"},
		{"no outputs", func(b *Builder, x *Var) {}, "no outputs"},
		{"concat nothing", func(b *Builder, x *Var) { b.Concat("c", 1, false) }, "no values"},
		{"quantize nil scale", func(b *Builder, x *Var) { b.Quantize("q", x, Int8, QuantParams{}) }, "nil scale"},
		{"quantize needs ios17", func(b *Builder, x *Var) { b.Quantize("q", x, Int8, QuantParams{Scale: FloatScalar(FP16, 1)}) }, "first appears in ios17"},
		{"foreign blob", func(b *Builder, x *Var) {
			b.ConstexprAffineDequantize("w", BlobValue(TensorOf(Int8, 4), WeightPath, 64), QuantParams{Scale: FloatScalar(FP16, 1)})
		}, "not made by this builder's Blob"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := NewBuilder(IOS16)
			x := b.Input("x", TensorOf(FP16, 1, 8, 1, 4))
			c.build(b, x)
			if c.name != "no outputs" && b.Err() == nil {
				b.Output(x)
			}
			_, _, err := b.Build()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if b.Err() != err {
				t.Errorf("Err() = %v, Build returned %v", b.Err(), err)
			}
		})
	}
}

func TestBuilderStickyError(t *testing.T) {
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 1, 8, 1, 4))
	y := b.Reshape("y", x, 5) // first error
	n := len(b.fn.Ops)
	z := b.Add("z", y, x)           // ignored
	parts := b.SplitN("s", z, 1, 2) // ignored, but indexable
	w := b.Relu("w", parts[1])
	b.Output(w)
	err := b.Err()
	if err == nil || !strings.Contains(err.Error(), `reshape "y"`) {
		t.Fatalf("Err = %v, want the reshape error", err)
	}
	if len(parts) != 2 || y.Name != "invalid" || w != y {
		t.Errorf("placeholders: %v %v %v", y, parts, w)
	}
	if _, _, e := b.Build(); e != err {
		t.Errorf("Build error %v, want the first error", e)
	}
	if len(b.fn.Ops) != n {
		t.Errorf("%d statements were written after the error", len(b.fn.Ops)-n)
	}

	b = NewBuilder(IOS18)
	x = b.Input("x", TensorOf(FP16, 2))
	b.Output(x)
	mustBuild(t, b)
	b.Relu("late", x)
	if b.Err() == nil || !strings.Contains(b.Err().Error(), "after Build") {
		t.Errorf("use after Build: %v", b.Err())
	}
	if NewBuilder(Target(12)).Err() == nil {
		t.Error("unknown target accepted")
	}
}

func TestBuilderBlobs(t *testing.T) {
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 1, 10, 1, 1))
	nine := b.ConstFP16("nine", Shape{1, 9, 1, 1}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9})
	ten := b.ConstFP16("ten", Shape{1, 10, 1, 1}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, -65504})
	raw := make([]byte, 4*3)
	binary.LittleEndian.PutUint32(raw[8:], math.Float32bits(float32(math.Inf(-1))))
	inf := b.ConstBlob("neg_inf", TensorOf(FP32, 3), raw) // non-finite values are fine in a blob
	b.Output(b.Mul("y", x, ten))
	p, w := mustBuild(t, b)
	if nine.Op.Attr("val").Blob != nil {
		t.Error("9 elements went to the blob")
	}
	if ten.Op.Attr("val").Blob == nil || ten.Op.Attr("val").Blob.Offset != 64 {
		t.Errorf("10 elements: %+v", ten.Op.Attr("val"))
	}
	// The second blob follows the first's 20 data bytes at the next
	// multiple of 64: align64(128+20) = 192.
	if ref := inf.Op.Attr("val").Blob; ref == nil || ref.Offset != 192 || ref.Path != WeightPath {
		t.Errorf("second blob: %+v", ref)
	}
	file := w[WeightPath]
	if len(w) != 1 || len(file) != 192+64+12 {
		t.Fatalf("weights: %d files, %d bytes", len(w), len(file))
	}
	f, err := ReadBlobFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data, err := f.Data(64, ten.Type)
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := DecodeFloat32s(FP16, data)
	if vals[9] != -65504 || vals[0] != 1 {
		t.Errorf("blob data %v", vals)
	}
	if got, err := w.Resolve(inf.Op.Attr("val")); err != nil || !bytes.Equal(got, raw) {
		t.Errorf("resolve: %v %v", got, err)
	}
	if !strings.Contains(stmt(t, p, "ten"), `BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64))`) {
		t.Errorf("blob statement: %s", stmt(t, p, "ten"))
	}
	// Floats are rounded to the dtype as the text will hold them.
	c := b2().ConstFP16("c", Shape{1}, []float32{0.1})
	if got := c.Op.Attr("val").Floats[0]; got != RoundFloat(0.1, FP16) {
		t.Errorf("inline value %v not rounded to fp16", got)
	}
}

func b2() *Builder { return NewBuilder(IOS18) }

func TestBuilderConstexpr(t *testing.T) {
	data := make([]byte, 32*16)
	for i := range data {
		data[i] = byte(i)
	}
	for _, c := range []struct {
		target Target
		want   string
	}{
		{IOS16, `tensor<fp16, [32, 16, 1, 1]> wq = constexpr_affine_dequantize()[axis = tensor<int32, []>(0), name = tensor<string, []>("wq"), quantized_data = tensor<int8, [32, 16, 1, 1]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(64))), scale = tensor<fp16, []>(0x1p-3), zero_point = tensor<int8, []>(0)];`},
		{IOS18, `tensor<fp16, [32, 16, 1, 1]> wq = constexpr_affine_dequantize(axis = int32(0), quantized_data = tensor<int8, [32, 16, 1, 1]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64))), scale = fp16(0x1p-3), zero_point = int8(0))[name = string("wq")];`},
	} {
		t.Run(c.target.String(), func(t *testing.T) {
			b := NewBuilder(c.target)
			x := b.Input("x", TensorOf(FP16, 1, 16, 1, 8))
			q := b.Blob(TensorOf(Int8, 32, 16, 1, 1), data)
			w := b.ConstexprAffineDequantize("wq", q, QuantParams{Scale: FloatScalar(FP16, 0.125)})
			b.Output(b.Conv("y", x, w, ConvOpts{}))
			p, wts := mustBuild(t, b)
			if got := stmt(t, p, "wq"); got != c.want {
				t.Errorf("%v\n got %s\nwant %s", c.target, got, c.want)
			}
			if len(wts[WeightPath]) != 128+512 {
				t.Errorf("%v: blob file of %d bytes", c.target, len(wts[WeightPath]))
			}
			// The printed text parses back to a program that checks.
			back, err := Parse("k.mil", Print(p))
			if err != nil {
				t.Fatal(err)
			}
			if err := back.Check(); err != nil {
				t.Errorf("%v: %v", c.target, err)
			}
		})
	}
}

func TestBuilderBuildChecksAgain(t *testing.T) {
	// Build's safety net catches a program tampered with behind the
	// builder's back.
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 2))
	y := b.Relu("y", x)
	b.Output(y)
	y.Type = TensorOf(FP16, 3)
	if _, _, err := b.Build(); err == nil || !strings.Contains(err.Error(), "a bug in mil.Builder") {
		t.Errorf("Build = %v", err)
	}
}

// twoBlobProgram is a program with two fp16 constants, both in the
// Builder's one weight file.
func twoBlobProgram(t *testing.T) (*Program, Weights) {
	t.Helper()
	b := NewBuilder(IOS18)
	x := b.Input("x", TensorOf(FP16, 1, 16, 1, 32))
	g := b.ConstFP16("g", Shape{1, 16, 1, 1}, make([]float32, 16))
	h := b.ConstFP16("h", Shape{1, 16, 1, 1}, make([]float32, 16))
	b.Output(b.Mul("y", b.Mul("xg", x, g), h))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p, w
}

func TestBlobPaths(t *testing.T) {
	p, _ := twoBlobProgram(t)
	got := p.Main().BlobPaths()
	if len(got) != 1 || got[0] != WeightPath {
		t.Errorf("BlobPaths = %q, want just %q (two blobs in one file)", got, WeightPath)
	}
	p.Main().Ops = append(p.Main().Ops, &Operation{Type: "const", Attrs: []Attr{{Name: "val",
		Value: BlobValue(TensorOf(FP16, 16), "@model_path/weights/other.bin", 64)}}})
	if got := p.Main().BlobPaths(); len(got) != 2 || got[1] != "@model_path/weights/other.bin" {
		t.Errorf("BlobPaths = %q, want a second file", got)
	}
}

// TestBlobFileSizes: the size a program needs of each weight file is the end
// of its furthest blob, which for a Builder's file is the whole file.
func TestBlobFileSizes(t *testing.T) {
	p, w := twoBlobProgram(t)
	got := p.BlobFileSizes()
	if len(got) != 1 || got[WeightPath] != uint64(len(w[WeightPath])) {
		t.Errorf("BlobFileSizes = %v, want %s: %d (the whole file)", got, WeightPath, len(w[WeightPath]))
	}
	const other = "@model_path/weights/other.bin"
	p.Main().Ops = append(p.Main().Ops,
		&Operation{Type: "const", Attrs: []Attr{{Name: "val", Value: BlobValue(TensorOf(FP32, 10), other, 1000)}}},
		&Operation{Type: "const", Attrs: []Attr{{Name: "val", Value: BlobValue(TensorOf(FP16, 4), other, 64)}}},
		&Operation{Type: "const", Attrs: []Attr{{Name: "val", Value: BlobValue(TensorOf(FP16, 4), "huge.bin", math.MaxUint64-10)}}})
	got = p.BlobFileSizes()
	if got[other] != 1000+64+40 || got["huge.bin"] != math.MaxUint64 {
		t.Errorf("BlobFileSizes = %v, want %s: 1104 and huge.bin saturated at MaxUint64", got, other)
	}
}
