package ane

import (
	"maps"
	"sync"
	"testing"
)

// delta returns the foreign calls of each kind made since before.
func delta(f *fakeRT, before map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, n := range f.callKinds() {
		if n -= before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

func wantCalls(t *testing.T, when string, got, want map[string]int64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: foreign calls %v, want %v", when, got, want)
	}
}

// TestLocksAreKeptUntilTheNextEval checks the lock coalescing of hwSurface
// against the fake's record of the IOSurface calls: staging a surface in
// several lock passes costs one IOSurfaceLock, the matching IOSurfaceUnlock
// comes just before the evaluation (the fake fails any evaluation of a
// locked surface), every write of every pass reaches the evaluation (the
// fake copies input to output), and a read after the evaluation takes a
// fresh lock.
func TestLocksAreKeptUntilTheNextEval(t *testing.T) {
	f, _, k, in, out := reluKernel(t, 4, "lock", "k")
	inRef := in.mem.(*hwSurface).ref
	ones, twos := make([]float32, 2*32), make([]float32, 2*32)
	for i := range ones {
		ones[i], twos[i] = 1, 2
	}

	before := f.callKinds()
	for pass, rows := range [][]float32{ones, twos} {
		if err := in.Lock(false); err != nil {
			t.Fatal(err)
		}
		in.WriteBlock(2*pass, 0, 2, 32, rows, 32)
		if err := in.Unlock(false); err != nil {
			t.Fatal(err)
		}
	}
	wantCalls(t, "two write passes", delta(f, before), map[string]int64{"lockSurface": 1})
	if n := f.physLocks(inRef); n != 1 {
		t.Errorf("after the passes the IOSurface holds %d locks, want the kept 1", n)
	}

	before = f.callKinds()
	if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "the evaluation", delta(f, before),
		map[string]int64{"unlockSurface": 1, "poolPush": 1, "poolPop": 1, "newRequest": 1, "eval": 1})
	if n := f.physLocks(inRef); n != 0 {
		t.Errorf("after the evaluation the input holds %d locks, want 0", n)
	}

	before = f.callKinds()
	if err := out.Lock(true); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 4*32)
	out.ReadBlock(0, 0, 4, 32, got, 32)
	if err := out.Unlock(true); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if want := float32(1 + i/64); v != want {
			t.Fatalf("element %d of the output is %v, want %v: a write pass did not reach the evaluation", i, v, want)
		}
	}
	wantCalls(t, "reading the output", delta(f, before), map[string]int64{"lockSurface": 1})

	// A lock in the other mode undoes the kept read-only one first: an
	// unlock passes its lock's options.
	before = f.callKinds()
	if err := out.Lock(false); err != nil {
		t.Fatal(err)
	}
	if err := out.Unlock(false); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "relocking for writing", delta(f, before), map[string]int64{"unlockSurface": 1, "lockSurface": 1})

	// The next evaluation undoes the kept lock again and, with the request
	// cached, makes the three calls of an evaluation besides.
	before = f.callKinds()
	if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "the second evaluation", delta(f, before),
		map[string]int64{"unlockSurface": 1, "poolPush": 1, "poolPop": 1, "eval": 1})

	// Misuse fails without a foreign call.
	before = f.callKinds()
	if err := in.Unlock(false); err == nil {
		t.Error("Unlock of an unlocked surface succeeded")
	}
	if err := in.Lock(false); err != nil {
		t.Fatal(err)
	}
	if err := k.Eval([]*Surface{in}, []*Surface{out}); err == nil {
		t.Error("Eval of a surface the CPU holds locked succeeded")
	}
	if err := in.Unlock(false); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "misuse", delta(f, before), map[string]int64{"lockSurface": 1})

	// Closing the kernel releases its surfaces unlocked (the fake fails a
	// release of a locked surface) and leaves nothing.
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := in.Lock(false); err == nil {
		t.Error("Lock of a freed surface succeeded")
	}
	f.assertClean(t, "after closing the kernel")
}

// TestKeptLocksPassBetweenGoroutines stages each surface on one goroutine
// and the rest of it on another, then evaluates, as the engine does (its dW
// worker restages weights, the main goroutine writes activations), many
// times over, so -race sees the hand-over of a kept lock; every evaluation
// must see both writes.
func TestKeptLocksPassBetweenGoroutines(t *testing.T) {
	f, _, k, in, out := reluKernel(t, 4, "handover", "k")
	row := make([]float32, 32)
	got := make([]float32, 4*32)
	for i := range 50 {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]float32, 2*32)
			for j := range v {
				v[j] = float32(i % 7)
			}
			if err := in.Lock(false); err != nil {
				t.Error(err)
				return
			}
			in.WriteBlock(0, 0, 2, 32, v, 32)
			if err := in.Unlock(false); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		for j := range row {
			row[j] = float32(i%5 + 10)
		}
		if err := in.Lock(false); err != nil {
			t.Fatal(err)
		}
		in.WriteBlock(2, 0, 1, 32, row, 32)
		in.WriteBlock(3, 0, 1, 32, row, 32)
		if err := in.Unlock(false); err != nil {
			t.Fatal(err)
		}
		if err := k.Eval([]*Surface{in}, []*Surface{out}); err != nil {
			t.Fatal(err)
		}
		if err := out.Lock(true); err != nil {
			t.Fatal(err)
		}
		out.ReadBlock(0, 0, 4, 32, got, 32)
		if err := out.Unlock(true); err != nil {
			t.Fatal(err)
		}
		if got[0] != float32(i%7) || got[3*32] != float32(i%5+10) {
			t.Fatalf("round %d: output rows start %v and %v, want %v and %v", i, got[0], got[3*32], i%7, i%5+10)
		}
	}
	k.Close()
	f.assertClean(t, "after the hand-overs")
}
