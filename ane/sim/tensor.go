package sim

import "slices"

// buffer is one run-time tensor allocation of the kernel. Buffers whose
// lifetimes do not overlap share storage (see (*planner).allocate); data is
// bound once, after planning, and never changes afterwards.
type buffer struct {
	n     int       // elements
	data  []float32 // storage, bound after planning
	first int       // step that writes it first (-1: before the first step)
	last  int       // last step that reads it (len(steps): live to the end)
	konst bool      // holds constant data filled at compile time; never shared
}

// view is a tensor as a strided window on a buffer: element (i0, i1, …) lives
// at buf.data[off + Σ ik·strides[k]]. Strides may be zero (broadcast) or
// negative (reversed slices). Reshape, transpose, slices and split produce
// views of the same buffer; ops that need dense operands ask for a copy.
type view struct {
	buf     *buffer
	off     int
	shape   []int
	strides []int
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// filled returns n copies of x.
func filled(n, x int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = x
	}
	return s
}

// denseStrides returns the row-major strides of shape.
func denseStrides(shape []int) []int {
	s := make([]int, len(shape))
	st := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = st
		st *= shape[i]
	}
	return s
}

func denseView(b *buffer, shape []int) view {
	return view{buf: b, shape: slices.Clone(shape), strides: denseStrides(shape)}
}

// dense reports whether v covers a contiguous row-major range of its buffer.
// Axes of size 1 may have any stride.
func (v view) dense() bool {
	st := 1
	for i := len(v.shape) - 1; i >= 0; i-- {
		if v.shape[i] == 1 {
			continue
		}
		if v.strides[i] != st {
			return false
		}
		st *= v.shape[i]
	}
	return true
}

func (v view) n() int { return numel(v.shape) }

// slice returns the dense view's elements. Only valid at run time, on a dense view.
func (v view) slice() []float32 {
	n := v.n()
	return v.buf.data[v.off : v.off+n : v.off+n]
}

// reshapeView tries to express v with a new shape without copying, in the way
// numpy does: each run of old axes that merges into new axes must be
// contiguous within itself. It returns false when a copy is needed.
func reshapeView(v view, shape []int) (view, bool) {
	if v.dense() {
		out := view{buf: v.buf, off: v.off, shape: slices.Clone(shape), strides: denseStrides(shape)}
		return out, true
	}
	// Drop size-1 axes of the old view; they constrain nothing.
	var os, ost []int
	for i, d := range v.shape {
		if d != 1 {
			os = append(os, d)
			ost = append(ost, v.strides[i])
		}
	}
	ns := shape
	nst := make([]int, len(ns))
	oi, ni := 0, 0
	for oi < len(os) && ni < len(ns) {
		// Grow a group of old axes [oi, oj) and new axes [ni, nj) with equal products.
		op, np := os[oi], ns[ni]
		oj, nj := oi+1, ni+1
		for op != np {
			if op < np {
				if oj >= len(os) {
					return view{}, false
				}
				op *= os[oj]
				oj++
			} else {
				if nj >= len(ns) {
					return view{}, false
				}
				np *= ns[nj]
				nj++
			}
		}
		// The old axes of the group must be contiguous with one another.
		for k := oi; k < oj-1; k++ {
			if ost[k] != ost[k+1]*os[k+1] {
				return view{}, false
			}
		}
		// New strides: the innermost takes the group's innermost old stride.
		st := ost[oj-1]
		for k := nj - 1; k >= ni; k-- {
			nst[k] = st
			st *= ns[k]
		}
		oi, ni = oj, nj
	}
	// Remaining new axes must all be 1 (old ones cannot remain: equal counts).
	for ; ni < len(ns); ni++ {
		if ns[ni] != 1 {
			return view{}, false
		}
	}
	for k := range ns {
		if ns[k] == 1 {
			nst[k] = 0
		}
	}
	return view{buf: v.buf, off: v.off, shape: slices.Clone(shape), strides: nst}, true
}

// collapse merges axes for a strided loop over shape in which each operand k
// has strides ops[k]. Axes of size 1 are dropped and neighbouring axes merge
// when every operand steps through them as one. The result has at least one
// axis.
func collapse(shape []int, ops ...[]int) ([]int, [][]int) {
	var cs []int
	cst := make([][]int, len(ops))
	for i, d := range shape {
		if d == 1 {
			continue
		}
		if len(cs) > 0 {
			last := len(cs) - 1
			merge := true
			for k := range ops {
				if cst[k][last] != ops[k][i]*d {
					merge = false
					break
				}
			}
			if merge {
				cs[last] *= d
				for k := range ops {
					cst[k][last] = ops[k][i]
				}
				continue
			}
		}
		cs = append(cs, d)
		for k := range ops {
			cst[k] = append(cst[k], ops[k][i])
		}
	}
	if len(cs) == 0 {
		cs = []int{1}
		for k := range ops {
			cst[k] = []int{0}
		}
	}
	return cs, cst
}

// loop is a precomputed strided iteration over rows: every axis but the last
// is an outer axis; the last is the row, visited by the caller.
type loop struct {
	outer   []int   // sizes of the outer axes
	ostr    [][]int // per operand, strides of the outer axes
	inner   int     // row length
	istr    []int   // per operand, stride along the row
	rows    int
	scratch []int // counters, reused (loops run on the device worker only)
	offs    []int // each's running offsets, reused likewise
}

func newLoop(shape []int, ops ...[]int) *loop {
	cs, cst := collapse(shape, ops...)
	r := len(cs) - 1
	l := &loop{outer: cs[:r], inner: cs[r], rows: numel(cs[:r])}
	l.ostr = make([][]int, len(ops))
	l.istr = make([]int, len(ops))
	for k := range ops {
		l.ostr[k] = cst[k][:r]
		l.istr[k] = cst[k][r]
	}
	l.scratch = make([]int, r)
	l.offs = make([]int, len(ops))
	return l
}

// rowOffsets sets offs to the offsets of row's first element for every
// operand, computed directly (rows may then be visited in any order, by any
// goroutine).
func (l *loop) rowOffsets(row int, base, offs []int) {
	copy(offs, base)
	for a := len(l.outer) - 1; a >= 0; a-- {
		i := row % l.outer[a]
		row /= l.outer[a]
		for k := range offs {
			offs[k] += i * l.ostr[k][a]
		}
	}
}

// newPointLoop is a loop whose "rows" are single points: each visits every
// element of shape.
func newPointLoop(shape []int, ops ...[]int) *loop {
	cs, cst := collapse(shape, ops...)
	l := &loop{outer: cs, inner: 1, rows: numel(cs), ostr: cst, istr: make([]int, len(ops))}
	l.scratch = make([]int, len(cs))
	l.offs = make([]int, len(ops))
	return l
}

// each calls fn once per row with the offset of the row's first element for
// every operand (relative to base offsets).
func (l *loop) each(base []int, fn func(offs []int)) {
	offs := l.offs
	if len(offs) != len(base) {
		offs = make([]int, len(base))
	}
	copy(offs, base)
	idx := l.scratch
	clear(idx)
	for range l.rows {
		fn(offs)
		// Increment the multi-index, updating offsets incrementally.
		for a := len(idx) - 1; a >= 0; a-- {
			idx[a]++
			for k := range offs {
				offs[k] += l.ostr[k][a]
			}
			if idx[a] < l.outer[a] {
				break
			}
			for k := range offs {
				offs[k] -= l.ostr[k][a] * l.outer[a]
			}
			idx[a] = 0
		}
	}
}

// copyLoop returns a run-time function copying the view src into the view dst
// (same shape), both strided.
func copyLoop(dst, src view) func() {
	l := newLoop(dst.shape, dst.strides, src.strides)
	base := []int{dst.off, src.off}
	n := l.inner
	ds, ss := l.istr[0], l.istr[1]
	if ds == 1 && ss != 1 && len(l.outer) > 0 && n >= 16 {
		if t := transposeCopy(dst, src); t != nil {
			return t
		}
	}
	return func() {
		d, s := dst.buf.data, src.buf.data
		l.each(base, func(o []int) {
			switch {
			case ds == 1 && ss == 1:
				copy(d[o[0]:o[0]+n], s[o[1]:o[1]+n])
			case ss == 0:
				v := s[o[1]]
				for i, j := 0, o[0]; i < n; i, j = i+1, j+ds {
					d[j] = v
				}
			default:
				for i, j, k := 0, o[0], o[1]; i < n; i, j, k = i+1, j+ds, k+ss {
					d[j] = s[k]
				}
			}
		})
	}
}

// transposeCopy handles the common copy whose source is dense along some axis
// other than the destination's row axis: a 2-D transpose repeated over the
// remaining axes, done in cache-friendly tiles. Nil if the layout differs.
func transposeCopy(dst, src view) func() {
	cs, cst := collapse(dst.shape, dst.strides, src.strides)
	r := len(cs) - 1
	// Find the axis a where src has stride 1; need dst dense with row axis r.
	a := -1
	for i := 0; i < r; i++ {
		if cst[1][i] == 1 {
			a = i
		}
	}
	if a < 0 || cst[0][r] != 1 {
		return nil
	}
	rows, cols := cs[a], cs[r]
	dRow := cst[0][a]  // dst stride along a
	sCol := cst[1][r]  // src stride along r
	var rest []int     // other axes
	var rd, rsrc []int // strides for them
	for i := 0; i < r; i++ {
		if i != a {
			rest = append(rest, cs[i])
			rd = append(rd, cst[0][i])
			rsrc = append(rsrc, cst[1][i])
		}
	}
	outer := newPointLoop(rest, rd, rsrc)
	base := []int{dst.off, src.off}
	const tile = 32
	return func() {
		d, s := dst.buf.data, src.buf.data
		outer.each(base, func(o []int) {
			for i0 := 0; i0 < rows; i0 += tile {
				i1 := min(i0+tile, rows)
				for j0 := 0; j0 < cols; j0 += tile {
					j1 := min(j0+tile, cols)
					for i := i0; i < i1; i++ {
						dr := d[o[0]+i*dRow:]
						si := o[1] + i
						for j := j0; j < j1; j++ {
							dr[j] = s[si+j*sCol]
						}
					}
				}
			}
		})
	}
}
