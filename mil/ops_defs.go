package mil

import (
	"fmt"
	"slices"
)

// Dtype domains of the ops (mil-spec §4; "T" and "U" in the reference).
var (
	floatTypes   = []DType{FP16, FP32}
	numericTypes = []DType{FP16, FP32, Int32}
	// tensorTypes15 is the domain of the shape ops before iOS17.
	tensorTypes15 = []DType{FP16, FP32, Int32, Bool}
	// tensorTypes17 adds the narrow integers iOS17 allows in shape ops.
	tensorTypes17 = []DType{FP16, FP32, Int8, UInt8, Int16, UInt16, Int32, Bool}
	indexTypes17  = []DType{Int8, Int16, Int32}
	quantTypes    = []DType{Int8, UInt8}
	maskTypes     = []DType{Bool, FP16, FP32}
)

// tensorTypes is the dtype domain of cast and of reshape, transpose, slices,
// expand_dims and squeeze, which iOS17 widened.
func tensorTypes(t Target) []DType {
	if t >= IOS17 {
		return tensorTypes17
	}
	return tensorTypes15
}

// indexTypes is the dtype domain of reshape's shape and the slices' begin,
// end and size.
func indexTypes(t Target) []DType {
	if t >= IOS17 {
		return indexTypes17
	}
	return []DType{Int32}
}

var opRegistry = map[string]*OpSpec{}

func register(s *OpSpec) {
	if _, dup := opRegistry[s.Type]; dup {
		panic("mil: op registered twice: " + s.Type) // programming error at init
	}
	opRegistry[s.Type] = s
}

// Input spec constructors keep the table below readable.
func req(name string) InputSpec      { return InputSpec{Name: name, Required: true} }
func reqConst(name string) InputSpec { return InputSpec{Name: name, Required: true, Const: true} }
func optConst(name string, def func(*Operation, Target) *Value) InputSpec {
	return InputSpec{Name: name, Const: true, Default: def}
}

// rankOf returns the rank of the type bound to input name of op.
func rankOf(op *Operation, name string) (int, bool) {
	t, ok := typeOf(op, name)
	r := t.Shape.Rank()
	return r, ok && r <= MaxRank
}

// typeOf returns the type bound to input name of op.
func typeOf(op *Operation, name string) (Type, bool) {
	a := op.Arg(name)
	if a == nil || len(a.Bindings) == 0 {
		return Type{}, false
	}
	return a.Bindings[0].Type(), true
}

func constDefault(v *Value) func(*Operation, Target) *Value {
	return func(*Operation, Target) *Value { return v }
}

func filled(n, x int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = x
	}
	return s
}

// everyAxis returns 0, 1, …, rank−1.
func everyAxis(rank int) []int {
	s := make([]int, rank)
	for i := range s {
		s[i] = i
	}
	return s
}

// spatialInts is a conv default: per entries per spatial axis of x, all x.
func spatialInts(per, x int) func(*Operation, Target) *Value {
	return func(op *Operation, _ Target) *Value {
		r, ok := rankOf(op, "x")
		if !ok || r < 3 {
			return nil
		}
		return Int32s(filled(per*(r-2), x)...)
	}
}

// epsDefault is the epsilon of rsqrt and log: the reference value in x's
// dtype, which every opset accepts (in fp16 both defaults round to 0).
func epsDefault(x float64) func(*Operation, Target) *Value {
	return func(op *Operation, _ Target) *Value {
		xt, ok := typeOf(op, "x")
		if !ok || !xt.DType.IsFloat() {
			return nil
		}
		return FloatScalar(xt.DType, x)
	}
}

func allAxes(op *Operation, _ Target) *Value {
	r, ok := rankOf(op, "x")
	if !ok {
		return nil
	}
	return Int32s(everyAxis(r)...)
}

func unitAxes(op *Operation, _ Target) *Value {
	xt, ok := typeOf(op, "x")
	if !ok || xt.Shape.Rank() > MaxRank {
		return nil
	}
	ax := []int{}
	for i, d := range xt.Shape {
		if d == 1 {
			ax = append(ax, i)
		}
	}
	return Int32s(ax...)
}

func ranked(x int) func(*Operation, Target) *Value {
	return func(op *Operation, _ Target) *Value {
		r, ok := rankOf(op, "x")
		if !ok {
			return nil
		}
		return Int32s(filled(r, x)...)
	}
}

func rankedBools(op *Operation, _ Target) *Value {
	r, ok := rankOf(op, "x")
	if !ok {
		return nil
	}
	return Bools(make([]bool, r)...)
}

// zeroPointDefault is quantize's and dequantize's zero point: zeros of the
// quantized dtype, shaped like the scale. Only an immediate scale qualifies,
// so the zeros never outgrow a literal already in memory.
func zeroPointDefault(quantized func(*Operation) DType) func(*Operation, Target) *Value {
	return func(op *Operation, _ Target) *Value {
		d := quantized(op)
		a := op.Arg("scale")
		if a == nil || len(a.Bindings) != 1 || (d != Int8 && d != UInt8) {
			return nil
		}
		sv := a.Bindings[0].ConstValue()
		if sv == nil || sv.Blob != nil || sv.Type.Shape.Rank() > 1 || sv.Len() != sv.Type.Shape.NumElements() {
			return nil
		}
		return IntTensor(d, sv.Type.Shape, make([]int64, sv.Len()))
	}
}

// maxDefaultElems bounds the zeros OpDefault materialises for conv's bias; a
// conv with more output channels is absurd and gets no default.
const maxDefaultElems = 1 << 24

func init() {
	register(&OpSpec{Type: "const", Since: IOS15, infer: inferConst})

	for _, name := range []string{"add", "sub", "mul", "real_div", "pow", "maximum", "minimum"} {
		register(&OpSpec{Type: name, Since: IOS15, Inputs: []InputSpec{req("x"), req("y")}, infer: inferBinary(InvalidDType)})
	}
	for _, name := range []string{"greater", "less"} {
		register(&OpSpec{Type: name, Since: IOS15, Inputs: []InputSpec{req("x"), req("y")}, infer: inferBinary(Bool)})
	}
	for _, name := range []string{"sqrt", "exp", "tanh", "sigmoid", "silu", "relu"} {
		register(&OpSpec{Type: name, Since: IOS15, Inputs: []InputSpec{req("x")}, infer: inferUnary})
	}
	register(&OpSpec{Type: "rsqrt", Since: IOS15, Inputs: []InputSpec{req("x"), optConst("epsilon", epsDefault(1e-12))}, infer: inferEpsUnary})
	register(&OpSpec{Type: "log", Since: IOS15, Inputs: []InputSpec{req("x"), optConst("epsilon", epsDefault(1e-45))}, infer: inferEpsUnary})
	register(&OpSpec{Type: "clip", Since: IOS15, Inputs: []InputSpec{req("x"), reqConst("alpha"), reqConst("beta")}, infer: inferClip})
	register(&OpSpec{Type: "cast", Since: IOS15, Inputs: []InputSpec{req("x"), reqConst("dtype")}, infer: inferCast})
	register(&OpSpec{Type: "softmax", Since: IOS15, Inputs: []InputSpec{req("x"), optConst("axis", constDefault(IntScalar(Int32, -1)))}, infer: inferSoftmax})
	register(&OpSpec{Type: "select", Since: IOS15, Inputs: []InputSpec{req("cond"), req("a"), req("b")}, infer: inferSelect})

	register(&OpSpec{Type: "matmul", Since: IOS15, Inputs: []InputSpec{
		req("x"), req("y"),
		optConst("transpose_x", constDefault(BoolScalar(false))),
		optConst("transpose_y", constDefault(BoolScalar(false))),
	}, infer: inferMatmul})

	register(&OpSpec{Type: "conv", Since: IOS15, Inputs: []InputSpec{
		req("x"),
		// The weight may be a runtime value (anetop's dynamic weights); infer
		// refuses that only with dilations > 1, as the reference does.
		req("weight"),
		// bias is const up to iOS16 and may be a runtime value from iOS17;
		// infer enforces the opset-dependent rule.
		{Name: "bias", Default: func(op *Operation, _ Target) *Value {
			xt, ok1 := typeOf(op, "x")
			wt, ok2 := typeOf(op, "weight")
			if !ok1 || !ok2 || wt.Shape.Rank() < 1 || wt.Shape[0] < 0 || wt.Shape[0] > maxDefaultElems || !xt.DType.IsFloat() {
				return nil
			}
			return FloatTensor(xt.DType, Shape{wt.Shape[0]}, make([]float64, wt.Shape[0]))
		}},
		optConst("strides", spatialInts(1, 1)),
		optConst("pad_type", constDefault(StringScalar("valid"))),
		optConst("pad", spatialInts(2, 0)),
		optConst("dilations", spatialInts(1, 1)),
		optConst("groups", constDefault(IntScalar(Int32, 1))),
	}, infer: inferConv})

	for _, name := range []string{"reduce_sum", "reduce_max", "reduce_mean"} {
		register(&OpSpec{Type: name, Since: IOS15, Inputs: []InputSpec{
			req("x"),
			optConst("axes", allAxes),
			optConst("keep_dims", constDefault(BoolScalar(false))),
		}, infer: inferReduce})
	}

	register(&OpSpec{Type: "reshape", Since: IOS15, Inputs: []InputSpec{req("x"), reqConst("shape")}, infer: inferReshape})
	register(&OpSpec{Type: "transpose", Since: IOS15, Inputs: []InputSpec{req("x"), reqConst("perm")}, infer: inferTranspose})
	register(&OpSpec{Type: "slice_by_size", Since: IOS15, Inputs: []InputSpec{req("x"), reqConst("begin"), reqConst("size")}, infer: inferSliceBySize})
	register(&OpSpec{Type: "slice_by_index", Since: IOS15, Inputs: []InputSpec{
		req("x"), reqConst("begin"), reqConst("end"),
		optConst("stride", ranked(1)),
		optConst("begin_mask", rankedBools),
		optConst("end_mask", rankedBools),
		optConst("squeeze_mask", rankedBools),
	}, infer: inferSliceByIndex})
	register(&OpSpec{Type: "concat", Since: IOS15, Inputs: []InputSpec{
		{Name: "values", Required: true, Tuple: true},
		reqConst("axis"),
		optConst("interleave", constDefault(BoolScalar(false))),
	}, infer: inferConcat})
	register(&OpSpec{Type: "split", Since: IOS15, Inputs: []InputSpec{
		req("x"), reqConst("axis"),
		optConst("num_splits", nil), optConst("split_sizes", nil),
	}, infer: inferSplit})
	register(&OpSpec{Type: "expand_dims", Since: IOS15, Inputs: []InputSpec{req("x"), reqConst("axes")}, infer: inferExpandDims})
	register(&OpSpec{Type: "squeeze", Since: IOS15, Inputs: []InputSpec{req("x"), optConst("axes", unitAxes)}, infer: inferSqueeze})

	register(&OpSpec{Type: "scaled_dot_product_attention", Since: IOS18, Inputs: []InputSpec{
		req("query"), req("key"), req("value"), {Name: "attn_mask"},
	}, infer: inferSDPA})

	register(&OpSpec{Type: "quantize", Since: IOS17, Inputs: []InputSpec{
		req("input"),
		optConst("zero_point", zeroPointDefault(func(op *Operation) DType {
			if a := op.Arg("output_dtype"); a != nil && len(a.Bindings) == 1 {
				if s, ok := a.Bindings[0].ConstValue().AsString(); ok {
					d, _ := ParseDType(s)
					return d
				}
			}
			return InvalidDType
		})),
		reqConst("scale"),
		optConst("axis", nil),
		reqConst("output_dtype"),
	}, infer: inferQuantize})
	register(&OpSpec{Type: "dequantize", Since: IOS17, Inputs: []InputSpec{
		req("input"),
		optConst("zero_point", zeroPointDefault(func(op *Operation) DType {
			t, _ := typeOf(op, "input")
			return t.DType
		})),
		reqConst("scale"),
		optConst("axis", nil),
	}, infer: inferDequantize})
	register(&OpSpec{Type: "constexpr_affine_dequantize", Since: IOS16, ParamsAsAttrs: true, Inputs: []InputSpec{
		reqConst("quantized_data"), reqConst("zero_point"), reqConst("scale"), reqConst("axis"),
	}, infer: inferAffineDequantize})
}

func inferConst(c *inferCtx) ([]Type, error) {
	v := c.op.Attr("val")
	if v == nil {
		return nil, c.errf("val", "const has no val attribute")
	}
	return one(Type{DType: v.Type.DType, Shape: v.Type.Shape.Clone()})
}

// inferBinary is the elementwise binary ops: same dtype, broadcast shapes.
// out overrides the output dtype (bool for comparisons).
func inferBinary(out DType) func(c *inferCtx) ([]Type, error) {
	return func(c *inferCtx) ([]Type, error) {
		rd := c.reader()
		x, y := rd.input("x", numericTypes...), rd.input("y", numericTypes...)
		if rd.err != nil {
			return nil, rd.err
		}
		if x.DType != y.DType {
			return nil, c.errf("y", "x is %v but y is %v; both must have the same dtype", x.DType, y.DType)
		}
		s, ok := Broadcast(x.Shape, y.Shape)
		if !ok {
			return nil, c.errf("y", "cannot broadcast x %v with y %v", x.Shape, y.Shape)
		}
		d := x.DType
		if out != InvalidDType {
			d = out
		}
		return one(Type{DType: d, Shape: s})
	}
}

func inferUnary(c *inferCtx) ([]Type, error) {
	x, err := c.input("x", floatTypes...)
	if err != nil {
		return nil, err
	}
	return one(x)
}

func inferEpsUnary(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x := rd.input("x", floatTypes...)
	eps, ok := rd.optInput("epsilon", floatTypes...)
	if rd.err != nil {
		return nil, rd.err
	}
	if ok {
		if !eps.IsScalar() {
			return nil, c.errf("epsilon", "epsilon must be a scalar, got %v", eps)
		}
		// iOS17 gave epsilon its own dtype domain; before, it must match x.
		if c.t < IOS17 && eps.DType != x.DType {
			return nil, c.errf("epsilon", "epsilon is %v but x is %v; before ios17 they must match", eps.DType, x.DType)
		}
	}
	return one(x)
}

func inferClip(c *inferCtx) ([]Type, error) {
	x, err := c.input("x", floatTypes...)
	if err != nil {
		return nil, err
	}
	var lim [2]float64
	for i, name := range []string{"alpha", "beta"} {
		t, err := c.input(name)
		if err != nil {
			return nil, err
		}
		if !t.IsScalar() || t.DType != x.DType {
			return nil, c.errf(name, "%s must be a %v scalar like x, got %v", name, x.DType, t)
		}
		v, err := c.param(name)
		if err != nil {
			return nil, err
		}
		lim[i], _ = v.AsFloat()
	}
	if c.t >= IOS17 && lim[0] >= lim[1] {
		return nil, c.errf("alpha", "alpha %v must be less than beta %v", lim[0], lim[1])
	}
	return one(x)
}

func inferCast(c *inferCtx) ([]Type, error) {
	dom := tensorTypes(c.t)
	rd := c.reader()
	x, s := rd.input("x", dom...), rd.str("dtype")
	if rd.err != nil {
		return nil, rd.err
	}
	d, ok := ParseDType(s)
	if !ok || !slices.Contains(dom, d) {
		return nil, c.errf("dtype", "cannot cast to %q in %v (want one of %s)", s, c.t, dtypeList(dom))
	}
	return one(Type{DType: d, Shape: x.Shape.Clone()})
}

func inferSoftmax(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x := rd.input("x", floatTypes...)
	rd.axisParam("axis", x.Shape.Rank())
	if rd.err != nil {
		return nil, rd.err
	}
	return one(x)
}

func inferSelect(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	cond, a, b := rd.input("cond", Bool), rd.input("a", tensorTypes15...), rd.input("b", tensorTypes15...)
	if rd.err != nil {
		return nil, rd.err
	}
	if a.DType != b.DType {
		return nil, c.errf("b", "a is %v but b is %v; both must have the same dtype", a.DType, b.DType)
	}
	// Full three-way broadcast: real models select a scalar a into a larger b
	// under a mask of a third shape (mil-spec §4.11).
	s, ok := Broadcast(cond.Shape, a.Shape, b.Shape)
	if !ok {
		return nil, c.errf("", "cannot broadcast cond %v, a %v and b %v", cond.Shape, a.Shape, b.Shape)
	}
	return one(Type{DType: a.DType, Shape: s})
}

func inferMatmul(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x, y := rd.input("x", numericTypes...), rd.input("y", numericTypes...)
	if rd.err != nil {
		return nil, rd.err
	}
	d := x.DType
	if x.DType != y.DType {
		// iOS17 lets exactly one operand be a constant of another dtype; the
		// output takes the runtime operand's dtype.
		bx, _ := c.bind("x")
		by, _ := c.bind("y")
		cx, cy := isConstBinding(bx), isConstBinding(by)
		switch {
		case c.t < IOS17:
			return nil, c.errf("y", "x is %v but y is %v; before ios17 both must have the same dtype", x.DType, y.DType)
		case cx == cy:
			return nil, c.errf("y", "x is %v but y is %v; they may differ only when exactly one is a constant", x.DType, y.DType)
		case cx:
			d = y.DType
		}
	}
	tx, ty := rd.boolScalar("transpose_x"), rd.boolScalar("transpose_y")
	if rd.err != nil {
		return nil, rd.err
	}
	rx, ry := x.Shape.Rank(), y.Shape.Rank()
	if rx == 0 || ry == 0 {
		return nil, c.errf("x", "x %v and y %v must both have rank ≥ 1", x.Shape, y.Shape)
	}
	xs, ys := x.Shape.Clone(), y.Shape.Clone()
	if rx == 1 {
		if tx {
			return nil, c.errf("transpose_x", "transpose_x is set but x has rank 1")
		}
		xs = Shape{1, xs[0]}
	}
	if ry == 1 {
		if ty {
			return nil, c.errf("transpose_y", "transpose_y is set but y has rank 1")
		}
		ys = Shape{ys[0], 1}
	}
	if tx {
		xs[len(xs)-1], xs[len(xs)-2] = xs[len(xs)-2], xs[len(xs)-1]
	}
	if ty {
		ys[len(ys)-1], ys[len(ys)-2] = ys[len(ys)-2], ys[len(ys)-1]
	}
	kx, ky := xs[len(xs)-1], ys[len(ys)-2]
	if !dimsMatch(kx, ky) {
		return nil, c.errf("y", "x %v has inner dimension %d but y %v has %d (transpose_x %v, transpose_y %v)", x.Shape, kx, y.Shape, ky, tx, ty)
	}
	batch, ok := Broadcast(xs[:len(xs)-2], ys[:len(ys)-2])
	if !ok {
		return nil, c.errf("y", "batch dimensions of x %v and y %v do not broadcast", x.Shape, y.Shape)
	}
	out := append(batch, xs[len(xs)-2], ys[len(ys)-1])
	// numpy removes the axes it inserted for rank-1 operands: x's row axis
	// (second to last) first, then y's column axis (last).
	if rx == 1 {
		out = slices.Delete(out, len(out)-2, len(out)-1)
	}
	if ry == 1 {
		out = out[:len(out)-1]
	}
	return one(Type{DType: d, Shape: out})
}

// Conv pad types (mil-spec §4.7).
const (
	PadValid     = "valid"
	PadSame      = "same"
	PadSameLower = "same_lower"
	PadCustom    = "custom"
)

// ConvAxis resolves one spatial axis of a convolution: for an input of size d,
// kernel k, stride s and dilation dil under padType, it returns the output size
// and the zero padding applied before and after the input. customBefore and
// customAfter are used only with "custom". same puts an odd extra pad at the
// end, same_lower at the start (mil-spec §4.7).
func ConvAxis(padType string, d, k, s, dil, customBefore, customAfter int) (out, before, after int, err error) {
	if d < 1 || k < 1 || s < 1 || dil < 1 || customBefore < 0 || customAfter < 0 {
		return 0, 0, 0, fmt.Errorf("conv axis: size %d, kernel %d, stride %d, dilation %d, pad %d/%d must be positive", d, k, s, dil, customBefore, customAfter)
	}
	keff := (k-1)*dil + 1
	switch padType {
	case PadValid:
	case PadCustom:
		before, after = customBefore, customAfter
	case PadSame, PadSameLower:
		out = (d + s - 1) / s
		total := max(0, (out-1)*s+keff-d)
		before, after = total/2, total-total/2
		if padType == PadSameLower {
			before, after = after, before
		}
		return out, before, after, nil
	default:
		return 0, 0, 0, fmt.Errorf("unknown pad_type %q (want valid, same, same_lower or custom)", padType)
	}
	span := d + before + after - keff
	if span < 0 {
		return 0, 0, 0, fmt.Errorf("kernel of effective size %d is larger than the padded input %d", keff, d+before+after)
	}
	return span/s + 1, before, after, nil
}

func inferConv(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x, w := rd.input("x", floatTypes...), rd.input("weight", floatTypes...)
	if rd.err != nil {
		return nil, rd.err
	}
	if c.t < IOS17 && w.DType != x.DType {
		return nil, c.errf("weight", "weight is %v but x is %v; before ios17 they must match", w.DType, x.DType)
	}
	r := x.Shape.Rank()
	if r < 3 || r > 5 {
		return nil, c.errf("x", "x %v must have rank 3 to 5 ([N, C, spatial…])", x.Shape)
	}
	if w.Shape.Rank() != r {
		return nil, c.errf("weight", "weight %v must have rank %d like x %v ([C_out, C_in/groups, kernel…])", w.Shape, r, x.Shape)
	}
	ns := r - 2
	strides, dil, pad := rd.ints("strides", ns), rd.ints("dilations", ns), rd.ints("pad", 2*ns)
	padType := rd.str("pad_type")
	groups, _ := rd.intScalar("groups")
	if rd.err != nil {
		return nil, rd.err
	}
	switch padType {
	case PadValid, PadSame, PadCustom:
	case PadSameLower:
		if c.t < IOS16 {
			return nil, c.errf("pad_type", "pad_type same_lower needs ios16 or later")
		}
	default:
		return nil, c.errf("pad_type", "unknown pad_type %q (want valid, same, same_lower or custom)", padType)
	}
	for i := range ns {
		if strides[i] < 1 {
			return nil, c.errf("strides", "strides %v must be positive", strides)
		}
		if dil[i] < 1 {
			return nil, c.errf("dilations", "dilations %v must be positive", dil)
		}
		if padType == PadCustom && (pad[2*i] < 0 || pad[2*i+1] < 0) {
			return nil, c.errf("pad", "pad %v must not be negative", pad)
		}
	}
	if groups < 1 {
		return nil, c.errf("groups", "groups %d must be positive", groups)
	}
	wb, _ := c.bind("weight")
	if !isConstBinding(wb) && slices.ContainsFunc(dil, func(d int) bool { return d > 1 }) {
		return nil, c.errf("weight", "a runtime weight cannot be used with dilations %v", dil)
	}
	cin, cout := x.Shape[1], w.Shape[0]
	if cin != UnknownDim {
		if cin%groups != 0 {
			return nil, c.errf("groups", "x has %d channels, not divisible by groups %d", cin, groups)
		}
		if !dimsMatch(w.Shape[1], cin/groups) {
			return nil, c.errf("weight", "weight has %d input channels, x has %d (groups %d)", w.Shape[1], cin, groups)
		}
	}
	if cout != UnknownDim && cout%groups != 0 {
		return nil, c.errf("weight", "weight has %d output channels, not divisible by groups %d", cout, groups)
	}
	if bt, ok, err := c.optInput("bias", floatTypes...); err != nil {
		return nil, err
	} else if ok {
		bb, _ := c.bind("bias")
		if c.t < IOS17 && !isConstBinding(bb) {
			return nil, c.errf("bias", "bias must be a compile-time constant before ios17")
		}
		if c.t < IOS17 && bt.DType != x.DType {
			return nil, c.errf("bias", "bias is %v but x is %v; before ios17 they must match", bt.DType, x.DType)
		}
		if bt.Shape.Rank() != 1 || !dimsMatch(bt.Shape[0], cout) {
			return nil, c.errf("bias", "bias %v must have shape [%d] (the output channels)", bt.Shape, cout)
		}
	}
	out := Shape{x.Shape[0], cout}
	for i := range ns {
		d, k := x.Shape[2+i], w.Shape[2+i]
		if k == 0 {
			return nil, c.errf("weight", "weight %v has an empty kernel", w.Shape)
		}
		if d == UnknownDim || k == UnknownDim {
			out = append(out, UnknownDim)
			continue
		}
		pb, pa := 0, 0 // pad is ignored unless pad_type is custom
		if padType == PadCustom {
			pb, pa = pad[2*i], pad[2*i+1]
		}
		o, _, _, err := ConvAxis(padType, d, k, strides[i], dil[i], pb, pa)
		if err != nil {
			return nil, c.errf("x", "spatial axis %d of x %v: %v", i, x.Shape, err)
		}
		out = append(out, o)
	}
	return one(Type{DType: x.DType, Shape: out})
}

func inferReduce(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x := rd.input("x", numericTypes...)
	axes, keep := rd.axesParam("axes", x.Shape.Rank()), rd.boolScalar("keep_dims")
	if rd.err != nil {
		return nil, rd.err
	}
	out := Shape{}
	for i, d := range x.Shape {
		switch {
		case !slices.Contains(axes, i):
			out = append(out, d)
		case keep:
			out = append(out, 1)
		}
	}
	return one(Type{DType: x.DType, Shape: out})
}

func inferReshape(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x, vals := rd.input("x", tensorTypes(c.t)...), rd.ints("shape", -1, indexTypes(c.t)...)
	if rd.err != nil {
		return nil, rd.err
	}
	s, err := resolveReshape(x.Shape, vals, c.t)
	if err != nil {
		return nil, c.errf("shape", "reshape of x %v to %v: %v", x.Shape, vals, err)
	}
	return one(Type{DType: x.DType, Shape: s})
}

// resolveReshape applies reshape's 0 and -1 rules. Before iOS17 a 0 copies
// x's dimension at the same index and needs len(shape) == rank(x); from iOS17
// shapes are right-aligned: a 0 copies the dimension of x at the same distance
// from the end, or is 1 where x has none.
func resolveReshape(x Shape, vals []int, t Target) (Shape, error) {
	if len(vals) > MaxRank {
		return nil, fmt.Errorf("shape has %d entries, more than the maximum rank %d", len(vals), MaxRank)
	}
	out := make(Shape, len(vals))
	infer := -1
	for i, v := range vals {
		switch {
		case v == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("more than one -1")
			}
			infer = i
			out[i] = 1
		case v < -1:
			return nil, fmt.Errorf("negative size %d", v)
		case v == 0 && t < IOS17:
			if len(vals) != len(x) {
				return nil, fmt.Errorf("a 0 copies x's dimension at the same index, which needs %d entries (the rank of x) before ios17", len(x))
			}
			out[i] = x[i]
		case v == 0:
			if j := len(x) - (len(vals) - i); j >= 0 {
				out[i] = x[j]
			} else {
				out[i] = 1
			}
		default:
			out[i] = v
		}
	}
	n := x.NumElements()
	if !x.Static() {
		if infer >= 0 {
			return nil, fmt.Errorf("cannot infer the -1 when x has unknown dimensions")
		}
		return out, nil
	}
	if n < 0 {
		return nil, fmt.Errorf("x has too many elements")
	}
	p := out.NumElements()
	if p < 0 {
		return nil, fmt.Errorf("the target shape has too many elements")
	}
	if infer >= 0 {
		if p == 0 || n%p != 0 {
			return nil, fmt.Errorf("cannot infer the -1: %d elements do not divide into the other sizes (product %d)", n, p)
		}
		out[infer] = n / p
		return out, nil
	}
	if p != n {
		return nil, fmt.Errorf("x has %d elements, the target shape %d", n, p)
	}
	return out, nil
}

func inferTranspose(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x := rd.input("x", tensorTypes(c.t)...)
	r := x.Shape.Rank()
	p := rd.axes("perm", rd.ints("perm", r), r) // distinct and in range: a permutation
	if rd.err != nil {
		return nil, rd.err
	}
	out := make(Shape, r)
	for i, a := range p {
		out[i] = x.Shape[a]
	}
	return one(Type{DType: x.DType, Shape: out})
}

func inferSliceBySize(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x := rd.input("x", tensorTypes(c.t)...)
	r := x.Shape.Rank()
	begin, size := rd.ints("begin", r, indexTypes(c.t)...), rd.ints("size", r, indexTypes(c.t)...)
	if rd.err != nil {
		return nil, rd.err
	}
	out := make(Shape, r)
	for i, d := range x.Shape {
		b, s := begin[i], size[i]
		if s == 0 || s < -1 {
			return nil, c.errf("size", "size %d on axis %d must be positive or -1", s, i)
		}
		if d == UnknownDim {
			if s == -1 {
				out[i] = UnknownDim
			} else {
				out[i] = s
			}
			continue
		}
		if b < 0 {
			b += d
		}
		if b < 0 || b >= d {
			return nil, c.errf("begin", "begin %d is out of range for axis %d of size %d", begin[i], i, d)
		}
		if s == -1 {
			s = d - b
		}
		if b+s > d {
			return nil, c.errf("size", "begin %d + size %d exceeds axis %d of size %d", b, s, i, d)
		}
		out[i] = s
	}
	return one(Type{DType: x.DType, Shape: out})
}

// SliceRange resolves one axis of slice_by_index with Python slice semantics:
// negative begin/end count from the end, out-of-range values clamp, masks
// replace begin (end) by the start (end) of the traversal. It returns the
// first index and the number of elements taken (each stride apart). A
// squeezed axis takes exactly the element at begin, which must exist.
func SliceRange(dim, begin, end, stride int, beginMask, endMask, squeeze bool) (start, count int, err error) {
	if stride == 0 {
		return 0, 0, fmt.Errorf("stride is 0")
	}
	if squeeze {
		b := begin
		if beginMask {
			b = 0
		}
		if b < 0 {
			b += dim
		}
		if b < 0 || b >= dim {
			return 0, 0, fmt.Errorf("squeezed index %d is out of range for size %d", begin, dim)
		}
		return b, 1, nil
	}
	// clamp normalises an index to [lo, hi] after adding dim to negatives.
	clamp := func(i, lo, hi int) int {
		if i < 0 {
			i += dim
		}
		return min(max(i, lo), hi)
	}
	var stop int
	if stride > 0 {
		start, stop = 0, dim
		if !beginMask {
			start = clamp(begin, 0, dim)
		}
		if !endMask {
			stop = clamp(end, 0, dim)
		}
		count = (stop - start + stride - 1) / stride
	} else {
		start, stop = dim-1, -1
		if !beginMask {
			start = clamp(begin, -1, dim-1)
		}
		if !endMask {
			stop = clamp(end, -1, dim-1)
		}
		count = (start - stop - stride - 1) / -stride
	}
	return start, max(count, 0), nil
}

func inferSliceByIndex(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x := rd.input("x", tensorTypes(c.t)...)
	r := x.Shape.Rank()
	begin, end := rd.ints("begin", r, indexTypes(c.t)...), rd.ints("end", r, indexTypes(c.t)...)
	stride := rd.ints("stride", r)
	masks := [3][]bool{rd.bools("begin_mask", r), rd.bools("end_mask", r), rd.bools("squeeze_mask", r)}
	if rd.err != nil {
		return nil, rd.err
	}
	out := Shape{}
	for i, d := range x.Shape {
		sq := masks[2][i]
		if stride[i] == 0 {
			return nil, c.errf("stride", "stride on axis %d is 0", i)
		}
		if d == UnknownDim {
			if !sq {
				out = append(out, UnknownDim)
			}
			continue
		}
		_, n, err := SliceRange(d, begin[i], end[i], stride[i], masks[0][i], masks[1][i], sq)
		if err != nil {
			return nil, c.errf("begin", "axis %d of x %v: %v", i, x.Shape, err)
		}
		if n == 0 {
			return nil, c.errf("end", "axis %d of x %v: slice %d:%d:%d is empty", i, x.Shape, begin[i], end[i], stride[i])
		}
		if !sq {
			out = append(out, n)
		}
	}
	return one(Type{DType: x.DType, Shape: out})
}

func inferConcat(c *inferCtx) ([]Type, error) {
	a := c.op.Arg("values")
	if a == nil || len(a.Bindings) == 0 {
		return nil, c.errf("values", "missing required input \"values\"")
	}
	first := a.Bindings[0].Type()
	r := first.Shape.Rank()
	if r == 0 {
		return nil, c.errf("values", "concat needs tensors of rank ≥ 1, values[0] is a scalar")
	}
	rd := c.reader()
	axis, interleave := rd.axisParam("axis", r), rd.boolScalar("interleave")
	if rd.err != nil {
		return nil, rd.err
	}
	out := first.Shape.Clone()
	out[axis] = 0
	for i, b := range a.Bindings {
		t := b.Type()
		if !slices.Contains(tensorTypes15, t.DType) {
			return nil, c.errf("values", "values[%d] has dtype %v; concat accepts %s", i, t.DType, dtypeList(tensorTypes15))
		}
		if t.DType != first.DType || t.Shape.Rank() != r {
			return nil, c.errf("values", "values[%d] is %v but values[0] is %v; all need the same dtype and rank", i, t, first)
		}
		for j, d := range t.Shape {
			if j == axis && !interleave {
				continue
			}
			if !dimsMatch(d, first.Shape[j]) {
				what := "on every axis but the concat axis"
				if interleave {
					what = "(interleave needs identical shapes)"
				}
				return nil, c.errf("values", "values[%d] %v does not match values[0] %v %s", i, t.Shape, first.Shape, what)
			}
			if j != axis {
				out[j] = known(out[j], d)
			}
		}
		switch {
		case out[axis] == UnknownDim || t.Shape[axis] == UnknownDim:
			out[axis] = UnknownDim
		default:
			out[axis] += t.Shape[axis]
			if out[axis] > MaxElements {
				return nil, c.errf("values", "concatenated axis exceeds 2^40")
			}
		}
	}
	return one(Type{DType: first.DType, Shape: out})
}

func inferSplit(c *inferCtx) ([]Type, error) {
	x, err := c.input("x", tensorTypes15...)
	if err != nil {
		return nil, err
	}
	r := x.Shape.Rank()
	if r == 0 {
		return nil, c.errf("x", "cannot split a scalar")
	}
	rd := c.reader()
	axis := rd.axisParam("axis", r)
	n, hasN := rd.intScalar("num_splits")
	if rd.err != nil {
		return nil, rd.err
	}
	sizes, hasS, err := c.ints("split_sizes", -1) // hasS tells an empty list from none
	if err != nil {
		return nil, err
	}
	d := x.Shape[axis]
	switch {
	case hasS:
		if len(sizes) == 0 || len(sizes) > maxSplits {
			return nil, c.errf("split_sizes", "split_sizes has %d entries, want 1 to %d", len(sizes), maxSplits)
		}
		if hasN && n != len(sizes) {
			return nil, c.errf("num_splits", "num_splits %d disagrees with %d split_sizes", n, len(sizes))
		}
		sum := 0
		for _, s := range sizes {
			if s < 1 {
				return nil, c.errf("split_sizes", "split_sizes %v must be positive", sizes)
			}
			sum += s
		}
		if d != UnknownDim && sum != d {
			return nil, c.errf("split_sizes", "split_sizes %v sum to %d, axis %d of x %v has %d", sizes, sum, axis, x.Shape, d)
		}
	case hasN:
		if n < 1 || n > maxSplits {
			return nil, c.errf("num_splits", "num_splits %d must be in [1, %d]", n, maxSplits)
		}
		if d != UnknownDim && d%n != 0 {
			return nil, c.errf("num_splits", "num_splits %d does not divide axis %d of x %v", n, axis, x.Shape)
		}
		sizes = filled(n, UnknownDim)
		if d != UnknownDim {
			sizes = filled(n, d/n)
		}
	default:
		return nil, c.errf("", "split needs num_splits or split_sizes")
	}
	out := make([]Type, len(sizes))
	for i, s := range sizes {
		sh := x.Shape.Clone()
		sh[axis] = s
		out[i] = Type{DType: x.DType, Shape: sh}
	}
	return out, nil
}

func inferExpandDims(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	x, raw := rd.input("x", tensorTypes(c.t)...), rd.ints("axes", -1)
	if rd.err != nil {
		return nil, rd.err
	}
	if len(raw) == 0 {
		return nil, c.errf("axes", "axes is empty")
	}
	rank := x.Shape.Rank() + len(raw)
	if rank > MaxRank {
		return nil, c.errf("axes", "result rank %d exceeds the maximum %d", rank, MaxRank)
	}
	axes, err := c.axes("axes", raw, rank)
	if err != nil {
		return nil, err
	}
	slices.Sort(axes)
	out := x.Shape.Clone()
	for _, a := range axes {
		out = slices.Insert(out, a, 1)
	}
	return one(Type{DType: x.DType, Shape: out})
}

func inferSqueeze(c *inferCtx) ([]Type, error) {
	x, err := c.input("x", tensorTypes(c.t)...)
	if err != nil {
		return nil, err
	}
	r := x.Shape.Rank()
	if r == 0 {
		return nil, c.errf("x", "cannot squeeze a scalar")
	}
	axes, err := c.axesParam("axes", r)
	if err != nil {
		return nil, err
	}
	// Listed axes whose size is not 1 are kept, as the reference does.
	out := Shape{}
	for i, d := range x.Shape {
		if d != 1 || !slices.Contains(axes, i) {
			out = append(out, d)
		}
	}
	return one(Type{DType: x.DType, Shape: out})
}

func inferSDPA(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	q, k, v := rd.input("query", floatTypes...), rd.input("key", floatTypes...), rd.input("value", floatTypes...)
	if rd.err != nil {
		return nil, rd.err
	}
	if k.DType != q.DType || v.DType != q.DType {
		return nil, c.errf("key", "query, key and value are %v, %v, %v; all must have the same dtype", q.DType, k.DType, v.DType)
	}
	r := q.Shape.Rank()
	if r < 3 || k.Shape.Rank() != r || v.Shape.Rank() != r {
		return nil, c.errf("query", "query %v, key %v and value %v must have the same rank, at least 3", q.Shape, k.Shape, v.Shape)
	}
	for i := range r - 2 {
		if !dimsMatch(q.Shape[i], k.Shape[i]) || !dimsMatch(q.Shape[i], v.Shape[i]) {
			return nil, c.errf("key", "batch dimensions of query %v, key %v and value %v differ", q.Shape, k.Shape, v.Shape)
		}
	}
	if !dimsMatch(q.Shape[r-1], k.Shape[r-1]) {
		return nil, c.errf("key", "query %v and key %v have different embedding sizes", q.Shape, k.Shape)
	}
	if !dimsMatch(k.Shape[r-2], v.Shape[r-2]) {
		return nil, c.errf("value", "key %v and value %v have different sequence lengths", k.Shape, v.Shape)
	}
	if m, ok, err := c.optInput("attn_mask", maskTypes...); err != nil {
		return nil, err
	} else if ok {
		scores := append(q.Shape[:r-1].Clone(), k.Shape[r-2])
		b, good := Broadcast(m.Shape, scores)
		if !good || !b.Equal(scores) {
			return nil, c.errf("attn_mask", "attn_mask %v does not broadcast to the scores %v", m.Shape, scores)
		}
	}
	out := append(q.Shape[:r-1].Clone(), v.Shape[r-1])
	return one(Type{DType: q.DType, Shape: out})
}

// quantParams checks the scale/zero_point/axis triple of quantize, dequantize
// and constexpr_affine_dequantize for data of shape s: scalar parameters take
// no axis (except constexpr, whose axis is always given); vector parameters
// need an axis and length s[axis].
func (c *inferCtx) quantParams(s Shape, scale, zp Type, hasZP, axisRequired bool) error {
	if scale.Shape.Rank() > 1 {
		return c.errf("scale", "scale %v must be a scalar or a vector", scale.Shape)
	}
	if hasZP && zp.Shape.Rank() != scale.Shape.Rank() {
		return c.errf("zero_point", "zero_point %v and scale %v must both be scalars or both vectors", zp.Shape, scale.Shape)
	}
	ax, hasAxis, err := c.intScalar("axis")
	if err != nil {
		return err
	}
	if scale.Shape.Rank() == 0 && !axisRequired {
		if hasAxis {
			return c.errf("axis", "axis must not be given when scale is a scalar")
		}
		return nil
	}
	if !hasAxis {
		return c.errf("axis", "axis is required when scale is a vector")
	}
	a, err := c.axis("axis", ax, s.Rank())
	if err != nil {
		return err
	}
	if scale.Shape.Rank() == 1 {
		if !dimsMatch(scale.Shape[0], s[a]) {
			return c.errf("scale", "scale has %d entries but axis %d of the data %v has %d", scale.Shape[0], a, s, s[a])
		}
		if hasZP && !dimsMatch(zp.Shape[0], s[a]) {
			return c.errf("zero_point", "zero_point has %d entries but axis %d of the data %v has %d", zp.Shape[0], a, s, s[a])
		}
	}
	return nil
}

func inferQuantize(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	in := rd.ranked("input", floatTypes...)
	scale, s := rd.input("scale", in.DType), rd.str("output_dtype")
	if rd.err != nil {
		return nil, rd.err
	}
	d, ok := ParseDType(s)
	if !ok || (d != Int8 && d != UInt8) {
		return nil, c.errf("output_dtype", "output_dtype %q must be \"int8\" or \"uint8\"", s)
	}
	zp, hasZP, err := c.optInput("zero_point", d)
	if err != nil {
		return nil, err
	}
	if err := c.quantParams(in.Shape, scale, zp, hasZP, false); err != nil {
		return nil, err
	}
	if v, err := c.param("scale"); err == nil && v != nil && allZero(v) {
		return nil, c.errf("scale", "scale is all zeros")
	}
	return one(Type{DType: d, Shape: in.Shape.Clone()})
}

func allZero(v *Value) bool {
	for _, x := range v.Floats {
		if x != 0 {
			return false
		}
	}
	return len(v.Floats) > 0
}

func inferDequantize(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	in := rd.ranked("input", quantTypes...)
	scale := rd.input("scale", floatTypes...)
	zp, hasZP := rd.optInput("zero_point", in.DType)
	if rd.err != nil {
		return nil, rd.err
	}
	if err := c.quantParams(in.Shape, scale, zp, hasZP, false); err != nil {
		return nil, err
	}
	return one(Type{DType: scale.DType, Shape: in.Shape.Clone()})
}

func inferAffineDequantize(c *inferCtx) ([]Type, error) {
	rd := c.reader()
	q := rd.ranked("quantized_data", quantTypes...)
	scale, zp := rd.input("scale", floatTypes...), rd.input("zero_point", Int8, UInt8, FP32)
	if rd.err != nil {
		return nil, rd.err
	}
	// The zero point shares the data's integer dtype; newer references also
	// allow an fp32 zero point.
	if zp.DType != q.DType && zp.DType != FP32 {
		return nil, c.errf("zero_point", "zero_point is %v but quantized_data is %v", zp.DType, q.DType)
	}
	if err := c.quantParams(q.Shape, scale, zp, true, true); err != nil {
		return nil, err
	}
	return one(Type{DType: scale.DType, Shape: q.Shape.Clone()})
}
