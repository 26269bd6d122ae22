package anetest

import (
	"fmt"
	"math"
	"slices"

	"github.com/anetop/anetop/mil"
)

// tensor is a value in the reference interpreter: elements in row-major
// order, each with an absolute error bound. Values are what a device that
// stores every op's result in its declared dtype should hold; e[i] bounds how
// far an honest fp16 device may be from v[i] (see the package doc). Bool
// tensors hold 0/1 with e = 1 where the comparison is too close to call;
// integer tensors hold integers with e in integer units.
type tensor struct {
	dt    mil.DType
	shape []int
	v, e  []float64
}

func newTensor(dt mil.DType, shape []int) *tensor {
	n := numel(shape)
	return &tensor{dt: dt, shape: slices.Clone(shape), v: make([]float64, n), e: make([]float64, n)}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func strides(shape []int) []int {
	s := make([]int, len(shape))
	st := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = st
		st *= shape[i]
	}
	return s
}

// filled returns n copies of x.
func filled(n, x int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = x
	}
	return s
}

// seq returns 0, 1, …, n−1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// without returns shape without the axes drop marks.
func without(shape []int, drop []bool) []int {
	out := []int{}
	for i, d := range shape {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return out
}

// unravel writes the multi-index of flat index i into idx.
func unravel(i int, shape, idx []int) {
	for k := len(shape) - 1; k >= 0; k-- {
		idx[k] = i % shape[k]
		i /= shape[k]
	}
}

// roundOut stores x as an op's fp16 (or fp32) result: the value is rounded to
// the dtype and the bound grows by one op's worth of rounding, ±1 ulp: half an
// ulp for the device's rounding and half for the reference's, which may round
// a slightly different exact value the other way.
func roundOut(d mil.DType, x, e float64) (float64, float64) {
	v := roundTo(x, d)
	if d.IsFloat() {
		e += 2*unit*math.Abs(x) + tinyHalf
	}
	return v, e
}

// accumulation is the extra error a sum of K terms with absolute sum S may pick
// up on the device beyond its operands' own errors: the rounding of each
// product to fp16 and of a partial sum, which grows like √K for independent
// round-to-nearest errors. Devices that accumulate in fp32 (the emulator) stay
// far inside it.
func accumulation(k int, s float64) float64 {
	return unit * (2 + math.Sqrt(float64(k))) * s
}

// interp evaluates a function in float64 with error bounds.
type interp struct {
	w      mil.Weights
	target mil.Target
	env    map[*mil.Var]*tensor
}

// reference runs f on the given inputs and returns its outputs. Every op's
// result is checked against the type the program declares for it, so the
// reference and mil's type inference also check each other.
func reference(f *mil.Function, w mil.Weights, inputs []*tensor) (outs []*tensor, err error) {
	defer func() {
		// A panic here is a bug in the reference; report it against the
		// case rather than losing the rest of the suite.
		if r := recover(); r != nil {
			outs, err = nil, fmt.Errorf("reference: internal error: %v", r)
		}
	}()
	t, ok := mil.ParseTarget(f.Opset)
	if !ok {
		return nil, fmt.Errorf("reference: unknown opset %q", f.Opset)
	}
	in := &interp{w: w, target: t, env: map[*mil.Var]*tensor{}}
	if len(inputs) != len(f.Inputs) {
		return nil, fmt.Errorf("reference: %d inputs given, function takes %d", len(inputs), len(f.Inputs))
	}
	for i, v := range f.Inputs {
		if !slices.Equal(inputs[i].shape, []int(v.Type.Shape)) {
			return nil, fmt.Errorf("reference: input %s is %v, got %v", v.Name, v.Type.Shape, inputs[i].shape)
		}
		in.env[v] = inputs[i]
	}
	for _, op := range f.Ops {
		c := &opCtx{in: in, op: op}
		outs, err := c.eval()
		if err != nil {
			return nil, fmt.Errorf("reference: %s: %w", op.Where(), err)
		}
		if len(outs) != len(op.Outputs) {
			return nil, fmt.Errorf("reference: %s: computes %d outputs, the program declares %d", op.Where(), len(outs), len(op.Outputs))
		}
		for j, o := range outs {
			decl := op.Outputs[j].Type
			if o.dt != decl.DType || !slices.Equal(o.shape, []int(decl.Shape)) {
				return nil, fmt.Errorf("reference: %s: output %s is %v %v by the spec, the program declares %v",
					op.Where(), op.Outputs[j].Name, o.dt, o.shape, decl)
			}
			in.env[op.Outputs[j]] = o
		}
	}
	outs = make([]*tensor, len(f.Outputs))
	for i, v := range f.Outputs {
		outs[i] = in.env[v]
		if outs[i] == nil {
			return nil, fmt.Errorf("reference: output %s is never computed", v.Name)
		}
	}
	return outs, nil
}

// opCtx evaluates one operation. Its accessors (need, opt, ints, axis, …)
// keep the first error in err, as bufio.Scanner does: once err is set they do
// nothing and return zero values, so an op reads its inputs and parameters,
// then checks c.err once before it uses them.
type opCtx struct {
	in  *interp
	op  *mil.Operation
	err error
}

// failf records an error unless an earlier one is already recorded.
func (c *opCtx) failf(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

// binding returns the single binding of an input, or of a constexpr
// attribute of the same name.
func (c *opCtx) binding(name string) (mil.Binding, bool) {
	if a := c.op.Arg(name); a != nil && len(a.Bindings) == 1 && !a.Tuple {
		return a.Bindings[0], true
	}
	if v := c.op.Attr(name); v != nil && name != "val" {
		return mil.Binding{Value: v}, true
	}
	return mil.Binding{}, false
}

// value turns a literal into a tensor, reading blobs from the weights.
func (c *opCtx) value(v *mil.Value) (*tensor, error) {
	t := newTensor(v.Type.DType, v.Type.Shape)
	n := len(t.v)
	switch {
	case v.Blob != nil:
		data, err := c.in.w.Resolve(v)
		if err != nil {
			return nil, err
		}
		vals, err := decodeBlob(v.Type.DType, data, n)
		if err != nil {
			return nil, err
		}
		copy(t.v, vals)
	case v.Type.DType.IsFloat() && len(v.Floats) == n:
		for i, x := range v.Floats {
			t.v[i] = roundTo(x, v.Type.DType)
		}
	case len(v.Ints) == n:
		for i, x := range v.Ints {
			t.v[i] = float64(x)
		}
	case v.Type.DType == mil.String:
		// Strings are parameters (pad_type, dtype), read through str; the
		// tensor only keeps the variable defined.
	case len(v.Bools) == n:
		for i, x := range v.Bools {
			if x {
				t.v[i] = 1
			}
		}
	default:
		return nil, fmt.Errorf("literal of type %v holds no numbers the reference can use", v.Type)
	}
	return t, nil
}

// opt returns an optional input; ok is false when it is absent.
func (c *opCtx) opt(name string) (t *tensor, ok bool) {
	if c.err != nil {
		return nil, false
	}
	b, ok := c.binding(name)
	if !ok {
		return nil, false
	}
	t, ok, err := c.bound(b)
	switch {
	case !ok:
		c.failf("input %s: variable %s has no value", name, b.Var.Name)
		return nil, false
	case err != nil:
		c.err = err
		return nil, false
	}
	return t, true
}

// bound returns the tensor a binding holds: a variable computed earlier, or
// a constant (a literal or a const variable); ok is false if it holds neither.
func (c *opCtx) bound(b mil.Binding) (t *tensor, ok bool, err error) {
	if b.Var != nil {
		if t := c.in.env[b.Var]; t != nil {
			return t, true, nil
		}
	}
	if v := b.ConstValue(); v != nil {
		t, err := c.value(v)
		return t, true, err
	}
	return nil, false, nil
}

// need returns a required input.
func (c *opCtx) need(name string) *tensor {
	t, ok := c.opt(name)
	if !ok {
		c.failf("missing input %s", name)
	}
	return t
}

// param returns the compile-time input name as get reads it, or def when the
// op omits it.
func param[T any](c *opCtx, name string, def T, get func(*mil.Value) (T, error)) T {
	var zero T
	if c.err != nil {
		return zero
	}
	b, ok := c.binding(name)
	if !ok {
		return def
	}
	v := b.ConstValue()
	if v == nil {
		c.failf("input %s must be a constant", name)
		return zero
	}
	x, err := get(v)
	if err != nil {
		c.err = err
		return zero
	}
	return x
}

func (c *opCtx) ints(name string, def []int) []int {
	return param(c, name, def, func(v *mil.Value) ([]int, error) {
		if v.Type.Shape.Rank() > 1 {
			return nil, fmt.Errorf("%s must be a vector", name)
		}
		out, ok := v.AsInts()
		if !ok {
			return nil, fmt.Errorf("%s must hold integers", name)
		}
		return out, nil
	})
}

func (c *opCtx) intScalar(name string, def int) int {
	return param(c, name, def, func(v *mil.Value) (int, error) {
		x, ok := v.AsInts()
		if !ok || len(x) != 1 {
			return 0, fmt.Errorf("%s must be an integer scalar", name)
		}
		return x[0], nil
	})
}

func (c *opCtx) boolScalar(name string, def bool) bool {
	return param(c, name, def, func(v *mil.Value) (bool, error) {
		x, ok := v.AsBool()
		if !ok {
			return false, fmt.Errorf("%s must be a bool scalar", name)
		}
		return x, nil
	})
}

// bools returns n bools; all false when the op omits them.
func (c *opCtx) bools(name string, n int) []bool {
	return param(c, name, make([]bool, n), func(v *mil.Value) ([]bool, error) {
		if len(v.Bools) != n {
			return nil, fmt.Errorf("%s must hold %d bools", name, n)
		}
		return v.Bools, nil
	})
}

func (c *opCtx) str(name, def string) string {
	return param(c, name, def, func(v *mil.Value) (string, error) {
		s, ok := v.AsString()
		if !ok {
			return "", fmt.Errorf("%s must be a string", name)
		}
		return s, nil
	})
}

// dtype returns the dtype a string parameter names.
func (c *opCtx) dtype(name string) mil.DType {
	s := c.str(name, "")
	d, ok := mil.ParseDType(s)
	if !ok {
		c.failf("unknown %s %q", name, s)
	}
	return d
}

func (c *opCtx) floatScalar(name string, def float64) float64 {
	return param(c, name, def, func(v *mil.Value) (float64, error) {
		t, err := c.value(v)
		if err != nil {
			return 0, err
		}
		if len(t.v) != 1 {
			return 0, fmt.Errorf("%s must be a scalar", name)
		}
		return t.v[0], nil
	})
}

// axis normalises a possibly negative axis of a tensor of the given rank.
func (c *opCtx) axis(a, rank int) int {
	if c.err != nil {
		return 0
	}
	if a < -rank || a >= rank {
		c.failf("axis %d out of range for rank %d", a, rank)
		return 0
	}
	if a < 0 {
		a += rank
	}
	return a
}

// axes normalises a list of axes; it is nil after an error, so ranging over
// it before checking c.err is safe.
func (c *opCtx) axes(list []int, rank int) []int {
	out := make([]int, len(list))
	for i, a := range list {
		out[i] = c.axis(a, rank)
	}
	if c.err != nil {
		return nil
	}
	return out
}

func (c *opCtx) eval() ([]*tensor, error) {
	op := c.op
	switch op.Type {
	case "const":
		v := op.Attr("val")
		if v == nil {
			return nil, fmt.Errorf("const without val")
		}
		t, err := c.value(v)
		return []*tensor{t}, err
	case "constexpr_affine_dequantize":
		return c.affineDequantize()
	case "add", "sub", "mul", "real_div", "pow", "maximum", "minimum", "greater", "less":
		return c.binary()
	case "sqrt", "exp", "tanh", "sigmoid", "silu", "relu", "rsqrt", "log", "clip":
		return c.unary()
	case "cast":
		return c.cast()
	case "softmax":
		return c.softmax()
	case "select":
		return c.selectOp()
	case "matmul":
		return c.matmul()
	case "conv":
		return c.conv()
	case "reduce_sum", "reduce_mean", "reduce_max":
		return c.reduce()
	case "reshape":
		return c.reshape()
	case "transpose":
		return c.transpose()
	case "slice_by_size":
		return c.sliceBySize()
	case "slice_by_index":
		return c.sliceByIndex()
	case "concat":
		return c.concat()
	case "split":
		return c.split()
	case "expand_dims", "squeeze":
		return c.expandSqueeze()
	case "scaled_dot_product_attention":
		return c.sdpa()
	case "quantize":
		return c.quantize()
	case "dequantize":
		return c.dequantize()
	}
	return nil, fmt.Errorf("the reference does not implement %s", op.Type)
}

// broadcastShape is numpy's broadcast of several shapes.
func broadcastShape(shapes ...[]int) ([]int, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		for i, d := range s {
			j := rank - len(s) + i
			switch {
			case d == out[j] || d == 1:
			case out[j] == 1:
				out[j] = d
			default:
				return nil, fmt.Errorf("shapes %v do not broadcast", shapes)
			}
		}
	}
	return out, nil
}

// bcastOffset maps an index into a broadcast result to the flat offset of
// the element of a tensor of shape s that produced it.
func bcastOffset(idx, s, st []int) int {
	off := 0
	lead := len(idx) - len(s)
	for i, d := range s {
		if d != 1 {
			off += idx[lead+i] * st[i]
		}
	}
	return off
}

// elementwise applies f across broadcast operands.
func elementwise(dt mil.DType, ts []*tensor, f func(v, e []float64) (float64, float64)) (*tensor, error) {
	shapes := make([][]int, len(ts))
	sts := make([][]int, len(ts))
	for i, t := range ts {
		shapes[i] = t.shape
		sts[i] = strides(t.shape)
	}
	shape, err := broadcastShape(shapes...)
	if err != nil {
		return nil, err
	}
	out := newTensor(dt, shape)
	idx := make([]int, len(shape))
	v := make([]float64, len(ts))
	e := make([]float64, len(ts))
	for i := range out.v {
		unravel(i, shape, idx)
		for k, t := range ts {
			o := bcastOffset(idx, t.shape, sts[k])
			v[k], e[k] = t.v[o], t.e[o]
		}
		out.v[i], out.e[i] = f(v, e)
	}
	return out, nil
}

// spread bounds |f(t) − f(x)| for t within e of x, for the smooth monotone
// (or nearly so) functions of the unary ops: the larger of the change at
// either end of the interval and the first-order estimate from slope.
func spread(f func(float64) float64, x, e, slope float64) float64 {
	if e == 0 {
		return 0
	}
	fx := f(x)
	return max(math.Abs(f(x+e)-fx), math.Abs(f(x-e)-fx), math.Abs(slope)*e)
}

// exact marks values that are exactly ±inf or NaN: the bound is meaningless
// there, and the device must produce the same special value.
func exact(v, e float64) (float64, float64) {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return v, 0
	}
	return v, e
}

func (c *opCtx) binary() ([]*tensor, error) {
	x, y := c.need("x"), c.need("y")
	if c.err != nil {
		return nil, c.err
	}
	if x.dt != y.dt {
		return nil, fmt.Errorf("x is %v, y is %v", x.dt, y.dt)
	}
	dt := x.dt
	var f func(v, e []float64) (float64, float64)
	switch c.op.Type {
	case "add":
		f = func(v, e []float64) (float64, float64) { return roundOut(dt, v[0]+v[1], e[0]+e[1]) }
	case "sub":
		f = func(v, e []float64) (float64, float64) { return roundOut(dt, v[0]-v[1], e[0]+e[1]) }
	case "mul":
		f = func(v, e []float64) (float64, float64) {
			return roundOut(dt, v[0]*v[1], math.Abs(v[0])*e[1]+math.Abs(v[1])*e[0]+e[0]*e[1])
		}
	case "real_div":
		f = func(v, e []float64) (float64, float64) {
			q := v[0] / v[1]
			// |x/y − x'/y'| ≤ (|x|·ey + |y|·ex) / (|y|·(|y| − ey)).
			ay := math.Abs(v[1])
			eq := math.Inf(1)
			if ay > e[1] {
				eq = (math.Abs(v[0])*e[1] + ay*e[0]) / (ay * (ay - e[1]))
			}
			if e[0] == 0 && e[1] == 0 {
				eq = 0
			}
			return roundOut(dt, q, eq)
		}
	case "pow":
		f = func(v, e []float64) (float64, float64) {
			p := math.Pow(v[0], v[1])
			ep := 0.0
			for _, dx := range []float64{-e[0], 0, e[0]} {
				for _, dy := range []float64{-e[1], 0, e[1]} {
					ep = max(ep, math.Abs(math.Pow(v[0]+dx, v[1]+dy)-p))
				}
			}
			return roundOut(dt, p, ep)
		}
	case "maximum":
		f = func(v, e []float64) (float64, float64) { return math.Max(v[0], v[1]), math.Max(e[0], e[1]) }
	case "minimum":
		f = func(v, e []float64) (float64, float64) { return math.Min(v[0], v[1]), math.Max(e[0], e[1]) }
	case "greater", "less":
		dt = mil.Bool
		sign := 1.0
		if c.op.Type == "less" {
			sign = -1
		}
		f = func(v, e []float64) (float64, float64) {
			d := sign * (v[0] - v[1])
			r := 0.0
			if d > 0 {
				r = 1
			}
			// Too close to call when the operands' errors could swap them.
			if math.Abs(d) <= e[0]+e[1] && e[0]+e[1] > 0 {
				return r, 1
			}
			return r, 0
		}
	}
	out, err := elementwise(dt, []*tensor{x, y}, func(v, e []float64) (float64, float64) {
		return exact(f(v, e))
	})
	return []*tensor{out}, err
}

func (c *opCtx) unary() ([]*tensor, error) {
	x := c.need("x")
	if c.err != nil {
		return nil, c.err
	}
	dt := x.dt
	sigmoid := func(t float64) float64 { return 1 / (1 + math.Exp(-t)) }
	var g func(float64) float64  // the function
	var dg func(float64) float64 // its slope, for spread
	rounds := true
	switch c.op.Type {
	case "sqrt":
		g, dg = math.Sqrt, func(t float64) float64 { return 0.5 / math.Sqrt(t) }
	case "exp":
		g, dg = math.Exp, math.Exp
	case "tanh":
		g, dg = math.Tanh, func(t float64) float64 { return 1 - math.Tanh(t)*math.Tanh(t) }
	case "sigmoid":
		g, dg = sigmoid, func(t float64) float64 { s := sigmoid(t); return s * (1 - s) }
	case "silu":
		g = func(t float64) float64 { return t * sigmoid(t) }
		// silu is not monotone (minimum near −1.28); its slope never
		// exceeds 1.1, which spread's slope term covers.
		dg = func(float64) float64 { return 1.1 }
	case "relu":
		g, dg, rounds = func(t float64) float64 { return math.Max(t, 0) }, func(float64) float64 { return 1 }, false
	case "rsqrt", "log":
		// The epsilon is a constant of its own dtype (fp16 or, from iOS17,
		// fp32); its default is 1e-12 (rsqrt) or 1e-45 (log), which fp16
		// rounds to 0.
		def := 1e-12
		if c.op.Type == "log" {
			def = 1e-45
		}
		eps := c.floatScalar("epsilon", roundTo(def, dt))
		if c.op.Type == "rsqrt" {
			g = func(t float64) float64 { return 1 / math.Sqrt(t+eps) }
			dg = func(t float64) float64 { return 0.5 * math.Pow(t+eps, -1.5) }
		} else {
			g = func(t float64) float64 { return math.Log(t + eps) }
			dg = func(t float64) float64 { return 1 / (t + eps) }
		}
	case "clip":
		lo, hi := c.floatScalar("alpha", 0), c.floatScalar("beta", 0)
		g = func(t float64) float64 { return math.Min(math.Max(t, lo), hi) }
		dg, rounds = func(float64) float64 { return 1 }, false
	}
	if c.err != nil {
		return nil, c.err
	}
	out := newTensor(dt, x.shape)
	for i, t := range x.v {
		y := g(t)
		e := 0.0
		if x.e[i] > 0 {
			e = spread(g, t, x.e[i], dg(t))
		}
		if rounds {
			out.v[i], out.e[i] = exact(roundOut(dt, y, e))
		} else {
			out.v[i], out.e[i] = exact(y, e)
		}
	}
	return []*tensor{out}, nil
}

func (c *opCtx) cast() ([]*tensor, error) {
	x, d := c.need("x"), c.dtype("dtype")
	if c.err != nil {
		return nil, c.err
	}
	out := newTensor(d, x.shape)
	for i, t := range x.v {
		e := x.e[i]
		switch {
		case d.IsFloat():
			// Widening is exact; narrowing rounds. Either way the device
			// computes in fp16, so allow an fp16 rounding.
			if x.dt == d || (x.dt == mil.FP16 && d == mil.FP32) || !x.dt.IsFloat() {
				out.v[i], out.e[i] = roundTo(t, d), e
			} else {
				out.v[i], out.e[i] = roundOut(d, t, e)
			}
		case d == mil.Bool:
			if t != 0 {
				out.v[i] = 1
			}
			if math.Abs(t) <= e && e > 0 {
				out.e[i] = 1
			}
		default: // integers truncate toward zero, then saturate
			lo, hi := intRange(d)
			tr := func(u float64) float64 { return math.Min(math.Max(math.Trunc(u), lo), hi) }
			out.v[i] = tr(t)
			out.e[i] = math.Max(math.Abs(tr(t+e)-out.v[i]), math.Abs(tr(t-e)-out.v[i]))
		}
		out.v[i], out.e[i] = exact(out.v[i], out.e[i])
	}
	return []*tensor{out}, nil
}

func (c *opCtx) selectOp() ([]*tensor, error) {
	cond, a, b := c.need("cond"), c.need("a"), c.need("b")
	if c.err != nil {
		return nil, c.err
	}
	out, err := elementwise(a.dt, []*tensor{cond, a, b}, func(v, e []float64) (float64, float64) {
		r, er := v[2], e[2]
		if v[0] != 0 {
			r, er = v[1], e[1]
		}
		if e[0] != 0 { // the condition may go either way
			er = math.Max(er, math.Abs(v[1]-v[2])+e[1]+e[2])
		}
		return exact(r, er)
	})
	return []*tensor{out}, err
}

// softmaxAxis computes softmax along axis a of x. Besides the propagation of
// the operands' errors (|dy_i| ≤ y_i·(e_i + Σ y_j·e_j) to first order), it
// allows the error of computing exp(x − max) in fp16: the subtraction's
// rounding is amplified by |x − max|, and the sum of the exponentials
// accumulates.
func softmaxAxis(x *tensor, a int) *tensor {
	out := newTensor(x.dt, x.shape)
	n := x.shape[a]
	inner := numel(x.shape[a+1:])
	outer := len(x.v) / (n * inner)
	for o := range outer {
		for in := range inner {
			at := func(k int) int { return (o*n+k)*inner + in }
			m := math.Inf(-1)
			for k := range n {
				m = math.Max(m, x.v[at(k)])
			}
			sum, ye, yz := 0.0, 0.0, 0.0
			ex := make([]float64, n)
			for k := range n {
				ex[k] = math.Exp(x.v[at(k)] - m)
				sum += ex[k]
			}
			for k := range n {
				y := ex[k] / sum
				ye += y * x.e[at(k)]
				yz += y * math.Abs(x.v[at(k)]-m)
			}
			for k := range n {
				i := at(k)
				y := ex[k] / sum
				e := y*(x.e[i]+ye) + y*unit*(4+math.Sqrt(float64(n))+math.Abs(x.v[i]-m)+yz)
				out.v[i], out.e[i] = exact(roundOut(x.dt, y, e))
			}
		}
	}
	return out
}

func (c *opCtx) softmax() ([]*tensor, error) {
	x, a := c.need("x"), c.intScalar("axis", -1)
	if c.err != nil {
		return nil, c.err
	}
	if a = c.axis(a, len(x.shape)); c.err != nil {
		return nil, c.err
	}
	return []*tensor{softmaxAxis(x, a)}, nil
}

// swapLast2 returns x with its last two axes swapped.
func swapLast2(x *tensor) *tensor {
	r := len(x.shape)
	perm := seq(r)
	perm[r-1], perm[r-2] = r-2, r-1
	return permute(x, perm)
}

// permute returns the transpose of x: out.shape[i] = x.shape[perm[i]].
func permute(x *tensor, perm []int) *tensor {
	shape := make([]int, len(perm))
	for i, p := range perm {
		shape[i] = x.shape[p]
	}
	out := newTensor(x.dt, shape)
	st := strides(x.shape)
	idx := make([]int, len(shape))
	for i := range out.v {
		unravel(i, shape, idx)
		off := 0
		for k, p := range perm {
			off += idx[k] * st[p]
		}
		out.v[i], out.e[i] = x.v[off], x.e[off]
	}
	return out
}

// matmulRef is numpy matmul with transposes and batch broadcasting.
func matmulRef(x, y *tensor, tx, ty bool, dt mil.DType) (*tensor, error) {
	rx, ry := len(x.shape), len(y.shape)
	if rx == 0 || ry == 0 {
		return nil, fmt.Errorf("matmul of a scalar")
	}
	if rx == 1 {
		x = view(x, []int{1, x.shape[0]})
	}
	if ry == 1 {
		y = view(y, []int{y.shape[0], 1})
	}
	if tx {
		x = swapLast2(x)
	}
	if ty {
		y = swapLast2(y)
	}
	m, k := x.shape[len(x.shape)-2], x.shape[len(x.shape)-1]
	k2, n := y.shape[len(y.shape)-2], y.shape[len(y.shape)-1]
	if k != k2 {
		return nil, fmt.Errorf("inner dimensions %d and %d differ", k, k2)
	}
	xb, yb := x.shape[:len(x.shape)-2], y.shape[:len(y.shape)-2]
	batch, err := broadcastShape(xb, yb)
	if err != nil {
		return nil, err
	}
	shape := append(slices.Clone(batch), m, n)
	out := newTensor(dt, shape)
	xbs, ybs := strides(xb), strides(yb)
	bidx := make([]int, len(batch))
	for b := range numel(batch) {
		unravel(b, batch, bidx)
		xo := bcastOffset(bidx, xb, xbs) * m * k
		yo := bcastOffset(bidx, yb, ybs) * k * n
		for i := range m {
			for j := range n {
				sum, abs, e := 0.0, 0.0, 0.0
				for l := range k {
					a, ea := x.v[xo+i*k+l], x.e[xo+i*k+l]
					bb, eb := y.v[yo+l*n+j], y.e[yo+l*n+j]
					sum += a * bb
					abs += math.Abs(a * bb)
					e += math.Abs(a)*eb + math.Abs(bb)*ea + ea*eb
				}
				o := (b*m+i)*n + j
				out.v[o], out.e[o] = exact(roundOut(dt, sum, e+accumulation(k, abs)))
			}
		}
	}
	// numpy drops the axes it inserted for rank-1 operands.
	if rx == 1 {
		out.shape = slices.Delete(out.shape, len(out.shape)-2, len(out.shape)-1)
	}
	if ry == 1 {
		out.shape = out.shape[:len(out.shape)-1]
	}
	return out, nil
}

func (c *opCtx) matmul() ([]*tensor, error) {
	x, y := c.need("x"), c.need("y")
	tx, ty := c.boolScalar("transpose_x", false), c.boolScalar("transpose_y", false)
	if c.err != nil {
		return nil, c.err
	}
	out, err := matmulRef(x, y, tx, ty, x.dt)
	return []*tensor{out}, err
}

// convPad resolves one spatial axis of a convolution as mil-spec §4.7's
// table says: the zero padding before and after, and the output size.
func convPad(padType string, d, k, s, dil, customB, customA int) (before, after, out int, err error) {
	keff := (k-1)*dil + 1
	switch padType {
	case "valid":
	case "custom":
		before, after = customB, customA
	case "same", "same_lower":
		ceil := (d + s - 1) / s
		total := max(0, s*ceil-d+keff-s)
		before, after = total/2, total-total/2 // same: the extra pad at the end
		if padType == "same_lower" {
			before, after = after, before
		}
		return before, after, ceil, nil
	default:
		return 0, 0, 0, fmt.Errorf("unknown pad_type %q", padType)
	}
	if d+before+after < keff {
		return 0, 0, 0, fmt.Errorf("kernel larger than the padded input")
	}
	return before, after, (d+before+after-keff)/s + 1, nil
}

func (c *opCtx) conv() ([]*tensor, error) {
	x, w := c.need("x"), c.need("weight")
	if c.err != nil {
		return nil, c.err
	}
	r := len(x.shape)
	ns := r - 2
	if ns < 1 || len(w.shape) != r {
		return nil, fmt.Errorf("x %v and weight %v do not make a convolution", x.shape, w.shape)
	}
	strd, dil := c.ints("strides", filled(ns, 1)), c.ints("dilations", filled(ns, 1))
	pad, padType := c.ints("pad", make([]int, 2*ns)), c.str("pad_type", "valid")
	groups := c.intScalar("groups", 1)
	bias, hasBias := c.opt("bias")
	if c.err != nil {
		return nil, c.err
	}
	if len(strd) != ns || len(dil) != ns || len(pad) != 2*ns || groups < 1 {
		return nil, fmt.Errorf("bad conv parameters")
	}
	nb, cin, cout := x.shape[0], x.shape[1], w.shape[0]
	cg, og := cin/groups, cout/groups
	if cg*groups != cin || og*groups != cout || w.shape[1] != cg {
		return nil, fmt.Errorf("channels %d→%d do not split into %d groups with weight %v", cin, cout, groups, w.shape)
	}
	before := make([]int, ns)
	outSp := make([]int, ns)
	for i := range ns {
		b, _, o, err := convPad(padType, x.shape[2+i], w.shape[2+i], strd[i], dil[i], pad[2*i], pad[2*i+1])
		if err != nil {
			return nil, err
		}
		before[i], outSp[i] = b, o
	}
	shape := append([]int{nb, cout}, outSp...)
	out := newTensor(x.dt, shape)
	kSp := w.shape[2:]
	xSp := x.shape[2:]
	xst, wst := strides(x.shape), strides(w.shape)
	oidx := make([]int, ns)
	kidx := make([]int, ns)
	nk := numel(kSp)
	for n := range nb {
		for o := range cout {
			g := o / og
			for p := range numel(outSp) {
				unravel(p, outSp, oidx)
				sum, abs, e := 0.0, 0.0, 0.0
				for ci := range cg {
					ch := g*cg + ci
					for kk := range nk {
						unravel(kk, kSp, kidx)
						xoff := n*xst[0] + ch*xst[1]
						inside := true
						for a := range ns {
							pos := oidx[a]*strd[a] + kidx[a]*dil[a] - before[a]
							if pos < 0 || pos >= xSp[a] {
								inside = false // zero padding
								break
							}
							xoff += pos * xst[2+a]
						}
						if !inside {
							continue
						}
						woff := o*wst[0] + ci*wst[1]
						for a := range ns {
							woff += kidx[a] * wst[2+a]
						}
						xv, xe := x.v[xoff], x.e[xoff]
						wv, we := w.v[woff], w.e[woff]
						sum += xv * wv
						abs += math.Abs(xv * wv)
						e += math.Abs(xv)*we + math.Abs(wv)*xe + xe*we
					}
				}
				e += accumulation(cg*nk, abs)
				if hasBias {
					sum += bias.v[o]
					e += bias.e[o]
				}
				i := (n*cout+o)*numel(outSp) + p
				out.v[i], out.e[i] = exact(roundOut(x.dt, sum, e))
			}
		}
	}
	return []*tensor{out}, nil
}

func (c *opCtx) reduce() ([]*tensor, error) {
	x := c.need("x")
	if c.err != nil {
		return nil, c.err
	}
	r := len(x.shape)
	axes, keep := c.ints("axes", seq(r)), c.boolScalar("keep_dims", false)
	reduced := make([]bool, r)
	for _, a := range c.axes(axes, r) {
		reduced[a] = true
	}
	if c.err != nil {
		return nil, c.err
	}
	// Reduce onto the keep_dims shape, then drop the axes if asked.
	kshape := slices.Clone(x.shape)
	k := 1
	for i, red := range reduced {
		if red {
			k *= kshape[i]
			kshape[i] = 1
		}
	}
	out := newTensor(x.dt, kshape)
	sum := make([]float64, len(out.v))
	abs := make([]float64, len(out.v))
	esum := make([]float64, len(out.v))
	mx := make([]float64, len(out.v))
	for i := range mx {
		mx[i] = math.Inf(-1)
	}
	kst := strides(kshape)
	idx := make([]int, r)
	for i, v := range x.v {
		unravel(i, x.shape, idx)
		o := bcastOffset(idx, kshape, kst)
		sum[o] += v
		abs[o] += math.Abs(v)
		esum[o] += x.e[i]
		if v > mx[o] {
			mx[o] = v
		}
		out.e[o] = math.Max(out.e[o], x.e[i]) // for max: 1-Lipschitz in the ∞-norm
	}
	for o := range out.v {
		switch c.op.Type {
		case "reduce_max":
			out.v[o], out.e[o] = exact(mx[o], out.e[o])
		case "reduce_sum":
			out.v[o], out.e[o] = exact(roundOut(x.dt, sum[o], esum[o]+accumulation(k, abs[o])))
		case "reduce_mean":
			// The device may multiply by a rounded 1/K: one more rounding.
			m := sum[o] / float64(k)
			e := (esum[o]+accumulation(k, abs[o]))/float64(k) + unit*math.Abs(m)
			out.v[o], out.e[o] = exact(roundOut(x.dt, m, e))
		}
	}
	if !keep {
		out.shape = without(x.shape, reduced)
	}
	return []*tensor{out}, nil
}

// view returns a tensor sharing x's data with another shape.
func view(x *tensor, shape []int) *tensor {
	return &tensor{dt: x.dt, shape: shape, v: x.v, e: x.e}
}

func (c *opCtx) reshape() ([]*tensor, error) {
	x, want := c.need("x"), c.ints("shape", nil)
	if c.err != nil {
		return nil, c.err
	}
	shape := make([]int, len(want))
	infer := -1
	for i, d := range want {
		switch {
		case d == -1:
			infer = i
			shape[i] = 1
		case d == 0 && c.in.target >= mil.IOS17:
			// iOS17 right-aligns the 0s against x's shape.
			if j := len(x.shape) - len(want) + i; j >= 0 {
				shape[i] = x.shape[j]
			} else {
				shape[i] = 1
			}
		case d == 0:
			if i >= len(x.shape) {
				return nil, fmt.Errorf("0 at %d beyond x's rank", i)
			}
			shape[i] = x.shape[i]
		default:
			shape[i] = d
		}
	}
	if infer >= 0 {
		shape[infer] = len(x.v) / numel(shape)
	}
	if numel(shape) != len(x.v) {
		return nil, fmt.Errorf("cannot reshape %v to %v", x.shape, want)
	}
	return []*tensor{view(x, shape)}, nil
}

func (c *opCtx) transpose() ([]*tensor, error) {
	x, perm := c.need("x"), c.ints("perm", nil)
	if c.err != nil {
		return nil, c.err
	}
	if len(perm) != len(x.shape) {
		return nil, fmt.Errorf("perm %v for rank %d", perm, len(x.shape))
	}
	p := c.axes(perm, len(perm))
	if c.err != nil {
		return nil, c.err
	}
	return []*tensor{permute(x, p)}, nil
}

// gatherSlice returns the elements of x at start[i] + j·step[i] along each axis,
// j < count[i]: the common core of the slice ops.
func gatherSlice(x *tensor, start, step, count []int) *tensor {
	out := newTensor(x.dt, count)
	st := strides(x.shape)
	idx := make([]int, len(count))
	for i := range out.v {
		unravel(i, count, idx)
		off := 0
		for a := range idx {
			off += (start[a] + idx[a]*step[a]) * st[a]
		}
		out.v[i], out.e[i] = x.v[off], x.e[off]
	}
	return out
}

func (c *opCtx) sliceBySize() ([]*tensor, error) {
	x, begin, size := c.need("x"), c.ints("begin", nil), c.ints("size", nil)
	if c.err != nil {
		return nil, c.err
	}
	r := len(x.shape)
	if len(begin) != r || len(size) != r {
		return nil, fmt.Errorf("begin %v and size %v for rank %d", begin, size, r)
	}
	start, step, count := make([]int, r), make([]int, r), make([]int, r)
	for a, d := range x.shape {
		b := begin[a]
		if b < 0 {
			b += d
		}
		s := size[a]
		if s == -1 {
			s = d - b
		}
		if b < 0 || s < 1 || b+s > d {
			return nil, fmt.Errorf("slice %d+%d outside axis %d of size %d", begin[a], size[a], a, d)
		}
		start[a], step[a], count[a] = b, 1, s
	}
	return []*tensor{gatherSlice(x, start, step, count)}, nil
}

// pySlice resolves begin:end:stride on an axis of size d as Python does,
// with masks meaning "from the start" and "to the end" of the traversal.
func pySlice(d, begin, end, stride int, beginMask, endMask bool) (start, count int) {
	lower, upper := 0, d
	if stride < 0 {
		lower, upper = -1, d-1
	}
	norm := func(i int) int {
		if i < 0 {
			i += d
			if i < lower {
				i = lower
			}
		} else if i > upper {
			i = upper
		}
		return i
	}
	switch {
	case beginMask && stride > 0:
		start = lower
	case beginMask:
		start = upper
	default:
		start = norm(begin)
	}
	var stop int
	switch {
	case endMask && stride > 0:
		stop = upper
	case endMask:
		stop = lower
	default:
		stop = norm(end)
	}
	if stride > 0 {
		count = (stop - start + stride - 1) / stride
	} else {
		count = (start - stop - stride - 1) / -stride
	}
	return start, max(count, 0)
}

func (c *opCtx) sliceByIndex() ([]*tensor, error) {
	x := c.need("x")
	if c.err != nil {
		return nil, c.err
	}
	r := len(x.shape)
	begin, end, stride := c.ints("begin", nil), c.ints("end", nil), c.ints("stride", filled(r, 1))
	bm, em, sm := c.bools("begin_mask", r), c.bools("end_mask", r), c.bools("squeeze_mask", r)
	if c.err != nil {
		return nil, c.err
	}
	if len(begin) != r || len(end) != r || len(stride) != r {
		return nil, fmt.Errorf("begin/end/stride lengths for rank %d", r)
	}
	start, count := make([]int, r), make([]int, r)
	var shape []int
	for a, d := range x.shape {
		if sm[a] {
			// begin_mask means "ignore begin": the axis starts at 0, so a
			// squeezed axis with its begin masked takes element 0
			// (mil-spec §4.9; coremltools does the same).
			b := begin[a]
			if bm[a] {
				b = 0
			}
			if b < 0 {
				b += d
			}
			if b < 0 || b >= d {
				return nil, fmt.Errorf("squeezed index %d outside axis %d", begin[a], a)
			}
			start[a], count[a] = b, 1
			continue
		}
		if stride[a] == 0 {
			return nil, fmt.Errorf("stride 0")
		}
		start[a], count[a] = pySlice(d, begin[a], end[a], stride[a], bm[a], em[a])
		shape = append(shape, count[a])
	}
	out := gatherSlice(x, start, stride, count)
	if shape == nil {
		shape = []int{}
	}
	out.shape = shape
	return []*tensor{out}, nil
}

func (c *opCtx) concat() ([]*tensor, error) {
	a := c.op.Arg("values")
	if a == nil || len(a.Bindings) == 0 {
		return nil, fmt.Errorf("no values")
	}
	vals := make([]*tensor, len(a.Bindings))
	for i, b := range a.Bindings {
		t, ok, err := c.bound(b)
		switch {
		case err != nil:
			return nil, err
		case !ok:
			return nil, fmt.Errorf("values[%d] has no value", i)
		}
		vals[i] = t
	}
	ax := c.axis(c.intScalar("axis", 0), len(vals[0].shape))
	inter := c.boolScalar("interleave", false)
	if c.err != nil {
		return nil, c.err
	}
	shape := slices.Clone(vals[0].shape)
	shape[ax] = 0
	for _, t := range vals {
		shape[ax] += t.shape[ax]
	}
	out := newTensor(vals[0].dt, shape)
	outer := numel(shape[:ax])
	inner := numel(shape[ax+1:])
	n := len(vals)
	for o := range outer {
		pos := 0 // running position along the axis when not interleaving
		for k, t := range vals {
			ta := t.shape[ax]
			for j := range ta {
				dst := pos + j
				if inter {
					dst = j*n + k // slice j of every input before slice j+1 of any
				}
				src := (o*ta + j) * inner
				copy(out.v[(o*shape[ax]+dst)*inner:][:inner], t.v[src:src+inner])
				copy(out.e[(o*shape[ax]+dst)*inner:][:inner], t.e[src:src+inner])
			}
			pos += ta
		}
	}
	return []*tensor{out}, nil
}

func (c *opCtx) split() ([]*tensor, error) {
	x, ax := c.need("x"), c.intScalar("axis", 0)
	if c.err != nil {
		return nil, c.err
	}
	r := len(x.shape)
	ax = c.axis(ax, r)
	sizes := c.ints("split_sizes", nil)
	if c.err != nil {
		return nil, c.err
	}
	if sizes == nil {
		n := c.intScalar("num_splits", 0)
		if c.err != nil {
			return nil, c.err
		}
		if n < 1 || x.shape[ax]%n != 0 {
			return nil, fmt.Errorf("num_splits %d for axis of %d", n, x.shape[ax])
		}
		for range n {
			sizes = append(sizes, x.shape[ax]/n)
		}
	}
	var outs []*tensor
	start, step := make([]int, r), filled(r, 1)
	for _, s := range sizes {
		count := slices.Clone(x.shape)
		count[ax] = s
		outs = append(outs, gatherSlice(x, start, step, count))
		start[ax] += s
	}
	if start[ax] != x.shape[ax] {
		return nil, fmt.Errorf("split sizes %v do not cover axis of %d", sizes, x.shape[ax])
	}
	return outs, nil
}

func (c *opCtx) expandSqueeze() ([]*tensor, error) {
	x, axes := c.need("x"), c.ints("axes", nil)
	if c.err != nil {
		return nil, c.err
	}
	r := len(x.shape)
	if c.op.Type == "expand_dims" {
		norm := c.axes(axes, r+len(axes))
		if c.err != nil {
			return nil, c.err
		}
		slices.Sort(norm)
		shape := slices.Clone(x.shape)
		for _, a := range norm {
			shape = slices.Insert(shape, a, 1)
		}
		return []*tensor{view(x, shape)}, nil
	}
	drop := make([]bool, r)
	if axes == nil {
		for i, d := range x.shape {
			drop[i] = d == 1
		}
	}
	for _, a := range c.axes(axes, r) {
		drop[a] = x.shape[a] == 1 // listed axes that are not 1 stay
	}
	if c.err != nil {
		return nil, c.err
	}
	return []*tensor{view(x, without(x.shape, drop))}, nil
}

// sdpa is softmax(Q·Kᵀ/√E)·V. attn_mask is ignored, as the ANE ignores it
// (ane-anchor §8.1): the conformance suite pins the hardware's behaviour, not
// the spec's.
func (c *opCtx) sdpa() ([]*tensor, error) {
	q, k, v := c.need("query"), c.need("key"), c.need("value")
	if c.err != nil {
		return nil, c.err
	}
	e := q.shape[len(q.shape)-1]
	s, err := matmulRef(q, k, false, true, q.dt)
	if err != nil {
		return nil, err
	}
	scale := roundTo(1/math.Sqrt(float64(e)), q.dt)
	for i := range s.v {
		// The scale itself may be rounded differently by the device: one
		// more unit of relative error.
		s.v[i], s.e[i] = exact(roundOut(q.dt, s.v[i]*scale, s.e[i]*scale+unit*math.Abs(s.v[i]*scale)))
	}
	p := softmaxAxis(s, len(s.shape)-1)
	out, err := matmulRef(p, v, false, false, q.dt)
	return []*tensor{out}, err
}

// quantParams holds the scale and zero point of quantize, dequantize and
// constexpr_affine_dequantize for data of a shape: per tensor (scalars) or
// per channel along axis.
type quantParams struct {
	scale, zp *tensor
	axis      int
	shape     []int
}

// quantParams reads an op's quantisation parameters; a missing zero point is
// zero. Like the accessors, it records an error in c.err.
func (c *opCtx) quantParams(shape []int, axisRequired bool) *quantParams {
	p := &quantParams{shape: shape, scale: c.need("scale")}
	zp, ok := c.opt("zero_point")
	if c.err != nil {
		return nil
	}
	if !ok {
		zp = newTensor(mil.Int8, p.scale.shape)
	}
	p.zp = zp
	if len(p.scale.shape) == 1 || axisRequired {
		p.axis = c.axis(c.intScalar("axis", 0), len(shape))
	}
	return p
}

// at returns the scale and zero point for flat element i.
func (p *quantParams) at(i int) (s, zp float64) {
	if len(p.scale.v) == 1 {
		return p.scale.v[0], p.zp.v[0]
	}
	inner := numel(p.shape[p.axis+1:])
	ch := (i / inner) % p.shape[p.axis]
	return p.scale.v[ch], p.zp.v[ch]
}

// isPow2 reports whether x is ± a power of two, by which division is exact.
func isPow2(x float64) bool {
	f, _ := math.Frexp(math.Abs(x))
	return f == 0.5
}

func (c *opCtx) quantize() ([]*tensor, error) {
	x, d := c.need("input"), c.dtype("output_dtype")
	if c.err != nil {
		return nil, c.err
	}
	p := c.quantParams(x.shape, false)
	if c.err != nil {
		return nil, c.err
	}
	lo, hi := intRange(d)
	out := newTensor(d, x.shape)
	for i, t := range x.v {
		sc, zp := p.at(i)
		q := func(u float64) float64 { return math.Min(math.Max(math.RoundToEven(u)+zp, lo), hi) }
		r := t / sc
		// How far the device's x/scale may be from ours: the input's error,
		// and a rounding unless the scale is a power of two (then the
		// division is exact, and ties such as 2.5 must round to even).
		er := x.e[i] / math.Abs(sc)
		if !isPow2(sc) {
			er += 2 * unit * math.Abs(r)
		}
		out.v[i] = q(r)
		out.e[i] = math.Max(math.Abs(q(r+er)-out.v[i]), math.Abs(q(r-er)-out.v[i]))
	}
	return []*tensor{out}, nil
}

func (c *opCtx) dequantize() ([]*tensor, error) { return c.dequantizeFrom("input", false) }

func (c *opCtx) affineDequantize() ([]*tensor, error) {
	return c.dequantizeFrom("quantized_data", true)
}

// dequantizeFrom dequantizes the named input: dequantize, or, with its
// always-given axis, constexpr_affine_dequantize.
func (c *opCtx) dequantizeFrom(input string, axisRequired bool) ([]*tensor, error) {
	x := c.need(input)
	if c.err != nil {
		return nil, c.err
	}
	p := c.quantParams(x.shape, axisRequired)
	if c.err != nil {
		return nil, c.err
	}
	return []*tensor{dequant(x, p)}, nil
}

func dequant(x *tensor, p *quantParams) *tensor {
	out := newTensor(p.scale.dt, x.shape)
	for i, q := range x.v {
		sc, zp := p.at(i)
		out.v[i], out.e[i] = exact(roundOut(p.scale.dt, sc*(q-zp), math.Abs(sc)*x.e[i]))
	}
	return out
}
