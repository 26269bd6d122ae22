package ane

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Which parts of a compile run off the worker, so that compiles started from
// several goroutines (engine.New's four kernels, if it starts them together)
// overlap there; the framework calls themselves (newModel, compile, load,
// attributes) run one at a time on the worker.
//
// Both tests hold the worker with a job of their own and watch another
// compile make progress meanwhile. The waits below are liveness guards: in
// a correct build they end as soon as the other goroutine gets CPU time,
// and they expire only if that work has moved onto the worker (which would
// otherwise deadlock the test).
const overlapGuard = 10 * time.Second

func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(overlapGuard); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// TestCompileChecksPrintsAndHashesOffTheWorker: while the worker is busy, a
// Compile checks the program, prints its MIL and hashes it into the content
// key — its entry appears in the program cache — before it needs the
// worker for its first framework call.
func TestCompileChecksPrintsAndHashesOffTheWorker(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	busy, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	go d.call(func() error { close(busy); <-release; return nil })
	<-busy

	p, w := weightedProgram(t)
	done := make(chan error, 1)
	go func() {
		k, err := d.Compile("b", p, w)
		if err == nil {
			err = k.Close()
		}
		done <- err
	}()
	prepared := waitFor(func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.progs) == 1
	})
	calls := f.count("newModel")
	free()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !prepared {
		t.Errorf("the compile did not reach the program cache while the worker was busy: its checks, printing or hashing wait for the worker")
	}
	if calls != 0 {
		t.Errorf("%d framework calls were made while the worker was held", calls)
	}
}

// TestCompileWritesTheModelDirectoryOffTheWorker: once the framework has
// created a program's model, the compile writes model.mil and the weight
// files into its directory on its own goroutine, while the worker serves
// another job.
func TestCompileWritesTheModelDirectoryOffTheWorker(t *testing.T) {
	f := newFakeRT(t)
	d := newTestEngine(t, f, Options{})
	created := make(chan struct{})
	var once sync.Once
	f.newModelHook = func() { once.Do(func() { close(created) }) }

	p, w := weightedProgram(t)
	type result struct {
		k   Kernel
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The kernel stays open until the check below has run: closing it
		// removes the directory.
		k, err := d.Compile("b", p, w)
		done <- result{k, err}
	}()
	<-created
	// This job is queued while newModel runs and so is normally the
	// worker's next one; it waits for the files the compile writes. (Should
	// the compile's own jobs come first, the files exist already: the
	// kernel is not closed before this check.)
	written := func() bool {
		mils, _ := filepath.Glob(filepath.Join(f.root, "*", "model.mil"))
		if len(mils) != 1 {
			return false
		}
		for path := range w {
			rel, _ := weightRel(path)
			if _, err := os.Stat(filepath.Join(filepath.Dir(mils[0]), rel)); err != nil {
				return false
			}
		}
		return true
	}
	err := d.call(func() error {
		if !waitFor(written) {
			return errors.New("the model directory was not written while the worker was busy: it is written on the worker")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.k.Close(); err != nil {
		t.Fatal(err)
	}
	f.assertClean(t, "after the compile")
}
