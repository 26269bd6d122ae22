package sim

import (
	"slices"

	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/mil"
)

func init() {
	ops["matmul"] = planMatmul
	ops["conv"] = planConv
}

// gemmForm describes how sgemm reads a matrix view of rows×cols: stored
// row-major with leading dimension ld, or stored transposed (cols×rows).
func gemmForm(rows, cols, sr, sc int) (trans bool, ld int, ok bool) {
	if (cols == 1 || sc == 1) && (rows == 1 || sr >= cols) {
		ld = max(cols, 1)
		if rows > 1 {
			ld = sr
		}
		return false, ld, true
	}
	if (rows == 1 || sr == 1) && (cols == 1 || sc >= rows) {
		ld = max(rows, 1)
		if cols > 1 {
			ld = sc
		}
		return true, ld, true
	}
	return false, 0, false
}

// matOperand is one matmul operand as sgemm sees it, per output batch.
type matOperand struct {
	v     view
	trans bool
	ld    int
	offs  []int // element offset of each output batch's matrix
}

// operand prepares v (logical shape [..., rows, cols]) for sgemm over the
// output batch shape bshape, copying it dense only if its layout needs it.
func (p *planner) operand(v view, bshape []int) (matOperand, error) {
	r := len(v.shape)
	rows, cols := v.shape[r-2], v.shape[r-1]
	trans, ld, ok := gemmForm(rows, cols, v.strides[r-2], v.strides[r-1])
	if !ok {
		var err error
		if v, err = p.copyDense(v); err != nil {
			return matOperand{}, err
		}
		trans, ld = false, max(cols, 1)
	}
	bv := view{shape: v.shape[:r-2], strides: v.strides[:r-2]}
	st := broadcastView(bv, bshape)
	nb := numel(bshape)
	offs := make([]int, 0, nb)
	if len(bshape) == 0 {
		offs = append(offs, v.off)
	} else {
		pl := newPointLoop(bshape, st)
		pl.each([]int{v.off}, func(o []int) { offs = append(offs, o[0]) })
	}
	return matOperand{v: v, trans: trans, ld: ld, offs: offs}, nil
}

func swapLast(v view) view {
	r := len(v.shape)
	v.shape = slices.Clone(v.shape)
	v.strides = slices.Clone(v.strides)
	v.shape[r-1], v.shape[r-2] = v.shape[r-2], v.shape[r-1]
	v.strides[r-1], v.strides[r-2] = v.strides[r-2], v.strides[r-1]
	return v
}

// swapsLastTwo reports whether op is a transpose exchanging only the last two axes.
func swapsLastTwo(op *mil.Operation, rank int) bool {
	if op.Type != "transpose" || rank < 2 {
		return false
	}
	a := op.Arg("perm")
	if a == nil || len(a.Bindings) != 1 {
		return false
	}
	c := a.Bindings[0].ConstValue()
	perm, ok := c.AsInts()
	if !ok || len(perm) != rank {
		return false
	}
	for i, x := range perm {
		if x < 0 {
			x += rank
		}
		want := i
		switch i {
		case rank - 2:
			want = rank - 1
		case rank - 1:
			want = rank - 2
		}
		if x != want {
			return false
		}
	}
	return true
}

func planMatmul(p *planner) error {
	rd := p.reader()
	x, y := rd.need("x"), rd.need("y")
	tx, ty := rd.paramBool("transpose_x", false), rd.paramBool("transpose_y", false)
	if rd.err != nil {
		return rd.err
	}
	if !isFloat16or32(x.typ.DType) || !isFloat16or32(y.typ.DType) {
		return invalid("matmul operands must be fp16 or fp32, found %v and %v", x.typ, y.typ)
	}
	outDT := x.typ.DType
	if x.typ.DType != y.typ.DType {
		switch {
		case p.opset >= 17 && x.konst != nil:
			outDT = y.typ.DType
		case p.opset >= 17 && y.konst != nil:
		default:
			return invalid("x is %v and y is %v; they must have the same dtype", x.typ, y.typ)
		}
	}
	xv, yv := rd.data(x), rd.data(y)
	if rd.err != nil {
		return rd.err
	}
	rx, ry := len(xv.shape), len(yv.shape)
	if rx == 0 || ry == 0 {
		return invalid("matmul operands must have rank ≥ 1")
	}
	if (rx == 1 && tx) || (ry == 1 && ty) {
		return invalid("a transpose flag is set on a rank-1 operand")
	}
	if rx == 1 {
		xv = view{buf: xv.buf, off: xv.off, shape: []int{1, xv.shape[0]}, strides: []int{0, xv.strides[0]}}
	}
	if ry == 1 {
		yv = view{buf: yv.buf, off: yv.off, shape: []int{yv.shape[0], 1}, strides: []int{yv.strides[0], 0}}
	}
	if tx {
		xv = swapLast(xv)
	}
	if ty {
		yv = swapLast(yv)
	}
	m, k := xv.shape[len(xv.shape)-2], xv.shape[len(xv.shape)-1]
	k2, n := yv.shape[len(yv.shape)-2], yv.shape[len(yv.shape)-1]
	if k != k2 {
		return invalid("inner dimensions differ: x is %v, y is %v (transpose_x=%v, transpose_y=%v)", x.typ, y.typ, tx, ty)
	}
	bshape, err := broadcastShapes(xv.shape[:len(xv.shape)-2], yv.shape[:len(yv.shape)-2])
	if err != nil {
		return err
	}
	shape := append(slices.Clone(bshape), m, n)
	declared := slices.Clone(bshape)
	if rx > 1 {
		declared = append(declared, m)
	}
	if ry > 1 {
		declared = append(declared, n)
	}
	// Peephole: a result consumed only by a transpose of its last two axes is
	// written transposed, so that transpose becomes a free view.
	o := p.op.Outputs[0]
	transposed := rx > 1 && ry > 1 && !p.outs[o] && len(p.uses[o]) == 1 && swapsLastTwo(p.uses[o][0], len(shape))
	xo, yo := rd.operand(xv, bshape), rd.operand(yv, bshape)
	if rd.err != nil {
		return rd.err
	}
	ob, err := p.newBuf(numel(shape))
	if err != nil {
		return err
	}
	out := denseView(ob, shape)
	nb := numel(bshape)
	mat := m * n
	var run func()
	if transposed {
		// Cᵀ = Yᵀ·Xᵀ, written as [..., n, m].
		out.strides[len(shape)-2], out.strides[len(shape)-1] = 1, m
		run = func() {
			c := ob.data
			for b := range nb {
				blas.Sgemm(!yo.trans, !xo.trans, n, m, k, 1, yo.v.buf.data[yo.offs[b]:], yo.ld,
					xo.v.buf.data[xo.offs[b]:], xo.ld, 0, c[b*mat:], m)
			}
			round16(c)
		}
	} else if fold := nb > 1 && !xo.trans && xo.ld == k && allEqual(yo.offs) && evenlySpaced(xo.offs, m*k); fold {
		// Shared right operand: one sgemm over all batches stacked as rows.
		run = func() {
			c := ob.data
			blas.Sgemm(false, yo.trans, nb*m, n, k, 1, xo.v.buf.data[xo.offs[0]:], xo.ld,
				yo.v.buf.data[yo.offs[0]:], yo.ld, 0, c, n)
			round16(c)
		}
	} else {
		run = func() {
			c := ob.data
			for b := range nb {
				blas.Sgemm(xo.trans, yo.trans, m, n, k, 1, xo.v.buf.data[xo.offs[b]:], xo.ld,
					yo.v.buf.data[yo.offs[b]:], yo.ld, 0, c[b*mat:], n)
			}
			round16(c)
		}
	}
	if k == 0 {
		run = func() { clear(ob.data) }
	}
	p.emit(run, 2*float64(nb)*float64(m)*float64(n)*float64(k), []view{xo.v, yo.v}, ob)
	if !slices.Equal(declared, shape) {
		var ok bool
		if out, ok = reshapeView(out, declared); !ok {
			return invalid("internal: rank-1 matmul result")
		}
	}
	return p.out(0, out, outDT)
}

func allEqual(xs []int) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}

func evenlySpaced(xs []int, d int) bool {
	for i, x := range xs {
		if x != xs[0]+i*d {
			return false
		}
	}
	return true
}

// convGeom is the geometry of one spatial axis of a conv.
type convGeom struct {
	in, k, stride, dil, padBefore, out int
}

func planConv(p *planner) error {
	rd := p.reader()
	x, w := rd.need("x"), rd.need("weight")
	if rd.err != nil {
		return rd.err
	}
	if !isFloat16or32(x.typ.DType) || !isFloat16or32(w.typ.DType) {
		return invalid("conv operands must be fp16 or fp32, found %v and %v", x.typ, w.typ)
	}
	xs, ws := x.typ.Shape, w.typ.Shape
	ns := len(xs) - 2
	if ns < 1 || ns > 3 || len(ws) != len(xs) {
		return invalid("x %v and weight %v must both be [N, C, spatial…] with 1 to 3 spatial axes", x.typ, w.typ)
	}
	if ns == 3 {
		return unsupported("3-D conv is not implemented by the emulator")
	}
	groups := rd.paramInt("groups", 1, false)
	if rd.err != nil {
		return rd.err
	}
	nb, cin, cout := xs[0], xs[1], ws[0]
	if groups <= 0 || cin%groups != 0 || cout%groups != 0 || ws[1] != cin/groups {
		return invalid("groups=%d does not fit x %v and weight %v (weight must be [C_out, C_in/groups, k…])", groups, x.typ, w.typ)
	}
	// Hardware rule: wide conv inputs are rejected (ane-anchor §8.7).
	if cin > MaxConvInputChannels {
		return unsupported("conv with %d input channels: the ANE rejects convs wider than %d input channels "+
			"(32000 fails, research §8.7); use matmul for wide reductions", cin, MaxConvInputChannels)
	}
	strides, dils := rd.paramInts("strides", filled(ns, 1)), rd.paramInts("dilations", filled(ns, 1))
	padType, pads := rd.paramString("pad_type", "valid", false), rd.paramInts("pad", make([]int, 2*ns))
	if rd.err != nil {
		return rd.err
	}
	if len(strides) != ns || len(dils) != ns || len(pads) != 2*ns {
		return invalid("strides %v, dilations %v and pad %v need %d, %d and %d entries", strides, dils, pads, ns, ns, 2*ns)
	}
	geo := make([]convGeom, ns)
	for i := range ns {
		g := convGeom{in: xs[2+i], k: ws[2+i], stride: strides[i], dil: dils[i]}
		if g.stride <= 0 || g.dil <= 0 || g.stride > MaxAxis || g.dil > MaxAxis {
			return invalid("strides %v and dilations %v must be positive", strides, dils)
		}
		before, after := 0, 0 // pad is read only with pad_type custom
		switch padType {
		case mil.PadCustom:
			before, after = pads[2*i], pads[2*i+1]
			if before < 0 || after < 0 || before > MaxAxis || after > MaxAxis {
				return invalid("pad %v must be non-negative", pads)
			}
		case mil.PadValid, mil.PadSame, mil.PadSameLower:
		default:
			return invalid("pad_type %q: choose valid, same, same_lower or custom", padType)
		}
		out, pb, _, err := mil.ConvAxis(padType, g.in, g.k, g.stride, g.dil, before, after)
		if err != nil || out <= 0 {
			return invalid("kernel %v does not fit input %v with pad_type %s", ws, xs, padType)
		}
		g.out, g.padBefore = out, pb
		geo[i] = g
	}
	if ns == 1 {
		// A 1-D conv is a 2-D conv of height 1.
		geo = append([]convGeom{{in: 1, k: 1, stride: 1, dil: 1, out: 1}}, geo...)
	}
	outShape := []int{nb, cout}
	for _, g := range geo[len(geo)-ns:] {
		outShape = append(outShape, g.out)
	}
	xv, wv := rd.denseOf(x), rd.denseOf(w)
	if rd.err != nil {
		return rd.err
	}
	var bv *view
	if bt, err := p.arg("bias"); err != nil {
		return err
	} else if bt != nil {
		if len(bt.typ.Shape) != 1 || bt.typ.Shape[0] != cout {
			return invalid("bias %v must be [%d]", bt.typ, cout)
		}
		b, err := p.denseOf(bt)
		if err != nil {
			return err
		}
		bv = &b
	}
	gh, gw := geo[0], geo[1]
	cg, og := cin/groups, cout/groups
	kk := cg * gh.k * gw.k // reduction length
	plane := gh.out * gw.out
	inPlane := gh.in * gw.in
	direct := gh.k == 1 && gw.k == 1 && gh.stride == 1 && gw.stride == 1 && gh.padBefore == 0 && gw.padBefore == 0 &&
		gh.out == gh.in && gw.out == gw.in
	var col *buffer
	if !direct {
		if kk > maxArenaElems/max(plane, 1) {
			return unsupported("conv im2col matrix of %d×%d exceeds the emulator's arena", kk, plane)
		}
		var err error
		if col, err = p.newBuf(kk * plane); err != nil {
			return err
		}
	}
	ob, err := p.newBuf(numel(outShape))
	if err != nil {
		return err
	}
	reads := []view{xv, wv}
	if bv != nil {
		reads = append(reads, *bv)
	}
	run := func() {
		xd, wd, od := xv.slice(), wv.slice(), ob.data
		for n := range nb {
			for g := range groups {
				src := xd[(n*cin+g*cg)*inPlane:]
				bmat, ldb := src, inPlane
				if !direct {
					im2col(col.data, src, cg, gh, gw)
					bmat, ldb = col.data, plane
				}
				blas.Sgemm(false, false, og, plane, kk, 1, wd[g*og*kk:], kk, bmat, ldb, 0, od[(n*cout+g*og)*plane:], plane)
			}
		}
		if bv != nil {
			b := bv.slice()
			for n := range nb {
				for o := range cout {
					row := od[(n*cout+o)*plane : (n*cout+o+1)*plane]
					for i := range row {
						row[i] += b[o]
					}
				}
			}
		}
		round16(od)
	}
	writes := []*buffer{ob}
	if col != nil {
		writes = append(writes, col)
	}
	p.emit(run, 2*float64(nb)*float64(cout)*float64(plane)*float64(kk), reads, writes...)
	if col != nil {
		col.last = len(p.steps) - 1
	}
	return p.out(0, denseView(ob, outShape), x.typ.DType)
}

// im2col lays out the receptive fields of c input channels (planes of
// gh.in×gw.in) as a (c·kh·kw)×(outH·outW) matrix, zero-padded.
func im2col(col, src []float32, c int, gh, gw convGeom) {
	plane := gh.out * gw.out
	i := 0
	for ch := range c {
		sp := src[ch*gh.in*gw.in:]
		for ky := range gh.k {
			for kx := range gw.k {
				row := col[i*plane : (i+1)*plane]
				i++
				for oy := range gh.out {
					iy := oy*gh.stride - gh.padBefore + ky*gh.dil
					r := row[oy*gw.out : (oy+1)*gw.out]
					if iy < 0 || iy >= gh.in {
						clear(r)
						continue
					}
					line := sp[iy*gw.in : (iy+1)*gw.in]
					for ox := range gw.out {
						ix := ox*gw.stride - gw.padBefore + kx*gw.dil
						if ix >= 0 && ix < gw.in {
							r[ox] = line[ix]
						} else {
							r[ox] = 0
						}
					}
				}
			}
		}
	}
}
