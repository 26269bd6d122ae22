package ane

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anetop/anetop/mil"
)

// reluProgram is y = relu(x) on [1, c, 1, s]; tag makes distinct programs.
func reluProgram(t testing.TB, c, s int, tag string) (*mil.Program, mil.Weights) {
	t.Helper()
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, c, 1, s))
	b.Output(b.Relu("y_"+tag, x))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p, w
}

// weightedProgram is y = x + W with W a 4×32 constant in the weight blob.
func weightedProgram(t testing.TB) (*mil.Program, mil.Weights) {
	t.Helper()
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, 4, 1, 32))
	vals := make([]float32, 4*32)
	for i := range vals {
		vals[i] = float32(i%7) - 3
	}
	b.Output(b.Add("y", x, b.ConstFP16("w", mil.Shape{1, 4, 1, 32}, vals)))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(w) == 0 {
		t.Fatal("weightedProgram has no weight file; make the constant larger")
	}
	return p, w
}

func mustCompile(t *testing.T, d *NeuralEngine, name string, p *mil.Program, w mil.Weights) Kernel {
	t.Helper()
	k, err := d.Compile(name, p, w)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return k
}

// reluKernel compiles reluProgram(c, 32, tag) as name on a fresh engine
// over a fake runtime and makes the kernel's input and output surfaces.
func reluKernel(t *testing.T, c int, tag, name string) (f *fakeRT, d *NeuralEngine, k Kernel, in, out *Surface) {
	t.Helper()
	f = newFakeRT(t)
	d = newTestEngine(t, f, Options{})
	p, w := reluProgram(t, c, 32, tag)
	k = mustCompile(t, d, name, p, w)
	in, out = surfaces(t, k)
	return f, d, k, in, out
}

func surfaces(t *testing.T, k Kernel) (in, out *Surface) {
	t.Helper()
	var err error
	if in, err = k.NewSurface(Input, 0); err != nil {
		t.Fatal(err)
	}
	if out, err = k.NewSurface(Output, 0); err != nil {
		t.Fatal(err)
	}
	return in, out
}

func used(d *NeuralEngine) int { u, _ := d.Budget(); return u }

func TestCompileRunsTheDocumentedSequence(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	p, w := weightedProgram(t)
	k := mustCompile(t, d, "add", p, w)
	if got, want := f.calls(), []string{"newModel", "compile", "load", "attributes"}; !slices.Equal(got, want) {
		t.Errorf("compile made calls %v, want %v", got, want)
	}
	// The model directory holds model.mil and the weight file while loaded.
	ents, _ := os.ReadDir(f.root)
	if len(ents) != 1 {
		t.Fatalf("temporary directory has %d entries, want the model's", len(ents))
	}
	dir := filepath.Join(f.root, ents[0].Name())
	for _, name := range []string{"model.mil", filepath.FromSlash("weights/weight.bin")} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("model directory lacks %s: %v", name, err)
		}
	}
	if used(d) != 1 || d.Stats().Compiles != 1 {
		t.Errorf("budget %d, compiles %d after one compile; want 1, 1", used(d), d.Stats().Compiles)
	}
	if got, want := k.FLOPs(), 128.0; got != want {
		t.Errorf("FLOPs = %v, want %v (one add per element)", got, want)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := f.calls(), []string{"unload", "freeModel"}; !slices.Equal(got, want) {
		t.Errorf("Close made calls %v, want %v", got, want)
	}
	if err := k.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if c := f.calls(); len(c) != 0 {
		t.Errorf("second Close made calls %v", c)
	}
	f.assertClean(t, "after Close")
	if used(d) != 1 {
		t.Errorf("closing a kernel gave back budget: %d used", used(d))
	}
}

// failureCase is one injected failure of the compile sequence.
type failureCase struct {
	name    string
	inject  func(f *fakeRT)
	calls   []string // the framework calls the failed compile makes
	is      error    // the error wraps this, if set
	message string   // the error contains this
}

func TestCompileFailuresCleanUpAndSpendNoBudget(t *testing.T) {
	badLayout := func(m *fakeModel) any {
		return map[string]any{"NetworkStatusList": []any{map[string]any{
			"LiveInputList":  []any{map[string]any{"Width": int64(31), "RowStride": int64(64)}},
			"LiveOutputList": []any{map[string]any{"RowStride": int64(64)}},
		}}}
	}
	for _, c := range []failureCase{
		{"descriptor refused", func(f *fakeRT) { f.failNewModel = errors.New("modelWithMILText returned nil") },
			[]string{"newModel"}, ErrUnsupported, "modelWithMILText returned nil"},
		{"compile refused", func(f *fakeRT) { f.failCompile = errors.New("ANECCompile() FAILED") },
			[]string{"newModel", "compile", "freeModel"}, ErrUnsupported, "ANECCompile() FAILED"},
		{"load fails twice", func(f *fakeRT) { f.loadFailures = 2 },
			[]string{"newModel", "compile", "load", "load", "freeModel"}, nil, "load failed twice"},
		{"layout contradicts the program", func(f *fakeRT) { f.attrs = badLayout },
			[]string{"newModel", "compile", "load", "attributes", "unload", "freeModel"}, nil, "Width 31"},
		{"identifier is not a directory name", func(f *fakeRT) { f.modelID = "../escape" },
			[]string{"newModel", "freeModel"}, nil, "not a plain directory name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeRT(t)
			c.inject(f)
			d := newTestEngine(t, f, Options{})
			p, w := weightedProgram(t)
			_, err := d.Compile("k", p, w)
			if err == nil {
				t.Fatal("compile succeeded")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v does not wrap %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.message) {
				t.Errorf("error %q does not contain %q", err, c.message)
			}
			if got := f.calls(); !slices.Equal(got, c.calls) {
				t.Errorf("calls %v, want %v", got, c.calls)
			}
			if used(d) != 0 || d.Stats().Compiles != 0 {
				t.Errorf("a failed compile spent budget: %d used, %d compiles", used(d), d.Stats().Compiles)
			}
			f.assertClean(t, "after the failure")
			// The failure is not cached: the next compile tries again.
			f.mu.Lock()
			f.failNewModel, f.failCompile, f.loadFailures, f.attrs, f.modelID = nil, nil, 0, nil, ""
			f.log = nil
			f.mu.Unlock()
			k, err := d.Compile("k", p, w)
			if err != nil {
				t.Fatalf("compile after the failure was cleared: %v", err)
			}
			k.Close()
			f.assertClean(t, "after the retry")
		})
	}
}

func TestLoadIsRetriedOnceAfter100ms(t *testing.T) {
	f := newFakeRT(t)
	f.loadFailures = 1
	d := newTestEngine(t, f, Options{})
	p, w := reluProgram(t, 4, 32, "a")
	k := mustCompile(t, d, "retry", p, w)
	defer k.Close()
	if got := f.count("load"); got != 2 {
		t.Errorf("%d loads, want 2", got)
	}
	if !slices.Equal(f.slept, []time.Duration{100 * time.Millisecond}) {
		t.Errorf("slept %v between loads, want [100ms]", f.slept)
	}
	if st := d.Stats(); st.LoadRetries != 1 || st.Compiles != 1 || used(d) != 1 {
		t.Errorf("stats %+v, budget %d; want one retry, one compile, one used", st, used(d))
	}
}

func TestBudgetRefusesWithoutCallingTheFramework(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{Budget: 2})
	pa, wa := reluProgram(t, 4, 32, "a")
	pb, wb := reluProgram(t, 4, 32, "b")
	pc, wc := reluProgram(t, 4, 32, "c")
	ka := mustCompile(t, d, "a", pa, wa)
	mustCompile(t, d, "b", pb, wb)
	f.calls()
	_, err := d.Compile("c", pc, wc)
	if !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("third compile with a budget of 2: %v, want ErrBudgetExhausted", err)
	}
	if c := f.calls(); len(c) != 0 {
		t.Errorf("a refused compile called the framework: %v", c)
	}
	if u, l := d.Budget(); u != 2 || l != 2 {
		t.Errorf("budget %d/%d, want 2/2", u, l)
	}
	// A program already compiled costs nothing, even past the limit.
	ka2, err := d.Compile("a again", pa, wa)
	if err != nil {
		t.Fatalf("cached program past the limit: %v", err)
	}
	if c := f.calls(); len(c) != 0 {
		t.Errorf("a cache hit called the framework: %v", c)
	}
	ka.Close()
	ka2.Close()
}

func TestCacheSharesOneProgramAcrossHandles(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	p, w := reluProgram(t, 4, 32, "layer")
	k1 := mustCompile(t, d, "layer0", p, w)
	k2 := mustCompile(t, d, "layer1", p, w)
	if k1.Name() != "layer0" || k2.Name() != "layer1" {
		t.Errorf("names %q, %q", k1.Name(), k2.Name())
	}
	if n := f.count("newModel"); n != 1 {
		t.Errorf("%d models built for one program, want 1", n)
	}
	if st := d.Stats(); st.Compiles != 1 || st.CacheHits != 1 || st.Programs != 1 || used(d) != 1 {
		t.Errorf("stats %+v, budget %d; want 1 compile, 1 hit, 1 program, 1 used", st, used(d))
	}
	in, out := surfaces(t, k1)
	if err := k2.Eval([]*Surface{in}, []*Surface{out}); err != nil {
		t.Fatalf("a handle evaluating with another handle's surfaces: %v", err)
	}
	f.calls()
	k1.Close() // frees k1's surfaces (and the request binding them), not the program
	if c := f.calls(); countOf(c, "unload") != 0 || countOf(c, "freeSurface") != 2 || countOf(c, "freeRequest") != 1 {
		t.Errorf("closing one of two handles made calls %v", c)
	}
	k3 := mustCompile(t, d, "layer2", p, w) // still cached
	if n := f.count("newModel"); n != 0 {
		t.Errorf("program rebuilt while a handle was open")
	}
	k2.Close()
	k3.Close()
	f.assertClean(t, "after the last handle")
	// After the last handle, the same program compiles anew.
	k4 := mustCompile(t, d, "layer3", p, w)
	if n := f.count("newModel"); n != 1 || used(d) != 2 {
		t.Errorf("recompile after release: %d models, %d used", n, used(d))
	}
	k4.Close()
}

func TestConcurrentCompilesOfOneProgramCompileOnce(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	p, w := reluProgram(t, 4, 32, "same")
	var wg sync.WaitGroup
	ks := make([]Kernel, 8)
	errs := make([]error, 8)
	for i := range ks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ks[i], errs[i] = d.Compile("k", p, w)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("compile %d: %v", i, err)
		}
	}
	if n := f.count("compile"); n != 1 {
		t.Errorf("%d compiles of one program, want 1", n)
	}
	if st := d.Stats(); st.Compiles+st.CacheHits != 8 || used(d) != 1 {
		t.Errorf("stats %+v, used %d", st, used(d))
	}
	for _, k := range ks {
		k.Close()
	}
	f.assertClean(t, "after closing all")
}

func TestRequestsAreCachedPerBinding(t *testing.T) {
	f, d, k, in0, out := reluKernel(t, 4, "r", "r")
	in1, err := k.NewSurface(Input, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.calls()
	eval := func(in *Surface) {
		t.Helper()
		if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
			t.Fatal(err)
		}
	}
	eval(in0)
	before := d.ForeignCalls()
	eval(in0)
	eval(in0)
	if got := d.ForeignCalls() - before; got != 6 {
		t.Errorf("two evaluations with a cached request made %d foreign calls, want 6 (pool push, eval, pool pop)", got)
	}
	eval(in1)
	eval(in0)
	eval(in1)
	c := f.calls()
	if n := countOf(c, "newRequest"); n != 2 {
		t.Errorf("%d requests for 2 bindings: %v", n, c)
	}
	if n := countOf(c, "eval"); n != 6 {
		t.Errorf("%d evaluations, want 6", n)
	}
	if st := d.Stats(); st.Requests != 2 || st.Evals != 6 {
		t.Errorf("stats %+v", st)
	}
	if st := k.Stats(); st.Evals != 6 || st.FLOPs != 6*k.FLOPs() {
		t.Errorf("kernel stats %+v", st)
	}
	k.Close()
	f.assertClean(t, "after Close")
}

func TestDataGoesThroughTheSurfaces(t *testing.T) {
	f := newFakeRT(t) // its eval copies input bytes to the output
	d := newTestEngine(t, f, Options{})
	p, w := reluProgram(t, 2, 32, "d")
	k := mustCompile(t, d, "d", p, w)
	in, out := surfaces(t, k)
	vals := make([]float32, 64)
	for i := range vals {
		vals[i] = float32(i) / 4
	}
	in.Lock(false)
	in.WriteBlock(0, 0, 2, 32, vals, 32)
	in.Unlock(false)
	if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 64)
	out.Lock(true)
	out.ReadBlock(0, 0, 2, 32, got, 32)
	out.Unlock(true)
	if !slices.Equal(got, vals) {
		t.Errorf("read back %v", got)
	}
	k.Close()
}

func TestEvalFailureDropsTheRequest(t *testing.T) {
	f, _, k, in, out := reluKernel(t, 4, "e", "e")
	f.mu.Lock()
	f.failEvals = 1
	f.mu.Unlock()
	err := k.Eval([]*Surface{in}, []*Surface{out})
	if err == nil || !strings.Contains(err.Error(), "status=0x16") || !strings.Contains(err.Error(), "eval e") {
		t.Fatalf("failed eval returned %v", err)
	}
	if _, _, r := f.live(); r != 0 {
		t.Errorf("%d requests kept after a failed evaluation", r)
	}
	if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
		t.Fatalf("eval after a failure: %v", err)
	}
	if n := f.count("newRequest"); n != 2 {
		t.Errorf("%d requests built, want a fresh one after the failure", n)
	}
	if st := k.Stats(); st.Evals != 1 {
		t.Errorf("a failed evaluation was counted: %+v", st)
	}
	k.Close()
	f.assertClean(t, "after Close")
}

func TestRequestFailureLeavesNothing(t *testing.T) {
	f, _, k, in, out := reluKernel(t, 4, "q", "q")
	f.mu.Lock()
	f.failRequest = errors.New("requestWithInputs returned nil")
	f.mu.Unlock()
	err := k.Eval([]*Surface{in}, []*Surface{out})
	if err == nil || !strings.Contains(err.Error(), "build the request") {
		t.Fatalf("eval with a failing request: %v", err)
	}
	if n := f.count("eval"); n != 0 {
		t.Errorf("evaluated without a request")
	}
	f.mu.Lock()
	f.failRequest = nil
	f.mu.Unlock()
	if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
		t.Fatalf("eval once requests work again: %v", err)
	}
	k.Close()
	f.assertClean(t, "after Close")
}

func TestSurfaceFailure(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	p, w := reluProgram(t, 4, 32, "s")
	k := mustCompile(t, d, "s", p, w)
	f.mu.Lock()
	f.failSurface = errors.New("IOSurfaceCreate returned NULL")
	f.mu.Unlock()
	if _, err := k.NewSurface(Input, 0); err == nil || !strings.Contains(err.Error(), "IOSurfaceCreate") {
		t.Errorf("NewSurface with a failing IOSurfaceCreate: %v", err)
	}
	if _, err := k.NewSurface(Output, 1); err == nil {
		t.Error("NewSurface(Output, 1) on a one-output kernel succeeded")
	}
	k.Close()
	f.assertClean(t, "after Close")
}

func TestEvalRefusesBadSurfacesWithoutCallingTheFramework(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	pa, wa := reluProgram(t, 4, 32, "a")
	pb, wb := reluProgram(t, 8, 32, "b")
	ka := mustCompile(t, d, "a", pa, wa)
	kb := mustCompile(t, d, "b", pb, wb)
	in, out := surfaces(t, ka)
	wrongShape, _ := kb.NewSurface(Input, 0)
	goMem, _ := NewSurface(mil.Shape{1, 4, 1, 32}, 0, nil)
	other := newTestEngine(t, newFakeRT(t), Options{})
	ko := mustCompile(t, other, "a", pa, wa)
	otherDev, _ := ko.NewSurface(Input, 0)
	locked, _ := ka.NewSurface(Input, 0)
	locked.Lock(false)
	pc, wc := reluProgram(t, 4, 32, "c")
	kc := mustCompile(t, d, "c", pc, wc)
	freed, _ := kc.NewSurface(Input, 0)
	kc.Close()
	f.calls()
	for _, c := range []struct {
		what    string
		in, out []*Surface
		msg     string
	}{
		{"no input", nil, []*Surface{out}, "0 input surfaces"},
		{"two inputs", []*Surface{in, in}, []*Surface{out}, "2 input surfaces"},
		{"nil output", []*Surface{in}, []*Surface{nil}, "is nil"},
		{"wrong shape", []*Surface{wrongShape}, []*Surface{out}, "has shape"},
		{"Go memory", []*Surface{goMem}, []*Surface{out}, "not this Neural Engine's memory"},
		{"another device", []*Surface{otherDev}, []*Surface{out}, "not this Neural Engine's memory"},
		{"locked", []*Surface{locked}, []*Surface{out}, "is locked"},
		{"freed", []*Surface{freed}, []*Surface{out}, "was freed"},
	} {
		err := ka.Eval(c.in, c.out)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("eval with %s: %v, want an error containing %q", c.what, err, c.msg)
		}
	}
	if c := f.calls(); len(c) != 0 {
		t.Errorf("refused evaluations called the framework: %v", c)
	}
	if err := freed.Lock(false); err == nil {
		t.Error("locking a freed surface succeeded")
	}
	locked.Unlock(false)
	if err := ka.Eval([]*Surface{locked}, []*Surface{out}); err != nil {
		t.Errorf("eval after unlocking: %v", err)
	}
}

func TestClosingAKernelFreesRequestsOfOtherKernelsOverItsSurfaces(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	pa, wa := reluProgram(t, 4, 32, "a")
	pb, wb := reluProgram(t, 4, 32, "b")
	ka := mustCompile(t, d, "a", pa, wa)
	kb := mustCompile(t, d, "b", pb, wb)
	aIn, aOut := surfaces(t, ka)
	bOut, err := kb.NewSurface(Output, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Chain: a's output is b's input.
	if err := ka.Eval([]*Surface{aIn}, []*Surface{aOut}); err != nil {
		t.Fatal(err)
	}
	if err := kb.Eval([]*Surface{aOut}, []*Surface{bOut}); err != nil {
		t.Fatal(err)
	}
	f.calls()
	if err := ka.Close(); err != nil {
		t.Fatal(err)
	}
	// The fake checks that no surface is released while a request binds it.
	if c := f.calls(); countOf(c, "freeRequest") != 2 || countOf(c, "freeSurface") != 2 {
		t.Errorf("closing a made calls %v; want both requests over its surfaces freed, then its 2 surfaces", c)
	}
	if err := kb.Eval([]*Surface{aOut}, []*Surface{bOut}); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("eval of b over a's freed surface: %v", err)
	}
	if err := ka.Eval([]*Surface{aIn}, []*Surface{aOut}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("eval of a closed kernel: %v", err)
	}
	kb.Close()
	f.assertClean(t, "after both")
}

func TestDeviceCloseReleasesEverythingOnce(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	var ks []Kernel
	for _, tag := range []string{"a", "b", "c"} {
		p, w := reluProgram(t, 4, 32, tag)
		k := mustCompile(t, d, tag, p, w)
		in, out := surfaces(t, k)
		if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	p, w := reluProgram(t, 4, 32, "a")
	mustCompile(t, d, "a twice", p, w)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	f.assertClean(t, "after device Close")
	c := f.calls()
	if countOf(c, "unload") != 3 || countOf(c, "freeModel") != 3 || countOf(c, "freeRequest") != 3 || countOf(c, "freeSurface") != 6 {
		t.Errorf("device Close made calls %v", c)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, k := range ks {
		if err := k.Close(); err != nil {
			t.Errorf("kernel Close after device Close: %v", err)
		}
		if err := k.Eval(nil, nil); err == nil {
			t.Error("eval after device Close succeeded")
		}
		if _, err := k.NewSurface(Input, 0); err == nil {
			t.Error("NewSurface after device Close succeeded")
		}
	}
	if _, err := d.Compile("late", p, w); err == nil {
		t.Error("compile after device Close succeeded")
	}
	if c := f.calls(); len(c) != 0 {
		t.Errorf("calls after Close: %v", c)
	}
}

func TestCloseReportsUnloadFailureButStillReleases(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	p, w := reluProgram(t, 4, 32, "u")
	k := mustCompile(t, d, "u", p, w)
	f.mu.Lock()
	f.failUnload = errors.New("unload refused")
	f.mu.Unlock()
	if err := k.Close(); err == nil || !strings.Contains(err.Error(), "unload refused") {
		t.Errorf("Close with a failing unload: %v", err)
	}
	f.assertClean(t, "after a failed unload")
}

func TestRefusedProgramsNeverReachTheFramework(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	two := func() (*mil.Program, mil.Weights) {
		b := mil.NewBuilder(mil.IOS18)
		x := b.Input("x", mil.TensorOf(mil.FP16, 1, 1, 1, 32))
		z := b.Input("z", mil.TensorOf(mil.FP16, 1, 1, 1, 32))
		b.Output(b.Sub("y", x, z))
		p, w, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return p, w
	}
	fp32 := func() (*mil.Program, mil.Weights) {
		b := mil.NewBuilder(mil.IOS18)
		x := b.Input("x", mil.TensorOf(mil.FP32, 1, 1, 1, 32))
		b.Output(b.Cast("y", b.Relu("r", x), mil.FP16))
		p, w, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return p, w
	}
	bad, _ := reluProgram(t, 1, 32, "bad")
	bad.Main().Ops[len(bad.Main().Ops)-1].Type = "frobnicate"
	wp, ww := weightedProgram(t)
	for _, c := range []struct {
		what string
		p    *mil.Program
		w    mil.Weights
		is   error
		msg  string
	}{
		{"nil", nil, nil, ErrInvalidProgram, "nil program"},
		{"unknown op", bad, nil, ErrInvalidProgram, "frobnicate"},
		{"two inputs", first(two()), nil, ErrUnsupported, "2 inputs"},
		{"fp32 input", first(fp32()), nil, ErrUnsupported, "fp32"},
		{"missing weights", wp, nil, ErrInvalidProgram, "BLOBFILE"},
		{"weight path outside the model", wp, mil.Weights{mil.WeightPath: ww[mil.WeightPath], "@model_path/../x.bin": {1}},
			ErrInvalidProgram, "inside the model directory"},
		{"weight path not UTF-8", wp, mil.Weights{mil.WeightPath: ww[mil.WeightPath], "@model_path/weights/\xff.bin": {1}},
			ErrInvalidProgram, "not valid UTF-8"},
		{"weight path with NUL", wp, mil.Weights{mil.WeightPath: ww[mil.WeightPath], "@model_path/weights/w\x00.bin": {1}},
			ErrInvalidProgram, "NUL"},
	} {
		_, err := d.Compile(c.what, c.p, c.w)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v containing %q", c.what, err, c.is, c.msg)
		}
	}
	if c := f.calls(); len(c) != 0 || used(d) != 0 {
		t.Errorf("refused programs made calls %v and used %d compiles", c, used(d))
	}
	// With MultiIO, two inputs are allowed.
	dm := newTestEngine(t, newFakeRT(t), Options{MultiIO: true})
	k, err := dm.Compile("two", first(two()), nil)
	if err != nil {
		t.Fatalf("two inputs with MultiIO: %v", err)
	}
	if len(k.Inputs()) != 2 {
		t.Errorf("inputs %v", k.Inputs())
	}
}

func first(p *mil.Program, _ mil.Weights) *mil.Program { return p }

func TestSuspectedFallbacksAreCountedAfterWarmup(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	// A dynamic matmul of 2·512·512·64 = 33.5 MFLOP: about 2 µs at the M4's
	// 18.6 TFLOPS, so the prediction is the 100 µs dispatch floor.
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, 512, 1, 64+512))
	act := b.SliceBySize("act", x, []int{0, 0, 0, 0}, []int{1, 512, 1, 64})
	wt := b.SliceBySize("w", x, []int{0, 0, 0, 64}, []int{1, 512, 1, 512})
	a := b.Transpose("at", b.Reshape("ar", act, 1, 1, 512, 64), 0, 1, 3, 2)
	y := b.MatMul("y", a, b.Reshape("wr", wt, 1, 1, 512, 512), false, false)
	b.Output(b.Reshape("out", b.Transpose("yt", y, 0, 1, 3, 2), 1, 512, 1, 64))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	k := mustCompile(t, d, "mm", p, w)
	if got, want := k.FLOPs(), 2.0*512*512*64; got != want {
		t.Fatalf("FLOPs %v, want %v", got, want)
	}
	in, out := surfaces(t, k)
	run := func(n int, each time.Duration) {
		t.Helper()
		f.mu.Lock()
		f.evalTime = each
		f.mu.Unlock()
		for range n {
			if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(fallbackWarmup+1, 50*time.Millisecond) // warm-up is not judged: only the last one counts
	if n := d.Stats().SuspectedFallbacks; n != 1 {
		t.Errorf("%d suspected after warm-up + 1 slow evaluation, want 1", n)
	}
	run(10, 200*time.Microsecond) // 2× the prediction: a normal ANE evaluation
	if n := d.Stats().SuspectedFallbacks; n != 1 {
		t.Errorf("normal evaluations were suspected: %d", n)
	}
	run(2, 20*time.Millisecond) // 200×: the ANE handed the work to the CPU
	st := d.Stats()
	if st.SuspectedFallbacks != 3 || len(st.Suspects) != 1 {
		t.Fatalf("stats %+v, want 3 suspected evaluations of one kernel", st)
	}
	r := st.Suspects[0]
	if r.Kernel != "mm" || r.Evals != 16 || r.Suspected != 3 || r.Achieved <= 0 || r.Predicted <= r.Achieved {
		t.Errorf("report %+v", r)
	}
}

func TestLayoutFromAttributes(t *testing.T) {
	in := []mil.Type{mil.TensorOf(mil.FP16, 1, 4, 1, 24)}
	out := []mil.Type{mil.TensorOf(mil.FP16, 1, 2, 1, 8)}
	// list describes one input and one output.
	list := func(in, out any) any {
		return map[string]any{"NetworkStatusList": []any{map[string]any{"LiveInputList": []any{in}, "LiveOutputList": []any{out}}}}
	}
	entry := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		what             string
		attrs            any
		inStride, outStr int
		source, err      string
	}{
		{"no attributes", nil, 24, 8, "dense rows (the framework gave no", ""},
		{"no status list", map[string]any{"other": int64(1)}, 24, 8, "no NetworkStatusList", ""},
		{"counts differ", map[string]any{"NetworkStatusList": []any{map[string]any{
			"LiveInputList": []any{}, "LiveOutputList": []any{}}}}, 24, 8, "list 0 inputs and 0 outputs", ""},
		{"64-byte rows", list(
			entry("Channels", int64(4), "Height", int64(1), "Width", int64(24), "RowStride", int64(64), "PlaneStride", int64(64)),
			entry("Channels", int64(2), "Width", int64(8), "RowStride", int64(64))),
			32, 32, "the compiled model's attributes", ""},
		{"dense rows stated", list(entry("RowStride", int64(48)), entry("PlaneStride", float64(16))),
			24, 8, "the compiled model's attributes", ""},
		{"no stride keys", list(entry("Width", int64(24)), entry()), 24, 8, "the compiled model's attributes", ""},
		{"height 2, contiguous planes", list(entry("Channels", int64(2), "Height", int64(2), "RowStride", int64(64), "PlaneStride", int64(128)), entry()),
			32, 8, "attributes", ""},
		{"height 2, gapped planes", list(entry("Channels", int64(2), "Height", int64(2), "RowStride", int64(64), "PlaneStride", int64(256)), entry()),
			0, 0, "", "rows of unequal spacing"},
		{"wrong width", list(entry("Width", int64(25), "RowStride", int64(64)), entry()), 0, 0, "", "Width 25"},
		{"wrong channels", list(entry("Channels", int64(3), "RowStride", int64(64)), entry()), 0, 0, "", "3 channels"},
		{"stride shorter than a row", list(entry("RowStride", int64(32)), entry()), 0, 0, "", "row stride of 32 bytes"},
		{"odd stride", list(entry(), entry("RowStride", int64(17))), 0, 0, "", "row stride of 17 bytes"},
		{"entry not a dictionary", list("x", entry()), 0, 0, "", "not a dictionary"},
	}
	for _, c := range cases {
		il, ol, src, err := layoutFromAttributes(c.attrs, in, out)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.what, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.what, err)
			continue
		}
		if il[0].stride != c.inStride || ol[0].stride != c.outStr || !strings.Contains(src, c.source) {
			t.Errorf("%s: strides %d, %d from %q; want %d, %d from %q", c.what, il[0].stride, ol[0].stride, src, c.inStride, c.outStr, c.source)
		}
		if il[0].bytes != 4*2*il[0].stride || ol[0].bytes != 2*2*ol[0].stride {
			t.Errorf("%s: sizes %d, %d bytes", c.what, il[0].bytes, ol[0].bytes)
		}
	}
}

func TestSurfacesFollowTheCompiledLayout(t *testing.T) {
	f := newFakeRT(t)
	f.attrs = func(*fakeModel) any {
		e := map[string]any{"Channels": int64(4), "Width": int64(24), "RowStride": int64(64)}
		return map[string]any{"NetworkStatusList": []any{map[string]any{"LiveInputList": []any{e}, "LiveOutputList": []any{e}}}}
	}
	d := newTestEngine(t, f, Options{})
	p, w := reluProgram(t, 4, 24, "pad")
	k := mustCompile(t, d, "pad", p, w)
	in, out := surfaces(t, k)
	if in.Stride() != 32 || out.Stride() != 32 || len(in.Data()) < 3*32+24 {
		t.Errorf("strides %d, %d, %d elements; want rows 64 bytes apart", in.Stride(), out.Stride(), len(in.Data()))
	}
	is, os_, src, ok := KernelLayout(k)
	if !ok || !slices.Equal(is, []int{32}) || !slices.Equal(os_, []int{32}) || !strings.Contains(src, "attributes") {
		t.Errorf("KernelLayout = %v, %v, %q, %v", is, os_, src, ok)
	}
	f.mu.Lock()
	var sizes []int
	for _, s := range f.surfaces {
		sizes = append(sizes, len(s.bytes))
	}
	f.mu.Unlock()
	if !slices.Equal(sizes, []int{256, 256}) {
		t.Errorf("IOSurface sizes %v, want 4 rows × 64 bytes", sizes)
	}
	k.Close()
}

func TestTwoDevicesShareAModelDirectory(t *testing.T) {
	f1 := newFakeRT(t)
	f2 := newFakeRT(t)
	f2.root = f1.root // both see the same NSTemporaryDirectory()
	d1 := newTestEngine(t, f1, Options{})
	d2 := newTestEngine(t, f2, Options{})
	p, w := weightedProgram(t)
	k1 := mustCompile(t, d1, "k", p, w)
	k2 := mustCompile(t, d2, "k", p, w)
	k1.Close()
	if ents, _ := os.ReadDir(f1.root); len(ents) != 1 {
		t.Fatalf("the shared model directory was removed while the other device uses it")
	}
	k2.Close()
	f1.assertClean(t, "after both devices released it")
}

func TestWorkerCallsAreSerialisedUnderConcurrentUse(t *testing.T) {
	f := newFakeRT(t) // reports overlapping framework calls and calls outside a pool
	d := newTestEngine(t, f, Options{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, w := reluProgram(t, 4, 32, string(rune('a'+g%2)))
			k, err := d.Compile("k", p, w)
			if err != nil {
				t.Error(err)
				return
			}
			in, _ := k.NewSurface(Input, 0)
			out, _ := k.NewSurface(Output, 0)
			for range 20 {
				in.Lock(false)
				in.Unlock(false)
				if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
					t.Error(err)
				}
			}
			k.Close()
		}()
	}
	wg.Wait()
	f.assertClean(t, "after concurrent use")
}

func TestCloseWaitsForCompilesInFlight(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	f.loadFailures = 1
	started := make(chan struct{})
	d.sleep = func(time.Duration) { close(started); time.Sleep(20 * time.Millisecond) }
	done := make(chan error)
	p, w := reluProgram(t, 4, 32, "late")
	go func() {
		_, err := d.Compile("late", p, w)
		done <- err
	}()
	<-started
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	<-done // compiled, or refused because the device closed: either way nothing leaks
	f.assertClean(t, "after Close during a compile")
}

func TestNameAndPeak(t *testing.T) {
	d := newTestEngine(t, newFakeRT(t), Options{Budget: 7})
	if got := d.Name(); got != "ANE · Apple M4 (h16, 16 cores)" {
		t.Errorf("Name = %q", got)
	}
	if d.Emulated() {
		t.Error("the Neural Engine says it is emulated")
	}
	if d.PeakFLOPS() != 18.6e12 || !strings.Contains(d.PeakSource(), "README") {
		t.Errorf("peak %v from %q", d.PeakFLOPS(), d.PeakSource())
	}
	d.SetPeak(15e12, "anetop bench peak")
	d.SetPeak(-1, "ignored")
	if d.PeakFLOPS() != 15e12 || d.PeakSource() != "anetop bench peak" {
		t.Errorf("after SetPeak: %v from %q", d.PeakFLOPS(), d.PeakSource())
	}
	if _, l := d.Budget(); l != 7 {
		t.Errorf("budget limit %d, want 7", l)
	}
}

func TestChipIdentity(t *testing.T) {
	for _, c := range []struct {
		brand, sub string
		cores      int
		gen, tier  string
		peak       float64
		measured   bool
		label      string
	}{
		{"Apple M4", "h16", 16, "M4", "", 18.6e12, true, "Apple M4 (h16, 16 cores)"},
		{"Apple M4 Pro", "", 0, "M4", "Pro", 18.6e12, true, "Apple M4 Pro"},
		{"Apple M5 Max", "h17", 0, "M5", "Max", 19.27e12, true, "Apple M5 Max (h17)"},
		{"Apple M3 Ultra", "", 32, "M3", "Ultra", 8.08e12, true, "Apple M3 Ultra (32 cores)"},
		{"Apple M3", "", 0, "M3", "", 16.77e12, true, "Apple M3"},
		{"Apple M1 Max", "h13", 0, "M1", "Max", placeholderPeak, false, "Apple M1 Max (h13)"},
		{"Apple M2", "", 0, "M2", "", placeholderPeak, false, "Apple M2"},
		{"AMD EPYC 7B13", "", 0, "", "", placeholderPeak, false, "AMD EPYC 7B13"},
		{"", "", 0, "", "", placeholderPeak, false, "unknown chip"},
	} {
		ch := identifyChip(c.brand, c.sub, c.cores)
		if ch.Generation != c.gen || ch.Tier != c.tier || ch.Peak != c.peak || ch.PeakMeasured != c.measured || ch.Label() != c.label {
			t.Errorf("%q: %+v (label %q)", c.brand, ch, ch.Label())
		}
		if !c.measured && !strings.Contains(ch.PeakSource, "placeholder") {
			t.Errorf("%q: an unmeasured peak must say it is a placeholder: %q", c.brand, ch.PeakSource)
		}
		if c.measured && !strings.Contains(ch.PeakSource, "§7.2") {
			t.Errorf("%q: source %q does not cite its figure", c.brand, ch.PeakSource)
		}
	}
}

func TestProbeMissing(t *testing.T) {
	p := Probe{Symbols: []Symbol{
		{Kind: "class", Name: "_ANEInMemoryModel", Found: true},
		{Kind: "selector", Name: "-[_ANEInMemoryModel model]", Optional: true},
		{Kind: "selector", Name: "-[_ANEInMemoryModel loadWithQoS:options:error:]"},
	}}
	if got := p.Missing(); !slices.Equal(got, []string{"-[_ANEInMemoryModel loadWithQoS:options:error:]"}) {
		t.Errorf("Missing = %v", got)
	}
}

func TestCheckSurfaceAddress(t *testing.T) {
	f, _, k, in, out := reluKernel(t, 2, "addr", "addr")
	for _, s := range []*Surface{in, out} {
		if checked, err := CheckSurfaceAddress(s); !checked || err != nil {
			t.Errorf("CheckSurfaceAddress = %v, %v; want checked, no error", checked, err)
		}
	}
	if n := f.callKinds()["baseAddress"]; n != 2 {
		t.Errorf("%d IOSurfaceGetBaseAddress calls for two checks, want 2", n)
	}
	// The check leaves the surfaces usable.
	if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
		t.Fatalf("eval after the check: %v", err)
	}
	f.mu.Lock()
	f.moveSurfaces = true
	f.mu.Unlock()
	checked, err := CheckSurfaceAddress(in)
	if !checked || err == nil || !strings.Contains(err.Error(), "moved") {
		t.Errorf("a moved surface: CheckSurfaceAddress = %v, %v; want checked and an error saying it moved", checked, err)
	}
	if in.mem.(*hwSurface).cpuLocked() {
		t.Errorf("a failed check left the surface locked")
	}
	// A surface in Go memory (another device's) is not checked.
	g, err := NewSurface(mil.Shape{1, 2, 1, 32}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if checked, err := CheckSurfaceAddress(g); checked || err != nil {
		t.Errorf("a Go-memory surface: CheckSurfaceAddress = %v, %v; want not checked", checked, err)
	}
	k.Close()
	if checked, err := CheckSurfaceAddress(in); !checked || err == nil {
		t.Errorf("a freed surface: CheckSurfaceAddress = %v, %v; want an error", checked, err)
	}
}

// TestLayoutKeysListWhatTheReaderReads: the darwin runtime fetches
// layoutKeys by name from every attributes dictionary so that no bound drops
// them; a key the layout reader reads but the list lacks could be dropped.
func TestLayoutKeysListWhatTheReaderReads(t *testing.T) {
	src, err := os.ReadFile("hw_layout.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?:\[|get\()"([A-Za-z]+)"`)
	var read []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		read = append(read, m[1])
	}
	if len(read) < 5 {
		t.Fatalf("found only %v in hw_layout.go; the pattern is out of date", read)
	}
	for _, k := range read {
		if !slices.Contains(layoutKeys, k) {
			t.Errorf("hw_layout.go reads %q, which layoutKeys lacks", k)
		}
	}
}
