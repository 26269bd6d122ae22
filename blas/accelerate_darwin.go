//go:build !ios && !nonativeblas

package blas

import "github.com/ebitengine/purego"

const acceleratePath = "/System/Library/Frameworks/Accelerate.framework/Accelerate"

// loadAccelerate loads Accelerate's BLAS (vecLib). Its plain Fortran symbols
// (sgemm_, sgemv_, saxpy_, sscal_; not the $NEWLAPACK or $ILP64 variants) are
// the LP64 interface (32-bit INTEGER), which is what nativeKernel passes.
// They are subroutines, so the f2c double return of Accelerate's REAL
// functions (sdot_, snrm2_) does not arise. Accelerate is thread-safe and
// schedules its own threads.
func loadAccelerate() (kernel, error) {
	lib, err := purego.Dlopen(acceleratePath, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	kn := &nativeKernel{label: func() string { return "Accelerate" }}
	if err := kn.register(lib); err != nil {
		return nil, err
	}
	return kn, nil
}
