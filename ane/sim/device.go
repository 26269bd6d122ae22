package sim

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

func init() {
	ane.Register(ane.Backend{
		Name:      "sim",
		Available: func() (bool, string) { return true, "" },
		Open: func(o ane.Options) (ane.Device, error) {
			d, err := New(o)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		Priority: 0,
	})
}

// Device is the CPU emulator of the ANE. Its kernels run one at a time on the
// device's worker goroutine, as evaluations on the ANE are serialised, so a
// caller's other goroutines overlap with an evaluation as they would with the
// hardware.
type Device struct {
	opts   ane.Options
	budget *ane.Budget
	jobs   chan job
	quit   chan struct{}
	done   chan struct{}

	closeOnce sync.Once
	mu        sync.Mutex // guards closed
	closed    bool
}

type job struct {
	k       *kernel
	in, out []*ane.Surface
	release bool // drop the kernel's memory instead of evaluating
	reply   chan error
}

// New opens an emulator device.
func New(opts ane.Options) (*Device, error) {
	limit := opts.Budget
	if limit <= 0 {
		limit = ane.DefaultBudget
	}
	d := &Device{opts: opts, budget: ane.NewBudget(limit),
		jobs: make(chan job), quit: make(chan struct{}), done: make(chan struct{})}
	go d.worker()
	return d, nil
}

func (d *Device) worker() {
	defer close(d.done)
	for {
		select {
		case j := <-d.jobs:
			if j.release {
				j.k.release()
				j.reply <- nil
				continue
			}
			j.reply <- j.k.run(j.in, j.out)
		case <-d.quit:
			return
		}
	}
}

// Name describes the device: "emulator · CPU (AMD EPYC, 2 threads)".
func (d *Device) Name() string {
	return fmt.Sprintf("emulator · CPU (%s, %d threads)", cpuModel(), runtime.GOMAXPROCS(0))
}

// Emulated is true: figures shown for this device are emulator figures.
func (d *Device) Emulated() bool { return true }

var peak struct {
	once  sync.Once
	flops float64
}

// PeakFLOPS is this CPU's sgemm peak in FLOP/s, measured once per process on
// the first call with a short timed sgemm through blas.
func (d *Device) PeakFLOPS() float64 {
	peak.once.Do(func() { peak.flops = measurePeak() })
	return peak.flops
}

// measurePeak times a 512³ sgemm (about 0.27 GFLOP) several times for at most
// ~0.3 s and keeps the best rate.
func measurePeak() float64 {
	const n = 512
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	c := make([]float32, n*n)
	for i := range a {
		a[i] = float32(i%7) * 0.25
		b[i] = float32(i%5) * 0.5
	}
	best := 0.0
	start := time.Now()
	for i := 0; i < 20 && (i < 3 || time.Since(start) < 300*time.Millisecond); i++ {
		t := time.Now()
		blas.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		if s := time.Since(t).Seconds(); s > 0 {
			best = math.Max(best, 2*n*n*n/s)
		}
	}
	if best == 0 {
		best = 1e9
	}
	return best
}

// Compile compiles p, as the ANE would: the program is printed to MIL text and
// that text is what is parsed, checked and planned.
func (d *Device) Compile(name string, p *mil.Program, w mil.Weights) (ane.Kernel, error) {
	if p == nil {
		return nil, fmt.Errorf("compile %s: nil program (%w)", name, ane.ErrInvalidProgram)
	}
	return d.CompileText(name, mil.Print(p), w)
}

// CompileText compiles MIL text; name labels errors (use the file name for
// file:line:col messages). It counts against the budget like Compile.
func (d *Device) CompileText(name string, text []byte, w mil.Weights) (ane.Kernel, error) {
	if d.isClosed() {
		return nil, fmt.Errorf("compile %s: device is closed", name)
	}
	if err := d.budget.Reserve(name); err != nil {
		return nil, err
	}
	pl, err := compileProgram(name, text, w, d.opts)
	if err != nil {
		d.budget.Release()
		return nil, err
	}
	return &kernel{dev: d, plan: pl}, nil
}

// CompileText compiles MIL text without touching any device's budget: the
// linter's entry point (anetop mil check). The kernel runs on a shared
// emulator device and can be inspected (Inputs, Outputs, FLOPs) and evaluated.
func CompileText(name string, text []byte, w mil.Weights) (ane.Kernel, error) {
	return CompileTextOptions(name, text, w, ane.Options{})
}

// CompileTextOptions is CompileText with device options (MultiIO).
func CompileTextOptions(name string, text []byte, w mil.Weights, opts ane.Options) (ane.Kernel, error) {
	pl, err := compileProgram(name, text, w, opts)
	if err != nil {
		return nil, err
	}
	shared.once.Do(func() { shared.dev, _ = New(ane.Options{}) })
	return &kernel{dev: shared.dev, plan: pl}, nil
}

// shared is the device behind CompileText's kernels; it is never closed.
var shared struct {
	once sync.Once
	dev  *Device
}

// Budget returns the compiles used and the limit.
func (d *Device) Budget() (used, limit int) { return d.budget.Counts() }

func (d *Device) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Close stops the worker. Evaluations after Close fail.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		close(d.quit)
		<-d.done
	})
	return nil
}

var errClosed = errors.New("device is closed")

// replies is a free list of reply channels, so an evaluation makes none. A
// channel is returned to it empty: the worker sends exactly one reply to a job
// it took, and a job it never took gets none. (A channel per kernel would not
// do: a kernel may be evaluated from several goroutines at once.)
var replies = make(chan chan error, 64)

// submit runs a job on the worker and waits for it.
func (d *Device) submit(j job) error {
	select {
	case j.reply = <-replies:
	default:
		j.reply = make(chan error, 1)
	}
	var err error
	select {
	case d.jobs <- j:
		err = <-j.reply
	case <-d.quit:
		err = errClosed
	}
	select {
	case replies <- j.reply:
	default:
	}
	return err
}

// ---- kernels ----

// plan is a compiled kernel: its steps and the buffers they use.
type plan struct {
	name              string
	fn                *mil.Function
	inputs, outputs   []view
	inTypes, outTypes []mil.Type
	steps             []step
	flops             float64
	arena             int    // elements of run-time storage and constants
	bind              func() // allocates the arena; nil once done
}

type kernel struct {
	dev  *Device
	plan *plan

	evals  atomic.Int64
	nanos  atomic.Int64
	closed atomic.Bool
}

func (k *kernel) Name() string        { return k.plan.name }
func (k *kernel) Inputs() []mil.Type  { return cloneTypes(k.plan.inTypes) }
func (k *kernel) Outputs() []mil.Type { return cloneTypes(k.plan.outTypes) }
func (k *kernel) FLOPs() float64      { return k.plan.flops }
func (k *kernel) String() string      { return "sim kernel " + k.plan.name }

// Function returns the parsed main function a kernel of this package runs
// (what anetop mil check summarises: its ops), or nil for another device's
// kernel.
func Function(k ane.Kernel) *mil.Function {
	if kk, ok := k.(*kernel); ok {
		return kk.plan.fn
	}
	return nil
}

func cloneTypes(ts []mil.Type) []mil.Type {
	out := make([]mil.Type, len(ts))
	for i, t := range ts {
		out[i] = mil.Type{DType: t.DType, Shape: t.Shape.Clone()}
	}
	return out
}

func (k *kernel) Stats() ane.KernelStats {
	n := k.evals.Load()
	return ane.KernelStats{Evals: n, Time: time.Duration(k.nanos.Load()), FLOPs: float64(n) * k.plan.flops}
}

func (k *kernel) NewSurface(which ane.IO, i int) (*ane.Surface, error) {
	ts := k.plan.inTypes
	if which == ane.Output {
		ts = k.plan.outTypes
	}
	if i < 0 || i >= len(ts) {
		return nil, fmt.Errorf("kernel %s: no %v %d (it has %d)", k.plan.name, which, i, len(ts))
	}
	return ane.NewSurface(ts[i].Shape, 0, k.dev)
}

func (k *kernel) Eval(in, out []*ane.Surface) error {
	if k.closed.Load() {
		return fmt.Errorf("eval %s: kernel is closed", k.plan.name)
	}
	if err := k.checkSurfaces(ane.Input, in, k.plan.inTypes); err != nil {
		return err
	}
	if err := k.checkSurfaces(ane.Output, out, k.plan.outTypes); err != nil {
		return err
	}
	if err := k.dev.submit(job{k: k, in: in, out: out}); err != nil {
		return fmt.Errorf("eval %s: %w", k.plan.name, err)
	}
	return nil
}

func (k *kernel) checkSurfaces(which ane.IO, ss []*ane.Surface, ts []mil.Type) error {
	if len(ss) != len(ts) {
		return fmt.Errorf("eval %s: %d %v surfaces given, the kernel has %d", k.plan.name, len(ss), which, len(ts))
	}
	for i, s := range ss {
		if s == nil {
			return fmt.Errorf("eval %s: %v surface %d is nil", k.plan.name, which, i)
		}
		if o := s.Owner(); o != nil && o != any(k.dev) {
			return fmt.Errorf("eval %s: %v surface %d belongs to another device; allocate it with this kernel's NewSurface",
				k.plan.name, which, i)
		}
		if !s.Shape().Equal(ts[i].Shape) {
			return fmt.Errorf("eval %s: %v surface %d has shape %v, the kernel's %v %d is %v",
				k.plan.name, which, i, s.Shape(), which, i, ts[i])
		}
	}
	return nil
}

// run evaluates the kernel on the device worker.
func (k *kernel) run(in, out []*ane.Surface) (err error) {
	if k.closed.Load() {
		return errors.New("kernel is closed")
	}
	start := time.Now()
	if k.plan.bind != nil {
		k.plan.bind()
		k.plan.bind = nil
	}
	defer func() {
		// A panic here is an emulator bug; report it as an error rather than
		// taking the process down with the worker.
		if r := recover(); r != nil {
			err = fmt.Errorf("emulator internal error: %v", r)
		}
	}()
	if err := transfer(in, k.plan.inputs, true, func(d []float32, s []fp16.Bits) { fp16.ToFloat32s(d, s) }); err != nil {
		return err
	}
	for i := range k.plan.steps {
		k.plan.steps[i].run()
	}
	if err := transfer(out, k.plan.outputs, false, func(d []float32, s []fp16.Bits) { fp16.FromFloat32s(s, d) }); err != nil {
		return err
	}
	k.evals.Add(1)
	k.nanos.Add(int64(time.Since(start)))
	return nil
}

// transfer copies between surfaces and the kernel's dense views one surface
// row at a time, calling row with the view's part and the surface's row. Each
// surface is locked read-only for inputs and for writing for outputs.
func transfer(ss []*ane.Surface, vs []view, input bool, row func(d []float32, s []fp16.Bits)) error {
	what := "output"
	if input {
		what = "input"
	}
	for i, s := range ss {
		if err := s.Lock(input); err != nil {
			return fmt.Errorf("lock %s %d: %w", what, i, err)
		}
		d := vs[i].slice()
		cols := s.Cols()
		for r := range s.Rows() {
			row(d[r*cols:(r+1)*cols], s.Row(r))
		}
		if err := s.Unlock(input); err != nil {
			return fmt.Errorf("unlock %s %d: %w", what, i, err)
		}
	}
	return nil
}

// Close releases the kernel's memory.
func (k *kernel) Close() error {
	if k.closed.Swap(true) {
		return nil
	}
	// The arena is released on the worker, after any evaluation in progress;
	// on a closed device the worker is gone and nothing else runs the kernel.
	if k.dev.submit(job{k: k, release: true}) != nil {
		k.release()
	}
	return nil
}

// release drops the kernel's buffers and steps; its types stay readable.
func (k *kernel) release() {
	k.plan.steps, k.plan.inputs, k.plan.outputs, k.plan.bind = nil, nil, nil, nil
}

// cpuModel names the processor for Name.
func cpuModel() string {
	cpuOnce.Do(func() {
		cpuName = runtime.GOARCH
		f, err := os.Open("/proc/cpuinfo")
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			k = strings.TrimSpace(k)
			if ok && (k == "model name" || k == "Model" || k == "Hardware") {
				if v = strings.TrimSpace(v); v != "" {
					cpuName = v
					return
				}
			}
		}
	})
	return cpuName
}

var (
	cpuOnce sync.Once
	cpuName string
)
