package anetest

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
)

// Option configures Run.
type Option func(*config)

type config struct {
	scale float64
	skip  map[string]string
	open  func(ane.Options) (ane.Device, error)
}

// Tolerance multiplies every error bound by scale (default 1). Use it for a
// device whose arithmetic is looser than the fp16 model of the package doc,
// and say so where it is used.
func Tolerance(scale float64) Option {
	return func(c *config) {
		if scale > 0 {
			c.scale = scale
		}
	}
}

// Skip skips the subtest at path (relative to Run's test, such as
// "ops/conv/dilated", or a group such as "ops/sdpa") with a reason, which is
// logged. It is for documented differences of a particular device; every
// skip should name its evidence.
func Skip(path, reason string) Option {
	return func(c *config) { c.skip[strings.Trim(path, "/")] = reason }
}

// WithOpen gives the suite a way to open fresh devices of the same kind as
// the one under test: the budget test opens one with a small Options.Budget,
// and the multi-I/O test one with Options.MultiIO. Without it those subtests
// are skipped.
func WithOpen(open func(ane.Options) (ane.Device, error)) Option {
	return func(c *config) { c.open = open }
}

// suite is one run of the conformance suite on a device.
type suite struct {
	dev ane.Device
	cfg config
}

// Run runs the conformance suite on dev as subtests of t: every op of the
// mil builder against the float64 reference, a dynamic matmul with weights
// packed in the input, one kernel evaluated with many per-layer surfaces,
// budget accounting and the refusals and errors a device owes its users.
//
// Run needs dev to itself while it runs (it checks that each compile moves
// the budget by exactly one), makes about 80 compiles on it, and does not
// close it. The subtests are sequential: the ANE serialises evaluations
// anyway, and a failure's program text is then easy to find in the log.
func Run(t *testing.T, dev ane.Device, opts ...Option) {
	t.Helper()
	s := &suite{dev: dev, cfg: config{scale: 1, skip: map[string]string{}}}
	for _, o := range opts {
		o(&s.cfg)
	}
	t.Logf("device: %s (tolerance ×%g)", dev.Name(), s.cfg.scale)
	s.run(t, "ops", func(t *testing.T) {
		// Cases are named group/case; each group is a subtest of its own so
		// that a whole group can be skipped or run with -run.
		var groups []string
		byGroup := map[string][]opCase{}
		for _, c := range opCases() {
			g, _, _ := strings.Cut(c.name, "/")
			if byGroup[g] == nil {
				groups = append(groups, g)
			}
			byGroup[g] = append(byGroup[g], c)
		}
		for _, g := range groups {
			s.run(t, "ops/"+g, func(t *testing.T) {
				for _, c := range byGroup[g] {
					s.run(t, "ops/"+c.name, func(t *testing.T) { s.runCase(t, c) })
				}
			})
		}
	})
	s.run(t, "dynamic_matmul", s.dynamicMatmul)
	s.run(t, "per_layer_surfaces", s.perLayerSurfaces)
	s.run(t, "budget", s.budget)
	s.run(t, "errors", s.errorCases)
	used, limit := dev.Budget()
	t.Logf("compile budget after the suite: %d of %d used", used, limit)
}

// run runs f as a subtest of t named after the last element of path (the
// subtest's path relative to Run's test), unless a Skip option names the path
// or one of its parents.
func (s *suite) run(t *testing.T, path string, f func(t *testing.T)) {
	t.Helper()
	t.Run(path[strings.LastIndex(path, "/")+1:], func(t *testing.T) {
		for k, why := range s.cfg.skip {
			if path == k || strings.HasPrefix(path, k+"/") {
				t.Skipf("skipped by option: %s", why)
			}
		}
		f(t)
	})
}

// operand is one input of a test kernel: a shape and how its values are made.
type operand struct {
	shape  []int
	lo, hi float64   // uniform in [lo, hi) when vals is nil
	vals   []float64 // explicit values, row-major
}

// uniform is a random operand, uniform in [lo, hi).
func uniform(lo, hi float64, shape ...int) operand { return operand{shape: shape, lo: lo, hi: hi} }

// fixed is an operand with the given values.
func fixed(vals []float64, shape ...int) operand { return operand{shape: shape, vals: vals} }

// opCase is one kernel of the op tests. build receives the operands (already
// unpacked to their shapes) and returns fp16 results; the harness packs them
// in and out of the single input and output the hardware accepts.
type opCase struct {
	name   string
	target mil.Target // zero means mil.IOS18
	ins    []operand
	build  func(k *kb, x []*mil.Var) []*mil.Var
}

// kb is the builder as the cases use it: the mil builder with fresh names.
type kb struct {
	*mil.Builder
	n   int
	rng *rand.Rand
}

// id returns a fresh variable name.
func (k *kb) id() string {
	k.n++
	return fmt.Sprintf("v%d", k.n)
}

// weights returns n random values in [lo, hi), already fp16, for constants.
func (k *kb) weights(n int, lo, hi float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(round16(lo + (hi-lo)*k.rng.Float64()))
	}
	return out
}

// constant writes an fp16 const (inline or blob) of random values.
func (k *kb) constant(lo, hi float64, shape ...int) *mil.Var {
	return k.ConstFP16(k.id(), shape, k.weights(numel(shape), lo, hi))
}

// scalar writes an fp16 scalar const.
func (k *kb) scalar(x float64) *mil.Var { return k.ConstScalar(k.id(), mil.FP16, x) }

// rngFor seeds a generator from the case name, so every case sees the same
// data whatever runs before it.
func rngFor(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	seed := h.Sum64()
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// align is the row length the packed input and output are padded to: 64
// bytes of fp16, the ANE's row alignment (research mil-spec §6.1), so a small
// test tensor is never shorter than the hardware wants.
const align = 32

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// packed is a built test kernel and its input.
type packed struct {
	prog    *mil.Program
	weights mil.Weights
	input   []float64 // fp16 values, padded
	outLen  int       // meaningful output elements (the rest is padding)
	pieces  []piece   // where each result sits in the output
}

type piece struct {
	off   int
	shape []int
}

// kernel makes the case's kernel: one fp16 input [1, 1, 1, S] holding every
// operand side by side, sliced and reshaped inside the kernel, and one fp16
// output [1, 1, 1, M] concatenating every result, flattened.
func (c opCase) kernel() (*packed, error) {
	target := c.target
	if target == 0 {
		target = mil.IOS18
	}
	rng := rngFor(c.name)
	k := &kb{Builder: mil.NewBuilder(target), rng: rng}
	total := 0
	for _, o := range c.ins {
		total += numel(o.shape)
	}
	s := roundUp(max(total, 1), align)
	p := &packed{input: make([]float64, s)}
	x := k.Input("x", mil.TensorOf(mil.FP16, 1, 1, 1, s))
	var args []*mil.Var
	off := 0
	for i, o := range c.ins {
		n := numel(o.shape)
		switch {
		case o.vals != nil && len(o.vals) != n:
			return nil, fmt.Errorf("operand %d: %d values for shape %v", i, len(o.vals), o.shape)
		case o.vals != nil:
			for j, v := range o.vals {
				p.input[off+j] = round16(v)
			}
		default:
			for j := range n {
				p.input[off+j] = round16(o.lo + (o.hi-o.lo)*rng.Float64())
			}
		}
		a := k.SliceBySize(fmt.Sprintf("in%d", i), x, []int{0, 0, 0, off}, []int{1, 1, 1, n})
		if !slices.Equal(o.shape, []int{1, 1, 1, n}) {
			a = k.Reshape(fmt.Sprintf("in%d_shaped", i), a, o.shape...)
		}
		args = append(args, a)
		off += n
	}
	results := c.build(k, args)
	if err := k.Err(); err != nil {
		return nil, err
	}
	var flat []*mil.Var
	m := 0
	for i, r := range results {
		if r.Type.DType != mil.FP16 {
			return nil, fmt.Errorf("result %d is %v; cases must return fp16", i, r.Type)
		}
		n := r.Type.Shape.NumElements()
		p.pieces = append(p.pieces, piece{off: m, shape: slices.Clone([]int(r.Type.Shape))})
		flat = append(flat, k.Reshape(fmt.Sprintf("out%d", i), r, 1, 1, 1, n))
		m += n
	}
	p.outLen = m
	if pad := roundUp(m, align) - m; pad > 0 {
		flat = append(flat, k.ConstFP16("out_pad", mil.Shape{1, 1, 1, pad}, make([]float32, pad)))
	}
	y := flat[0]
	if len(flat) > 1 {
		y = k.Concat("y", 3, false, flat...)
	}
	k.Output(y)
	prog, w, err := k.Build()
	if err != nil {
		return nil, err
	}
	p.prog, p.weights = prog, w
	return p, nil
}

// runCase compiles, evaluates and checks one op case.
func (s *suite) runCase(t *testing.T, c opCase) {
	p, err := c.kernel()
	if err != nil {
		t.Fatalf("building the kernel (a test or mil builder bug): %v", err)
	}
	ref, err := reference(p.prog.Main(), p.weights, []*tensor{inputTensor(p.input, p.prog.Main().Inputs[0].Type.Shape)})
	if err != nil {
		t.Fatalf("%v\n%s", err, mil.Print(p.prog))
	}
	k := s.compile(t, c.name, p.prog, p.weights)
	got := s.eval(t, k, p.input)
	bad := compare(got[:p.outLen], ref[0].v[:p.outLen], ref[0].e[:p.outLen], s.cfg.scale)
	if len(bad) > 0 {
		s.report(t, p, bad)
	}
	t.Logf("%d outputs; worst error %.3g of its bound", p.outLen, worst(got[:p.outLen], ref[0].v, ref[0].e))
}

// worst is the largest |got − ref| / bound over finite elements: how much of
// its tolerance the device used, logged so a device drifting towards the
// bound shows before it fails.
func worst(got, want, bound []float64) float64 {
	w := 0.0
	for i, g := range got {
		if d := math.Abs(g - want[i]); d > 0 && !math.IsInf(want[i], 0) && !math.IsNaN(d) {
			w = max(w, d/bound[i])
		}
	}
	return w
}

// inputTensor is an exact input: values that travel as fp16, no error.
func inputTensor(v []float64, shape mil.Shape) *tensor {
	t := newTensor(mil.FP16, shape)
	copy(t.v, v)
	return t
}

// compile compiles a program and checks that the budget counts it.
func (s *suite) compile(t *testing.T, name string, p *mil.Program, w mil.Weights) ane.Kernel {
	t.Helper()
	used, _ := s.dev.Budget()
	k, err := s.dev.Compile(strings.ReplaceAll(name, "/", "_"), p, w)
	if err != nil {
		t.Fatalf("compile: %v\nprogram:\n%s", err, mil.Print(p))
	}
	t.Cleanup(func() { k.Close() })
	if after, _ := s.dev.Budget(); after != used+1 {
		t.Errorf("budget: %d compiles used before a successful compile, %d after; want one more", used, after)
	}
	return k
}

// eval runs a single-input kernel on values (already fp16) and returns its
// output. The output surface is filled with NaN first, so a kernel that
// leaves part of it unwritten cannot pass by luck.
func (s *suite) eval(t *testing.T, k ane.Kernel, values []float64) []float64 {
	t.Helper()
	in, err := k.NewSurface(ane.Input, 0)
	if err != nil {
		t.Fatalf("input surface: %v", err)
	}
	out, err := k.NewSurface(ane.Output, 0)
	if err != nil {
		t.Fatalf("output surface: %v", err)
	}
	writeSurface(t, in, values)
	fillNaN(t, out)
	if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err != nil {
		t.Fatalf("eval: %v", err)
	}
	return readSurface(t, out)
}

// writeSurface stores row-major values into a surface.
func writeSurface(t *testing.T, s *ane.Surface, values []float64) {
	t.Helper()
	if len(values) != s.Rows()*s.Cols() {
		t.Fatalf("surface %v holds %d elements, have %d values", s.Shape(), s.Rows()*s.Cols(), len(values))
	}
	f := make([]float32, len(values))
	for i, v := range values {
		f[i] = float32(v)
	}
	if err := s.Lock(false); err != nil {
		t.Fatalf("lock: %v", err)
	}
	s.WriteBlock(0, 0, s.Rows(), s.Cols(), f, s.Cols())
	if err := s.Unlock(false); err != nil {
		t.Fatalf("unlock: %v", err)
	}
}

func fillNaN(t *testing.T, s *ane.Surface) {
	t.Helper()
	nan := make([]float64, s.Rows()*s.Cols())
	for i := range nan {
		nan[i] = math.NaN()
	}
	writeSurface(t, s, nan)
}

func readSurface(t *testing.T, s *ane.Surface) []float64 {
	t.Helper()
	f := make([]float32, s.Rows()*s.Cols())
	if err := s.Lock(true); err != nil {
		t.Fatalf("lock: %v", err)
	}
	s.ReadBlock(0, 0, s.Rows(), s.Cols(), f, s.Cols())
	if err := s.Unlock(true); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	out := make([]float64, len(f))
	for i, x := range f {
		out[i] = float64(x)
	}
	return out
}

// mismatch is one element outside its bound.
type mismatch struct {
	i              int
	got, want, tol float64
	why            string
}

// compare checks got against the reference values and bounds, as the package
// doc states: special values exactly, finite ones within scale·bound, and
// overflow to inf accepted only where the bound reaches the fp16 maximum.
func compare(got, want, bound []float64, scale float64) []mismatch {
	var bad []mismatch
	for i, g := range got {
		w, tol := want[i], scale*bound[i]
		m := mismatch{i: i, got: g, want: w, tol: tol}
		switch {
		case math.IsNaN(w):
			if !math.IsNaN(g) {
				m.why = "want NaN"
				bad = append(bad, m)
			}
		case math.IsInf(w, 0):
			if g != w {
				m.why = "want exactly " + fmt.Sprint(w) + " (fp16 overflow)"
				bad = append(bad, m)
			}
		case math.IsNaN(tol) || math.IsInf(tol, 0):
			m.why = "the reference has no finite error bound here (a test design bug)"
			bad = append(bad, m)
		case math.IsNaN(g):
			m.why = "got NaN"
			bad = append(bad, m)
		case math.IsInf(g, 0):
			if math.Signbit(g) != math.Signbit(w) || math.Abs(w)+tol < maxHalf {
				m.why = "got inf where no overflow is possible"
				bad = append(bad, m)
			}
		case math.Abs(g-w) > tol:
			m.why = fmt.Sprintf("off by %.3g, %.2f× the bound", math.Abs(g-w), math.Abs(g-w)/tol)
			bad = append(bad, m)
		}
	}
	return bad
}

// report describes mismatches by result and index, and logs the program so
// a failure on hardware can be reproduced and routed.
func (s *suite) report(t *testing.T, p *packed, bad []mismatch) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d elements outside the bound:\n", len(bad), p.outLen)
	for n, m := range bad {
		if n == 12 {
			fmt.Fprintf(&b, "  … and %d more\n", len(bad)-n)
			break
		}
		r := 0
		for r+1 < len(p.pieces) && p.pieces[r+1].off <= m.i {
			r++
		}
		pc := p.pieces[r]
		idx := make([]int, len(pc.shape))
		if len(pc.shape) > 0 {
			unravel(m.i-pc.off, pc.shape, idx)
		}
		fmt.Fprintf(&b, "  result %d %v at %v: got %v, want %v ± %.3g (%s)\n", r, pc.shape, idx, m.got, m.want, m.tol, m.why)
	}
	t.Errorf("%sprogram:\n%s", b.String(), mil.Print(p.prog))
}

// mustOpen opens a fresh device with opts, or skips when the suite has no
// opener.
func (s *suite) mustOpen(t *testing.T, opts ane.Options) ane.Device {
	t.Helper()
	if s.cfg.open == nil {
		t.Skip("needs a device opener: pass anetest.WithOpen to Run")
	}
	d, err := s.cfg.open(opts)
	if err != nil {
		t.Fatalf("open a device with %+v: %v", opts, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// errorsIs reports whether err matches any of targets.
func errorsIs(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
