package sim

import (
	"math"

	"github.com/anetop/anetop/mil"
)

func init() {
	ops["quantize"] = planQuantize
	ops["dequantize"] = planDequantize
	ops["constexpr_affine_dequantize"] = planConstexprAffine
}

// affineParam reads a quantisation parameter (scale or zero point) of an op
// on data of the given shape: a constant scalar, or a 1-D constant of
// shape[axis] elements when the op gives an axis. It returns the parameter and
// the shape that broadcasts it against the data, or nil when an optional
// parameter is absent.
func (p *planner) affineParam(name string, shape []int, required bool) (*tval, []int, error) {
	axis, hasAxis, err := p.quantAxis(len(shape))
	if err != nil {
		return nil, nil, err
	}
	tv, err := p.input(name, required)
	if err != nil || tv == nil {
		return nil, nil, err
	}
	if _, err := p.constant(tv, "input "+quote(name)); err != nil {
		return nil, nil, err
	}
	bshape := filled(len(shape), 1)
	switch {
	case tv.typ.IsScalar() || (len(tv.typ.Shape) == 1 && tv.typ.Shape[0] == 1 && !hasAxis):
		// broadcast everywhere
	case len(tv.typ.Shape) == 1 && hasAxis && tv.typ.Shape[0] == shape[axis]:
		bshape[axis] = shape[axis]
	default:
		return nil, nil, invalid("%s %v must be a scalar, or 1-D of x.shape[axis] elements with axis given", name, tv.typ)
	}
	return tv, bshape, nil
}

// paramView materialises an affine parameter as a broadcastable view.
func (p *planner) paramView(tv *tval, bshape []int) (view, error) {
	v, err := p.data(tv)
	if err != nil {
		return view{}, err
	}
	r, _ := reshapeView(v, bshape)
	return r, nil
}

// affineOperands returns the views quantize and dequantize read: x, the
// scale and, when given, the zero point.
func (p *planner) affineOperands(x, sc *tval, sshape []int, zp *tval, zshape []int) ([]view, error) {
	xv, err := p.data(x)
	if err != nil {
		return nil, err
	}
	sv, err := p.paramView(sc, sshape)
	if err != nil {
		return nil, err
	}
	if zp == nil {
		return []view{xv, sv}, nil
	}
	zv, err := p.paramView(zp, zshape)
	if err != nil {
		return nil, err
	}
	return []view{xv, sv, zv}, nil
}

// quantAxis reads the optional axis of quantize and dequantize.
func (p *planner) quantAxis(rank int) (int, bool, error) {
	a, err := p.arg("axis")
	if err != nil || a == nil {
		return 0, false, err
	}
	ax, err := p.paramInt("axis", 0, true)
	if err != nil {
		return 0, false, err
	}
	ax, err = normAxis(ax, rank)
	return ax, true, err
}

func planQuantize(p *planner) error {
	x, err := p.needFloat("input")
	if err != nil {
		return err
	}
	ods, err := p.paramString("output_dtype", "", true)
	if err != nil {
		return err
	}
	var to mil.DType
	switch ods {
	case "int8":
		to = mil.Int8
	case "uint8":
		to = mil.UInt8
	default:
		return invalid("output_dtype %q: choose int8 or uint8", ods)
	}
	shape := x.typ.Shape
	sc, sshape, err := p.affineParam("scale", shape, true)
	if err != nil {
		return err
	}
	zp, zshape, err := p.affineParam("zero_point", shape, false)
	if err != nil {
		return err
	}
	if zp != nil && zp.typ.DType != to {
		return invalid("zero_point is %v but output_dtype is %s", zp.typ, ods)
	}
	operands, err := p.affineOperands(x, sc, sshape, zp, zshape)
	if err != nil {
		return err
	}
	lo, hi := intRange(to)
	out, err := p.rowsOp(shape, operands, func(d []float32, in [][]float32) {
		xr, sr := in[0], in[1]
		var zr []float32
		if len(in) > 2 {
			zr = in[2]
		}
		for i := range d {
			q := math.RoundToEven(float64(xr[i] / sr[i]))
			if zr != nil {
				q += float64(zr[i])
			}
			if q != q {
				q = 0
			}
			d[i] = float32(min(max(q, lo), hi))
		}
	}, 1, to)
	if err != nil {
		return err
	}
	return p.out(0, out, to)
}

func planDequantize(p *planner) error {
	x, err := p.need("input")
	if err != nil {
		return err
	}
	if x.typ.DType != mil.Int8 && x.typ.DType != mil.UInt8 {
		return invalid("input must be int8 or uint8, found %v", x.typ)
	}
	shape := x.typ.Shape
	sc, sshape, err := p.affineParam("scale", shape, true)
	if err != nil {
		return err
	}
	if !isFloat16or32(sc.typ.DType) {
		return invalid("scale must be fp16 or fp32, found %v", sc.typ)
	}
	zp, zshape, err := p.affineParam("zero_point", shape, false)
	if err != nil {
		return err
	}
	if zp != nil && zp.typ.DType != x.typ.DType {
		return invalid("zero_point is %v but input is %v", zp.typ, x.typ)
	}
	operands, err := p.affineOperands(x, sc, sshape, zp, zshape)
	if err != nil {
		return err
	}
	dt := sc.typ.DType
	out, err := p.rowsOp(shape, operands, func(d []float32, in [][]float32) {
		xr, sr := in[0], in[1]
		if len(in) > 2 {
			zr := in[2]
			for i := range d {
				d[i] = sr[i] * (xr[i] - zr[i])
			}
			return
		}
		for i := range d {
			d[i] = sr[i] * xr[i]
		}
	}, 1, dt)
	if err != nil {
		return err
	}
	return p.out(0, out, dt)
}

// planConstexprAffine evaluates constexpr_affine_dequantize at compile time:
// out = scale·(q − zero_point), per axis for 1-D parameters. Its inputs are
// attributes up to iOS17 and arguments from iOS18; both are read.
func planConstexprAffine(p *planner) error {
	get := func(name string) (*tval, error) {
		if a := p.op.Attr(name); a != nil {
			if err := a.Check(); err != nil {
				return nil, invalid("%s: %v", name, err)
			}
			return &tval{typ: a.Type, konst: a}, nil
		}
		tv, err := p.arg(name)
		if err == nil && tv == nil {
			err = invalid("missing required parameter %q", name)
		}
		return tv, err
	}
	qd, err := get("quantized_data")
	if err != nil {
		return err
	}
	if qd.typ.DType != mil.Int8 && qd.typ.DType != mil.UInt8 {
		return invalid("quantized_data must be int8 or uint8, found %v", qd.typ)
	}
	zt, err := get("zero_point")
	if err != nil {
		return err
	}
	st, err := get("scale")
	if err != nil {
		return err
	}
	at, err := get("axis")
	if err != nil {
		return err
	}
	if !st.typ.DType.IsFloat() || st.typ.DType == mil.BF16 || st.typ.DType == mil.FP64 {
		return invalid("scale must be fp16 or fp32, found %v", st.typ)
	}
	shape := qd.typ.Shape
	if n := shape.NumElements(); n < 0 || n > maxArenaElems-p.konst {
		return unsupported("quantized_data %v exceeds the emulator's arena", qd.typ)
	}
	ac, err := p.constant(at, "axis")
	if err != nil {
		return err
	}
	if !at.typ.DType.IsInt() || len(ac) != 1 {
		return invalid("axis must be an integer scalar, found %v", at.typ)
	}
	axis, err := normAxis(int(ac[0]), len(shape))
	if err != nil {
		return err
	}
	q, err := p.constant(qd, "quantized_data")
	if err != nil {
		return err
	}
	z, err := p.constant(zt, "zero_point")
	if err != nil {
		return err
	}
	s, err := p.constant(st, "scale")
	if err != nil {
		return err
	}
	dim := shape[axis]
	per := func(name string, t mil.Type, c []float64) error {
		if len(c) == 1 && len(t.Shape) <= 1 || len(t.Shape) == 1 && len(c) == dim {
			return nil
		}
		return invalid("%s %v must be a scalar or have %d elements (axis %d)", name, t, dim, axis)
	}
	if err := per("scale", st.typ, s); err != nil {
		return err
	}
	if err := per("zero_point", zt.typ, z); err != nil {
		return err
	}
	inner := numel(shape[axis+1:])
	f := make([]float32, len(q))
	for i, v := range q {
		a := (i / max(inner, 1)) % max(dim, 1)
		sv, zv := s[0], z[0]
		if len(s) > 1 {
			sv = s[a]
		}
		if len(z) > 1 {
			zv = z[a]
		}
		f[i] = float32(mil.RoundFloat(mil.RoundFloat(sv*(v-zv), st.typ.DType), mil.FP16))
	}
	b, err := p.constBuf(f)
	if err != nil {
		return err
	}
	if err := p.nOutputs(1); err != nil {
		return err
	}
	o := p.op.Outputs[0]
	want := mil.Type{DType: st.typ.DType, Shape: shape}
	if !o.Type.Equal(want) {
		return invalid("%s is declared %v but the op produces %v", o.Name, o.Type, want)
	}
	p.vals[o] = &tval{typ: o.Type, v: denseView(b, shape)}
	return nil
}
