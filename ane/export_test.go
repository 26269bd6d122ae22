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
