// Package blas is the CPU linear algebra of anetop: single-precision GEMM and
// the few vector operations a training step needs, on the fastest BLAS the
// machine has, reached without cgo.
//
// # Backends
//
// Three backends implement the same row-major, cblas-style API:
//
//   - "accelerate": Apple's Accelerate framework (macOS), through purego.
//   - "openblas": OpenBLAS (Linux amd64/arm64), dlopened through purego as
//     libopenblas.so.0 (or libopenblasp.so.0, libopenblas.so).
//   - "go": pure Go (gonum's blas/gonum), available everywhere.
//
// The backend is chosen lazily, on first use: the environment variable
// ANETOP_BLAS=accelerate|openblas|go overrides; otherwise the best available
// native library wins and pure Go is the fallback. A native library that is
// missing or unusable never stops the program: the package reports it in one
// line (see SetLogger) and carries on with the next choice. Use switches the
// backend explicitly; Backends lists every backend that loads here, so tests
// and benchmarks can compare them. The build tag nonativeblas leaves the
// native backends (and purego, which makes Linux binaries dynamically linked
// against libc) out.
//
// Every backend shares one front end (Impl): arguments are validated there,
// with a panic naming the bad argument, since they come from the program and
// not from a user; zero-sized and alpha == 0 or k == 0 cases are handled there
// too, so all backends agree on them (beta == 0 overwrites C without reading it).
//
// # Concurrency
//
// All functions may be called from several goroutines at once, as anetop's dW
// worker and the emulator's device worker do. Accelerate is documented as
// thread-safe. OpenBLAS built with its pthreads server (the usual
// libopenblas0-pthread) takes its own locks around shared buffers and the
// thread pool, so concurrent calls are safe and queue for its worker threads;
// for any other build (serial, OpenMP) the package serialises calls itself.
// The pure-Go backend shares only its pool of helper goroutines, which take
// tiles of any caller's product when idle.
//
// # Allocations
//
// In steady state no call allocates, on any backend (TestNoAllocs): native
// libraries are called through their Fortran interface with purego.SyscallN
// and pooled argument blocks, not through purego.RegisterFunc, whose
// reflection-based calls allocate; the pure-Go backend runs gonum's tiles on
// persistent goroutines instead of starting goroutines per call.
package blas

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// EnvVar names the environment variable that overrides the backend choice.
const EnvVar = "ANETOP_BLAS"

// Backend identifiers, as accepted by Use and ANETOP_BLAS.
const (
	Accelerate = "accelerate"
	OpenBLAS   = "openblas"
	Go         = "go"
)

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on the current backend, with
// cblas row-major semantics: op(A) is m×k, op(B) is k×n, C is m×n; op(X) is
// Xᵀ when transX is set. A is stored m×k (k×m when transposed) with row
// stride lda, and likewise B and C. When beta is zero C is not read.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Current().Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Saxpy computes y += alpha·x. x and y must have the same length.
func Saxpy(alpha float32, x, y []float32) { Current().Saxpy(alpha, x, y) }

// Sdot returns x·y. x and y must have the same length.
func Sdot(x, y []float32) float32 { return Current().Sdot(x, y) }

// Sscal computes x *= alpha. Sscal(0, x) sets x to zero, NaNs included.
func Sscal(alpha float32, x []float32) { Current().Sscal(alpha, x) }

// Snrm2 returns the Euclidean norm of x, computed without undue overflow.
func Snrm2(x []float32) float32 { return Current().Snrm2(x) }

// Backend describes the current backend for display, for example
// "Accelerate", "OpenBLAS 0.3.21 (2 threads)" or "pure Go (gonum)".
func Backend() string { return Current().Name() }

// Current returns the backend in use, choosing it on the first call.
func Current() *Impl {
	if im := current.Load(); im != nil {
		return im
	}
	selectOnce.Do(selectDefault)
	return current.Load()
}

// Use makes the backend with the given identifier (Accelerate, OpenBLAS or Go)
// the current one. It returns an error, and changes nothing, if that backend
// is unknown or does not load on this machine.
func Use(id string) error {
	im, err := Lookup(id)
	if err != nil {
		return err
	}
	selectOnce.Do(func() {}) // an explicit choice replaces the automatic one
	current.Store(im)
	return nil
}

// Lookup returns the backend with the given identifier, loading it if needed.
func Lookup(id string) (*Impl, error) {
	l := loaders[id]
	if l == nil {
		return nil, fmt.Errorf("blas: unknown backend %q (want %s, %s or %s)", id, Accelerate, OpenBLAS, Go)
	}
	return l.get()
}

// Backends returns every backend that loads on this machine, native ones
// first; pure Go is always last.
func Backends() []*Impl {
	var out []*Impl
	for _, id := range []string{Accelerate, OpenBLAS, Go} {
		if im, err := Lookup(id); err == nil {
			out = append(out, im)
		}
	}
	return out
}

// SetThreads sets how many threads OpenBLAS may use for one call, at most
// the cores it sees; n <= 0 restores the default: GOMAXPROCS, unless
// OPENBLAS_NUM_THREADS (or GOTO_NUM_THREADS, OMP_NUM_THREADS) is set, in which
// case the library's own reading of it stands. It applies now, once calls in
// flight have finished, if OpenBLAS is loaded, and when it loads otherwise.
// Accelerate manages its threads itself and the pure-Go backend follows
// GOMAXPROCS, so neither is affected.
func SetThreads(n int) {
	threadMu.Lock()
	defer threadMu.Unlock()
	wantThreads = max(n, 0)
	if t := loadedThreader(); t != nil {
		t.setThreads(threadCount())
	}
}

// SetLogger sets where the package's one-off notices go, such as the line
// saying a native library is missing. The default writes the line to standard
// error; nil discards notices. Set it before the first call that selects a
// backend.
func SetLogger(logf func(msg string)) {
	if logf == nil {
		logf = func(string) {}
	}
	logger.Store(&logf)
}

var (
	current    atomic.Pointer[Impl]
	selectOnce sync.Once
	logger     atomic.Pointer[func(string)]

	threadMu    sync.Mutex
	wantThreads int // 0: default
)

func logNotice(msg string) {
	if f := logger.Load(); f != nil {
		(*f)(msg)
		return
	}
	fmt.Fprintln(os.Stderr, msg)
}

// threadCount is the OpenBLAS thread count to apply, or 0 to leave the
// library's own choice alone. threadMu must be held.
func threadCount() int {
	if wantThreads > 0 {
		return wantThreads
	}
	for _, v := range []string{"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"} {
		if os.Getenv(v) != "" {
			return 0
		}
	}
	return runtime.GOMAXPROCS(0)
}

// errNotBuilt marks a backend that does not exist for this GOOS/GOARCH; the
// automatic choice skips it without comment.
var errNotBuilt = errors.New("not available on " + runtime.GOOS + "/" + runtime.GOARCH)

// A loader loads one backend at most once and remembers the outcome.
type loader struct {
	once sync.Once
	load func() (kernel, error)
	id   string
	done atomic.Bool
	im   *Impl
	err  error
}

func (l *loader) get() (*Impl, error) {
	l.once.Do(func() {
		k, err := l.load()
		if err != nil {
			l.err = fmt.Errorf("blas: %s: %w", l.id, err)
		} else {
			l.im = newImpl(l.id, k)
		}
		l.done.Store(true)
	})
	return l.im, l.err
}

var loaders = map[string]*loader{
	Accelerate: {id: Accelerate, load: loadAccelerate},
	OpenBLAS:   {id: OpenBLAS, load: loadOpenBLAS},
	Go:         {id: Go, load: func() (kernel, error) { return goKernel{}, nil }},
}

// loadedThreader returns the OpenBLAS kernel if it has been loaded.
func loadedThreader() threader {
	l := loaders[OpenBLAS]
	if !l.done.Load() || l.im == nil {
		return nil
	}
	t, _ := l.im.k.(threader)
	return t
}

// A threader is a kernel whose thread count can be set.
type threader interface {
	setThreads(n int) // n <= 0: leave the library's default
}

// selectDefault picks the backend for a program that has not called Use.
func selectDefault() {
	im, msg := choose(os.Getenv(EnvVar), Lookup)
	current.Store(im)
	if msg != "" {
		logNotice(msg)
	}
}

// choose returns the backend to use given the value of ANETOP_BLAS (want)
// and, if that is not simply the requested or best backend, the one line
// that says why.
func choose(want string, lookup func(id string) (*Impl, error)) (*Impl, string) {
	var notes []string
	hint := false
	note := func(err error) {
		notes = append(notes, strings.TrimPrefix(err.Error(), "blas: "))
		hint = hint || strings.Contains(err.Error(), "libopenblas")
	}
	want = strings.ToLower(strings.TrimSpace(want))
	if want != "" {
		im, err := lookup(want)
		if err == nil {
			return im, ""
		}
		why := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "blas: "), want+": ")
		note(fmt.Errorf("%s=%s: %s", EnvVar, want, why))
	}
	var im *Impl
	var err error
	for _, id := range []string{Accelerate, OpenBLAS, Go} {
		if id == want {
			continue
		}
		if im, err = lookup(id); err == nil {
			break
		}
		if !errors.Is(err, errNotBuilt) {
			note(err)
		}
	}
	if im == nil { // cannot happen: pure Go always loads
		panic(err)
	}
	if len(notes) == 0 {
		return im, ""
	}
	msg := "blas: " + strings.Join(notes, "; ") + "; using " + im.Name()
	if hint && im.ID() == Go {
		msg += ", ~10x slower sgemm; install OpenBLAS (Debian/Ubuntu: libopenblas0-pthread) for the native path"
	}
	return im, msg
}
