package mil

// An argReader reads the inputs of the op being inferred for the ops' infer
// functions. It keeps the first error: once a read fails, later reads do
// nothing and return zero values, so a run of reads needs a single check of
// err, made before the values are used (as with bufio.Scanner). An infer
// function checks err before any test of its own, so the error reported is
// always the first one in the order the function reads and tests.
type argReader struct {
	c   *inferCtx
	err error
}

func (c *inferCtx) reader() *argReader { return &argReader{c: c} }

// input is inferCtx.input.
func (r *argReader) input(name string, domain ...DType) (t Type) {
	if r.err == nil {
		t, r.err = r.c.input(name, domain...)
	}
	return t
}

// ranked is input for a tensor that must have rank ≥ 1.
func (r *argReader) ranked(name string, domain ...DType) Type {
	t := r.input(name, domain...)
	if r.err == nil && t.Shape.Rank() == 0 {
		r.err = r.c.errf(name, "%s must have rank ≥ 1", name)
	}
	return t
}

// optInput is inferCtx.optInput.
func (r *argReader) optInput(name string, domain ...DType) (t Type, ok bool) {
	if r.err == nil {
		t, ok, r.err = r.c.optInput(name, domain...)
	}
	return t, ok
}

// param is inferCtx.param.
func (r *argReader) param(name string) (v *Value) {
	if r.err == nil {
		v, r.err = r.c.param(name)
	}
	return v
}

// ints is inferCtx.ints; an absent input without a default reads as nil.
func (r *argReader) ints(name string, n int, domain ...DType) (vals []int) {
	if r.err == nil {
		vals, _, r.err = r.c.ints(name, n, domain...)
	}
	return vals
}

// intScalar is inferCtx.intScalar.
func (r *argReader) intScalar(name string) (x int, ok bool) {
	if r.err == nil {
		x, ok, r.err = r.c.intScalar(name)
	}
	return x, ok
}

// boolScalar is inferCtx.boolScalar; an absent input reads as false.
func (r *argReader) boolScalar(name string) (x bool) {
	if r.err == nil {
		x, _, r.err = r.c.boolScalar(name)
	}
	return x
}

// bools is inferCtx.bools; an absent input reads as nil.
func (r *argReader) bools(name string, n int) (vals []bool) {
	if r.err == nil {
		vals, _, r.err = r.c.bools(name, n)
	}
	return vals
}

// str is inferCtx.str; an absent input reads as "".
func (r *argReader) str(name string) (s string) {
	if r.err == nil {
		s, _, r.err = r.c.str(name)
	}
	return s
}

// axisParam is inferCtx.axisParam.
func (r *argReader) axisParam(name string, rank int) (a int) {
	if r.err == nil {
		a, r.err = r.c.axisParam(name, rank)
	}
	return a
}

// axesParam is inferCtx.axesParam.
func (r *argReader) axesParam(name string, rank int) (axes []int) {
	if r.err == nil {
		axes, r.err = r.c.axesParam(name, rank)
	}
	return axes
}

// axes is inferCtx.axes.
func (r *argReader) axes(name string, as []int, rank int) (out []int) {
	if r.err == nil {
		out, r.err = r.c.axes(name, as, rank)
	}
	return out
}
