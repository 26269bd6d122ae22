//go:build !ios && !nonativeblas

package blas

import "github.com/ebitengine/purego"

const acceleratePath = "/System/Library/Frameworks/Accelerate.framework/Accelerate"

// loadAccelerate loads Accelerate's CBLAS (vecLib). The plain cblas_* symbols
// are the LP64 interface (32-bit int), which is what cblasKernel declares.
// Accelerate is thread-safe and schedules its own threads.
func loadAccelerate() (kernel, error) {
	lib, err := purego.Dlopen(acceleratePath, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	kn := &cblasKernel{label: func() string { return "Accelerate" }}
	if err := kn.register(lib); err != nil {
		return nil, err
	}
	return kn, nil
}
