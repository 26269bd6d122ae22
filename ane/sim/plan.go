package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

// MaxArenaBytes bounds the memory one kernel may use: its run-time buffers
// after reuse plus its constants, as float32. Real kernels need a few hundred
// MB at most; the bound keeps a hostile program from exhausting memory.
const MaxArenaBytes = 1 << 30

const maxArenaElems = MaxArenaBytes / 4

// maxExactInt is the largest integer a float32 holds exactly; integer tensors
// live in float32 storage, so integer data beyond it is refused.
const maxExactInt = 1 << 24

// CompileError is a compile failure located in the MIL text. It wraps
// ane.ErrInvalidProgram or ane.ErrUnsupported.
type CompileError struct {
	Kernel string
	Pos    mil.Pos // zero when the problem has no single position
	Op     string  // op type, empty for program-level problems
	OpName string
	Msg    string
	Kind   error // ane.ErrInvalidProgram or ane.ErrUnsupported
}

func (e *CompileError) Error() string {
	s := e.Kernel
	if e.Pos.IsValid() {
		s += ":" + e.Pos.String()
	}
	s += ": "
	if e.Op != "" {
		s += fmt.Sprintf("%s %q: ", e.Op, e.OpName)
	}
	return s + e.Msg + " (" + e.Kind.Error() + ")"
}

func (e *CompileError) Unwrap() error { return e.Kind }

// tval is what the planner knows about one MIL value.
type tval struct {
	typ   mil.Type
	v     view       // storage; v.buf is nil for a constant not yet materialised
	konst *mil.Value // the literal, for const ops and inline values
	cdata []float64  // exact constant elements (constexpr results, decoded literals)
	dense *view      // memoised dense copy of a strided v
}

type step struct {
	run   func()
	flops float64
}

type planner struct {
	kernel string
	fn     *mil.Function
	opset  int
	w      mil.Weights
	multi  bool

	vals  map[*mil.Var]*tval
	uses  map[*mil.Var][]*mil.Operation
	outs  map[*mil.Var]bool
	steps []step
	bufs  []*buffer
	konst int         // elements of constant storage
	arena int         // total elements allocated, set by allocate
	bind  func()      // allocates the arena and binds the buffers, set by allocate
	rows  *rowScratch // shared by the kernel's row-wise steps
	op    *mil.Operation
}

// planErr is the error type planning functions return, turned into a
// CompileError at the op being planned.
type planErr struct {
	kind error
	msg  string
}

func (e *planErr) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &planErr{ane.ErrInvalidProgram, fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) error {
	return &planErr{ane.ErrUnsupported, fmt.Sprintf(format, args...)}
}

func (p *planner) fail(op *mil.Operation, err error) error {
	ce := &CompileError{Kernel: p.kernel, Kind: ane.ErrInvalidProgram, Msg: err.Error()}
	var pe *planErr
	if errors.As(err, &pe) {
		ce.Kind = pe.kind
	}
	if op != nil {
		ce.Pos, ce.Op, ce.OpName = op.Pos, op.Type, op.Name
	} else if p.fn != nil {
		ce.Pos = p.fn.Pos
	}
	return ce
}

// newBuf returns a run-time buffer of n elements, written first by the next
// step emitted.
func (p *planner) newBuf(n int) (*buffer, error) {
	if n < 0 || n > maxArenaElems {
		return nil, unsupported("a tensor of %d elements exceeds the emulator's %d MiB arena", n, MaxArenaBytes>>20)
	}
	b := &buffer{n: n, first: len(p.steps), last: -1}
	p.bufs = append(p.bufs, b)
	return b, nil
}

// constBuf returns a buffer holding data, which stays fixed for the kernel's life.
func (p *planner) constBuf(data []float32) (*buffer, error) {
	if p.konst+len(data) > maxArenaElems {
		return nil, unsupported("constants exceed the emulator's %d MiB arena", MaxArenaBytes>>20)
	}
	p.konst += len(data)
	return &buffer{n: len(data), data: data, konst: true}, nil
}

// emit appends a step that reads the given views and writes the given buffers.
func (p *planner) emit(run func(), flops float64, reads []view, writes ...*buffer) {
	i := len(p.steps)
	for _, r := range reads {
		if r.buf != nil && !r.buf.konst {
			r.buf.last = max(r.buf.last, i)
		}
	}
	for _, w := range writes {
		if !w.konst && w.first > i {
			w.first = i
		}
	}
	p.steps = append(p.steps, step{run: run, flops: flops})
}

// allocate assigns storage to every run-time buffer, letting buffers whose
// lifetimes do not overlap share it (greedy best fit in step order).
func (p *planner) allocate() error {
	type slot struct {
		cap  int
		free bool
		mem  []float32
	}
	var slots []*slot
	byFirst := map[int][]*buffer{}
	byLast := map[int][]*buffer{}
	owner := map[*buffer]*slot{}
	for _, b := range p.bufs {
		if b.last < b.first {
			b.last = b.first
		}
		byFirst[b.first] = append(byFirst[b.first], b)
		byLast[b.last] = append(byLast[b.last], b)
	}
	for i := -1; i <= len(p.steps); i++ {
		for _, b := range byFirst[i] {
			var best *slot
			for _, s := range slots {
				if !s.free {
					continue
				}
				switch {
				case best == nil:
					best = s
				case s.cap >= b.n && (best.cap < b.n || s.cap < best.cap):
					best = s
				case best.cap < b.n && s.cap > best.cap:
					best = s
				}
			}
			if best == nil {
				best = &slot{}
				slots = append(slots, best)
			}
			best.free = false
			best.cap = max(best.cap, b.n)
			owner[b] = best
		}
		for _, b := range byLast[i] {
			owner[b].free = true
		}
	}
	total := p.konst
	for _, s := range slots {
		total += s.cap
		if total > maxArenaElems {
			return p.fail(nil, unsupported("the kernel needs more than the emulator's %d MiB arena", MaxArenaBytes>>20))
		}
	}
	p.arena = total
	// Memory is taken on the first evaluation, so compiling (anetop mil check,
	// start-up) costs no more than the constants.
	bufs := p.bufs
	p.bind = func() {
		for _, s := range slots {
			s.mem = make([]float32, s.cap)
		}
		for _, b := range bufs {
			b.data = owner[b].mem[:b.n:b.n]
		}
	}
	return nil
}

// ---- values ----

// val returns the planner's record of a binding: a variable or an inline literal.
func (p *planner) val(b mil.Binding) (*tval, error) {
	if b.Var != nil {
		tv := p.vals[b.Var]
		if tv == nil {
			return nil, invalid("variable %q is used before it is defined", b.Var.Name)
		}
		return tv, nil
	}
	if b.Value != nil {
		if err := b.Value.Check(); err != nil {
			return nil, invalid("literal: %v", err)
		}
		return &tval{typ: b.Value.Type, konst: b.Value}, nil
	}
	return nil, invalid("empty argument")
}

// arg returns the single value bound to the named input, or nil if absent.
func (p *planner) arg(name string) (*tval, error) {
	a := p.op.Arg(name)
	if a == nil {
		return nil, nil
	}
	if len(a.Bindings) != 1 {
		return nil, invalid("input %q takes one value, not a tuple", name)
	}
	return p.val(a.Bindings[0])
}

// input is arg that refuses an absent input when it is required.
func (p *planner) input(name string, required bool) (*tval, error) {
	tv, err := p.arg(name)
	if err == nil && tv == nil && required {
		err = invalid("missing required input %q", name)
	}
	return tv, err
}

// need returns a required input.
func (p *planner) need(name string) (*tval, error) { return p.input(name, true) }

// needFloat returns a required input that must be fp16 or fp32.
func (p *planner) needFloat(name string) (*tval, error) {
	tv, err := p.need(name)
	if err == nil && !isFloat16or32(tv.typ.DType) {
		err = invalid("%s must be fp16 or fp32, found %v", name, tv.typ)
	}
	return tv, err
}

// constant returns the exact elements of a compile-time value.
func (p *planner) constant(tv *tval, what string) ([]float64, error) {
	if tv.cdata != nil {
		return tv.cdata, nil
	}
	if tv.konst == nil {
		return nil, invalid("%s must be a compile-time constant", what)
	}
	d, err := p.decode(tv.konst)
	if err != nil {
		return nil, err
	}
	tv.cdata = d
	return d, nil
}

// decode returns a literal's elements exactly, reading weight blobs.
func (p *planner) decode(v *mil.Value) ([]float64, error) {
	if err := v.Check(); err != nil {
		return nil, invalid("literal: %v", err)
	}
	n := v.Type.Shape.NumElements()
	if n > maxArenaElems {
		return nil, unsupported("a constant of %d elements exceeds the emulator's arena", n)
	}
	dt := v.Type.DType
	if v.Blob != nil {
		raw, err := p.w.Resolve(v)
		if err != nil {
			return nil, invalid("%v", err)
		}
		es := dt.Size()
		if es == 0 || len(raw) != n*es {
			return nil, invalid("blob holds %d bytes, a %v needs %d", len(raw), v.Type, n*es)
		}
		out := make([]float64, n)
		switch dt {
		case mil.FP16, mil.BF16, mil.FP32, mil.Int8, mil.UInt8:
			f, err := mil.DecodeFloat32s(dt, raw)
			if err != nil {
				return nil, invalid("%v", err)
			}
			for i, x := range f {
				out[i] = float64(x)
			}
		default:
			elem := blobInts[dt]
			if elem == nil {
				return nil, unsupported("blob dtype %v", dt)
			}
			for i := range out {
				out[i] = elem(raw[es*i:])
			}
		}
		return out, nil
	}
	out := make([]float64, n)
	switch {
	case dt.IsFloat():
		for i, x := range v.Floats {
			out[i] = mil.RoundFloat(x, dt)
		}
	case dt.IsInt():
		for i, x := range v.Ints {
			out[i] = float64(x)
		}
	case dt == mil.Bool:
		for i, x := range v.Bools {
			if x {
				out[i] = 1
			}
		}
	default:
		return nil, invalid("a %v value cannot be used as tensor data", dt)
	}
	return out, nil
}

// blobInts reads one little-endian element of the integer dtypes a blob may
// hold beyond those mil.DecodeFloat32s decodes.
var blobInts = map[mil.DType]func([]byte) float64{
	mil.Int16:  func(b []byte) float64 { return float64(int16(binary.LittleEndian.Uint16(b))) },
	mil.UInt16: func(b []byte) float64 { return float64(binary.LittleEndian.Uint16(b)) },
	mil.Int32:  func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) },
	mil.UInt32: func(b []byte) float64 { return float64(binary.LittleEndian.Uint32(b)) },
}

// data returns a value's storage, materialising a constant (rounded to fp16
// for float dtypes; exact for integers and bools).
func (p *planner) data(tv *tval) (view, error) {
	if tv.v.buf != nil {
		return tv.v, nil
	}
	if err := dataDType(tv.typ.DType); err != nil {
		return view{}, err
	}
	n := tv.typ.Shape.NumElements()
	if n < 0 || p.konst+n > maxArenaElems {
		return view{}, unsupported("constants exceed the emulator's %d MiB arena", MaxArenaBytes>>20)
	}
	isFloat := tv.typ.DType.IsFloat()
	var f []float32
	switch {
	case tv.cdata == nil && tv.konst != nil && tv.konst.Blob != nil && isFloat:
		// Large weights: decode straight to float32, not through float64.
		raw, err := p.w.Resolve(tv.konst)
		if err != nil {
			return view{}, invalid("%v", err)
		}
		if f, err = mil.DecodeFloat32s(tv.typ.DType, raw); err != nil {
			return view{}, invalid("%v", err)
		}
		if len(f) != n {
			return view{}, invalid("blob holds %d elements, a %v needs %d", len(f), tv.typ, n)
		}
		fp16.RoundFloat32s(f, f)
	default:
		c, err := p.constant(tv, "value")
		if err != nil {
			return view{}, err
		}
		if len(c) != n {
			return view{}, invalid("constant holds %d elements, a %v needs %d", len(c), tv.typ, n)
		}
		f = make([]float32, n)
		for i, x := range c {
			if isFloat {
				f[i] = float32(mil.RoundFloat(x, mil.FP16))
			} else {
				if math.Abs(x) > maxExactInt {
					return view{}, unsupported("integer constant %v used as tensor data exceeds 2^24, which the emulator's float32 storage holds exactly", x)
				}
				f[i] = float32(x)
			}
		}
	}
	b, err := p.constBuf(f)
	if err != nil {
		return view{}, err
	}
	tv.v = denseView(b, tv.typ.Shape)
	return tv.v, nil
}

// dataDType refuses dtypes the emulator keeps no run-time data for.
func dataDType(d mil.DType) error {
	switch d {
	case mil.FP16, mil.FP32, mil.Int32, mil.Int16, mil.Int8, mil.UInt8, mil.UInt16, mil.Bool:
		return nil
	case mil.String:
		return invalid("a string cannot be used as tensor data")
	}
	return unsupported("%v tensors are not supported by the ANE emulator (fp16, fp32, int8/16/32, uint8/16 and bool are)", d)
}

// dense returns a dense view of tv, copying a strided view once (memoised).
func (p *planner) denseOf(tv *tval) (view, error) {
	v, err := p.data(tv)
	if err != nil {
		return view{}, err
	}
	if v.dense() {
		return v, nil
	}
	if tv.dense != nil {
		return *tv.dense, nil
	}
	d, err := p.copyDense(v)
	if err != nil {
		return view{}, err
	}
	tv.dense = &d
	return d, nil
}

// copyDense emits a copy of v into a new dense buffer.
func (p *planner) copyDense(v view) (view, error) {
	b, err := p.newBuf(v.n())
	if err != nil {
		return view{}, err
	}
	d := denseView(b, v.shape)
	p.emit(copyLoop(d, v), 0, []view{v}, b)
	return d, nil
}

// ---- constant parameters ----

// paramConst reads the elements of a constant input whose type passes is
// (want says what passes, for the error); ok is false when an optional input
// is absent. The param* readers below return their default then.
func (p *planner) paramConst(name string, required bool, want string, is func(mil.Type) bool) (c []float64, ok bool, err error) {
	tv, err := p.input(name, required)
	if err != nil || tv == nil {
		return nil, false, err
	}
	if !is(tv.typ) {
		return nil, false, invalid("input %q must be %s, found %v", name, want, tv.typ)
	}
	c, err = p.constant(tv, "input "+quote(name))
	return c, err == nil, err
}

func (p *planner) paramInts(name string, def []int) ([]int, error) {
	c, ok, err := p.paramConst(name, false, "an integer tensor", func(t mil.Type) bool { return t.DType.IsInt() })
	if err != nil || !ok {
		return def, err
	}
	out := make([]int, len(c))
	for i, x := range c {
		out[i] = int(x)
	}
	return out, nil
}

func (p *planner) paramInt(name string, def int, required bool) (int, error) {
	x, ok, err := p.paramScalar(name, required, "an integer", mil.DType.IsInt)
	if err != nil || !ok {
		return def, err
	}
	return int(x), nil
}

// paramScalar reads a one-element constant input whose dtype passes is
// (kind names such dtypes); ok is false when an optional input is absent.
func (p *planner) paramScalar(name string, required bool, kind string, is func(mil.DType) bool) (x float64, ok bool, err error) {
	c, ok, err := p.paramConst(name, required, kind+" scalar", func(t mil.Type) bool {
		return is(t.DType) && t.Shape.NumElements() == 1
	})
	if !ok {
		return 0, false, err
	}
	return c[0], true, nil
}

func (p *planner) paramBool(name string, def bool) (bool, error) {
	c, ok, err := p.paramConst(name, false, "a bool scalar", func(t mil.Type) bool { return t.DType == mil.Bool && t.IsScalar() })
	if err != nil || !ok {
		return def, err
	}
	return c[0] != 0, nil
}

func (p *planner) paramBools(name string, n int) ([]bool, error) {
	out := make([]bool, n)
	c, ok, err := p.paramConst(name, false, fmt.Sprintf("a bool tensor of %d elements", n), func(t mil.Type) bool {
		return t.DType == mil.Bool && t.Shape.NumElements() == n
	})
	if err != nil || !ok {
		return out, err
	}
	for i, x := range c {
		out[i] = x != 0
	}
	return out, nil
}

func (p *planner) paramFloat(name string, def float64, required bool) (float64, error) {
	x, ok, err := p.paramScalar(name, required, "a numeric", mil.DType.IsNumeric)
	if err != nil || !ok {
		return def, err
	}
	return x, nil
}

func (p *planner) paramString(name, def string, required bool) (string, error) {
	tv, err := p.input(name, required)
	if err != nil || tv == nil {
		return def, err
	}
	s, ok := tv.konst.AsString() // nil-safe: a computed value is no string
	if !ok {
		return "", invalid("input %q must be a constant string, found %v", name, tv.typ)
	}
	return s, nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// axis normalises a possibly negative axis against rank.
func normAxis(a, rank int) (int, error) {
	if a < -rank || a >= rank {
		return 0, invalid("axis %d is out of range for rank %d", a, rank)
	}
	if a < 0 {
		a += rank
	}
	return a, nil
}

// ---- outputs ----

// out records the result of the op being planned as output i, checking it
// against the declared type.
func (p *planner) out(i int, v view, dt mil.DType) error {
	if i >= len(p.op.Outputs) {
		return invalid("the op produces %d outputs, %d declared", i+1, len(p.op.Outputs))
	}
	o := p.op.Outputs[i]
	got := mil.Type{DType: dt, Shape: mil.Shape(v.shape)}
	if o.Type.DType != dt || !o.Type.Shape.Equal(got.Shape) {
		return invalid("%s is declared %v but the op produces %v", o.Name, o.Type, got)
	}
	p.vals[o] = &tval{typ: o.Type, v: v}
	return nil
}

// outConst records a compile-time result.
func (p *planner) outConst(i int, t mil.Type, data []float64) error {
	if i >= len(p.op.Outputs) {
		return invalid("the op produces %d outputs, %d declared", i+1, len(p.op.Outputs))
	}
	o := p.op.Outputs[i]
	if !o.Type.Equal(t) {
		return invalid("%s is declared %v but the op produces %v", o.Name, o.Type, t)
	}
	p.vals[o] = &tval{typ: o.Type, cdata: data}
	return nil
}

func (p *planner) nOutputs(n int) error {
	if len(p.op.Outputs) != n {
		return invalid("the op has %d outputs, %d declared", n, len(p.op.Outputs))
	}
	return nil
}
