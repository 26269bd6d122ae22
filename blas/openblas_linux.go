//go:build !android && (amd64 || arm64) && !nonativeblas

package blas

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/ebitengine/purego"
)

// openblasNames are tried in order: Debian/Ubuntu's alternatives link, Fedora's
// pthreads build, then the development symlink.
var openblasNames = []string{"libopenblas.so.0", "libopenblasp.so.0", "libopenblas.so"}

// openblasKernel is OpenBLAS: the BLAS calls plus its thread controls.
type openblasKernel struct {
	nativeKernel
	version string
	threads atomic.Int32 // as last read back from the library

	// Thread controls, called with purego.SyscallN (int arguments and
	// results only): the engine changes the thread count twice per training
	// step, and RegisterFunc'd calls would allocate each time.
	getNumThreads, setNumThreads uintptr    // symbol addresses
	numProcs                     int        // openblas_get_num_procs(), fixed
	arg                          [1]uintptr // setNumThreads' argument; mu held exclusively
}

// threadTimeoutEnv is how long OpenBLAS's idle pool threads spin (2^n
// cycles, n from 4 to 30; the library's default is 28, about 0.1 s)
// before they sleep. anetop calls sgemm from two goroutines with one
// OpenBLAS thread each most of the time, so the pool's other threads only
// spin, in sched_yield: 20–40 % of a 2-vCPU machine in profiles, taken from
// the device and dW workers. The shortest timeout made stories15m steps
// about 7 % faster there (docs/BENCHMARKS.md). The library reads it once,
// when it loads; a value the user set is kept.
const (
	threadTimeoutEnv = "OPENBLAS_THREAD_TIMEOUT"
	threadTimeout    = "4"
)

func loadOpenBLAS() (kernel, error) {
	if os.Getenv(threadTimeoutEnv) == "" {
		os.Setenv(threadTimeoutEnv, threadTimeout)
	}
	lib, err := dlopenFirst(openblasNames)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			purego.Dlclose(lib)
		}
	}()
	kn := &openblasKernel{}
	if err := kn.register(lib); err != nil {
		return nil, err
	}
	var getNumProcs uintptr
	for _, f := range []struct {
		addr *uintptr
		name string
	}{
		{&kn.getNumThreads, "openblas_get_num_threads"},
		{&kn.setNumThreads, "openblas_set_num_threads"},
		{&getNumProcs, "openblas_get_num_procs"},
	} {
		if *f.addr, err = purego.Dlsym(lib, f.name); err != nil {
			return nil, fmt.Errorf("not OpenBLAS: symbol %s: %w", f.name, err)
		}
	}
	kn.numProcs = int(cInt(purego.SyscallN(getNumProcs)))

	kn.version = "OpenBLAS"
	var getConfig func() string
	if registerSym(&getConfig, lib, "openblas_get_config") == nil {
		// "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... Haswell MAX_THREADS=64"
		if f := strings.Fields(getConfig()); len(f) >= 2 && f[0] == "OpenBLAS" {
			kn.version = f[0] + " " + f[1]
		}
	}
	// Only the pthreads build (openblas_get_parallel() == 1) is known to lock
	// internally; serial builds are thread-safe only if built with
	// USE_LOCKING, which cannot be asked, and OpenMP builds expect callers to
	// be OpenMP threads. Serialise calls to those ourselves.
	var getParallel func() int32
	kn.serialize = registerSym(&getParallel, lib, "openblas_get_parallel") != nil || getParallel() != 1
	kn.label = kn.describe

	threadMu.Lock()
	kn.setThreads(threadCount())
	threadMu.Unlock()
	ok = true
	return kn, nil
}

func dlopenFirst(names []string) (uintptr, error) {
	var first error
	for _, name := range names {
		lib, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err == nil {
			return lib, nil
		}
		if first == nil {
			first = err
		}
	}
	return 0, fmt.Errorf("cannot load %s (%w)", strings.Join(names, ", "), first)
}

func (kn *openblasKernel) describe() string {
	n := kn.threads.Load()
	unit := "threads"
	if n == 1 {
		unit = "thread"
	}
	return fmt.Sprintf("%s (%d %s)", kn.version, n, unit)
}

// setThreads applies n threads, at most the cores OpenBLAS sees (n <= 0:
// keep the library's choice). It waits for calls in flight.
func (kn *openblasKernel) setThreads(n int) {
	kn.mu.Lock()
	defer kn.mu.Unlock()
	if n > 0 {
		// A slice of kn.arg, not a literal argument: SyscallN's variadic
		// slice would escape and allocate.
		kn.arg[0] = uintptr(min(n, kn.numProcs))
		purego.SyscallN(kn.setNumThreads, kn.arg[:]...)
	}
	kn.threads.Store(cInt(purego.SyscallN(kn.getNumThreads)))
}

// cInt is the C int result of a SyscallN call: the low 32 bits of the
// register, whose upper bits the callee need not clear.
func cInt(r1, _, _ uintptr) int32 { return int32(r1) }
