package sim

import (
	"math"

	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

func init() {
	for name, k := range binaryKernels {
		ops[name] = func(p *planner) error { return p.planBinary(k) }
	}
	for name, k := range unaryKernels {
		ops[name] = func(p *planner) error { return p.planUnary(k) }
	}
}

// binKernel computes d[i] = f(x[i], y[i]) over equal-length rows.
type binKernel struct {
	f       func(d, x, y []float32)
	compare bool // result is bool
	noInt   bool // refused on integer operands (real_div, pow)
}

var binaryKernels = map[string]binKernel{
	"add": {f: func(d, x, y []float32) {
		for i := range d {
			d[i] = x[i] + y[i]
		}
	}},
	"sub": {f: func(d, x, y []float32) {
		for i := range d {
			d[i] = x[i] - y[i]
		}
	}},
	"mul": {f: func(d, x, y []float32) {
		for i := range d {
			d[i] = x[i] * y[i]
		}
	}},
	"real_div": {noInt: true, f: func(d, x, y []float32) {
		for i := range d {
			d[i] = x[i] / y[i]
		}
	}},
	"pow": {noInt: true, f: func(d, x, y []float32) {
		for i := range d {
			d[i] = float32(math.Pow(float64(x[i]), float64(y[i])))
		}
	}},
	"maximum": {f: func(d, x, y []float32) {
		for i := range d {
			d[i] = max(x[i], y[i])
		}
	}},
	"minimum": {f: func(d, x, y []float32) {
		for i := range d {
			d[i] = min(x[i], y[i])
		}
	}},
	"greater": {compare: true, f: cmpKernel(func(a, b float32) bool { return a > b })},
	"less":    {compare: true, f: cmpKernel(func(a, b float32) bool { return a < b })},
}

func cmpKernel(c func(a, b float32) bool) func(d, x, y []float32) {
	return func(d, x, y []float32) {
		for i := range d {
			if c(x[i], y[i]) {
				d[i] = 1
			} else {
				d[i] = 0
			}
		}
	}
}

// broadcastShapes applies numpy broadcasting.
func broadcastShapes(shapes ...[]int) ([]int, error) {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make([]int, r)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		for i, d := range s {
			j := r - len(s) + i
			switch {
			case out[j] == d || d == 1:
			case out[j] == 1:
				out[j] = d
			default:
				return nil, invalid("shapes %v cannot be broadcast together", shapesString(shapes))
			}
		}
	}
	return out, nil
}

func shapesString(shapes [][]int) string {
	s := ""
	for i, sh := range shapes {
		if i > 0 {
			s += " and "
		}
		s += mil.Shape(sh).String()
	}
	return s
}

// broadcastView returns v's strides for iteration over shape (zeros where v
// is broadcast).
func broadcastView(v view, shape []int) []int {
	st := make([]int, len(shape))
	off := len(shape) - len(v.shape)
	for i, d := range v.shape {
		if d != 1 {
			st[off+i] = v.strides[i]
		}
	}
	return st
}

// roundFunc returns the rounding applied to a result of dtype dt: fp16 for
// float types (the ANE computes in fp16, whatever the declared dtype), none
// for bool and integer results, which are exact.
func roundFunc(dt mil.DType) func([]float32) {
	if dt.IsFloat() {
		return func(d []float32) { fp16.RoundFloat32s(d, d) }
	}
	return nil
}

// rowsOp plans a row-wise operation over broadcast operands: f is called with
// the output row and one contiguous row per operand (gathered or filled from
// strided or broadcast operands when needed).
func (p *planner) rowsOp(shape []int, operands []view, f func(d []float32, in [][]float32), flops float64, dt mil.DType) (view, error) {
	ob, err := p.newBuf(numel(shape))
	if err != nil {
		return view{}, err
	}
	out := denseView(ob, shape)
	strides := [][]int{out.strides}
	for _, v := range operands {
		strides = append(strides, broadcastView(v, shape))
	}
	l := newLoop(shape, strides...)
	n := l.inner
	round := roundFunc(dt)
	base := []int{0}
	for _, v := range operands {
		base = append(base, v.off)
	}
	// Rows are processed in chunks, so scratch rows (gathered strided operands,
	// filled broadcast ones) stay small and each chunk is rounded while in
	// cache. Large tensors are split across goroutines by chunks.
	cpr := (n + rowChunk - 1) / rowChunk // chunks per row
	units := l.rows * cpr
	ws := p.rowScratch(len(operands), min(n, rowChunk))
	body := func(part, lo, hi int) {
		w := ws.get(part)
		offs, rows := w.offs[:len(base)], w.rows[:len(operands)]
		d := ob.data
		for u := lo; u < hi; u++ {
			row, c0 := u/cpr, (u%cpr)*rowChunk
			l.rowOffsets(row, base, offs)
			m := min(rowChunk, n-c0)
			for k, v := range operands {
				st := l.istr[k+1]
				rows[k] = contiguous(v.buf.data, offs[k+1]+c0*st, st, m, w.scratch[k])
			}
			dr := d[offs[0]+c0 : offs[0]+c0+m]
			f(dr, rows)
			if round != nil {
				round(dr)
			}
		}
	}
	run := func() {
		ws.grow(parParts(units, parChunks))
		par(units, parChunks, body)
	}
	p.emit(run, flops*float64(numel(shape)), operands, ob)
	return out, nil
}

// rowScratch is the scratch of a kernel's row-wise steps, one set per part
// of a parallel pass. The steps of a kernel run one at a time, on its
// device's worker, so they share it; it is made on the first evaluation and
// reused.
type rowScratch struct {
	ops, width int // the most operands and the longest chunk of any step
	parts      []rowParts
}

// rowParts is one part's scratch: row offsets, the operands' rows, and rows
// to gather strided or broadcast operands into.
type rowParts struct {
	offs    []int
	rows    [][]float32
	scratch [][]float32
}

// rowScratch returns the kernel's row scratch, made large enough for a step
// of ops operands and chunks of width elements.
func (p *planner) rowScratch(ops, width int) *rowScratch {
	if p.rows == nil {
		p.rows = &rowScratch{}
	}
	p.rows.ops = max(p.rows.ops, ops)
	p.rows.width = max(p.rows.width, width)
	return p.rows
}

func (s *rowScratch) newParts() rowParts {
	w := rowParts{offs: make([]int, s.ops+1), rows: make([][]float32, s.ops), scratch: make([][]float32, s.ops)}
	for k := range w.scratch {
		w.scratch[k] = make([]float32, s.width)
	}
	return w
}

// grow makes scratch for parts parts; called before the pass starts.
func (s *rowScratch) grow(parts int) {
	for len(s.parts) < parts {
		s.parts = append(s.parts, s.newParts())
	}
}

// get returns part's scratch. A part beyond those grown (GOMAXPROCS raised
// between grow and the pass) gets fresh scratch of its own.
func (s *rowScratch) get(part int) *rowParts {
	if part < len(s.parts) {
		return &s.parts[part]
	}
	w := s.newParts()
	return &w
}

// contiguous returns the m elements of s from j on, st apart, as one
// contiguous slice: s itself when st is 1, else scratch filled with them (one
// broadcast value when st is 0).
func contiguous(s []float32, j, st, m int, scratch []float32) []float32 {
	if st == 1 {
		return s[j : j+m]
	}
	r := scratch[:m]
	if st == 0 {
		x := s[j]
		for i := range r {
			r[i] = x
		}
		return r
	}
	for i := range r {
		r[i] = s[j]
		j += st
	}
	return r
}

// rowChunk is the longest run of elements an elementwise kernel processes at
// once; parChunks is the least number of chunks worth a goroutine.
const (
	rowChunk  = 2048
	parChunks = 16
)

func isFloat16or32(d mil.DType) bool { return d == mil.FP16 || d == mil.FP32 }

func (p *planner) planBinary(k binKernel) error {
	rd := p.reader()
	x, y := rd.need("x"), rd.need("y")
	if rd.err != nil {
		return rd.err
	}
	if x.typ.DType != y.typ.DType {
		return invalid("x is %v and y is %v; they must have the same dtype", x.typ, y.typ)
	}
	dt := x.typ.DType
	if !isFloat16or32(dt) && !dt.IsInt() {
		return invalid("operands must be fp16, fp32 or integer, found %v", dt)
	}
	if k.noInt && dt.IsInt() {
		return unsupported("%s on integers is ill-defined in MIL; cast to fp16 first", p.op.Type)
	}
	shape, err := broadcastShapes(x.typ.Shape, y.typ.Shape)
	if err != nil {
		return err
	}
	xv, yv := rd.data(x), rd.data(y)
	if rd.err != nil {
		return rd.err
	}
	outDT := dt
	if k.compare {
		outDT = mil.Bool
	}
	f := k.f
	out, err := p.rowsOp(shape, []view{xv, yv}, func(d []float32, in [][]float32) { f(d, in[0], in[1]) }, 1, outDT)
	if err != nil {
		return err
	}
	return p.out(0, out, outDT)
}

// unaryKernel computes d[i] = f(d[i]) in place; eps is the op's epsilon input.
type unaryKernel struct {
	epsilon    bool
	defaultEps float64
	f          func(eps float32) func(d []float32)
}

// inPlace returns an in-place kernel; each is written out so the function is
// inlined in its loop rather than called through a func value per element.
func inPlace(k func(d []float32)) func(float32) func(d []float32) {
	return func(float32) func(d []float32) { return k }
}

func sigmoid(x float64) float64 { return 1 / (1 + fastExp(-x)) }

var unaryKernels = map[string]unaryKernel{
	"sqrt": {f: inPlace(func(d []float32) {
		for i, x := range d {
			d[i] = float32(math.Sqrt(float64(x)))
		}
	})},
	"exp": {f: inPlace(func(d []float32) {
		for i, x := range d {
			d[i] = float32(fastExp(float64(x)))
		}
	})},
	"tanh": {f: inPlace(func(d []float32) {
		for i, x := range d {
			d[i] = float32(math.Tanh(float64(x)))
		}
	})},
	"sigmoid": {f: inPlace(func(d []float32) {
		for i, x := range d {
			d[i] = float32(sigmoid(float64(x)))
		}
	})},
	"silu": {f: inPlace(func(d []float32) {
		for i, x := range d {
			d[i] = float32(float64(x) * sigmoid(float64(x)))
		}
	})},
	"relu": {f: func(float32) func(d []float32) {
		return func(d []float32) {
			for i, x := range d {
				if !(x > 0) && x == x {
					d[i] = 0
				}
			}
		}
	}},
	"rsqrt": {epsilon: true, defaultEps: 1e-12, f: func(eps float32) func(d []float32) {
		return func(d []float32) {
			for i, x := range d {
				d[i] = float32(1 / math.Sqrt(float64(x+eps)))
			}
		}
	}},
	"log": {epsilon: true, defaultEps: 1e-45, f: func(eps float32) func(d []float32) {
		return func(d []float32) {
			for i, x := range d {
				d[i] = float32(math.Log(float64(x + eps)))
			}
		}
	}},
}

// unaryInPlace plans out = f(copy of x), rounding to fp16.
func (p *planner) unaryInPlace(x *tval, f func(d []float32), flops float64, outDT mil.DType) error {
	xv, err := p.data(x)
	if err != nil {
		return err
	}
	out, err := p.rowsOp(x.typ.Shape, []view{xv}, func(d []float32, in [][]float32) {
		copy(d, in[0])
		f(d)
	}, flops, outDT)
	if err != nil {
		return err
	}
	return p.out(0, out, outDT)
}

func (p *planner) planUnary(k unaryKernel) error {
	x, err := p.needFloat("x")
	if err != nil {
		return err
	}
	eps := float32(0)
	if k.epsilon {
		// The default epsilon has x's dtype; on the ANE every value is fp16,
		// so 1e-12 and 1e-45 round to 0 (mil-spec §5).
		e, err := p.paramFloat("epsilon", k.defaultEps, false)
		if err != nil {
			return err
		}
		eps = float32(mil.RoundFloat(e, mil.FP16))
	}
	return p.unaryInPlace(x, k.f(eps), 1, x.typ.DType)
}

func init() {
	ops["clip"] = func(p *planner) error {
		rd := p.reader()
		x := rd.needFloat("x")
		a, b := rd.paramFloat("alpha", 0, true), rd.paramFloat("beta", 0, true)
		if rd.err != nil {
			return rd.err
		}
		lo, hi := float32(mil.RoundFloat(a, mil.FP16)), float32(mil.RoundFloat(b, mil.FP16))
		if p.opset >= 17 && !(lo < hi) {
			return invalid("clip needs alpha < beta, found %v and %v", a, b)
		}
		return p.unaryInPlace(x, func(d []float32) {
			for i, v := range d {
				d[i] = min(max(v, lo), hi)
			}
		}, 1, x.typ.DType)
	}
}

// intRange is the inclusive range of an integer dtype the emulator stores.
func intRange(d mil.DType) (lo, hi float64) {
	switch d {
	case mil.Int8:
		return -128, 127
	case mil.UInt8:
		return 0, 255
	case mil.Int16:
		return -32768, 32767
	case mil.UInt16:
		return 0, 65535
	}
	return math.MinInt32, math.MaxInt32
}

func init() {
	ops["cast"] = func(p *planner) error {
		rd := p.reader()
		x, s := rd.need("x"), rd.paramString("dtype", "", true)
		if rd.err != nil {
			return rd.err
		}
		// The targets are the dtypes the emulator keeps data for.
		to, ok := mil.ParseDType(s)
		if !ok || dataDType(to) != nil {
			return invalid("cast to %q: choose one of fp16, fp32, int32, int16, int8, uint16, uint8, bool", s)
		}
		if err := dataDType(x.typ.DType); err != nil {
			return err
		}
		var f func(d []float32)
		switch {
		case to.IsFloat():
			f = func([]float32) {} // rowsOp rounds to fp16
		case to == mil.Bool:
			f = func(d []float32) {
				for i, v := range d {
					if v != 0 {
						d[i] = 1
					}
				}
			}
		default:
			// Toward zero, as numpy's astype; out-of-range values saturate and
			// NaN becomes 0 (numpy leaves both undefined).
			lo, hi := intRange(to)
			f = func(d []float32) {
				for i, v := range d {
					t := math.Trunc(float64(v))
					switch {
					case t != t:
						t = 0
					case t < lo:
						t = lo
					case t > hi:
						t = hi
					}
					d[i] = float32(t)
				}
			}
		}
		return p.unaryInPlace(x, f, 0, to)
	}
}

func init() {
	ops["select"] = func(p *planner) error {
		rd := p.reader()
		c, a, b := rd.need("cond"), rd.need("a"), rd.need("b")
		if rd.err != nil {
			return rd.err
		}
		if c.typ.DType != mil.Bool {
			return invalid("cond must be bool, found %v", c.typ)
		}
		if a.typ.DType != b.typ.DType {
			return invalid("a is %v and b is %v; they must have the same dtype", a.typ, b.typ)
		}
		shape, err := broadcastShapes(c.typ.Shape, a.typ.Shape, b.typ.Shape)
		if err != nil {
			return err
		}
		vs := []view{rd.data(c), rd.data(a), rd.data(b)}
		if rd.err != nil {
			return rd.err
		}
		out, err := p.rowsOp(shape, vs, func(d []float32, in [][]float32) {
			cr, ar, br := in[0], in[1], in[2]
			for i := range d {
				if cr[i] != 0 {
					d[i] = ar[i]
				} else {
					d[i] = br[i]
				}
			}
		}, 1, a.typ.DType)
		if err != nil {
			return err
		}
		return p.out(0, out, a.typ.DType)
	}
}
