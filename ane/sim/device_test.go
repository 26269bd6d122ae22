package sim

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
)

// dynMatmul builds the dynamic-pipeline linear kernel (ane-anchor §3.5): one
// input [1, IC, 1, S+OC] holding activations [IC, S] and weights [IC, OC]
// side by side; output [1, OC, 1, S] = Wᵀ·act.
func dynMatmul(t testing.TB, ic, oc, s int) (*mil.Program, mil.Weights) {
	t.Helper()
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, ic, 1, s+oc))
	act := b.SliceBySize("act", x, []int{0, 0, 0, 0}, []int{1, ic, 1, s})
	w := b.SliceBySize("w", x, []int{0, 0, 0, s}, []int{1, ic, 1, oc})
	a2 := b.Reshape("a2", act, 1, 1, ic, s)
	at := b.Transpose("at", a2, 0, 1, 3, 2)
	w2 := b.Reshape("w2", w, 1, 1, ic, oc)
	y := b.MatMul("y", at, w2, false, false)
	yt := b.Transpose("yt", y, 0, 1, 3, 2)
	out := b.Reshape("out", yt, 1, oc, 1, s)
	b.Output(out)
	p, wts, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p, wts
}

// packDyn lays out act [ic][s] and w [ic][oc] as the kernel's input rows.
func packDyn(act, w []float32, ic, oc, s int) []float32 {
	in := make([]float32, ic*(s+oc))
	for c := range ic {
		copy(in[c*(s+oc):], act[c*s:(c+1)*s])
		copy(in[c*(s+oc)+s:], w[c*oc:(c+1)*oc])
	}
	return in
}

func dynRef(act, w []float32, ic, oc, s int) (want, tol []float64) {
	ar, wr := r16s(act), r16s(w)
	for o := range oc {
		for j := range s {
			sum, a := 0.0, 0.0
			for c := range ic {
				v := wr[c*oc+o] * ar[c*s+j]
				sum += v
				a += math.Abs(v)
			}
			want = append(want, r16(sum))
			tol = append(tol, float64(ic)*0x1p-22*a)
		}
	}
	return want, tol
}

func TestDynamicMatmul(t *testing.T) {
	const ic, oc, s = 96, 80, 64
	p, w := dynMatmul(t, ic, oc, s)
	d := newDev(t, ane.Options{})
	k, err := d.Compile("dyn", p, w)
	if err != nil {
		t.Fatal(err)
	}
	act, wt := randn(30, ic*s, 1), randn(31, ic*oc, 0.2)
	got := eval(t, k, packDyn(act, wt, ic, oc, s))[0]
	want, tol := dynRef(act, wt, ic, oc, s)
	nearTol(t, "dyn", got, want, tol)
	if f, want := k.FLOPs(), 2.0*ic*oc*s; f != want {
		t.Errorf("FLOPs = %v, want %v (data movement counts 0)", f, want)
	}
	st := k.Stats()
	if st.Evals != 1 || st.Time <= 0 || st.FLOPs != k.FLOPs() {
		t.Errorf("stats %+v after one eval", st)
	}
	if used, _ := d.Budget(); used != 1 {
		t.Errorf("budget used %d, want 1", used)
	}
}

// One compiled kernel, many per-layer input surfaces sharing one output
// surface, as the dynamic pipeline binds them.
func TestManyLayerSurfaces(t *testing.T) {
	const ic, oc, s, layers = 32, 24, 16, 6
	p, w := dynMatmul(t, ic, oc, s)
	d := newDev(t, ane.Options{})
	k, err := d.Compile("dyn", p, w)
	if err != nil {
		t.Fatal(err)
	}
	var ins []*ane.Surface
	var acts, wts [][]float32
	for l := range layers {
		in, err := k.NewSurface(ane.Input, 0)
		if err != nil {
			t.Fatal(err)
		}
		a, wt := randn(uint64(100+l), ic*s, 1), randn(uint64(200+l), ic*oc, 0.3)
		in.WriteBlock(0, 0, in.Rows(), in.Cols(), packDyn(a, wt, ic, oc, s), in.Cols())
		ins = append(ins, in)
		acts, wts = append(acts, a), append(wts, wt)
	}
	out, err := k.NewSurface(ane.Output, 0)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for l := range layers {
			if err := k.Eval([]*ane.Surface{ins[l]}, []*ane.Surface{out}); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, oc*s)
			out.ReadBlock(0, 0, oc, s, got, s)
			want, tol := dynRef(acts[l], wts[l], ic, oc, s)
			nearTol(t, "layer", got, want, tol)
			_ = round
		}
	}
	if n := k.Stats().Evals; n != 2*layers {
		t.Errorf("evals = %d, want %d", n, 2*layers)
	}
}

// Kernels evaluated from several goroutines at once are serialised on the
// device worker and stay correct (run with -race).
func TestConcurrentEvals(t *testing.T) {
	const ic, oc, s = 16, 16, 8
	d := newDev(t, ane.Options{})
	var ks []ane.Kernel
	for range 2 {
		p, w := dynMatmul(t, ic, oc, s)
		k, err := d.Compile("dyn", p, w)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := ks[g%2]
			in, _ := k.NewSurface(ane.Input, 0)
			out, _ := k.NewSurface(ane.Output, 0)
			a, w := randn(uint64(g), ic*s, 1), randn(uint64(50+g), ic*oc, 1)
			in.WriteBlock(0, 0, ic, s+oc, packDyn(a, w, ic, oc, s), s+oc)
			want, tol := dynRef(a, w, ic, oc, s)
			got := make([]float32, oc*s)
			for range 20 {
				if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err != nil {
					errs <- err
					return
				}
				out.ReadBlock(0, 0, oc, s, got, s)
				for i := range got {
					if math.Abs(float64(got[i])-want[i]) > ulp16(want[i])+tol[i] {
						errs <- errors.New("wrong result under concurrency")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSurfaceValidation(t *testing.T) {
	text := prog("tensor<fp16, [1, 4, 1, 8]> x", addOne, "y")
	d := newDev(t, ane.Options{})
	k := compile(t, d, text, nil)
	in, _ := k.NewSurface(ane.Input, 0)
	out, _ := k.NewSurface(ane.Output, 0)
	other := newDev(t, ane.Options{})
	foreign, _ := ane.NewSurface(mil.Shape{1, 4, 1, 8}, 0, other)
	wrong, _ := ane.NewSurface(mil.Shape{1, 4, 1, 9}, 0, nil)
	shared, _ := ane.NewSurface(mil.Shape{1, 4, 1, 8}, 0, nil)
	cases := []struct {
		name    string
		in, out []*ane.Surface
		part    string
	}{
		{"count", nil, []*ane.Surface{out}, "0 input surfaces"},
		{"nil", []*ane.Surface{nil}, []*ane.Surface{out}, "nil"},
		{"owner", []*ane.Surface{foreign}, []*ane.Surface{out}, "another device"},
		{"shape", []*ane.Surface{in}, []*ane.Surface{wrong}, "shape [1, 4, 1, 9]"},
	}
	for _, c := range cases {
		if err := k.Eval(c.in, c.out); err == nil || !strings.Contains(err.Error(), c.part) {
			t.Errorf("%s: Eval error %v, want one mentioning %q", c.name, err, c.part)
		}
	}
	// Surfaces without an owner, with padded rows, are fine.
	padded, _ := ane.NewSurface(mil.Shape{1, 4, 1, 8}, 40, nil)
	if err := k.Eval([]*ane.Surface{padded}, []*ane.Surface{shared}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.NewSurface(ane.Input, 1); err == nil {
		t.Error("NewSurface(Input, 1) succeeded on a one-input kernel")
	}
	k.Close()
	if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err == nil {
		t.Error("Eval after Close succeeded")
	}
	d.Close()
	if _, err := d.CompileText("x", []byte(text), nil); err == nil {
		t.Error("Compile after Close succeeded")
	}
}

func TestStridedSurfaces(t *testing.T) {
	text := prog("tensor<fp16, [1, 3, 1, 5]> x", `            tensor<fp16, [1, 3, 1, 5]> y = mul(x = x, y = fp16(0x1p+1))[name = string("y")];`, "y")
	d := newDev(t, ane.Options{})
	k := compile(t, d, text, nil)
	in, _ := ane.NewSurface(mil.Shape{1, 3, 1, 5}, 32, d)
	out, _ := ane.NewSurface(mil.Shape{1, 3, 1, 5}, 64, d)
	x := randn(40, 15, 10)
	in.WriteBlock(0, 0, 3, 5, x, 5)
	if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 15)
	out.ReadBlock(0, 0, 3, 5, got, 5)
	want := r16s(x)
	for i := range want {
		want[i] = r16(2 * want[i])
	}
	near(t, "strided", got, want, 0, 0)
}

func TestOpenAndName(t *testing.T) {
	dev, err := ane.Open("sim", ane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if !dev.Emulated() || !strings.HasPrefix(dev.Name(), "emulator · CPU (") {
		t.Errorf("name %q, emulated %v", dev.Name(), dev.Emulated())
	}
	if f := dev.PeakFLOPS(); !(f > 1e8) {
		t.Errorf("PeakFLOPS = %v", f)
	}
}

func TestCompileTextStandalone(t *testing.T) {
	text := prog("tensor<fp16, [1, 4, 1, 8]> x", addOne, "y")
	k, err := CompileText("file.mil", []byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if got := k.Inputs(); len(got) != 1 || got[0].String() != "tensor<fp16, [1, 4, 1, 8]>" {
		t.Errorf("inputs %v", got)
	}
	if k.FLOPs() != 32 {
		t.Errorf("FLOPs %v, want 32 (1 per output element of add)", k.FLOPs())
	}
	out := eval(t, k, make([]float32, 32))
	if out[0][31] != 1 {
		t.Errorf("y = %v", out[0])
	}
	_, err = CompileText("file.mil", []byte("program(1.3)\n{"), nil)
	wantErr(t, err, ane.ErrInvalidProgram, "file.mil:2:")
}

func TestFunction(t *testing.T) {
	k, err := CompileText("f.mil", []byte(prog("tensor<fp16, [1, 4, 1, 8]> x", addOne, "y")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if f := Function(k); f == nil || len(f.Ops) != 1 || f.Ops[0].Type != "add" {
		t.Errorf("Function = %+v", f)
	}
}
