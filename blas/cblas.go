//go:build ((darwin && !ios) || (linux && !android && (amd64 || arm64))) && !nonativeblas

package blas

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// CBLAS enumerations; OpenBLAS and Accelerate share these values.
const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

// cblasKernel calls a CBLAS library through purego. The function fields are
// registered once, when the library is loaded; C int is int32 on every
// platform this is built for (LP64 interfaces, not ILP64).
type cblasKernel struct {
	// mu is held shared by every call. It is taken exclusively by calls when
	// the library cannot take concurrent callers (serialize), and by
	// reconfiguration (thread count) so that it never overlaps a call.
	mu        *sync.RWMutex
	serialize bool
	label     func() string

	cSgemm func(order, transA, transB, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	cSaxpy func(n int32, alpha float32, x *float32, incX int32, y *float32, incY int32)
	cSdot  func(n int32, x *float32, incX int32, y *float32, incY int32) float32
	cSscal func(n int32, alpha float32, x *float32, incX int32)
	cSnrm2 func(n int32, x *float32, incX int32) float32
}

// register resolves the CBLAS entry points in lib. A missing symbol is an
// error, not a panic, so a strange library only costs the fallback.
func (kn *cblasKernel) register(lib uintptr) error {
	for _, f := range []struct {
		fptr any
		name string
	}{
		{&kn.cSgemm, "cblas_sgemm"},
		{&kn.cSaxpy, "cblas_saxpy"},
		{&kn.cSdot, "cblas_sdot"},
		{&kn.cSscal, "cblas_sscal"},
		{&kn.cSnrm2, "cblas_snrm2"},
	} {
		if err := registerSym(f.fptr, lib, f.name); err != nil {
			return err
		}
	}
	if kn.mu == nil {
		kn.mu = new(sync.RWMutex)
	}
	return nil
}

func registerSym(fptr any, lib uintptr, name string) error {
	sym, err := purego.Dlsym(lib, name)
	if err != nil {
		return fmt.Errorf("symbol %s: %w", name, err)
	}
	purego.RegisterFunc(fptr, sym)
	return nil
}

func (kn *cblasKernel) lock() {
	if kn.serialize {
		kn.mu.Lock()
	} else {
		kn.mu.RLock()
	}
}

func (kn *cblasKernel) unlock() {
	if kn.serialize {
		kn.mu.Unlock()
	} else {
		kn.mu.RUnlock()
	}
}

func (kn *cblasKernel) name() string { return kn.label() }

func (kn *cblasKernel) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kn.lock()
	kn.cSgemm(cblasRowMajor, cblasTrans32(transA), cblasTrans32(transB), int32(m), int32(n), int32(k),
		alpha, unsafe.SliceData(a), int32(lda), unsafe.SliceData(b), int32(ldb), beta, unsafe.SliceData(c), int32(ldc))
	kn.unlock()
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(c)
}

func (kn *cblasKernel) saxpy(alpha float32, x, y []float32) {
	kn.lock()
	kn.cSaxpy(int32(len(x)), alpha, unsafe.SliceData(x), 1, unsafe.SliceData(y), 1)
	kn.unlock()
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
}

func (kn *cblasKernel) sdot(x, y []float32) float32 {
	kn.lock()
	r := kn.cSdot(int32(len(x)), unsafe.SliceData(x), 1, unsafe.SliceData(y), 1)
	kn.unlock()
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
	return r
}

func (kn *cblasKernel) sscal(alpha float32, x []float32) {
	kn.lock()
	kn.cSscal(int32(len(x)), alpha, unsafe.SliceData(x), 1)
	kn.unlock()
	runtime.KeepAlive(x)
}

func (kn *cblasKernel) snrm2(x []float32) float32 {
	kn.lock()
	r := kn.cSnrm2(int32(len(x)), unsafe.SliceData(x), 1)
	kn.unlock()
	runtime.KeepAlive(x)
	return r
}

func cblasTrans32(t bool) int32 {
	if t {
		return cblasTrans
	}
	return cblasNoTrans
}
