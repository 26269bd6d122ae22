package sim

import (
	"slices"
	"sort"

	"github.com/anetop/anetop/mil"
)

func init() {
	ops["const"] = planConst
	ops["reshape"] = planReshape
	ops["transpose"] = planTranspose
	ops["slice_by_size"] = planSliceBySize
	ops["slice_by_index"] = planSliceByIndex
	ops["concat"] = planConcat
	ops["split"] = planSplit
	ops["expand_dims"] = planExpandDims
	ops["squeeze"] = planSqueeze
}

func planConst(p *planner) error {
	if err := p.nOutputs(1); err != nil {
		return err
	}
	if len(p.op.Args) > 0 {
		return invalid("const takes no inputs")
	}
	val := p.op.Attr("val")
	if val == nil {
		return invalid("const has no val attribute")
	}
	if err := val.Check(); err != nil {
		return invalid("val: %v", err)
	}
	o := p.op.Outputs[0]
	if !val.Type.Equal(o.Type) {
		return invalid("%s is declared %v but val is %v", o.Name, o.Type, val.Type)
	}
	if val.Blob != nil {
		// Resolve now so missing or malformed weights fail the compile, as on the ANE.
		if _, err := p.w.Resolve(val); err != nil {
			return invalid("%v", err)
		}
	}
	p.vals[o] = &tval{typ: o.Type, konst: val}
	return nil
}

// viewOrCopy reshapes v, copying when the layout does not allow a view.
func (p *planner) viewOrCopy(v view, shape []int) (view, error) {
	if r, ok := reshapeView(v, shape); ok {
		return r, nil
	}
	d, err := p.copyDense(v)
	if err != nil {
		return view{}, err
	}
	r, _ := reshapeView(d, shape)
	return r, nil
}

// sameAs records output 0 as x's data with a new shape (a view when possible).
func (p *planner) reshaped(x *tval, shape []int) error {
	if numel(shape) != numel(x.typ.Shape) {
		return invalid("cannot reshape %v (%d elements) to %v", x.typ, numel(x.typ.Shape), mil.Shape(shape))
	}
	if x.v.buf == nil && (x.konst != nil || x.cdata != nil) && (!x.typ.DType.IsFloat() || numel(shape) <= 4096) {
		// A reshaped constant stays a constant, so it can still feed parameters.
		c, err := p.constant(x, "x")
		if err == nil {
			return p.outConst(0, mil.Type{DType: x.typ.DType, Shape: mil.Shape(shape)}, c)
		}
	}
	xv, err := p.data(x)
	if err != nil {
		return err
	}
	v, err := p.viewOrCopy(xv, shape)
	if err != nil {
		return err
	}
	return p.out(0, v, x.typ.DType)
}

func planReshape(p *planner) error {
	rd := p.reader()
	x, s := rd.need("x"), rd.paramInts("shape", nil)
	if rd.err != nil {
		return rd.err
	}
	if s == nil {
		return invalid("missing required input \"shape\"")
	}
	in := x.typ.Shape
	shape := make([]int, len(s))
	infer := -1
	known := 1
	for i, d := range s {
		switch {
		case d == -1:
			if infer >= 0 {
				return invalid("shape %v has more than one -1", s)
			}
			infer = i
			continue
		case d == 0 && p.opset >= 17:
			// iOS17 right-aligns 0: copy the dim at the same distance from the end.
			j := len(in) - (len(s) - i)
			d = 1
			if j >= 0 {
				d = in[j]
			}
		case d == 0:
			if len(s) != len(in) {
				return invalid("shape %v uses 0 but has rank %d, not x's %d", s, len(s), len(in))
			}
			d = in[i]
		case d < 0:
			return invalid("shape %v has a negative size", s)
		}
		shape[i] = d
		if d > maxArenaElems || known > maxArenaElems/max(d, 1) {
			return invalid("shape %v is too large", s)
		}
		known *= d
	}
	if infer >= 0 {
		if known == 0 || numel(in)%known != 0 {
			return invalid("cannot infer -1 in shape %v for %v", s, x.typ)
		}
		shape[infer] = numel(in) / known
	}
	return p.reshaped(x, shape)
}

func planExpandDims(p *planner) error {
	rd := p.reader()
	x, axes := rd.need("x"), rd.paramInts("axes", nil)
	if rd.err != nil {
		return rd.err
	}
	if len(axes) == 0 {
		return invalid("missing required input \"axes\"")
	}
	r := len(x.typ.Shape) + len(axes)
	if r > mil.MaxRank {
		return invalid("expand_dims to rank %d exceeds %d", r, mil.MaxRank)
	}
	norm := make([]int, len(axes))
	for i, a := range axes {
		n, err := normAxis(a, r)
		if err != nil {
			return err
		}
		norm[i] = n
	}
	sort.Ints(norm)
	shape := slices.Clone([]int(x.typ.Shape))
	for i, a := range norm {
		if i > 0 && norm[i-1] == a {
			return invalid("axes %v repeat an axis", axes)
		}
		shape = slices.Insert(shape, a, 1)
	}
	return p.reshaped(x, shape)
}

func planSqueeze(p *planner) error {
	rd := p.reader()
	x, axes := rd.need("x"), rd.paramInts("axes", nil)
	if rd.err != nil {
		return rd.err
	}
	in := x.typ.Shape
	drop := make([]bool, len(in))
	if axes == nil {
		for i, d := range in {
			drop[i] = d == 1
		}
	}
	for _, a := range axes {
		i, err := normAxis(a, len(in))
		if err != nil {
			return err
		}
		drop[i] = in[i] == 1 // listed axes that are not 1 are kept (mil-spec §4.9)
	}
	var shape []int
	for i, d := range in {
		if !drop[i] {
			shape = append(shape, d)
		}
	}
	return p.reshaped(x, shape)
}

func planTranspose(p *planner) error {
	rd := p.reader()
	x, perm := rd.need("x"), rd.paramInts("perm", nil)
	if rd.err != nil {
		return rd.err
	}
	r := len(x.typ.Shape)
	if len(perm) != r {
		return invalid("perm %v has %d entries for a rank-%d x", perm, len(perm), r)
	}
	seen := make([]bool, r)
	for i, a := range perm {
		n, err := normAxis(a, r)
		if err != nil {
			return err
		}
		perm[i] = n
		if seen[perm[i]] {
			return invalid("perm %v is not a permutation", perm)
		}
		seen[perm[i]] = true
	}
	xv, err := p.data(x)
	if err != nil {
		return err
	}
	v := view{buf: xv.buf, off: xv.off, shape: make([]int, r), strides: make([]int, r)}
	for i, a := range perm {
		v.shape[i] = xv.shape[a]
		v.strides[i] = xv.strides[a]
	}
	return p.out(0, v, x.typ.DType)
}

// sliced records output 0 as the window of x starting at begin, with count
// elements and step per axis; squeezed axes are dropped from the result.
func (p *planner) sliced(x *tval, begin, count, step []int, squeeze []bool) error {
	xv, err := p.data(x)
	if err != nil {
		return err
	}
	v := view{buf: xv.buf, off: xv.off}
	for i := range begin {
		v.off += begin[i] * xv.strides[i]
		if squeeze != nil && squeeze[i] {
			continue
		}
		v.shape = append(v.shape, count[i])
		v.strides = append(v.strides, xv.strides[i]*step[i])
	}
	return p.out(0, v, x.typ.DType)
}

func planSliceBySize(p *planner) error {
	rd := p.reader()
	x, begin, size := rd.need("x"), rd.paramInts("begin", nil), rd.paramInts("size", nil)
	if rd.err != nil {
		return rd.err
	}
	r := len(x.typ.Shape)
	if len(begin) != r || len(size) != r {
		return invalid("begin %v and size %v need %d entries each", begin, size, r)
	}
	step := make([]int, r)
	for i, n := range x.typ.Shape {
		b := begin[i]
		if b < 0 {
			b += n
		}
		s := size[i]
		if s == -1 {
			s = n - b
		}
		if b < 0 || b > n || s < 0 || s > n-b {
			return invalid("slice begin %v size %v is outside x's shape %v", begin, size, x.typ.Shape)
		}
		begin[i], size[i], step[i] = b, s, 1
	}
	return p.sliced(x, begin, size, step, nil)
}

func planSliceByIndex(p *planner) error {
	rd := p.reader()
	x := rd.need("x")
	if rd.err != nil {
		return rd.err
	}
	r := len(x.typ.Shape)
	begin, end, stride := rd.paramInts("begin", nil), rd.paramInts("end", nil), rd.paramInts("stride", filled(r, 1))
	if rd.err != nil {
		return rd.err
	}
	if len(begin) != r || len(end) != r || len(stride) != r {
		return invalid("begin %v, end %v and stride %v need %d entries each", begin, end, stride, r)
	}
	bm, em, sm := rd.paramBools("begin_mask", r), rd.paramBools("end_mask", r), rd.paramBools("squeeze_mask", r)
	if rd.err != nil {
		return rd.err
	}
	start := make([]int, r)
	count := make([]int, r)
	for i, n := range x.typ.Shape {
		s := stride[i]
		if s == 0 {
			return invalid("stride %v has a zero", stride)
		}
		// Python's slice rules, as the checker applies them (a squeezed axis
		// with begin_mask set takes element 0, as coremltools does).
		b, c, err := mil.SliceRange(n, begin[i], end[i], s, bm[i], em[i], sm[i])
		if err != nil {
			return invalid("axis %d: %v", i, err)
		}
		if c == 0 {
			b = 0
		}
		start[i], count[i] = b, c
	}
	return p.sliced(x, start, count, stride, sm)
}

func planConcat(p *planner) error {
	a := p.op.Arg("values")
	if a == nil || len(a.Bindings) == 0 {
		return invalid("missing required input \"values\"")
	}
	rd := p.reader()
	axis, inter := rd.paramInt("axis", 0, true), rd.paramBool("interleave", false)
	if rd.err != nil {
		return rd.err
	}
	var ins []*tval
	for _, b := range a.Bindings {
		tv, err := p.val(b)
		if err != nil {
			return err
		}
		ins = append(ins, tv)
	}
	first := ins[0].typ
	r := len(first.Shape)
	if r == 0 {
		return invalid("concat of scalars")
	}
	axis, err := normAxis(axis, r)
	if err != nil {
		return err
	}
	shape := slices.Clone([]int(first.Shape))
	shape[axis] = 0
	for _, t := range ins {
		if t.typ.DType != first.DType || len(t.typ.Shape) != r {
			return invalid("values must share dtype and rank: %v and %v", first, t.typ)
		}
		for i, d := range t.typ.Shape {
			if i != axis && d != first.Shape[i] || inter && d != first.Shape[i] {
				return invalid("values %v and %v do not fit together along axis %d", first, t.typ, axis)
			}
		}
		shape[axis] += t.typ.Shape[axis]
	}
	ob, err := p.newBuf(numel(shape))
	if err != nil {
		return err
	}
	out := denseView(ob, shape)
	var copies []func()
	var reads []view
	pos := 0
	for k, t := range ins {
		v, err := p.data(t)
		if err != nil {
			return err
		}
		dst := view{buf: ob, shape: v.shape, strides: slices.Clone(out.strides)}
		if inter {
			// Input k fills indices k, k+N, k+2N, … along the axis.
			dst.off = k * out.strides[axis]
			dst.strides[axis] *= len(ins)
		} else {
			dst.off = pos * out.strides[axis]
			pos += v.shape[axis]
		}
		copies = append(copies, copyLoop(dst, v))
		reads = append(reads, v)
	}
	p.emit(func() {
		for _, c := range copies {
			c()
		}
	}, 0, reads, ob)
	return p.out(0, out, first.DType)
}

func planSplit(p *planner) error {
	rd := p.reader()
	x, axis := rd.need("x"), rd.paramInt("axis", 0, true)
	if rd.err != nil {
		return rd.err
	}
	axis, err := normAxis(axis, len(x.typ.Shape))
	if err != nil {
		return err
	}
	n := x.typ.Shape[axis]
	sizes, err := p.paramInts("split_sizes", nil)
	if err != nil {
		return err
	}
	if sizes == nil {
		k, err := p.paramInt("num_splits", 0, true)
		if err != nil {
			return err
		}
		if k <= 0 || n%k != 0 || k != len(p.op.Outputs) {
			return invalid("axis %d of size %d does not split into %d equal parts for %d outputs", axis, n, k, len(p.op.Outputs))
		}
		for range k {
			sizes = append(sizes, n/k)
		}
	}
	sum := 0
	for _, s := range sizes {
		if s < 0 {
			return invalid("split_sizes %v has a negative size", sizes)
		}
		sum += s
	}
	if sum != n {
		return invalid("split_sizes %v do not sum to %d", sizes, n)
	}
	if err := p.nOutputs(len(sizes)); err != nil {
		return err
	}
	xv, err := p.data(x)
	if err != nil {
		return err
	}
	pos := 0
	for i, s := range sizes {
		v := view{buf: xv.buf, off: xv.off + pos*xv.strides[axis], shape: slices.Clone(xv.shape), strides: xv.strides}
		v.shape[axis] = s
		pos += s
		if err := p.out(i, v, x.typ.DType); err != nil {
			return err
		}
	}
	return nil
}
