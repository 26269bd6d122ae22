package ane

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

// fakeRT is an engineRuntime that keeps the framework's objects in tables and
// checks how the device logic uses them: every worker call inside an
// autorelease pool and never two at once, the model directory pre-populated
// before compile, no double frees, no surface freed while a request binds it,
// no model released while loaded. Failures are injected through its fields,
// which tests set before use (or under mu).
//
// With emulate set it also compiles the MIL text with that function (the
// emulator, from the external test) and evaluates on the resulting kernel
// through the surfaces' memory, so the conformance suite can run the device
// logic end to end.
type fakeRT struct {
	t    testing.TB
	root string // stands for NSTemporaryDirectory()

	mu       sync.Mutex
	log      []string
	next     uintptr
	models   map[modelRef]*fakeModel
	surfaces map[surfaceRef]*fakeSurface
	requests map[requestRef]*fakeRequest
	slept    []time.Duration

	// Injected behaviour.
	failNewModel error
	failCompile  error
	loadFailures int // loads that fail before one succeeds
	failUnload   error
	failSurface  error
	failRequest  error
	failEvals    int // evaluations that fail
	modelID      string
	attrs        func(m *fakeModel) any // nil: the framework offers no attributes
	evalTime     time.Duration          // how far each evaluation moves the clock
	emulate      func(name string, text []byte, w mil.Weights, o Options) (Kernel, error)
	emuOpts      Options
	padBytes     int    // extra bytes per row in the layout the emulating fake reports
	moveSurfaces bool   // baseAddress reports an address other than the memory's
	newModelHook func() // called on the worker inside newModel, with f.mu held

	busy  atomic.Bool
	pool  atomic.Int32
	fc    atomic.Int64
	clock atomic.Int64

	// kinds counts foreign calls by runtime method, and stageLocks counts,
	// per role of a surface in an evaluation ("in", "out"), how many CPU
	// locks it took since it was last evaluated: the steady-state
	// crossings per step broken down, and whether staging locks each
	// surface once per stage-and-evaluate (foreign_calls_test.go).
	kinds      map[string]int64
	stageLocks map[string]map[int]int64
}

type fakeModel struct {
	text              []byte
	weights           []weightFile
	id                string
	compiled, loaded  bool
	kernel            Kernel // emulating fake only
	inStride, outStri []int  // elements per row the emulating fake reports
}

type fakeSurface struct {
	mem   []uint16
	bytes []byte
	locks int
	since int // locks taken since the surface was last bound to an evaluation
}

type fakeRequest struct{ in, out []surfaceRef }

func newFakeRT(t testing.TB) *fakeRT {
	return &fakeRT{t: t, root: t.TempDir(),
		models: map[modelRef]*fakeModel{}, surfaces: map[surfaceRef]*fakeSurface{}, requests: map[requestRef]*fakeRequest{},
		kinds: map[string]int64{}, stageLocks: map[string]map[int]int64{"in": {}, "out": {}}}
}

// tally counts one foreign call of a kind; the caller holds f.mu.
func (f *fakeRT) tally(kind string) {
	f.fc.Add(1)
	f.kinds[kind]++
}

// callKinds returns the foreign calls so far by kind.
func (f *fakeRT) callKinds() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.kinds)
}

// stagingLocks returns, for input and output bindings, how many
// evaluations found a surface locked n times since its previous
// evaluation.
func (f *fakeRT) stagingLocks() map[string]map[int]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]map[int]int64{"in": maps.Clone(f.stageLocks["in"]), "out": maps.Clone(f.stageLocks["out"])}
}

// enter records a worker call and checks the calling discipline.
func (f *fakeRT) enter(name string) func() {
	if f.pool.Load() <= 0 {
		f.t.Errorf("%s called outside an autorelease pool", name)
	}
	if !f.busy.CompareAndSwap(false, true) {
		f.t.Errorf("%s called while another framework call is running", name)
		return func() {}
	}
	f.mu.Lock()
	f.log = append(f.log, name)
	f.tally(name)
	f.mu.Unlock()
	return func() { f.busy.Store(false) }
}

func (f *fakeRT) handle() uintptr { f.next++; return f.next }

func (f *fakeRT) newModel(text []byte, weights []weightFile) (modelRef, string, string, error) {
	defer f.enter("newModel")()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNewModel != nil {
		return 0, "", "", f.failNewModel
	}
	key := contentKey(text, weights)
	id := fmt.Sprintf("%X", key[:8])
	if f.modelID != "" {
		id = f.modelID
	}
	m := modelRef(f.handle())
	f.models[m] = &fakeModel{text: bytes.Clone(text), weights: slices.Clone(weights), id: id}
	if f.newModelHook != nil {
		f.newModelHook()
	}
	return m, f.root, id, nil
}

func (f *fakeRT) model(m modelRef, op string) *fakeModel {
	fm := f.models[m]
	if fm == nil {
		f.t.Errorf("%s on an unknown or released model %d", op, m)
	}
	return fm
}

func (f *fakeRT) compile(m modelRef) error {
	defer f.enter("compile")()
	f.mu.Lock()
	defer f.mu.Unlock()
	fm := f.model(m, "compile")
	if fm == nil {
		return errors.New("no model")
	}
	dir := filepath.Join(f.root, fm.id)
	if got, err := os.ReadFile(filepath.Join(dir, "model.mil")); err != nil || !bytes.Equal(got, fm.text) {
		return fmt.Errorf("model.mil was not pre-populated in %s (%v)", dir, err)
	}
	for _, w := range fm.weights {
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(w.path, "@model_path/")))
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, w.data) {
			return fmt.Errorf("weight file %s was not pre-populated (%v)", p, err)
		}
	}
	if f.failCompile != nil {
		return f.failCompile
	}
	if f.emulate != nil {
		w := mil.Weights{}
		for _, wf := range fm.weights {
			w[wf.path] = wf.data
		}
		k, err := f.emulate("fake", fm.text, w, f.emuOpts)
		if err != nil {
			return fmt.Errorf("ANECCompile() FAILED: %v", err)
		}
		fm.kernel = k
		stride := func(ts []mil.Type) []int {
			var s []int
			for _, t := range ts {
				_, cols := surfaceRowsCols(t.Shape)
				s = append(s, (2*cols+f.padBytes)/2)
			}
			return s
		}
		fm.inStride, fm.outStri = stride(k.Inputs()), stride(k.Outputs())
	}
	fm.compiled = true
	return nil
}

func (f *fakeRT) load(m modelRef) error {
	defer f.enter("load")()
	f.mu.Lock()
	defer f.mu.Unlock()
	fm := f.model(m, "load")
	switch {
	case fm == nil:
		return errors.New("no model")
	case !fm.compiled:
		f.t.Errorf("load before compile")
		return errors.New("not compiled")
	case f.loadFailures > 0:
		f.loadFailures--
		return errors.New("Program load failure (0x20004)")
	}
	fm.loaded = true
	return nil
}

func (f *fakeRT) unload(m modelRef) error {
	defer f.enter("unload")()
	f.mu.Lock()
	defer f.mu.Unlock()
	fm := f.model(m, "unload")
	if fm == nil {
		return errors.New("no model")
	}
	if !fm.loaded {
		f.t.Errorf("unload of a model that is not loaded")
	}
	fm.loaded = false
	return f.failUnload
}

func (f *fakeRT) attributes(m modelRef) (any, bool) {
	defer f.enter("attributes")()
	f.mu.Lock()
	defer f.mu.Unlock()
	fm := f.model(m, "attributes")
	if fm == nil || f.attrs == nil {
		return nil, false
	}
	return f.attrs(fm), true
}

func (f *fakeRT) freeModel(m modelRef) {
	defer f.enter("freeModel")()
	f.mu.Lock()
	defer f.mu.Unlock()
	fm := f.model(m, "freeModel")
	if fm == nil {
		return
	}
	if fm.loaded {
		f.t.Errorf("model released while loaded")
	}
	if fm.kernel != nil {
		fm.kernel.Close()
	}
	delete(f.models, m)
}

func (f *fakeRT) newSurface(n int) (surfaceRef, []byte, error) {
	defer f.enter("newSurface")()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSurface != nil {
		return 0, nil, f.failSurface
	}
	mem := make([]uint16, (n+1)/2)
	s := surfaceRef(f.handle())
	f.surfaces[s] = &fakeSurface{mem: mem, bytes: unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), n)}
	return s, f.surfaces[s].bytes, nil
}

func (f *fakeRT) freeSurface(s surfaceRef) {
	defer f.enter("freeSurface")()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.surfaces[s] == nil {
		f.t.Errorf("freeSurface of an unknown or released surface %d", s)
		return
	}
	if f.surfaces[s].locks > 0 {
		f.t.Errorf("surface %d released while locked", s)
	}
	for r, q := range f.requests {
		if slices.Contains(q.in, s) || slices.Contains(q.out, s) {
			f.t.Errorf("surface %d released while request %d binds it", s, r)
		}
	}
	delete(f.surfaces, s)
}

// lockSurface and unlockSurface may come from any goroutine.
func (f *fakeRT) lockSurface(s surfaceRef, readOnly bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tally("lockSurface")
	fs := f.surfaces[s]
	if fs == nil {
		f.t.Errorf("lock of an unknown or released surface %d", s)
		return errors.New("no surface")
	}
	fs.locks++
	fs.since++
	return nil
}

func (f *fakeRT) unlockSurface(s surfaceRef, readOnly bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tally("unlockSurface")
	fs := f.surfaces[s]
	if fs == nil || fs.locks == 0 {
		f.t.Errorf("unlock of surface %d that is not locked", s)
		return errors.New("not locked")
	}
	fs.locks--
	return nil
}

// baseAddress reports where the surface's memory is, or, with moveSurfaces
// set, an address beside it, as a framework that moved the memory would.
func (f *fakeRT) baseAddress(s surfaceRef) uintptr {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tally("baseAddress")
	fs := f.surfaces[s]
	if fs == nil {
		f.t.Errorf("base address of an unknown or released surface %d", s)
		return 0
	}
	if fs.locks == 0 {
		f.t.Errorf("base address of surface %d read without a lock", s)
	}
	addr := uintptr(unsafe.Pointer(&fs.bytes[0]))
	if f.moveSurfaces {
		addr += 4096
	}
	return addr
}

func (f *fakeRT) newRequest(in, out []surfaceRef) (requestRef, error) {
	defer f.enter("newRequest")()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failRequest != nil {
		return 0, f.failRequest
	}
	for _, s := range slices.Concat(in, out) {
		if f.surfaces[s] == nil {
			f.t.Errorf("request built over an unknown or released surface %d", s)
		}
	}
	r := requestRef(f.handle())
	f.requests[r] = &fakeRequest{in: slices.Clone(in), out: slices.Clone(out)}
	return r, nil
}

func (f *fakeRT) freeRequest(r requestRef) {
	defer f.enter("freeRequest")()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.requests[r] == nil {
		f.t.Errorf("freeRequest of an unknown or released request %d", r)
	}
	delete(f.requests, r)
}

func (f *fakeRT) eval(m modelRef, r requestRef) error {
	defer f.enter("eval")()
	f.mu.Lock()
	fm, q := f.model(m, "eval"), f.requests[r]
	if fm == nil || q == nil || !fm.loaded {
		f.mu.Unlock()
		f.t.Errorf("eval of model %d (loaded: %v) with request %d (known: %v)", m, fm != nil && fm.loaded, r, q != nil)
		return errors.New("bad eval")
	}
	for role, ss := range map[string][]surfaceRef{"in": q.in, "out": q.out} {
		for _, s := range ss {
			fs := f.surfaces[s]
			if fs == nil || fs.locks > 0 {
				f.t.Errorf("eval with surface %d released or locked", s)
				continue
			}
			f.stageLocks[role][fs.since]++
			fs.since = 0
		}
	}
	if f.failEvals > 0 {
		f.failEvals--
		f.mu.Unlock()
		return errors.New("Program Inference error status=0x16")
	}
	f.clock.Add(int64(f.evalTime))
	var in, out [][]byte
	for _, s := range q.in {
		in = append(in, f.surfaces[s].bytes)
	}
	for _, s := range q.out {
		out = append(out, f.surfaces[s].bytes)
	}
	f.mu.Unlock()
	if fm.kernel == nil {
		// Without an emulator the fake "computes" out[0] = in[0] byte for
		// byte, so tests can see that data flows through the binding.
		copy(out[0], in[0])
		return nil
	}
	wrap := func(bs [][]byte, ts []mil.Type, strides []int) ([]*Surface, error) {
		var ss []*Surface
		for i, b := range bs {
			data := unsafe.Slice((*fp16.Bits)(unsafe.Pointer(&b[0])), len(b)/2)
			s, err := NewSurfaceOn(ts[i].Shape, strides[i], data, nil, nil)
			if err != nil {
				return nil, err
			}
			ss = append(ss, s)
		}
		return ss, nil
	}
	ins, err := wrap(in, fm.kernel.Inputs(), fm.inStride)
	if err != nil {
		return err
	}
	outs, err := wrap(out, fm.kernel.Outputs(), fm.outStri)
	if err != nil {
		return err
	}
	return fm.kernel.Eval(ins, outs)
}

func (f *fakeRT) poolPush() uintptr {
	f.mu.Lock()
	f.tally("poolPush")
	f.mu.Unlock()
	return uintptr(f.pool.Add(1))
}

func (f *fakeRT) poolPop(tok uintptr) {
	f.mu.Lock()
	f.tally("poolPop")
	f.mu.Unlock()
	if n := f.pool.Add(-1); uintptr(n+1) != tok {
		f.t.Errorf("autorelease pool %d popped out of order (depth %d)", tok, n+1)
	}
}

func (f *fakeRT) foreignCalls() int64 { return f.fc.Load() }

// emulatedAttrs reports the layout the emulating fake uses.
func (f *fakeRT) emulatedAttrs(m *fakeModel) any {
	list := func(ts []mil.Type, strides []int) []any {
		var l []any
		for i, t := range ts {
			rows, cols := surfaceRowsCols(t.Shape)
			l = append(l, map[string]any{"Channels": int64(rows), "Height": int64(1), "Width": int64(cols),
				"RowStride": int64(2 * strides[i]), "PlaneStride": int64(2 * strides[i]), "Type": "Float16"})
		}
		return l
	}
	if m.kernel == nil {
		return nil
	}
	return map[string]any{"NetworkStatusList": []any{map[string]any{
		"LiveInputList":  list(m.kernel.Inputs(), m.inStride),
		"LiveOutputList": list(m.kernel.Outputs(), m.outStri),
	}}}
}

// physLocks returns the IOSurface locks the fake holds on surface s.
func (f *fakeRT) physLocks(s surfaceRef) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fs := f.surfaces[s]; fs != nil {
		return fs.locks
	}
	return -1
}

// calls returns the log of worker calls and clears it.
func (f *fakeRT) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

func (f *fakeRT) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return countOf(f.log, name)
}

func countOf(log []string, name string) int {
	n := 0
	for _, c := range log {
		if c == name {
			n++
		}
	}
	return n
}

// live returns the objects not yet released.
func (f *fakeRT) live() (models, surfaces, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.models), len(f.surfaces), len(f.requests)
}

// assertClean checks that nothing is left: no framework object, no open
// pool, no model directory.
func (f *fakeRT) assertClean(t *testing.T, when string) {
	t.Helper()
	if m, s, r := f.live(); m+s+r != 0 {
		t.Errorf("%s: %d models, %d surfaces, %d requests still alive", when, m, s, r)
	}
	if n := f.pool.Load(); n != 0 {
		t.Errorf("%s: %d autorelease pools still open", when, n)
	}
	if ents, err := os.ReadDir(f.root); err != nil || len(ents) != 0 {
		t.Errorf("%s: the temporary directory still holds %v (%v)", when, ents, err)
	}
}

// newTestEngine opens a device over f with a fake clock and sleep.
func newTestEngine(t testing.TB, f *fakeRT, opts Options) *NeuralEngine {
	d := newNeuralEngine(f, identifyChip("Apple M4", "h16", 16), opts)
	d.sleep = func(dt time.Duration) {
		f.mu.Lock()
		f.slept = append(f.slept, dt)
		f.mu.Unlock()
	}
	d.now = func() time.Time { return time.Unix(0, f.clock.Load()) }
	t.Cleanup(func() { d.Close() })
	return d
}
