// Package ane is anetop's device layer: it compiles MIL programs into kernels
// and evaluates them on fp16 surfaces, either on Apple's Neural Engine (the
// darwin backend in this package) or on the CPU emulator in ane/sim, which
// refuses what the hardware refuses and computes what it computes.
//
// Backends register themselves by name; Open("auto") picks the hardware when
// it is present and the emulator otherwise. Import ane/sim for its side effect
// to make the emulator available.
package ane

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anetop/anetop/mil"
)

// Device compiles programs and owns the kernels it compiled.
type Device interface {
	// Name describes the device for people: "ANE · Apple M4 (16 cores)" or
	// "emulator · CPU (AMD EPYC, 2 threads)".
	Name() string
	// Emulated reports whether the device is the CPU emulator, so every figure
	// shown for it can be labelled as an emulator figure.
	Emulated() bool
	// PeakFLOPS is the device's fp16 peak in FLOP/s, the denominator of
	// utilisation: the chip's measured peak on the ANE, the CPU's measured sgemm
	// peak on the emulator.
	PeakFLOPS() float64
	// Compile turns a program and the weight files its BLOBFILE values name
	// into a kernel. Each successful compile counts against the budget.
	Compile(name string, p *mil.Program, w mil.Weights) (Kernel, error)
	// Budget returns the compiles used in this process and the limit past
	// which Compile fails with ErrBudgetExhausted.
	Budget() (used, limit int)
	Close() error
}

// Kernel is a compiled program. One kernel may be evaluated with many sets of
// surfaces, which is how one compiled layer kernel serves every layer.
type Kernel interface {
	Name() string
	// Inputs and Outputs are the types of the main function's parameters and
	// results, in order.
	Inputs() []mil.Type
	Outputs() []mil.Type
	// NewSurface allocates a surface shaped for input or output i.
	NewSurface(which IO, i int) (*Surface, error)
	// Eval runs the kernel once, reading in and writing out. It returns when
	// the outputs are written. Surfaces must come from this device.
	Eval(in, out []*Surface) error
	// FLOPs is the arithmetic work of one evaluation, counted from the program.
	FLOPs() float64
	// Stats returns the evaluations and device time so far.
	Stats() KernelStats
	Close() error
}

// KernelStats accumulates a kernel's evaluations.
type KernelStats struct {
	Evals int64
	Time  time.Duration // total time inside Eval
	FLOPs float64       // total FLOPs evaluated
}

// IO selects a kernel's inputs or its outputs.
type IO int

const (
	Input IO = iota
	Output
)

func (io IO) String() string {
	if io == Output {
		return "output"
	}
	return "input"
}

// DefaultBudget is the number of compiles a process may make. The ANE
// compiler leaks resources and starts failing silently after about 119
// compiles per process (research ane-anchor §1.7, §8.2). That figure is an
// observed failure point, not a guaranteed limit, so the default keeps a
// margin below it: 100, the reference project's own MAX_COMPILES. anetop
// stops at the limit with a clear error instead of failing silently, and the
// engine restarts itself before reaching it.
const DefaultBudget = 100

// Options configure a device.
type Options struct {
	// Budget overrides DefaultBudget when positive.
	Budget int
	// MultiIO allows kernels with more than one input or output. Reports
	// conflict on whether the hardware evaluates them correctly (research §8.5),
	// so anetop's kernels pack everything into one input and one output and the
	// emulator refuses more unless asked.
	MultiIO bool
}

func (o Options) budget() int {
	if o.Budget > 0 {
		return o.Budget
	}
	return DefaultBudget
}

// Errors a device returns; test them with errors.Is.
var (
	// ErrBudgetExhausted: the process used its compile budget.
	ErrBudgetExhausted = errors.New("compile budget exhausted")
	// ErrUnsupported: the program is valid MIL but the device cannot run it.
	ErrUnsupported = errors.New("unsupported by the device")
	// ErrInvalidProgram: the program or its weights are malformed.
	ErrInvalidProgram = errors.New("invalid program")
	// ErrNoDevice: the requested device is not available on this machine.
	ErrNoDevice = errors.New("device not available")
)

// Budget counts compiles against a limit. Devices embed one; it is safe for
// concurrent use, so kernels may be compiled in parallel at start-up.
type Budget struct {
	mu    sync.Mutex
	used  int
	limit int
}

// NewBudget returns a budget with the given limit.
func NewBudget(limit int) *Budget { return &Budget{limit: limit} }

// Reserve claims one compile, or fails with ErrBudgetExhausted. Call Release if
// the compile then fails, so only successful compiles are counted.
func (b *Budget) Reserve(kernel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used >= b.limit {
		return fmt.Errorf("compile %s: %w: %d of %d compiles used in this process; "+
			"restart the process (training restarts itself and resumes), or raise the limit with --budget",
			kernel, ErrBudgetExhausted, b.used, b.limit)
	}
	b.used++
	return nil
}

// Release returns a compile reserved for an attempt that failed.
func (b *Budget) Release() {
	b.mu.Lock()
	if b.used > 0 {
		b.used--
	}
	b.mu.Unlock()
}

// Counts returns the compiles used and the limit.
func (b *Budget) Counts() (used, limit int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.limit
}

// Backend opens a device of one kind.
type Backend struct {
	Name string
	// Available reports whether the backend can run on this machine; when it
	// cannot, the reason says why in words a user can act on.
	Available func() (ok bool, reason string)
	Open      func(Options) (Device, error)
	// Priority orders backends for "auto": the highest available one wins.
	Priority int
}

var (
	regMu    sync.Mutex
	backends = map[string]Backend{}
)

// Register makes a backend available to Open. It panics on a duplicate name,
// which is a programming error.
func Register(b Backend) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := backends[b.Name]; dup {
		panic("ane: backend " + b.Name + " registered twice")
	}
	backends[b.Name] = b
}

// Backends lists the registered backends, best first.
func Backends() []Backend {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Backend, 0, len(backends))
	for _, b := range backends {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority > out[j].Priority
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Open opens the named device: "auto" for the best available, or a backend
// name such as "ane" or "sim".
func Open(name string, opts Options) (Device, error) {
	all := Backends()
	if name == "auto" || name == "" {
		var reasons []string
		for _, b := range all {
			if ok, why := b.Available(); ok {
				return b.Open(opts)
			} else {
				reasons = append(reasons, b.Name+": "+why)
			}
		}
		return nil, fmt.Errorf("open device: %w: no backend can run here (%s)", ErrNoDevice, strings.Join(reasons, "; "))
	}
	for _, b := range all {
		if b.Name == name {
			if ok, why := b.Available(); !ok {
				return nil, fmt.Errorf("open device %q: %w: %s", name, ErrNoDevice, why)
			}
			return b.Open(opts)
		}
	}
	names := []string{"auto"}
	for _, b := range all {
		names = append(names, b.Name)
	}
	slices.Sort(names[1:])
	return nil, fmt.Errorf("open device: unknown device %q; choose one of %s", name, strings.Join(names, ", "))
}
