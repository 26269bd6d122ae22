package ane

import (
	"testing"

	"github.com/anetop/anetop/mil"
)

// NewEmulatedEngine opens a NeuralEngine whose runtime is the fake of
// hw_fake_test.go compiling with compile (the emulator: sim.CompileTextOptions)
// and evaluating on its kernels through the IOSurface stand-ins. The fake
// reports rows padded by padBytes in the compiled model's attributes, so every
// reader and writer must honour the stride. It lets the external tests run
// the conformance suite over the device logic on Linux.
func NewEmulatedEngine(t testing.TB, opts Options, padBytes int,
	compile func(name string, text []byte, w mil.Weights, o Options) (Kernel, error)) *NeuralEngine {
	f := newFakeRT(t)
	f.emulate, f.emuOpts, f.padBytes = compile, opts, padBytes
	f.attrs = f.emulatedAttrs
	return newTestEngine(t, f, opts)
}

// EmulatedCallKinds returns the foreign calls an engine opened with
// NewEmulatedEngine has made, by kind: the runtime method that crossed
// ("eval", "lockSurface", "poolPush", …). In the steady state of training
// each kind costs the darwin runtime exactly one crossing too (hw_darwin.go,
// iosurface_darwin.go, objc_darwin.go), so the fake's counts are the
// hardware's.
func EmulatedCallKinds(d *NeuralEngine) map[string]int64 {
	return d.rt.(*fakeRT).callKinds()
}

// EmulatedStagingLocks returns, for the input ("in") and output ("out")
// surfaces of every evaluation so far, a histogram of how many times the
// surface had been locked for the CPU since its previous evaluation.
func EmulatedStagingLocks(d *NeuralEngine) map[string]map[int]int64 {
	return d.rt.(*fakeRT).stagingLocks()
}
