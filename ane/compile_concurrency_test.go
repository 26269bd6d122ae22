package ane_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/mil"
)

type offsetCase struct {
	p    *mil.Program
	w    mil.Weights
	vals []float32
}

// offsetPrograms builds offsetProgram 0…n-1 on the test goroutine (t.Fatal
// must not be called from others).
func offsetPrograms(t *testing.T, n int) []offsetCase {
	cs := make([]offsetCase, n)
	for i := range cs {
		cs[i].p, cs[i].w, cs[i].vals = offsetProgram(t, i)
	}
	return cs
}

// offsetProgram is y = x + W_i on [1, 8, 1, 32], W_i[c][s] = i + (c+s)%5 in
// a weight file, so every i is a distinct program with its own BLOBFILE and
// model directory, and y is exact in fp16 for the small integers used.
func offsetProgram(t *testing.T, i int) (*mil.Program, mil.Weights, []float32) {
	t.Helper()
	const c, s = 8, 32
	w := make([]float32, c*s)
	for ch := range c {
		for j := range s {
			w[ch*s+j] = float32(i + (ch+j)%5)
		}
	}
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, c, 1, s))
	b.Output(b.Add("y", x, b.ConstFP16("w", mil.Shape{1, c, 1, s}, w)))
	p, wf, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(wf) == 0 {
		t.Fatal("the offset has no weight file; make it larger")
	}
	return p, wf, w
}

// evalOffset evaluates k on x[c][s] = (c·s) % 3 − 1 and compares with x + w.
func evalOffset(k ane.Kernel, w []float32) error {
	in, err := k.NewSurface(ane.Input, 0)
	if err != nil {
		return err
	}
	out, err := k.NewSurface(ane.Output, 0)
	if err != nil {
		return err
	}
	rows, cols := in.Rows(), in.Cols()
	x := make([]float32, rows*cols)
	for r := range rows {
		for c := range cols {
			x[r*cols+c] = float32((r*c)%3 - 1)
		}
	}
	if err := in.Lock(false); err != nil {
		return err
	}
	in.WriteBlock(0, 0, rows, cols, x, cols)
	if err := in.Unlock(false); err != nil {
		return err
	}
	if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err != nil {
		return err
	}
	y := make([]float32, rows*cols)
	if err := out.Lock(true); err != nil {
		return err
	}
	out.ReadBlock(0, 0, rows, cols, y, cols)
	if err := out.Unlock(true); err != nil {
		return err
	}
	for i := range y {
		if y[i] != x[i]+w[i] {
			return fmt.Errorf("%s: element %d is %v, want %v + %v", k.Name(), i, y[i], x[i], w[i])
		}
	}
	return nil
}

// TestConcurrentCompilesOfDistinctPrograms compiles six distinct programs,
// each from two goroutines at once, on the Neural Engine device logic over
// the emulator-backed fake, and evaluates every handle from its goroutine.
// The fake fails any two framework calls that overlap and any call outside
// an autorelease pool; run under -race. Each program compiles once (six
// compiles, six cache hits, six units of budget) and each handle computes
// its own program's x + W_i.
func TestConcurrentCompilesOfDistinctPrograms(t *testing.T) {
	const programs, copies = 6, 2
	dev := ane.NewEmulatedEngine(t, ane.Options{}, 64, sim.CompileTextOptions)
	cs := offsetPrograms(t, programs)
	var wg sync.WaitGroup
	errs := make([]error, programs*copies)
	for g := range programs * copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := g % programs
			k, err := dev.Compile(fmt.Sprintf("offset%d.%d", i, g/programs), cs[i].p, cs[i].w)
			if err != nil {
				errs[g] = err
				return
			}
			errs[g] = evalOffset(k, cs[i].vals)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	st := dev.Stats()
	if used, _ := dev.Budget(); st.Compiles != programs || st.CacheHits != programs*(copies-1) || used != programs {
		t.Errorf("%d compiles, %d cache hits, %d budget used; want %d, %d, %d",
			st.Compiles, st.CacheHits, used, programs, programs*(copies-1), programs)
	}
	if st.Programs != programs || st.Evals != programs*copies || st.Requests != programs*copies {
		t.Errorf("%d programs, %d evaluations, %d requests; want %d, %d, %d",
			st.Programs, st.Evals, st.Requests, programs, programs*copies, programs*copies)
	}
}

// TestConcurrentCompilesStopAtTheBudget compiles six distinct programs at
// once against a budget of four: exactly four succeed and evaluate
// correctly, two fail with ErrBudgetExhausted, and four units are used.
func TestConcurrentCompilesStopAtTheBudget(t *testing.T) {
	const programs, budget = 6, 4
	dev := ane.NewEmulatedEngine(t, ane.Options{Budget: budget}, 0, sim.CompileTextOptions)
	cs := offsetPrograms(t, programs)
	var wg sync.WaitGroup
	errs := make([]error, programs)
	for i := range programs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := dev.Compile(fmt.Sprintf("offset%d", i), cs[i].p, cs[i].w)
			if err != nil {
				errs[i] = err
				return
			}
			if err := evalOffset(k, cs[i].vals); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	refused := 0
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ane.ErrBudgetExhausted):
			refused++
		default:
			t.Errorf("compile failed with %v; only ErrBudgetExhausted is expected", err)
		}
	}
	if used, _ := dev.Budget(); refused != programs-budget || used != budget || dev.Stats().Compiles != budget {
		t.Errorf("%d refused, %d budget used, %d compiles; want %d, %d, %d",
			refused, used, dev.Stats().Compiles, programs-budget, budget, budget)
	}
}
