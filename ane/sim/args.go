package sim

// An argReader reads the inputs and constant parameters of the op being
// planned, and materialises their data. It keeps the first error: once a
// step fails, later ones do nothing and return zero values (a nil *tval
// among them), so a run of reads needs a single check of err, made before
// the values are used (as with bufio.Scanner). A planning function checks
// err before any test of its own, so the error reported is always the first
// one in the order the function reads and tests.
type argReader struct {
	p   *planner
	err error
}

func (p *planner) reader() *argReader { return &argReader{p: p} }

// need is planner.need.
func (r *argReader) need(name string) (tv *tval) {
	if r.err == nil {
		tv, r.err = r.p.need(name)
	}
	return tv
}

// needFloat is planner.needFloat.
func (r *argReader) needFloat(name string) (tv *tval) {
	if r.err == nil {
		tv, r.err = r.p.needFloat(name)
	}
	return tv
}

// paramInts is planner.paramInts.

func (r *argReader) paramInts(name string, def []int) (v []int) {
	if r.err == nil {
		v, r.err = r.p.paramInts(name, def)
	}
	return v
}

// paramInt is planner.paramInt.
func (r *argReader) paramInt(name string, def int, required bool) (x int) {
	if r.err == nil {
		x, r.err = r.p.paramInt(name, def, required)
	}
	return x
}

// paramFloat is planner.paramFloat.
func (r *argReader) paramFloat(name string, def float64, required bool) (x float64) {
	if r.err == nil {
		x, r.err = r.p.paramFloat(name, def, required)
	}
	return x
}

// paramBool is planner.paramBool.
func (r *argReader) paramBool(name string, def bool) (x bool) {
	if r.err == nil {
		x, r.err = r.p.paramBool(name, def)
	}
	return x
}

// paramBools is planner.paramBools.
func (r *argReader) paramBools(name string, n int) (v []bool) {
	if r.err == nil {
		v, r.err = r.p.paramBools(name, n)
	}
	return v
}

// paramString is planner.paramString.
func (r *argReader) paramString(name, def string, required bool) (s string) {
	if r.err == nil {
		s, r.err = r.p.paramString(name, def, required)
	}
	return s
}

// data is planner.data.
func (r *argReader) data(tv *tval) (v view) {
	if r.err == nil {
		v, r.err = r.p.data(tv)
	}
	return v
}

// denseOf is planner.denseOf.
func (r *argReader) denseOf(tv *tval) (v view) {
	if r.err == nil {
		v, r.err = r.p.denseOf(tv)
	}
	return v
}

// operand is planner.operand.
func (r *argReader) operand(v view, bshape []int) (o matOperand) {
	if r.err == nil {
		o, r.err = r.p.operand(v, bshape)
	}
	return o
}
