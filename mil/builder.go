package mil

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// WeightPath is the BLOBFILE path of the weight file a Builder writes, the key
// of its Weights. It is coremltools' convention; the ANE resolves
// @model_path to the model's directory.
const WeightPath = "@model_path/weights/weight.bin"

// buildInfo is the program attribute the reference kernels always carry
// (ane-anchor §3.1); some reports say the ANE compiler wants one.
var buildInfo = []KV{
	{Key: "coremlc-component-MIL", Value: "3510.2.1"},
	{Key: "coremlc-version", Value: "3505.4.1"},
	{Key: "coremltools-component-milinternal", Value: ""},
	{Key: "coremltools-version", Value: "9.0"},
}

// inlineMax is the largest element count ConstFP16 writes inline; larger
// constants go to the weight blob, as coremltools does (≥ 10 elements).
const inlineMax = 9

// A Builder writes one MIL function, "main", for a deployment target. Each op
// method infers and checks the output type at once, so a wrong shape fails
// where it is written, with the op's name.
//
// Errors are sticky, like bufio.Scanner's: after the first one every method
// does nothing and returns a placeholder, so kernel code can be written
// straight-line and checked once through Err or Build.
//
// Parameters MIL wants as constants (axes, perms, strides, flags, epsilons) are
// written as separate const statements named <op>_<param>, placed just before
// the op in alphabetical order of the parameter, and every optional input is
// written explicitly, the compiler's own style. Every op's name attribute is
// its output's name.
type Builder struct {
	target  Target
	fn      *Function
	names   map[string]bool // variable and op names in use
	vars    map[*Var]bool   // variables this builder made
	outputs map[*Var]bool
	blob    BlobWriter
	blobs   map[uint64]bool // offsets of the blobs added
	err     error
	built   bool
	bad     *Var // the placeholder returned after an error
}

// NewBuilder starts a program for target t: opset t, program version
// t.Version(), the reference buildInfo.
func NewBuilder(t Target) *Builder {
	b := &Builder{
		target:  t,
		fn:      &Function{Name: "main", Opset: t.Opset()},
		names:   map[string]bool{},
		vars:    map[*Var]bool{},
		outputs: map[*Var]bool{},
		blobs:   map[uint64]bool{},
		bad:     &Var{Name: "invalid"},
	}
	if !t.Valid() {
		b.err = fmt.Errorf("mil: unknown target %v", t)
	}
	return b
}

// Target returns the builder's deployment target.
func (b *Builder) Target() Target { return b.target }

// Err returns the first error, or nil.
func (b *Builder) Err() error { return b.err }

func (b *Builder) ok() bool {
	if b.built && b.err == nil {
		b.err = errors.New("mil: builder used after Build")
	}
	return b.err == nil
}

func (b *Builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *Builder) failf(format string, a ...any) { b.fail(fmt.Errorf(format, a...)) }

// checkName reports whether name may name a new variable or op.
func (b *Builder) checkName(what, name string) bool {
	switch {
	case !ValidName(name):
		b.failf("mil: %s: invalid name %q (want [A-Za-z_][A-Za-z0-9_@]*, not a dtype or keyword)", what, name)
	case b.names[name]:
		b.failf("mil: %s: name %q is already used", what, name)
	default:
		return true
	}
	return false
}

// use checks that v can be an input of op.
func (b *Builder) use(opType, opName, input string, v *Var) bool {
	switch {
	case v == nil:
		b.failf("mil: %s %q: input %s is nil", opType, opName, input)
	case !b.vars[v]:
		b.failf("mil: %s %q: input %s (%s) is not a variable of this builder", opType, opName, input, v.Name)
	default:
		return true
	}
	return false
}

// Input declares a function input. Its type must be static.
func (b *Builder) Input(name string, t Type) *Var {
	if !b.ok() || !b.checkName("input", name) {
		return b.bad
	}
	if err := checkType(t); err != nil {
		b.failf("mil: input %s: %v", name, err)
		return b.bad
	}
	if !t.Shape.Static() {
		b.failf("mil: input %s: type %v has unknown dimensions; the ANE runs static shapes only", name, t)
		return b.bad
	}
	v := &Var{Name: name, Type: Type{DType: t.DType, Shape: t.Shape.Clone()}}
	b.names[name] = true
	b.vars[v] = true
	b.fn.Inputs = append(b.fn.Inputs, v)
	return v
}

// Output appends vars to the function's results, in order.
func (b *Builder) Output(vars ...*Var) {
	if !b.ok() {
		return
	}
	for _, v := range vars {
		switch {
		case v == nil:
			b.failf("mil: output is nil")
			return
		case !b.vars[v]:
			b.failf("mil: output %s is not a variable of this builder", v.Name)
			return
		case b.outputs[v]:
			b.failf("mil: output %s is listed twice", v.Name)
			return
		}
		b.outputs[v] = true
		b.fn.Outputs = append(b.fn.Outputs, v)
	}
}

// Build finishes the program and returns it with its weight files (empty when
// it has no blobs). It checks the whole program once more as a safety net. The
// builder cannot be used afterwards.
func (b *Builder) Build() (*Program, Weights, error) {
	if !b.ok() {
		return nil, nil, b.err
	}
	if len(b.fn.Outputs) == 0 {
		b.failf("mil: the function has no outputs (call Output)")
		return nil, nil, b.err
	}
	p := &Program{
		Version:   b.target.Version(),
		BuildInfo: slices.Clone(buildInfo),
		Functions: []*Function{b.fn},
	}
	if err := p.Check(); err != nil {
		b.failf("mil: the builder made an invalid program (a bug in mil.Builder): %w", err)
		return nil, nil, b.err
	}
	w := Weights{}
	if b.blob.Count() > 0 {
		w[WeightPath] = b.blob.Bytes()
	}
	b.built = true
	return p, w, nil
}

// emit appends an operation and returns its outputs, named outs, with the
// inferred types; nil after an error.
func (b *Builder) emit(typ, name string, args []Arg, attrs []Attr, outs []string) []*Var {
	if !b.checkName(typ, name) {
		return nil
	}
	for _, o := range outs {
		if o != name && !b.checkName(typ, o) {
			return nil
		}
	}
	slices.SortStableFunc(args, func(x, y Arg) int { return strings.Compare(x.Name, y.Name) })
	slices.SortStableFunc(attrs, func(x, y Attr) int { return strings.Compare(x.Name, y.Name) })
	op := &Operation{Type: typ, Name: name, Args: args, Attrs: attrs}
	types, err := InferTypes(op, b.target)
	if err != nil {
		b.fail(err)
		return nil
	}
	if len(types) != len(outs) {
		b.failf("mil: %s: produces %d outputs, the builder named %d", op.Where(), len(types), len(outs))
		return nil
	}
	b.names[name] = true
	for i, o := range outs {
		v := &Var{Name: o, Type: types[i], Op: op}
		if typ == "const" {
			v.Const = op.Attr("val")
		}
		b.names[o] = true
		b.vars[v] = true
		op.Outputs = append(op.Outputs, v)
	}
	b.fn.Ops = append(b.fn.Ops, op)
	return op.Outputs
}

// param is a const input of an op, written as its own const statement.
type param struct {
	name string
	v    *Value
}

// call writes the param consts of op name (alphabetically), then the op with
// inputs and the params as arguments. It returns the op's outputs or nil.
func (b *Builder) call(typ, name string, inputs []Arg, params []param, outs []string) []*Var {
	if !b.ok() || !b.checkName(typ, name) {
		return nil
	}
	slices.SortStableFunc(params, func(x, y param) int { return strings.Compare(x.name, y.name) })
	args := inputs
	for _, p := range params {
		cv := b.Const(name+"_"+p.name, p.v)
		if !b.ok() {
			return nil
		}
		args = append(args, Arg{Name: p.name, Bindings: []Binding{{Var: cv}}})
	}
	return b.emit(typ, name, args, nil, outs)
}

// call1 is call for single-output ops named after their output.
func (b *Builder) call1(typ, name string, inputs []Arg, params ...param) *Var {
	return b.single(b.call(typ, name, inputs, params, []string{name}))
}

// single returns the one output of an op written by emit or call, or the
// placeholder after an error.
func (b *Builder) single(outs []*Var) *Var {
	if outs == nil {
		return b.bad
	}
	return outs[0]
}

func arg(name string, v *Var) Arg { return Arg{Name: name, Bindings: []Binding{{Var: v}}} }

// Const writes a const statement holding an immediate value (rounded to its
// dtype). Non-finite floats are refused: MIL text has no spelling of them that
// the ANE is known to accept, so store them in a blob (ConstBlob) or use a
// finite value such as -65504, the lowest fp16.
func (b *Builder) Const(name string, v *Value) *Var {
	if !b.ok() {
		return b.bad
	}
	if v == nil {
		b.failf("mil: const %s: nil value", name)
		return b.bad
	}
	if v.Blob != nil {
		b.failf("mil: const %s: a BLOBFILE value must come from ConstBlob", name)
		return b.bad
	}
	if err := v.Check(); err != nil {
		b.failf("mil: const %s: %v", name, err)
		return b.bad
	}
	if err := checkType(v.Type); err != nil {
		b.failf("mil: const %s: %v", name, err)
		return b.bad
	}
	c := cloneValue(v)
	for i, x := range c.Floats {
		if math.IsInf(x, 0) || math.IsNaN(x) {
			b.failf("mil: const %s: element %d is %v in %v; write non-finite values to a blob (ConstBlob) or use a finite value such as -65504", name, i, v.Floats[i], v.Type.DType)
			return b.bad
		}
	}
	return b.single(b.emit("const", name, nil, []Attr{{Name: "val", Value: c}}, []string{name}))
}

// cloneValue copies v so later changes to the caller's slices cannot alter
// the program, rounding floats to the dtype so the value equals what the
// printed text holds.
func cloneValue(v *Value) *Value {
	c := &Value{Type: Type{DType: v.Type.DType, Shape: v.Type.Shape.Clone()}}
	if v.Floats != nil {
		c.Floats = make([]float64, len(v.Floats))
		for i, x := range v.Floats {
			c.Floats[i] = RoundFloat(x, v.Type.DType)
		}
	}
	c.Ints = slices.Clone(v.Ints)
	c.Bools = slices.Clone(v.Bools)
	c.Strings = slices.Clone(v.Strings)
	return c
}

// ConstScalar writes a float scalar const of dtype d (fp16, fp32, bf16).
func (b *Builder) ConstScalar(name string, d DType, x float64) *Var {
	if !b.ok() {
		return b.bad
	}
	if !d.IsFloat() {
		b.failf("mil: const %s: ConstScalar needs a float dtype, got %v (use Const with IntScalar)", name, d)
		return b.bad
	}
	return b.Const(name, FloatScalar(d, x))
}

// Blob appends data, the row-major little-endian elements of a tensor of type
// t, to the weight file and returns the BLOBFILE value that refers to it,
// without writing a statement: constexpr ops take it inline.
func (b *Builder) Blob(t Type, data []byte) *Value {
	if !b.ok() {
		return nil
	}
	if err := checkType(t); err != nil {
		b.failf("mil: blob: %v", err)
		return nil
	}
	n := t.Shape.NumElements()
	if n < 0 {
		b.failf("mil: blob: type %v is not static", t)
		return nil
	}
	if _, ok := t.DType.BlobCode(); !ok {
		b.failf("mil: blob: dtype %v cannot be stored in a weight blob", t.DType)
		return nil
	}
	if len(data) != n*t.DType.Size() {
		b.failf("mil: blob: %v needs %d bytes, got %d", t, n*t.DType.Size(), len(data))
		return nil
	}
	off, err := b.blob.Add(t.DType, data)
	if err != nil {
		b.failf("mil: blob: %v", err)
		return nil
	}
	b.blobs[off] = true
	return BlobValue(t, WeightPath, off)
}

// ConstBlob writes a const whose value, data (row-major little-endian elements
// of type t), is stored in the weight file.
func (b *Builder) ConstBlob(name string, t Type, data []byte) *Var {
	if !b.ok() || !b.checkName("const", name) {
		return b.bad
	}
	v := b.Blob(t, data)
	if v == nil {
		return b.bad
	}
	return b.single(b.emit("const", name, nil, []Attr{{Name: "val", Value: v}}, []string{name}))
}

// ConstFP16 writes an fp16 tensor const from float32 values (rounded to
// nearest even): inline when it has fewer than 10 elements, in the weight
// file otherwise, as coremltools decides. Values must stay finite in fp16.
func (b *Builder) ConstFP16(name string, shape Shape, vals []float32) *Var {
	if !b.ok() {
		return b.bad
	}
	t := Type{DType: FP16, Shape: shape.Clone()}
	if err := checkType(t); err != nil {
		b.failf("mil: const %s: %v", name, err)
		return b.bad
	}
	n := t.Shape.NumElements()
	if n != len(vals) {
		b.failf("mil: const %s: shape %v needs %d values, got %d", name, shape, n, len(vals))
		return b.bad
	}
	f := make([]float64, n)
	for i, x := range vals {
		f[i] = RoundFloat(float64(x), FP16)
		if math.IsInf(f[i], 0) || math.IsNaN(f[i]) {
			b.failf("mil: const %s: element %d (%v) is not finite in fp16; use a finite value such as -65504", name, i, x)
			return b.bad
		}
	}
	if n <= inlineMax {
		return b.Const(name, FloatTensor(FP16, shape, f))
	}
	data, err := EncodeFloat32s(FP16, vals)
	if err != nil {
		b.failf("mil: const %s: %v", name, err)
		return b.bad
	}
	return b.ConstBlob(name, t, data)
}

// Elementwise binary ops; x and y share a dtype and broadcast numpy-style.

// Add returns x + y.
func (b *Builder) Add(name string, x, y *Var) *Var { return b.binary("add", name, x, y) }

// Sub returns x − y.
func (b *Builder) Sub(name string, x, y *Var) *Var { return b.binary("sub", name, x, y) }

// Mul returns x · y.
func (b *Builder) Mul(name string, x, y *Var) *Var { return b.binary("mul", name, x, y) }

// RealDiv returns x / y.
func (b *Builder) RealDiv(name string, x, y *Var) *Var { return b.binary("real_div", name, x, y) }

// Pow returns x^y.
func (b *Builder) Pow(name string, x, y *Var) *Var { return b.binary("pow", name, x, y) }

// Maximum returns max(x, y).
func (b *Builder) Maximum(name string, x, y *Var) *Var { return b.binary("maximum", name, x, y) }

// Minimum returns min(x, y).
func (b *Builder) Minimum(name string, x, y *Var) *Var { return b.binary("minimum", name, x, y) }

// Greater returns the bool tensor x > y.
func (b *Builder) Greater(name string, x, y *Var) *Var { return b.binary("greater", name, x, y) }

// Less returns the bool tensor x < y.
func (b *Builder) Less(name string, x, y *Var) *Var { return b.binary("less", name, x, y) }

func (b *Builder) binary(typ, name string, x, y *Var) *Var {
	if !b.ok() || !b.use(typ, name, "x", x) || !b.use(typ, name, "y", y) {
		return b.bad
	}
	return b.call1(typ, name, []Arg{arg("x", x), arg("y", y)})
}

// Elementwise unary ops on fp16/fp32.

// Sqrt returns √x.
func (b *Builder) Sqrt(name string, x *Var) *Var { return b.unary("sqrt", name, x) }

// Exp returns eˣ.
func (b *Builder) Exp(name string, x *Var) *Var { return b.unary("exp", name, x) }

// Tanh returns tanh x.
func (b *Builder) Tanh(name string, x *Var) *Var { return b.unary("tanh", name, x) }

// Sigmoid returns 1/(1+e^−x).
func (b *Builder) Sigmoid(name string, x *Var) *Var { return b.unary("sigmoid", name, x) }

// Silu returns x·sigmoid(x).
func (b *Builder) Silu(name string, x *Var) *Var { return b.unary("silu", name, x) }

// Relu returns max(x, 0).
func (b *Builder) Relu(name string, x *Var) *Var { return b.unary("relu", name, x) }

// unary writes an op whose one tensor input is x. Its params must not read
// x, which may be nil here; ops whose params depend on x check it first.
func (b *Builder) unary(typ, name string, x *Var, params ...param) *Var {
	if !b.ok() || !b.use(typ, name, "x", x) {
		return b.bad
	}
	return b.call1(typ, name, []Arg{arg("x", x)}, params...)
}

// floatOf is the dtype of the float params of an op on x: x's own, or fp32
// when x is not a float (inference then reports x's dtype).
func floatOf(x *Var) DType {
	if x.Type.DType.IsFloat() {
		return x.Type.DType
	}
	return FP32
}

// Rsqrt returns 1/√(x+eps). eps is written in x's dtype; note that small
// epsilons vanish in fp16 (1e-12 rounds to 0).
func (b *Builder) Rsqrt(name string, x *Var, eps float64) *Var {
	return b.epsUnary("rsqrt", name, x, eps)
}

// Log returns ln(x+eps), eps in x's dtype.
func (b *Builder) Log(name string, x *Var, eps float64) *Var {
	return b.epsUnary("log", name, x, eps)
}

func (b *Builder) epsUnary(typ, name string, x *Var, eps float64) *Var {
	if !b.ok() || !b.use(typ, name, "x", x) {
		return b.bad
	}
	return b.call1(typ, name, []Arg{arg("x", x)}, param{"epsilon", FloatScalar(floatOf(x), eps)})
}

// Clip returns min(max(x, alpha), beta); alpha < beta from iOS17.
func (b *Builder) Clip(name string, x *Var, alpha, beta float64) *Var {
	if !b.ok() || !b.use("clip", name, "x", x) {
		return b.bad
	}
	d := floatOf(x)
	return b.call1("clip", name, []Arg{arg("x", x)},
		param{"alpha", FloatScalar(d, alpha)}, param{"beta", FloatScalar(d, beta)})
}

// Cast converts x to dtype d.
func (b *Builder) Cast(name string, x *Var, d DType) *Var {
	return b.unary("cast", name, x, param{"dtype", StringScalar(d.String())})
}

// Softmax normalises x along axis.
func (b *Builder) Softmax(name string, x *Var, axis int) *Var {
	return b.unary("softmax", name, x, param{"axis", IntScalar(Int32, int64(axis))})
}

// Select returns a where cond is true and b where it is false, broadcasting
// all three.
func (b *Builder) Select(name string, cond, a, c *Var) *Var {
	if !b.ok() || !b.use("select", name, "cond", cond) || !b.use("select", name, "a", a) || !b.use("select", name, "b", c) {
		return b.bad
	}
	return b.call1("select", name, []Arg{arg("cond", cond), arg("a", a), arg("b", c)})
}

// MatMul returns x·y, after swapping the last two axes of x (y) when
// transposeX (transposeY) is set. Leading axes broadcast.
func (b *Builder) MatMul(name string, x, y *Var, transposeX, transposeY bool) *Var {
	if !b.ok() || !b.use("matmul", name, "x", x) || !b.use("matmul", name, "y", y) {
		return b.bad
	}
	return b.call1("matmul", name, []Arg{arg("x", x), arg("y", y)},
		param{"transpose_x", BoolScalar(transposeX)}, param{"transpose_y", BoolScalar(transposeY)})
}

// ConvOpts are conv's optional inputs; the zero value is a plain
// stride-1, unpadded, ungrouped convolution without bias.
type ConvOpts struct {
	Bias      *Var   // [C_out]; nil for none (the input is then omitted)
	Strides   []int  // per spatial axis; nil for all 1
	Dilations []int  // per spatial axis; nil for all 1
	PadType   string // PadValid (when empty), PadSame, PadSameLower or PadCustom
	Pad       []int  // PadCustom only: [before₀, after₀, before₁, after₁, …]; nil for zeros
	Groups    int    // 0 means 1
}

// Conv convolves x [N, C_in, spatial…] with weight w [C_out, C_in/groups,
// kernel…] (OIHW). w may be a function input (anetop's dynamic weights).
func (b *Builder) Conv(name string, x, w *Var, opt ConvOpts) *Var {
	if !b.ok() || !b.use("conv", name, "x", x) || !b.use("conv", name, "weight", w) {
		return b.bad
	}
	ns := max(x.Type.Shape.Rank()-2, 0)
	orOnes := func(v []int) []int {
		if v == nil {
			return filled(ns, 1)
		}
		return v
	}
	padType := opt.PadType
	if padType == "" {
		padType = PadValid
	}
	pad := opt.Pad
	if pad == nil {
		pad = filled(2*ns, 0)
	}
	groups := opt.Groups
	if groups == 0 {
		groups = 1
	}
	inputs := []Arg{arg("x", x), arg("weight", w)}
	if opt.Bias != nil {
		if !b.use("conv", name, "bias", opt.Bias) {
			return b.bad
		}
		inputs = append(inputs, arg("bias", opt.Bias))
	}
	return b.call1("conv", name, inputs,
		param{"strides", Int32s(orOnes(opt.Strides)...)},
		param{"dilations", Int32s(orOnes(opt.Dilations)...)},
		param{"pad_type", StringScalar(padType)},
		param{"pad", Int32s(pad...)},
		param{"groups", IntScalar(Int32, int64(groups))})
}

// ReduceSum sums x over axes (all axes when nil), keeping them as size 1 when
// keepDims is set.
func (b *Builder) ReduceSum(name string, x *Var, axes []int, keepDims bool) *Var {
	return b.reduce("reduce_sum", name, x, axes, keepDims)
}

// ReduceMax is the maximum of x over axes, as ReduceSum.
func (b *Builder) ReduceMax(name string, x *Var, axes []int, keepDims bool) *Var {
	return b.reduce("reduce_max", name, x, axes, keepDims)
}

// ReduceMean is the mean of x over axes, as ReduceSum.
func (b *Builder) ReduceMean(name string, x *Var, axes []int, keepDims bool) *Var {
	return b.reduce("reduce_mean", name, x, axes, keepDims)
}

func (b *Builder) reduce(typ, name string, x *Var, axes []int, keepDims bool) *Var {
	if !b.ok() || !b.use(typ, name, "x", x) {
		return b.bad
	}
	if axes == nil {
		axes = everyAxis(x.Type.Shape.Rank())
	}
	return b.call1(typ, name, []Arg{arg("x", x)},
		param{"axes", Int32s(axes...)}, param{"keep_dims", BoolScalar(keepDims)})
}

// Reshape gives x a new shape with the same element count. A -1 is inferred;
// a 0 copies a dimension of x (by index before iOS17, right-aligned from it).
func (b *Builder) Reshape(name string, x *Var, shape ...int) *Var {
	return b.unary("reshape", name, x, param{"shape", Int32s(shape...)})
}

// Transpose permutes the axes of x: output axis i is input axis perm[i].
func (b *Builder) Transpose(name string, x *Var, perm ...int) *Var {
	return b.unary("transpose", name, x, param{"perm", Int32s(perm...)})
}

// SliceBySize takes size[i] elements from begin[i] on each axis (-1: to the
// end).
func (b *Builder) SliceBySize(name string, x *Var, begin, size []int) *Var {
	return b.unary("slice_by_size", name, x, param{"begin", Int32s(begin...)}, param{"size", Int32s(size...)})
}

// SliceOpts are slice_by_index's optional inputs; nil means the default
// (stride 1, masks false) on every axis.
type SliceOpts struct {
	Stride      []int
	BeginMask   []bool // ignore begin[i]: start at the traversal's start
	EndMask     []bool // ignore end[i]: run to the traversal's end
	SqueezeMask []bool // take only begin[i] and drop the axis
}

// SliceByIndex is numpy's x[begin₀:end₀:stride₀, …] with masks.
func (b *Builder) SliceByIndex(name string, x *Var, begin, end []int, opt SliceOpts) *Var {
	if !b.ok() || !b.use("slice_by_index", name, "x", x) {
		return b.bad
	}
	r := x.Type.Shape.Rank()
	stride := opt.Stride
	if stride == nil {
		stride = filled(r, 1)
	}
	mask := func(m []bool) *Value {
		if m == nil {
			m = make([]bool, r)
		}
		return Bools(m...)
	}
	return b.call1("slice_by_index", name, []Arg{arg("x", x)},
		param{"begin", Int32s(begin...)}, param{"end", Int32s(end...)}, param{"stride", Int32s(stride...)},
		param{"begin_mask", mask(opt.BeginMask)}, param{"end_mask", mask(opt.EndMask)},
		param{"squeeze_mask", mask(opt.SqueezeMask)})
}

// Concat joins xs along axis; with interleave, it takes one slice from each
// input in turn.
func (b *Builder) Concat(name string, axis int, interleave bool, xs ...*Var) *Var {
	if !b.ok() {
		return b.bad
	}
	if len(xs) == 0 {
		b.failf("mil: concat %q: no values", name)
		return b.bad
	}
	values := Arg{Name: "values", Tuple: true}
	for i, x := range xs {
		if !b.use("concat", name, fmt.Sprintf("values[%d]", i), x) {
			return b.bad
		}
		values.Bindings = append(values.Bindings, Binding{Var: x})
	}
	return b.call1("concat", name, []Arg{values},
		param{"axis", IntScalar(Int32, int64(axis))}, param{"interleave", BoolScalar(interleave)})
}

// Split cuts x along axis into pieces of the given sizes, named name_0,
// name_1, ….
func (b *Builder) Split(name string, x *Var, axis int, sizes []int) []*Var {
	return b.split(name, x, axis, len(sizes), param{"split_sizes", Int32s(sizes...)})
}

// SplitN cuts x along axis into n equal pieces, named name_0, name_1, ….
func (b *Builder) SplitN(name string, x *Var, axis, n int) []*Var {
	return b.split(name, x, axis, n, param{"num_splits", IntScalar(Int32, int64(n))})
}

func (b *Builder) split(name string, x *Var, axis, n int, p param) []*Var {
	n = min(max(n, 0), maxSplits)
	bad := func() []*Var {
		out := make([]*Var, n)
		for i := range out {
			out[i] = b.bad
		}
		return out
	}
	if !b.ok() || !b.use("split", name, "x", x) {
		return bad()
	}
	outs := make([]string, n)
	for i := range outs {
		outs[i] = fmt.Sprintf("%s_%d", name, i)
	}
	vars := b.call("split", name, []Arg{arg("x", x)}, []param{{"axis", IntScalar(Int32, int64(axis))}, p}, outs)
	if vars == nil {
		return bad()
	}
	return vars
}

// ExpandDims inserts size-1 axes at the given positions of the result.
func (b *Builder) ExpandDims(name string, x *Var, axes ...int) *Var {
	return b.unary("expand_dims", name, x, param{"axes", Int32s(axes...)})
}

// Squeeze removes the listed size-1 axes (all size-1 axes when none are
// listed; the list is then written out explicitly).
func (b *Builder) Squeeze(name string, x *Var, axes ...int) *Var {
	if !b.ok() || !b.use("squeeze", name, "x", x) {
		return b.bad
	}
	if len(axes) == 0 {
		for i, d := range x.Type.Shape {
			if d == 1 {
				axes = append(axes, i)
			}
		}
	}
	return b.call1("squeeze", name, []Arg{arg("x", x)}, param{"axes", Int32s(axes...)})
}

// SDPA is scaled_dot_product_attention (iOS18 only): softmax(q·kᵀ/√E + mask)·v.
// mask may be nil. Note that the ANE is reported to ignore the mask.
func (b *Builder) SDPA(name string, q, k, v, mask *Var) *Var {
	const typ = "scaled_dot_product_attention"
	if !b.ok() || !b.use(typ, name, "query", q) || !b.use(typ, name, "key", k) || !b.use(typ, name, "value", v) {
		return b.bad
	}
	inputs := []Arg{arg("query", q), arg("key", k), arg("value", v)}
	if mask != nil {
		if !b.use(typ, name, "attn_mask", mask) {
			return b.bad
		}
		inputs = append(inputs, arg("attn_mask", mask))
	}
	return b.call1(typ, name, inputs)
}

// QuantParams are the affine quantisation parameters of quantize, dequantize
// and constexpr_affine_dequantize: real = Scale·(q − ZeroPoint).
type QuantParams struct {
	Scale     *Value // a float scalar (per tensor) or vector (per channel along Axis)
	ZeroPoint *Value // nil for zeros of the quantised dtype, shaped like Scale
	Axis      int    // the channel axis of a vector Scale
}

// params returns the param consts of q: scale, zero_point (q's, or zeros of
// the quantised dtype d shaped like the scale) and, for a vector scale, axis.
// A d that is not int8/uint8 leaves the zero point out, so that inference
// reports the real problem (the dtype of the data).
func (q QuantParams) params(d DType) []param {
	ps := []param{{"scale", q.Scale}}
	switch {
	case q.ZeroPoint != nil:
		ps = append(ps, param{"zero_point", q.ZeroPoint})
	case slices.Contains(quantTypes, d) && q.Scale.Type.Shape.NumElements() >= 0:
		n := q.Scale.Type.Shape.NumElements()
		ps = append(ps, param{"zero_point", IntTensor(d, q.Scale.Type.Shape, make([]int64, n))})
	}
	if q.Scale.Type.Shape.Rank() == 1 {
		ps = append(ps, param{"axis", IntScalar(Int32, int64(q.Axis))})
	}
	return ps
}

// Quantize converts float x to out (Int8 or UInt8): clip(round(x/scale)+zp).
// iOS17 and later.
func (b *Builder) Quantize(name string, x *Var, out DType, q QuantParams) *Var {
	if !b.ok() || !b.use("quantize", name, "input", x) {
		return b.bad
	}
	if q.Scale == nil {
		b.failf("mil: quantize %q: nil scale", name)
		return b.bad
	}
	ps := append(q.params(out), param{"output_dtype", StringScalar(out.String())})
	return b.call1("quantize", name, []Arg{arg("input", x)}, ps...)
}

// Dequantize converts int8/uint8 x to the scale's float dtype:
// scale·(x − zp). iOS17 and later.
func (b *Builder) Dequantize(name string, x *Var, q QuantParams) *Var {
	if !b.ok() || !b.use("dequantize", name, "input", x) {
		return b.bad
	}
	if q.Scale == nil {
		b.failf("mil: dequantize %q: nil scale", name)
		return b.bad
	}
	return b.call1("dequantize", name, []Arg{arg("input", x)}, q.params(x.Type.DType)...)
}

// ConstexprAffineDequantize writes a compile-time dequantised weight from
// int8/uint8 data (typically a blob from Blob). iOS16 and later. The
// parameters are attributes up to iOS17 and inline inputs from iOS18, the
// forms Core ML serialises (mil-spec §2.6).
func (b *Builder) ConstexprAffineDequantize(name string, data *Value, q QuantParams) *Var {
	const typ = "constexpr_affine_dequantize"
	if !b.ok() || !b.checkName(typ, name) {
		return b.bad
	}
	if data == nil || q.Scale == nil {
		b.failf("mil: %s %q: nil data or scale", typ, name)
		return b.bad
	}
	if data.Blob != nil && (data.Blob.Path != WeightPath || !b.blobs[data.Blob.Offset]) {
		b.failf("mil: %s %q: the data's blob was not made by this builder's Blob", typ, name)
		return b.bad
	}
	// constexpr always takes an axis, even for scalar parameters.
	vals := []param{{"quantized_data", data}, {"axis", IntScalar(Int32, int64(q.Axis))}}
	for _, p := range q.params(data.Type.DType) {
		if p.name != "axis" {
			vals = append(vals, p)
		}
	}
	var args []Arg
	var attrs []Attr
	for _, p := range vals {
		v := p.v
		if v.Blob == nil {
			if err := v.Check(); err != nil {
				b.failf("mil: %s %q: %s: %v", typ, name, p.name, err)
				return b.bad
			}
			v = cloneValue(v)
			if slices.ContainsFunc(v.Floats, func(x float64) bool { return math.IsInf(x, 0) || math.IsNaN(x) }) {
				b.failf("mil: %s %q: %s is not finite", typ, name, p.name)
				return b.bad
			}
		}
		if b.target >= IOS18 {
			args = append(args, Arg{Name: p.name, Bindings: []Binding{{Value: v}}})
		} else {
			attrs = append(attrs, Attr{Name: p.name, Value: v})
		}
	}
	return b.single(b.emit(typ, name, args, attrs, []string{name}))
}
