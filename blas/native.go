//go:build ((darwin && !ios) || (linux && !android && (amd64 || arm64))) && !nonativeblas

package blas

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// nativeKernel calls a native BLAS (OpenBLAS or Accelerate) through its
// Fortran interface (sgemm_, sgemv_, saxpy_, sscal_) with purego.SyscallN.
//
// Why Fortran and SyscallN rather than cblas_* through purego.RegisterFunc:
// a RegisterFunc'd function is called through reflection and allocates about
// a dozen small objects per call, and a training step makes hundreds of
// sgemm calls. SyscallN does not allocate, but it passes integer registers
// only (it copies the same words into the float registers), so it cannot
// call cblas_sgemm, whose alpha and beta are floats passed by value. In the
// Fortran interface every argument is a pointer, so SyscallN fits, and the
// scalars live in a pooled heap object (callArgs) for the duration of the
// call.
//
// The Fortran entry points are column-major; a row-major product is the same
// memory seen transposed: row-major C = op(A)·op(B) is column-major
// Cᵀ = op(B)ᵀ·op(A)ᵀ, so sgemm swaps the operands (and m with n) and keeps
// each operand's transpose flag.
//
// Functions returning a REAL (sdot_, snrm2_) are avoided: Accelerate's
// legacy Fortran interface returns them as double (f2c convention) while
// OpenBLAS returns float, and SyscallN cannot read a floating-point result
// anyway. A dot product is sgemv_ with a one-column matrix, which writes its
// result to memory.
//
// Both libraries' entry points are LP64: INTEGER is a 32-bit int. The hidden
// lengths a gfortran caller appends for CHARACTER arguments are passed too
// (size_t 1): OpenBLAS's C entry points (interface/gemm.c, gemv.c) declare
// none, and in the C calling conventions used here (SysV amd64, AAPCS64,
// Apple arm64) extra trailing arguments are harmless to a callee that does
// not read them, while a callee that does gets the right value.
type nativeKernel struct {
	// mu is held shared by every call. It is taken exclusively by calls when
	// the library cannot take concurrent callers (serialize), and by
	// reconfiguration (thread count) so that it never overlaps a call.
	mu        *sync.RWMutex
	serialize bool
	label     func() string

	sgemm_, sgemv_, saxpy_, sscal_ uintptr // symbol addresses
}

// callArgs holds what one call passes: the by-reference scalars and the
// argument words. C reads the scalars through pointers, so they must be in
// memory that stays put and alive during the call: a heap object (the Go
// heap does not move objects) held by the caller until the call returns.
//
// The argument words are here, not in a literal argument list, because
// purego.SyscallN is //go:uintptrescapes: with a literal list its variadic
// slice escapes and costs one allocation per call. A slice of this pooled
// array costs none. The price is that a uintptr in an array does not keep
// its object alive, so every call below ends with runtime.KeepAlive of the
// slices it passed (the scalars live in p itself, which the caller holds,
// and the transpose flags are static).
//
// They are pooled so that steady state allocates nothing; one per concurrent
// call. (A GC may empty the pool; the next call then allocates one again.)
type callArgs struct {
	m, n, k, lda, ldb, ldc, one int32
	alpha, beta, out            float32
	w                           [15]uintptr
}

var callArgsPool = sync.Pool{New: func() any { return new(callArgs) }}

// Transpose flags for the Fortran interface, in static memory so that
// pointing C at them costs nothing.
var (
	charN = [1]byte{'N'}
	charT = [1]byte{'T'}
)

func fortranTrans(t bool) *byte {
	if t {
		return &charT[0]
	}
	return &charN[0]
}

// register resolves the Fortran entry points in lib. A missing symbol is an
// error, not a panic, so a strange library only costs the fallback.
func (kn *nativeKernel) register(lib uintptr) error {
	for _, f := range []struct {
		addr *uintptr
		name string
	}{
		{&kn.sgemm_, "sgemm_"},
		{&kn.sgemv_, "sgemv_"},
		{&kn.saxpy_, "saxpy_"},
		{&kn.sscal_, "sscal_"},
	} {
		sym, err := purego.Dlsym(lib, f.name)
		if err != nil {
			return fmt.Errorf("symbol %s: %w", f.name, err)
		}
		*f.addr = sym
	}
	if kn.mu == nil {
		kn.mu = new(sync.RWMutex)
	}
	return nil
}

// registerSym registers a Go function for a symbol of lib, for calls made
// once (configuration), where RegisterFunc's allocations do not matter.
func registerSym(fptr any, lib uintptr, name string) error {
	sym, err := purego.Dlsym(lib, name)
	if err != nil {
		return fmt.Errorf("symbol %s: %w", name, err)
	}
	purego.RegisterFunc(fptr, sym)
	return nil
}

func (kn *nativeKernel) lock() {
	if kn.serialize {
		kn.mu.Lock()
	} else {
		kn.mu.RLock()
	}
}

func (kn *nativeKernel) unlock() {
	if kn.serialize {
		kn.mu.Unlock()
	} else {
		kn.mu.RUnlock()
	}
}

func (kn *nativeKernel) name() string { return kn.label() }

// ptr is the address of v as an argument word.
func ptr[T any](v *T) uintptr { return uintptr(unsafe.Pointer(v)) }

// call calls fn with the first n words of p.w under the kernel's lock.
func (kn *nativeKernel) call(fn uintptr, p *callArgs, n int) {
	kn.lock()
	purego.SyscallN(fn, p.w[:n]...)
	kn.unlock()
}

func (kn *nativeKernel) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	p := callArgsPool.Get().(*callArgs)
	// Column-major Cᵀ (n×m) = op(B)ᵀ (n×k) · op(A)ᵀ (k×m).
	p.m, p.n, p.k = int32(n), int32(m), int32(k)
	p.lda, p.ldb, p.ldc = int32(ldb), int32(lda), int32(ldc)
	p.alpha, p.beta = alpha, beta
	p.w = [15]uintptr{
		ptr(fortranTrans(transB)), ptr(fortranTrans(transA)),
		ptr(&p.m), ptr(&p.n), ptr(&p.k), ptr(&p.alpha),
		ptr(unsafe.SliceData(b)), ptr(&p.lda),
		ptr(unsafe.SliceData(a)), ptr(&p.ldb),
		ptr(&p.beta), ptr(unsafe.SliceData(c)), ptr(&p.ldc),
		1, 1, // hidden CHARACTER lengths
	}
	kn.call(kn.sgemm_, p, 15)
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(c)
	callArgsPool.Put(p)
}

func (kn *nativeKernel) saxpy(alpha float32, x, y []float32) {
	p := callArgsPool.Get().(*callArgs)
	p.n, p.one, p.alpha = int32(len(x)), 1, alpha
	p.w = [15]uintptr{
		ptr(&p.n), ptr(&p.alpha),
		ptr(unsafe.SliceData(x)), ptr(&p.one),
		ptr(unsafe.SliceData(y)), ptr(&p.one),
	}
	kn.call(kn.saxpy_, p, 6)
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
	callArgsPool.Put(p)
}

// sdot computes x·y as sgemv_ of the one-column matrix x (len(x)×1,
// transposed) with y; the single result element goes to p.out.
func (kn *nativeKernel) sdot(x, y []float32) float32 {
	p := callArgsPool.Get().(*callArgs)
	p.m, p.n, p.lda, p.one = int32(len(x)), 1, int32(len(x)), 1
	p.alpha, p.beta, p.out = 1, 0, 0
	p.w = [15]uintptr{
		ptr(&charT[0]), ptr(&p.m), ptr(&p.n), ptr(&p.alpha),
		ptr(unsafe.SliceData(x)), ptr(&p.lda),
		ptr(unsafe.SliceData(y)), ptr(&p.one),
		ptr(&p.beta), ptr(&p.out), ptr(&p.one),
		1, // hidden CHARACTER length
	}
	kn.call(kn.sgemv_, p, 12)
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
	r := p.out
	callArgsPool.Put(p)
	return r
}

func (kn *nativeKernel) sscal(alpha float32, x []float32) {
	p := callArgsPool.Get().(*callArgs)
	p.n, p.one, p.alpha = int32(len(x)), 1, alpha
	p.w = [15]uintptr{ptr(&p.n), ptr(&p.alpha), ptr(unsafe.SliceData(x)), ptr(&p.one)}
	kn.call(kn.sscal_, p, 4)
	runtime.KeepAlive(x)
	callArgsPool.Put(p)
}

// snrm2 is the square root of the native x·x when that sum of squares is
// trustworthy: finite (no overflow) and large enough that squares lost to
// underflow (at most 2⁻¹²⁶ each) are below its rounding error (n·2⁻¹²⁶ ≤
// 2⁻²⁴·ss). Otherwise, and for NaN, the scaled pure-Go algorithm decides.
// (snrm2_ itself is not called: see nativeKernel on REAL results.)
func (kn *nativeKernel) snrm2(x []float32) float32 {
	ss := kn.sdot(x, x)
	if ss <= math.MaxFloat32 && ss >= float32(len(x))*0x1p-102 {
		return float32(math.Sqrt(float64(ss)))
	}
	return goKernel{}.snrm2(x)
}
