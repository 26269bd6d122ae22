package ane

// The Neural Engine device: the logic that sits above the Objective-C and
// IOSurface calls. It is built on every platform so that its sequencing —
// compile → load (with retry) → bind → eval → unload, cleanup on every
// failure, the compile budget, the program cache, the request cache — is
// unit-tested on Linux against a fake runtime (hw_test.go). The darwin files
// (hw_darwin.go, objc_darwin.go, iosurface_darwin.go) implement the runtime
// with the private AppleNeuralEngine.framework through purego and stay thin.
//
// Research citations: ane-anchor.md (§1 the private API, §8 gotchas),
// go-ecosystem.md (§1–2 purego), peers.md (§1 what cost the Go peer time).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

// Handles the runtime hands out: Objective-C object pointers and IOSurfaceRefs
// on macOS, table indices in the fake. The device logic never looks inside.
type (
	modelRef   uintptr // a retained _ANEInMemoryModel
	surfaceRef uintptr // an IOSurfaceRef the runtime created
	requestRef uintptr // a retained _ANERequest
)

// weightFile is one entry of the weights dictionary: the exact BLOBFILE path
// the program names ("@model_path/weights/weight.bin") and the file's bytes
// (ane-anchor §1.4 step 3).
type weightFile struct {
	path string
	data []byte
}

// engineRuntime is the seam between the device logic and the framework.
//
// Every method except lockSurface, unlockSurface, baseAddress and
// foreignCalls is called on the device's worker goroutine only — one
// goroutine locked to its OS thread for its whole life — and inside an
// autorelease pool opened by poolPush and closed by poolPop around each job (go-ecosystem §1.5: pools are per thread,
// and objects the framework autoreleases must be drained on the thread that
// made them). lockSurface and unlockSurface are plain C calls on IOSurfaces
// and may be called from any goroutine (go-ecosystem §1.9), so staging data
// does not queue behind evaluations.
//
// Every method that fails returns an error carrying the framework's own
// message (NSError description, ane-anchor §1.6). A method that fails cleans
// up what it created itself; what it returned successfully is released by the
// matching free method.
type engineRuntime interface {
	// newModel builds the descriptor from the MIL text (as NSData) and the
	// weights dictionary (empty, never nil), creates the in-memory model and
	// returns it with the directory the framework will compile it in:
	// tmpRoot (NSTemporaryDirectory()) and id (its hexStringIdentifier),
	// which the caller must pre-populate (ane-anchor §1.4 steps 3–7).
	newModel(text []byte, weights []weightFile) (m modelRef, tmpRoot, id string, err error)
	// compile runs compileWithQoS:options:error: (§1.4 step 8).
	compile(m modelRef) error
	// load runs loadWithQoS:options:error: once (§1.4 step 9); the caller retries.
	load(m modelRef) error
	// unload runs unloadWithQoS:error: (§1.4 step 14).
	unload(m modelRef) error
	// attributes returns the part of the compiled model's modelAttributes
	// that describes its I/O layout as plain Go values (map[string]any,
	// []any, int64, float64, string), or ok false when the framework does
	// not offer it (peers.md §1.4).
	attributes(m modelRef) (attrs any, ok bool)
	// freeModel releases the model object.
	freeModel(m modelRef)

	// newSurface creates an IOSurface of the given size as a flat byte
	// buffer (ane-anchor §1.5) and returns its memory, which stays at the
	// same address until freeSurface.
	newSurface(bytes int) (s surfaceRef, mem []byte, err error)
	freeSurface(s surfaceRef)
	// lockSurface and unlockSurface bracket CPU access: read-only locks for
	// reading outputs, plain locks for writing inputs (ane-anchor §1.5).
	lockSurface(s surfaceRef, readOnly bool) error
	unlockSurface(s surfaceRef, readOnly bool) error
	// baseAddress is IOSurfaceGetBaseAddress, a plain C call safe on any
	// goroutine. Only anetop doctor calls it (CheckSurfaceAddress), under a
	// lock, to confirm the address newSurface returned is still the one
	// the surface's memory is at.
	baseAddress(s surfaceRef) uintptr

	// newRequest wraps the surfaces and builds an _ANERequest binding them,
	// inputs and outputs in order (ane-anchor §1.4 step 12).
	newRequest(in, out []surfaceRef) (requestRef, error)
	freeRequest(r requestRef)
	// eval runs evaluateWithQoS:options:request:error:, which returns once the
	// outputs are written (ane-anchor §1.2).
	eval(m modelRef, r requestRef) error

	poolPush() uintptr
	poolPop(token uintptr)
	// foreignCalls is the number of crossings from Go into C or
	// Objective-C the runtime has made so far.
	foreignCalls() int64
}

const (
	// loadRetryDelay: a load can fail transiently; the reference bridge
	// retries once after 100 ms for "slot reclamation" (ane-anchor §1.2,
	// §8.13).
	loadRetryDelay = 100 * time.Millisecond

	// dispatchFloor is what one evaluation costs however small the kernel:
	// ~70–95 µs per dispatch (peers.md §4.1 ANEForge, §6), 0.095 ms per
	// dispatch (peers.md §3.1 rustane), 0.06–0.08 ms for an 8 MFLOP conv on
	// M5 (ane-anchor §1.8).
	dispatchFloor = 100 * time.Microsecond
	// fallbackRatio: an evaluation is a suspected CPU fallback when it takes
	// more than this many times the predicted dispatchFloor + FLOPs/peak,
	// that is when it achieves under 1% of the predicted rate. Real kernels
	// reach 5–15% of peak (ane-anchor §7.1), a CPU fallback was 889× slower
	// than the ANE (peers.md §4.1), so the margin is wide on both sides.
	fallbackRatio = 100
	// fallbackWarmup: the first evaluations of a program are not judged;
	// first use is slow (15.6 ms load at first use vs 1.7 ms after,
	// ane-anchor §1.8), and so is the first evaluation of a new binding.
	fallbackWarmup = 3
)

var (
	errDeviceClosed = errors.New("the Neural Engine device is closed")
	errKernelClosed = errors.New("kernel is closed")
)

// NeuralEngine is the Apple Neural Engine as an ane.Device: kernels compiled
// by Apple's ANE compiler and evaluated by the hardware through the private
// AppleNeuralEngine.framework (research ane-anchor §1). Open("ane") returns
// one on macOS with Apple silicon.
//
// Compiling is content-addressed: the same MIL text and weights compile once
// per device and every Compile of them returns a kernel handle sharing that
// program, with its own name, statistics and surfaces. One compiled layer
// kernel thus serves every layer, and a repeated Compile costs no budget.
// A program is unloaded when its last kernel handle is closed.
//
// Every framework call runs on one worker goroutine locked to its OS thread,
// inside an autorelease pool, so evaluations are serialised as the hardware
// serialises them; Compile and Eval may be called from any goroutine.
//
// Surfaces come from Kernel.NewSurface as IOSurfaces whose memory the CPU
// reads and writes in place, with the row stride the compiled model asks
// for. A surface belongs to the device and may be bound to any of its
// kernels whose shapes match, but it lives only as long as the kernel that
// allocated it: closing that kernel frees it. Eval builds one _ANERequest per
// distinct binding of surfaces and reuses it on later evaluations.
// A surface's last Unlock is deferred to its next evaluation, so staging it
// in several lock passes costs one IOSurfaceLock and one IOSurfaceUnlock
// (see hwSurface).
//
// Beyond ane.Device it reports foreign calls (ForeignCalls) and suspected
// CPU fallbacks (Stats), and its peak can be set from a measurement
// (SetPeak).
type NeuralEngine struct {
	rt     engineRuntime
	opts   Options
	budget *Budget
	chip   Chip

	peakMu     sync.Mutex
	peak       float64
	peakSource string

	jobs      chan job
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	inflight  sync.WaitGroup // Compile calls in progress

	mu      sync.Mutex // guards closed, progs, kernels and program.refs
	closed  bool
	progs   map[[32]byte]*program // the content-hash cache, in flight or compiled
	kernels map[*neKernel]struct{}

	// Owned by the worker goroutine.
	live   map[*program]struct{}   // programs holding a model
	surfs  map[*hwSurface]struct{} // surfaces not yet freed
	keyBuf []byte                  // scratch for request-cache keys

	surfaceSeq atomic.Uint64

	compiles, cacheHits, loadRetries atomic.Int64
	requests, evals, suspects        atomic.Int64

	// sleep and now are time.Sleep and time.Now, replaced in tests.
	sleep func(time.Duration)
	now   func() time.Time
}

// job is one piece of work for the worker.
type job struct {
	fn    func() error
	reply chan error
}

// program is one compiled model, shared by every kernel handle compiled from
// the same text and weights.
type program struct {
	key   [32]byte
	ready chan struct{} // closed when the compile finished, err set on failure
	err   error
	refs  int // kernel handles and waiting compiles; guarded by dev.mu

	in, out       []mil.Type
	inLay, outLay []ioLayout
	layoutSource  string
	flops         float64

	// Owned by the worker.
	model    modelRef
	hasModel bool
	loaded   bool
	dir      string // the model's temp directory, once acquired
	reqs     map[string]*request
	evals    int64
	freed    bool
}

// request is a cached _ANERequest and the surfaces it binds.
type request struct {
	ref   requestRef
	surfs []*hwSurface
}

// ioLayout is how one input or output lies in its IOSurface.
type ioLayout struct {
	stride int // elements between the starts of two rows
	bytes  int // the surface's size
}

// newNeuralEngine starts a device over a runtime.
func newNeuralEngine(rt engineRuntime, chip Chip, opts Options) *NeuralEngine {
	d := &NeuralEngine{
		rt: rt, opts: opts, budget: NewBudget(opts.budget()), chip: chip,
		peak: chip.Peak, peakSource: chip.PeakSource,
		jobs: make(chan job), quit: make(chan struct{}), done: make(chan struct{}),
		progs: map[[32]byte]*program{}, kernels: map[*neKernel]struct{}{},
		live: map[*program]struct{}{}, surfs: map[*hwSurface]struct{}{},
		sleep: time.Sleep, now: time.Now,
	}
	if d.peak <= 0 {
		d.peak, d.peakSource = placeholderPeak, "placeholder"
	}
	go d.worker()
	return d
}

// worker runs every framework call. It locks itself to its OS thread for
// good: autorelease pools and the framework's per-thread state must stay on
// one thread (go-ecosystem §1.5, §1.9), and when the goroutine ends Go ends
// the thread with it.
func (d *NeuralEngine) worker() {
	runtime.LockOSThread()
	defer close(d.done)
	for {
		select {
		case j := <-d.jobs:
			j.reply <- d.runJob(j.fn)
		case <-d.quit:
			return
		}
	}
}

// runJob runs fn inside an autorelease pool. A panic in fn is a bug in this
// package; it is returned as an error so the worker survives it.
func (d *NeuralEngine) runJob(fn func() error) (err error) {
	tok := d.rt.poolPush()
	defer d.rt.poolPop(tok)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error on the Neural Engine worker: %v", r)
		}
	}()
	return fn()
}

// call runs fn on the worker and waits for it.
func (d *NeuralEngine) call(fn func() error) error {
	j := job{fn: fn, reply: make(chan error, 1)}
	select {
	case d.jobs <- j:
		return <-j.reply
	case <-d.quit:
		return errDeviceClosed
	}
}

// Name is "ANE · Apple M4 (h16, 16 cores)".
func (d *NeuralEngine) Name() string { return "ANE · " + d.chip.Label() }

// Emulated is false: this is the hardware.
func (d *NeuralEngine) Emulated() bool { return false }

// Chip returns the chip identity the device was opened with.
func (d *NeuralEngine) Chip() Chip { return d.chip }

// PeakFLOPS is the chip's fp16 peak (Chip.Peak, see PeakFor) unless SetPeak
// replaced it with a measurement.
func (d *NeuralEngine) PeakFLOPS() float64 {
	d.peakMu.Lock()
	defer d.peakMu.Unlock()
	return d.peak
}

// PeakSource says where PeakFLOPS comes from.
func (d *NeuralEngine) PeakSource() string {
	d.peakMu.Lock()
	defer d.peakMu.Unlock()
	return d.peakSource
}

// SetPeak replaces the published peak with a measured one (anetop bench
// peak), which then also drives fallback detection. Non-positive values are
// ignored.
func (d *NeuralEngine) SetPeak(flops float64, source string) {
	if flops <= 0 {
		return
	}
	d.peakMu.Lock()
	d.peak, d.peakSource = flops, source
	d.peakMu.Unlock()
}

// Budget returns the compiles used in this process and the limit.
func (d *NeuralEngine) Budget() (used, limit int) { return d.budget.Counts() }

// ForeignCalls returns how many times this process has crossed from Go into
// C or Objective-C for the Neural Engine (every objc_msgSend, IOSurface and
// CoreFoundation call, counted where it is made). The counter is process-wide
// and only grows: take differences around a training step to get the calls
// per step. The only earlier Go port lost 38 ms per step to such crossings
// (peers.md §1.6), so anetop keeps the count visible.
func (d *NeuralEngine) ForeignCalls() int64 { return d.rt.foreignCalls() }

// EngineStats are a NeuralEngine's counters since it was opened.
type EngineStats struct {
	ForeignCalls int64 // see NeuralEngine.ForeignCalls (process-wide)
	Compiles     int64 // programs the ANE compiler compiled and loaded
	CacheHits    int64 // Compile calls served by an already compiled program
	LoadRetries  int64 // loads that failed once and were retried
	Programs     int   // programs cached now (compiled or compiling)
	Requests     int64 // _ANERequests built, one per distinct surface binding
	Evals        int64
	// SuspectedFallbacks counts evaluations that ran at under 1% of the rate
	// predicted from their FLOPs and the chip's peak (after warm-up): the
	// signature of work the ANE handed to the CPU. Kernels so small that
	// dispatch dominates cannot be judged this way.
	SuspectedFallbacks int64
	// Suspects lists the open kernels with suspected fallbacks.
	Suspects []FallbackReport
}

// FallbackReport describes a kernel that ran far slower than predicted.
type FallbackReport struct {
	Kernel    string
	Evals     int64   // evaluations of this kernel handle
	Suspected int64   // of which ran at under 1% of the predicted rate
	Achieved  float64 // mean FLOP/s over all its evaluations
	Predicted float64 // FLOP/s predicted: FLOPs / (dispatch floor + FLOPs/peak)
}

// Stats returns the device's counters.
func (d *NeuralEngine) Stats() EngineStats {
	s := EngineStats{
		ForeignCalls: d.rt.foreignCalls(),
		Compiles:     d.compiles.Load(), CacheHits: d.cacheHits.Load(), LoadRetries: d.loadRetries.Load(),
		Requests: d.requests.Load(), Evals: d.evals.Load(), SuspectedFallbacks: d.suspects.Load(),
	}
	d.mu.Lock()
	s.Programs = len(d.progs)
	ks := make([]*neKernel, 0, len(d.kernels))
	for k := range d.kernels {
		ks = append(ks, k)
	}
	d.mu.Unlock()
	peak := d.PeakFLOPS()
	for _, k := range ks {
		if n := k.suspects.Load(); n > 0 {
			st := k.Stats()
			r := FallbackReport{Kernel: k.name, Evals: st.Evals, Suspected: n,
				Predicted: k.prog.flops / predictedTime(k.prog.flops, peak).Seconds()}
			if st.Time > 0 {
				r.Achieved = st.FLOPs / st.Time.Seconds()
			}
			s.Suspects = append(s.Suspects, r)
		}
	}
	slices.SortFunc(s.Suspects, func(a, b FallbackReport) int { return strings.Compare(a.Kernel, b.Kernel) })
	return s
}

// predictedTime is what an evaluation of flops should take on the ANE.
func predictedTime(flops, peak float64) time.Duration {
	t := dispatchFloor
	if peak > 0 {
		t += time.Duration(flops / peak * float64(time.Second))
	}
	return t
}

// ---- compiling ----

// compileSpec is a program ready for the framework.
type compileSpec struct {
	text    []byte
	files   []weightFile
	key     [32]byte
	in, out []mil.Type
	flops   float64
}

// Compile compiles p with Apple's ANE compiler and loads it, or returns a
// handle to the same program compiled earlier on this device. Before any
// framework call the program is checked in Go, so that what the device
// cannot run fails with a clear error and no budget spent: it must
// type-check (ErrInvalidProgram), have exactly the one function main, one
// input and one output unless Options.MultiIO (ane-anchor §8.5), fp16 inputs
// and outputs of static shape (ane-anchor §8.10; mil-spec §6.4), and weights
// for every BLOBFILE it names. A program the ANE compiler then refuses fails
// with ErrUnsupported and the compiler's message. A compile reserves one unit
// of the budget before it calls the framework and gives it back if any step
// fails, so only programs that compiled and loaded stay counted.
func (d *NeuralEngine) Compile(name string, p *mil.Program, w mil.Weights) (Kernel, error) {
	spec, err := d.prepare(name, p, w)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("compile %s: %w", name, errDeviceClosed)
	}
	d.inflight.Add(1)
	defer d.inflight.Done()
	if pr, ok := d.progs[spec.key]; ok {
		// Cached, or being compiled by another goroutine: wait for it.
		pr.refs++
		d.mu.Unlock()
		<-pr.ready
		if pr.err != nil {
			return nil, fmt.Errorf("compile %s: the same program failed to compile: %w", name, pr.err)
		}
		d.cacheHits.Add(1)
		return d.newKernel(name, pr)
	}
	pr := &program{key: spec.key, ready: make(chan struct{}), refs: 1,
		in: spec.in, out: spec.out, flops: spec.flops, reqs: map[string]*request{}}
	d.progs[spec.key] = pr
	d.mu.Unlock()

	err = d.build(name, pr, spec)
	if err != nil {
		d.mu.Lock()
		pr.err = err
		delete(d.progs, spec.key)
		d.mu.Unlock()
		close(pr.ready)
		return nil, err
	}
	close(pr.ready)
	d.compiles.Add(1)
	return d.newKernel(name, pr)
}

// newKernel returns a handle on a compiled program.
func (d *NeuralEngine) newKernel(name string, pr *program) (Kernel, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		// The device's Close frees the program with everything else.
		return nil, fmt.Errorf("compile %s: %w", name, errDeviceClosed)
	}
	k := &neKernel{dev: d, name: name, prog: pr}
	d.kernels[k] = struct{}{}
	return k, nil
}

// build runs the framework's sequence for a new program (ane-anchor §1.4):
// reserve a compile, create the model, pre-populate its directory, compile,
// load with one retry, read its I/O layout. On any failure it releases
// everything created so far (model, directory) and the reserved compile.
func (d *NeuralEngine) build(name string, pr *program, spec compileSpec) (err error) {
	if err := d.budget.Reserve(name); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Unload, release the model and remove the directory; the
			// worker is alive because Close waits for compiles in flight.
			if ferr := d.call(func() error { return d.freeProgram(pr) }); ferr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, ferr)
			}
			d.budget.Release()
		}
	}()
	var root, id string
	err = d.call(func() error {
		m, r, i, err := d.rt.newModel(spec.text, spec.files)
		if err != nil {
			return err
		}
		pr.model, pr.hasModel, root, id = m, true, r, i
		d.live[pr] = struct{}{}
		return nil
	})
	if err != nil {
		return fmt.Errorf("compile %s: the framework refused the program: %v (%w)", name, err, ErrUnsupported)
	}
	dir, err := modelDir(root, id)
	if err != nil {
		return fmt.Errorf("compile %s: %w", name, err)
	}
	acquireDir(dir)
	pr.dir = dir
	if err := writeModelFiles(dir, spec.text, spec.files); err != nil {
		return fmt.Errorf("compile %s: pre-populate the model directory: %w", name, err)
	}
	if err := d.call(func() error { return d.rt.compile(pr.model) }); err != nil {
		return fmt.Errorf("compile %s: the ANE compiler refused it: %v (%w)", name, err, ErrUnsupported)
	}
	load := func() error {
		err := d.rt.load(pr.model)
		pr.loaded = err == nil
		return err
	}
	if err := d.call(load); err != nil {
		d.loadRetries.Add(1)
		d.sleep(loadRetryDelay) // off the worker, so other kernels keep evaluating
		if err2 := d.call(load); err2 != nil {
			return fmt.Errorf("compile %s: load failed twice, %v apart: %v; then: %w", name, loadRetryDelay, err, err2)
		}
	}
	var attrs any
	var ok bool
	if err := d.call(func() error { attrs, ok = d.rt.attributes(pr.model); return nil }); err != nil {
		return fmt.Errorf("compile %s: %w", name, err)
	}
	if !ok {
		attrs = nil
	}
	pr.inLay, pr.outLay, pr.layoutSource, err = layoutFromAttributes(attrs, spec.in, spec.out)
	if err != nil {
		return fmt.Errorf("compile %s: %w", name, err)
	}
	return nil
}

// freeProgram drops a program's requests, unloads and releases its model and
// removes its directory. It runs on the worker and is idempotent.
func (d *NeuralEngine) freeProgram(pr *program) error {
	if pr.freed {
		return nil
	}
	pr.freed = true
	var errs []error
	for key, r := range pr.reqs {
		d.rt.freeRequest(r.ref)
		delete(pr.reqs, key)
	}
	if pr.loaded {
		if err := d.rt.unload(pr.model); err != nil {
			errs = append(errs, fmt.Errorf("unload: %w", err))
		}
		pr.loaded = false
	}
	if pr.hasModel {
		d.rt.freeModel(pr.model)
		pr.hasModel = false
	}
	if pr.dir != "" {
		if err := releaseDir(pr.dir); err != nil {
			errs = append(errs, err)
		}
		pr.dir = ""
	}
	delete(d.live, pr)
	return errors.Join(errs...)
}

// prepare checks a program in Go and turns it into what the framework takes.
func (d *NeuralEngine) prepare(name string, p *mil.Program, w mil.Weights) (compileSpec, error) {
	var spec compileSpec
	if p == nil {
		return spec, fmt.Errorf("compile %s: nil program (%w)", name, ErrInvalidProgram)
	}
	if err := p.Check(); err != nil {
		return spec, fmt.Errorf("compile %s: %v (%w)", name, err, ErrInvalidProgram)
	}
	fn := p.Main()
	if fn == nil {
		return spec, fmt.Errorf("compile %s: the program has no function main; ANE kernels run main (%w)", name, ErrInvalidProgram)
	}
	if len(p.Functions) != 1 {
		return spec, fmt.Errorf("compile %s: a kernel has exactly one function, main; this program has %d (%w)",
			name, len(p.Functions), ErrUnsupported)
	}
	if len(fn.Inputs) == 0 || len(fn.Outputs) == 0 {
		return spec, fmt.Errorf("compile %s: a kernel needs at least one input and one output surface (%w)", name, ErrUnsupported)
	}
	if (len(fn.Inputs) > 1 || len(fn.Outputs) > 1) && !d.opts.MultiIO {
		// ane-anchor §8.5: error 0x1d for multi-input requests, and silently
		// zero results unless input sizes ascend and output sizes descend.
		return spec, fmt.Errorf("compile %s: %d inputs and %d outputs; the ANE is reported to fail or return zeros "+
			"with more than one of either, so anetop packs tensors into one input and one output "+
			"(set Options.MultiIO to try anyway) (%w)", name, len(fn.Inputs), len(fn.Outputs), ErrUnsupported)
	}
	check := func(which IO, vs []*mil.Var) ([]mil.Type, error) {
		ts := make([]mil.Type, len(vs))
		for i, v := range vs {
			// fp32 I/O is reported to produce zeros and cast is missing on
			// M1/M2 (ane-anchor §8.10, mil-spec §6.4): cast inside the kernel.
			if v.Type.DType != mil.FP16 {
				return nil, fmt.Errorf("compile %s: %v %d (%s) is %v; ANE kernels take and return fp16, cast inside the kernel (%w)",
					name, which, i, v.Name, v.Type, ErrUnsupported)
			}
			if !v.Type.Shape.Static() || v.Type.Shape.NumElements() <= 0 {
				return nil, fmt.Errorf("compile %s: %v %d (%s) has shape %v; surfaces need a static shape (%w)",
					name, which, i, v.Name, v.Type.Shape, ErrUnsupported)
			}
			ts[i] = mil.Type{DType: v.Type.DType, Shape: v.Type.Shape.Clone()}
		}
		return ts, nil
	}
	var err error
	if spec.in, err = check(Input, fn.Inputs); err != nil {
		return spec, err
	}
	if spec.out, err = check(Output, fn.Outputs); err != nil {
		return spec, err
	}
	for _, path := range fn.BlobPaths() {
		if _, ok := w[path]; !ok {
			return spec, fmt.Errorf("compile %s: the program reads BLOBFILE %q but the weights have no such file (%w)",
				name, path, ErrInvalidProgram)
		}
	}
	paths := make([]string, 0, len(w))
	for path := range w {
		if _, err := weightRel(path); err != nil {
			return spec, fmt.Errorf("compile %s: %v (%w)", name, err, ErrInvalidProgram)
		}
		paths = append(paths, path)
	}
	slices.Sort(paths)
	for _, path := range paths {
		spec.files = append(spec.files, weightFile{path: path, data: w[path]})
	}
	spec.text = mil.Print(p)
	spec.key = contentKey(spec.text, spec.files)
	spec.flops = ProgramFLOPs(fn)
	return spec, nil
}

// ---- kernels ----

type neKernel struct {
	dev    *NeuralEngine
	name   string
	prog   *program
	closed atomic.Bool

	surfaces []*hwSurface // allocated by NewSurface; owned by the worker

	evals, nanos, suspects atomic.Int64
}

func (k *neKernel) Name() string        { return k.name }
func (k *neKernel) Inputs() []mil.Type  { return cloneTypeList(k.prog.in) }
func (k *neKernel) Outputs() []mil.Type { return cloneTypeList(k.prog.out) }
func (k *neKernel) FLOPs() float64      { return k.prog.flops }
func (k *neKernel) String() string      { return "ANE kernel " + k.name }

func cloneTypeList(ts []mil.Type) []mil.Type {
	out := make([]mil.Type, len(ts))
	for i, t := range ts {
		out[i] = mil.Type{DType: t.DType, Shape: t.Shape.Clone()}
	}
	return out
}

// Stats returns this handle's evaluations; Time is the time the hardware
// call took, measured on the worker.
func (k *neKernel) Stats() KernelStats {
	n := k.evals.Load()
	return KernelStats{Evals: n, Time: time.Duration(k.nanos.Load()), FLOPs: float64(n) * k.prog.flops}
}

// LayoutSource says where the kernel's surface row strides come from: the
// compiled model's attributes, or dense rows and why.
func (k *neKernel) LayoutSource() string { return k.prog.layoutSource }

// KernelLayout returns the row stride (in elements) of each input and output
// surface of a kernel of the Neural Engine device, and where the strides come
// from; ok is false for another device's kernel.
func KernelLayout(k Kernel) (in, out []int, source string, ok bool) {
	nk, ok := k.(*neKernel)
	if !ok {
		return nil, nil, "", false
	}
	for _, l := range nk.prog.inLay {
		in = append(in, l.stride)
	}
	for _, l := range nk.prog.outLay {
		out = append(out, l.stride)
	}
	return in, out, nk.prog.layoutSource, true
}

// NewSurface allocates an IOSurface laid out as the compiled model wants
// input or output i, as an fp16 surface over its memory. It lives until this
// kernel handle (or the device) is closed.
func (k *neKernel) NewSurface(which IO, i int) (*Surface, error) {
	ts, ls := k.prog.in, k.prog.inLay
	if which == Output {
		ts, ls = k.prog.out, k.prog.outLay
	}
	if i < 0 || i >= len(ts) {
		return nil, fmt.Errorf("kernel %s: no %v %d (it has %d)", k.name, which, i, len(ts))
	}
	d := k.dev
	var s *Surface
	err := d.call(func() error {
		if k.closed.Load() {
			return errKernelClosed
		}
		ref, mem, err := d.rt.newSurface(ls[i].bytes)
		if err != nil {
			return err
		}
		hs := &hwSurface{dev: d, ref: ref, id: d.surfaceSeq.Add(1), kernel: k}
		if len(mem) > 0 {
			hs.base = uintptr(unsafe.Pointer(&mem[0]))
		}
		s, err = newSurfaceOver(ts[i].Shape, ls[i].stride, mem, hs, d)
		if err != nil {
			d.rt.freeSurface(ref)
			return err
		}
		d.surfs[hs] = struct{}{}
		k.surfaces = append(k.surfaces, hs)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel %s: new %v surface %d: %w", k.name, which, i, err)
	}
	return s, nil
}

// newSurfaceOver views device memory as fp16 elements.
func newSurfaceOver(shape mil.Shape, stride int, mem []byte, m Memory, owner any) (*Surface, error) {
	if len(mem) < 2 || uintptr(unsafe.Pointer(&mem[0]))%2 != 0 {
		return nil, fmt.Errorf("device memory of %d bytes is empty or not 2-byte aligned", len(mem))
	}
	data := unsafe.Slice((*fp16.Bits)(unsafe.Pointer(&mem[0])), len(mem)/2)
	return NewSurfaceOn(shape, stride, data, m, owner)
}

// Eval evaluates the kernel on the Neural Engine. The surfaces must come from
// this device, have the kernel's shapes and not be locked. The first Eval
// with a set of surfaces builds an _ANERequest for them; later ones reuse it.
func (k *neKernel) Eval(in, out []*Surface) error {
	if k.closed.Load() {
		return fmt.Errorf("eval %s: %w", k.name, errKernelClosed)
	}
	hin, err := k.bind(Input, in, k.prog.in)
	if err != nil {
		return err
	}
	hout, err := k.bind(Output, out, k.prog.out)
	if err != nil {
		return err
	}
	if err := k.dev.call(func() error { return k.evalOnWorker(hin, hout) }); err != nil {
		return fmt.Errorf("eval %s: %w", k.name, err)
	}
	return nil
}

// bind checks the surfaces of one side of an evaluation.
func (k *neKernel) bind(which IO, ss []*Surface, ts []mil.Type) ([]*hwSurface, error) {
	if len(ss) != len(ts) {
		return nil, fmt.Errorf("eval %s: %d %v surfaces given, the kernel has %d", k.name, len(ss), which, len(ts))
	}
	hs := make([]*hwSurface, len(ss))
	for i, s := range ss {
		if s == nil {
			return nil, fmt.Errorf("eval %s: %v surface %d is nil", k.name, which, i)
		}
		h, ok := s.mem.(*hwSurface)
		if !ok || s.owner != any(k.dev) || h.dev != k.dev {
			return nil, fmt.Errorf("eval %s: %v surface %d is not this Neural Engine's memory; allocate it with a kernel's NewSurface",
				k.name, which, i)
		}
		if !s.shape.Equal(ts[i].Shape) {
			return nil, fmt.Errorf("eval %s: %v surface %d has shape %v, the kernel's %v %d is %v",
				k.name, which, i, s.shape, which, i, ts[i])
		}
		if h.freed.Load() {
			return nil, fmt.Errorf("eval %s: %v surface %d was freed when kernel %s was closed", k.name, which, i, h.kernel.name)
		}
		if h.cpuLocked() {
			return nil, fmt.Errorf("eval %s: %v surface %d is locked; Unlock it before Eval (the engine reads and writes it directly)",
				k.name, which, i)
		}
		hs[i] = h
	}
	return hs, nil
}

// evalOnWorker finds or builds the request for the binding and evaluates.
func (k *neKernel) evalOnWorker(in, out []*hwSurface) error {
	d, pr := k.dev, k.prog
	if k.closed.Load() || pr.freed {
		return errKernelClosed
	}
	for _, s := range in {
		if err := s.prepareEval(); err != nil {
			return err
		}
	}
	for _, s := range out {
		if err := s.prepareEval(); err != nil {
			return err
		}
	}
	key := d.bindingKey(in, out)
	req, cached := pr.reqs[string(key)]
	if !cached {
		for _, s := range slices.Concat(in, out) {
			if s.freed.Load() {
				return fmt.Errorf("a surface was freed when kernel %s was closed", s.kernel.name)
			}
		}
		ref, err := d.rt.newRequest(surfaceRefs(in), surfaceRefs(out))
		if err != nil {
			return fmt.Errorf("build the request: %w", err)
		}
		req = &request{ref: ref, surfs: slices.Concat(in, out)}
		pr.reqs[string(key)] = req
		d.requests.Add(1)
	}
	start := d.now()
	err := d.rt.eval(pr.model, req.ref)
	dt := d.now().Sub(start)
	if err != nil {
		// Do not trust a request the engine failed on: the next evaluation
		// with these surfaces builds a fresh one.
		d.rt.freeRequest(req.ref)
		delete(pr.reqs, string(key))
		return err
	}
	k.evals.Add(1)
	k.nanos.Add(int64(dt))
	d.evals.Add(1)
	pr.evals++
	if cached && pr.evals > fallbackWarmup && dt > fallbackRatio*predictedTime(pr.flops, d.PeakFLOPS()) {
		k.suspects.Add(1)
		d.suspects.Add(1)
	}
	return nil
}

// bindingKey identifies a binding by its surfaces' ids, in the worker's
// scratch buffer (a map lookup with string(key) does not allocate).
func (d *NeuralEngine) bindingKey(in, out []*hwSurface) []byte {
	b := d.keyBuf[:0]
	for _, s := range in {
		b = binary.LittleEndian.AppendUint64(b, s.id)
	}
	b = append(b, '|')
	for _, s := range out {
		b = binary.LittleEndian.AppendUint64(b, s.id)
	}
	d.keyBuf = b
	return b
}

func surfaceRefs(ss []*hwSurface) []surfaceRef {
	refs := make([]surfaceRef, len(ss))
	for i, s := range ss {
		refs[i] = s.ref
	}
	return refs
}

// Close frees the kernel's surfaces (and every cached request of any kernel
// that binds them) and, if it was the program's last handle, unloads and
// releases the program and removes its directory. It is idempotent.
func (k *neKernel) Close() error {
	if k.closed.Swap(true) {
		return nil
	}
	d, pr := k.dev, k.prog
	d.mu.Lock()
	delete(d.kernels, k)
	pr.refs--
	last := pr.refs == 0
	if last && d.progs[pr.key] == pr {
		delete(d.progs, pr.key)
	}
	d.mu.Unlock()
	err := d.call(func() error {
		d.freeSurfaces(k.surfaces)
		k.surfaces = nil
		if last {
			return d.freeProgram(pr)
		}
		return nil
	})
	if errors.Is(err, errDeviceClosed) {
		return nil // the device's Close freed everything
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", k.name, err)
	}
	return nil
}

// freeSurfaces frees surfaces and drops every cached request binding one of
// them. It runs on the worker.
func (d *NeuralEngine) freeSurfaces(ss []*hwSurface) {
	if len(ss) == 0 {
		return
	}
	dead := map[*hwSurface]bool{}
	for _, s := range ss {
		if _, ok := d.surfs[s]; ok {
			dead[s] = true
			s.freed.Store(true)
		}
	}
	for pr := range d.live {
		for key, r := range pr.reqs {
			if slices.ContainsFunc(r.surfs, func(s *hwSurface) bool { return dead[s] }) {
				d.rt.freeRequest(r.ref)
				delete(pr.reqs, key)
			}
		}
	}
	for s := range dead {
		// Undo a kept lock so the IOSurface is released as the caller left
		// it; an unlock error changes nothing now.
		s.mu.Lock()
		s.release()
		s.mu.Unlock()
		d.rt.freeSurface(s.ref)
		delete(d.surfs, s)
	}
}

// Close closes every kernel, unloads and releases every program, frees every
// surface and stops the worker. It waits for compiles in progress. It is
// idempotent; later calls return the first call's result.
func (d *NeuralEngine) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		d.inflight.Wait()
		d.mu.Lock()
		for k := range d.kernels {
			k.closed.Store(true)
		}
		clear(d.kernels)
		clear(d.progs)
		d.mu.Unlock()
		d.closeErr = d.call(func() error {
			var errs []error
			all := make([]*hwSurface, 0, len(d.surfs))
			for s := range d.surfs {
				all = append(all, s)
			}
			d.freeSurfaces(all)
			for pr := range d.live {
				if err := d.freeProgram(pr); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		})
		close(d.quit)
		<-d.done
	})
	return d.closeErr
}

// hwSurface is an IOSurface behind a Surface; it implements Memory.
//
// Locks are coalesced: the Unlock of the last CPU lock does not call
// IOSurfaceUnlock at once but keeps the IOSurface locked, and a Lock in the
// same mode before the surface is next evaluated takes that lock over
// without a foreign call. The kept lock is undone on the worker just before
// an evaluation that binds the surface (and when the surface is freed), so
// the Neural Engine never evaluates with a locked surface, and the CPU
// touches a surface only under a lock taken after its last evaluation: the
// CPU sees what an evaluation wrote, and an evaluation sees what the CPU
// wrote, as with eager unlocks. The lock pairs are thus one per surface per
// stage-and-evaluate however many staging passes the caller makes between
// two evaluations; the training engine makes two for its inputs (the
// update's weights, then the activations; the forward's taps, then the
// gradient). Lock pairs are the costly crossings: 20–50 µs each in the
// earlier Go port, against about 1 µs for a plain call (peers.md §1.6).
type hwSurface struct {
	dev    *NeuralEngine
	ref    surfaceRef
	id     uint64
	kernel *neKernel // the kernel whose NewSurface made it
	base   uintptr   // the address of its memory at creation, which the Surface uses
	freed  atomic.Bool

	mu     sync.Mutex
	cpu    int  // CPU locks held (Lock minus Unlock)
	held   bool // an IOSurface lock kept after the last Unlock, not yet undone
	heldRO bool // the mode of that lock
}

// Lock locks the IOSurface for the CPU: one foreign call, or none when it
// takes over the lock the previous Unlock kept (see hwSurface). Lock once
// per staging pass, not per tensor. The surface must not be used
// concurrently with the Close of its kernel.
func (s *hwSurface) Lock(readOnly bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed.Load() {
		return fmt.Errorf("surface was freed when kernel %s was closed", s.kernel.name)
	}
	if s.held {
		if s.heldRO == readOnly {
			s.held = false
			s.cpu++
			return nil
		}
		// A lock in the other mode: undo the kept one first, since an
		// unlock must pass the options of its lock (ane-anchor §1.5).
		if err := s.release(); err != nil {
			return err
		}
	}
	if err := s.dev.rt.lockSurface(s.ref, readOnly); err != nil {
		return err
	}
	s.cpu++
	return nil
}

// Unlock ends a Lock, with the same readOnly flag. The last Unlock keeps
// the IOSurface locked until the surface is next evaluated or locked in the
// other mode; an error of that deferred IOSurfaceUnlock is returned by the
// Eval or Lock that makes it.
func (s *hwSurface) Unlock(readOnly bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed.Load() {
		return fmt.Errorf("surface was freed when kernel %s was closed", s.kernel.name)
	}
	if s.cpu == 0 {
		return errors.New("unlock of a surface that is not locked")
	}
	if s.cpu == 1 {
		// The last CPU lock (nothing is kept while the CPU holds one):
		// keep it for the next Lock in this mode.
		s.cpu, s.held, s.heldRO = 0, true, readOnly
		return nil
	}
	if err := s.dev.rt.unlockSurface(s.ref, readOnly); err != nil {
		return err
	}
	s.cpu--
	return nil
}

// CheckSurfaceAddress checks, for a surface of the Neural Engine device, that
// the IOSurface's base address read under a lock (IOSurfaceGetBaseAddress)
// is the address taken when it was created. anetop reads that address once
// and reads and writes the surface through it for the surface's whole life,
// on the assumption that an IOSurface stays mapped where it was created; if
// the address moved, every read and write would go to the wrong memory.
// anetop doctor runs this check on its test kernel's surfaces. It takes one
// lock pair and one more foreign call; checked is false, with no call, for
// another device's surface.
func CheckSurfaceAddress(s *Surface) (checked bool, err error) {
	h, ok := s.mem.(*hwSurface)
	if !ok {
		return false, nil
	}
	return true, h.checkAddress()
}

func (s *hwSurface) checkAddress() error {
	if err := s.Lock(true); err != nil {
		return fmt.Errorf("check the surface address: %w", err)
	}
	got := s.dev.rt.baseAddress(s.ref)
	uerr := s.Unlock(true)
	if got != s.base {
		return fmt.Errorf("IOSurfaceGetBaseAddress under a lock is %#x, but the surface was created at %#x: "+
			"the surface's memory moved, and anetop would read and write the old address", got, s.base)
	}
	if uerr != nil {
		return fmt.Errorf("check the surface address: %w", uerr)
	}
	return nil
}

// cpuLocked reports whether the CPU holds a lock (a kept lock does not
// count: the next evaluation undoes it).
func (s *hwSurface) cpuLocked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cpu > 0
}

// prepareEval undoes a kept lock before an evaluation binds the surface, or
// fails if the CPU still holds one. It runs on the worker.
func (s *hwSurface) prepareEval() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cpu > 0 {
		return errors.New("a surface is locked; Unlock it before Eval (the engine reads and writes it directly)")
	}
	return s.release()
}

// release undoes a kept lock; s.mu is held.
func (s *hwSurface) release() error {
	if !s.held {
		return nil
	}
	s.held = false
	if err := s.dev.rt.unlockSurface(s.ref, s.heldRO); err != nil {
		return fmt.Errorf("unlock surface: %w", err)
	}
	return nil
}

// ---- probing ----

// Probe is what the Neural Engine backend found on this machine: the system,
// the chip, and the libraries, classes and selectors it needs. anetop doctor
// prints it.
type Probe struct {
	OS      string // "macOS 15.3.1 (darwin/arm64)", "linux/amd64"
	Chip    Chip
	Symbols []Symbol // what was looked up, in order
	// OK is true when the backend can open the device.
	OK bool
	// Reason says why it cannot, in words a user can act on.
	Reason string
}

// Symbol is one library, class, selector or constant the backend looked up.
type Symbol struct {
	Kind     string // "library", "class", "selector" or "constant"
	Name     string // "_ANEInMemoryModel", "-[_ANEInMemoryModel compileWithQoS:options:error:]"
	Found    bool
	Optional bool // the backend works without it, less well
}

// Missing lists the required symbols that were not found.
func (p Probe) Missing() []string {
	var out []string
	for _, s := range p.Symbols {
		if !s.Found && !s.Optional {
			out = append(out, s.Name)
		}
	}
	return out
}

var (
	_ Device = (*NeuralEngine)(nil)
	_ Kernel = (*neKernel)(nil)
	_ Memory = (*hwSurface)(nil)
)
