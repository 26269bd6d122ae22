package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/internal/sysinfo"
	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

// errDoctorFailed is returned after a FAIL report, for exit code 1.
var errDoctorFailed = errors.New("doctor: FAIL (see the report above)")

// doctorEnv is what the doctor checks: the real backend, or fakes in tests.
type doctorEnv struct {
	probe func() ane.Probe
	open  func() (ane.Device, error)
	// appleSilicon is true on darwin/arm64, where a Neural Engine exists and
	// a backend that cannot reach it is a failure, not a fact of the machine.
	appleSilicon bool
	evals        int // timed evaluations per device
	// checkAddress checks that a surface's memory is still where it was
	// created (ane.CheckSurfaceAddress when nil); checked is false for a
	// surface that is not an IOSurface.
	checkAddress func(*ane.Surface) (checked bool, err error)
}

func defaultDoctorEnv() doctorEnv {
	return doctorEnv{
		probe:        ane.ProbeEngine,
		open:         func() (ane.Device, error) { return ane.Open("ane", ane.Options{}) },
		appleSilicon: runtime.GOOS == "darwin" && runtime.GOARCH == "arm64",
		evals:        20,
		checkAddress: ane.CheckSurfaceAddress,
	}
}

const doctorUsage = `Usage: anetop doctor

Checks that anetop can use this machine's Neural Engine: prints the system,
the chip, the ANE sub-type and which private classes and selectors were
found, then compiles a small kernel (the dynamic-weight matmul of the
training kernels) and runs it on the Neural Engine and on the emulator, and
compares them; on the Neural Engine it also checks that the kernel's
IOSurfaces are still at the address they had when created. Ends in PASS or
FAIL with a hint. On a machine without a
Neural Engine it says so and checks the emulator against a float64 reference
instead (exit 0 when that passes).`

func doctorCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", "anetop doctor", stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, doctorUsage) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("doctor takes no arguments, got %q", fs.Args())}
	}
	return runDoctor(stdout, defaultDoctorEnv())
}

// Test kernel: y = Wᵀ·x with x [IC, S] and W [IC, OC] packed side by side in
// one [1, IC, 1, S+OC] input, the training kernels' linear layer
// (ane-anchor §1.8, §3.5). Every tensor has 64 channels, the minimum the
// reference's probes were raised to (ane-anchor §8.6), and the matmul's inner
// dimension (IC) is a multiple of 32 (§8.20, M1). The input's rows are
// S+OC = 128 fp16 elements (256 bytes) and the output's S = 64 (128 bytes),
// so every row of both is a multiple of 128 bytes: aligned for every chip
// (ane-anchor §1.5: multiples of 64 bytes in the reference, 128-byte
// alignment on M5 per PR #35).
const doctorIC, doctorOC, doctorS = 64, 64, 64

func doctorKernel() (*mil.Program, mil.Weights, error) {
	b := mil.NewBuilder(mil.IOS18)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, doctorIC, 1, doctorS+doctorOC))
	act := b.SliceBySize("act", x, []int{0, 0, 0, 0}, []int{1, doctorIC, 1, doctorS})
	w := b.SliceBySize("w", x, []int{0, 0, 0, doctorS}, []int{1, doctorIC, 1, doctorOC})
	a := b.Transpose("act_t", b.Reshape("act_r", act, 1, 1, doctorIC, doctorS), 0, 1, 3, 2)
	y := b.MatMul("y", a, b.Reshape("w_r", w, 1, 1, doctorIC, doctorOC), false, false)
	b.Output(b.Reshape("out", b.Transpose("y_t", y, 0, 1, 3, 2), 1, doctorOC, 1, doctorS))
	return b.Build()
}

// doctorCase is the kernel's input and the float64 result with an error
// bound per element, computed directly from the fp16-rounded input.
type doctorCase struct {
	input      []float32 // [IC, S+OC] row-major
	want, tol  []float64 // [OC, S]
	inputRows  int
	inputCols  int
	outputRows int
}

func newDoctorCase() doctorCase {
	c := doctorCase{inputRows: doctorIC, inputCols: doctorS + doctorOC, outputRows: doctorOC}
	r := rand.New(rand.NewPCG(5, 7))
	c.input = make([]float32, doctorIC*c.inputCols)
	for i := range c.input {
		c.input[i] = roundHalf(2*r.Float32() - 1)
	}
	c.want = make([]float64, doctorOC*doctorS)
	c.tol = make([]float64, len(c.want))
	for o := range doctorOC {
		for j := range doctorS {
			sum, abs := 0.0, 0.0
			for i := range doctorIC {
				p := float64(c.input[i*c.inputCols+doctorS+o]) * float64(c.input[i*c.inputCols+j])
				sum += p
				abs += math.Abs(p)
			}
			c.want[o*doctorS+j] = sum
			// The conformance suite's rule (ane/anetest package doc):
			// 2^-11·(2+√K)·Σ|a·b| for the accumulation, one fp16 rounding
			// of the result, and the subnormal step.
			c.tol[o*doctorS+j] = math.Ldexp(2+math.Sqrt(doctorIC), -11)*abs + math.Ldexp(math.Abs(sum), -10) + math.Ldexp(1, -24)
		}
	}
	return c
}

// roundHalf rounds to the nearest fp16 value (inputs travel as fp16).
func roundHalf(x float32) float32 { return fp16.FromFloat32(x).Float32() }

// kernelRun is one device's run of the test kernel.
type kernelRun struct {
	device  string
	compile time.Duration
	eval    time.Duration // median
	out     []float64
	layout  string
	err     error
	stage   string // where it failed
	// addrChecked: the surfaces are IOSurfaces and their base addresses
	// were checked; addrErr says how the check failed.
	addrChecked bool
	addrErr     error
}

// runKernel compiles and runs the test kernel on dev, then checks with
// checkAddress (when not nil) that its surfaces' memory has not moved.
func runKernel(dev ane.Device, c doctorCase, evals int, checkAddress func(*ane.Surface) (bool, error)) (r kernelRun) {
	r.device = dev.Name()
	p, w, err := doctorKernel()
	if err != nil {
		r.err, r.stage = err, "build"
		return r
	}
	start := time.Now()
	k, err := dev.Compile("doctor_matmul", p, w)
	r.compile = time.Since(start)
	if err != nil {
		r.err, r.stage = err, "compile"
		return r
	}
	defer k.Close()
	if _, outStrides, src, ok := ane.KernelLayout(k); ok {
		r.layout = fmt.Sprintf("output rows %d elements apart, from %s", outStrides[0], src)
	}
	in, err := k.NewSurface(ane.Input, 0)
	if err != nil {
		r.err, r.stage = err, "allocate surfaces"
		return r
	}
	out, err := k.NewSurface(ane.Output, 0)
	if err != nil {
		r.err, r.stage = err, "allocate surfaces"
		return r
	}
	if err := in.Lock(false); err != nil {
		r.err, r.stage = err, "write the input"
		return r
	}
	in.WriteBlock(0, 0, c.inputRows, c.inputCols, c.input, c.inputCols)
	if err := in.Unlock(false); err != nil {
		r.err, r.stage = err, "write the input"
		return r
	}
	times := make([]time.Duration, 0, evals)
	for i := range evals + 1 {
		start := time.Now()
		if err := k.Eval([]*ane.Surface{in}, []*ane.Surface{out}); err != nil {
			r.err, r.stage = err, "evaluate"
			return r
		}
		if i > 0 { // the first evaluation builds the request and warms up
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	if len(times) > 0 {
		r.eval = times[len(times)/2]
	}
	got := make([]float32, c.outputRows*doctorS)
	if err := out.Lock(true); err != nil {
		r.err, r.stage = err, "read the output"
		return r
	}
	out.ReadBlock(0, 0, c.outputRows, doctorS, got, doctorS)
	if err := out.Unlock(true); err != nil {
		r.err, r.stage = err, "read the output"
		return r
	}
	r.out = make([]float64, len(got))
	for i, g := range got {
		r.out[i] = float64(g)
	}
	// anetop takes an IOSurface's base address once, at creation, and
	// reads and writes the surface through it from then on; check that
	// IOSurfaceGetBaseAddress under a lock still gives that address, after
	// the surfaces have been through evaluations (docs/mac.md lists the
	// assumption as unverified). Costs a lock pair and a call per surface.
	if checkAddress != nil {
		for _, s := range []*ane.Surface{in, out} {
			checked, err := checkAddress(s)
			r.addrChecked = r.addrChecked || checked
			if err != nil {
				r.addrErr = err
				break
			}
		}
	}
	return r
}

// compareRuns returns the largest |a − b| and the largest ratio of that
// difference to its allowance (scale × bound); NaN anywhere makes the ratio
// +Inf.
func compareRuns(a, b, tol []float64, scale float64) (maxDiff, worst float64) {
	for i := range a {
		d := math.Abs(a[i] - b[i])
		if math.IsNaN(d) {
			return math.NaN(), math.Inf(1)
		}
		maxDiff = max(maxDiff, d)
		worst = max(worst, d/(scale*tol[i]))
	}
	return maxDiff, worst
}

// share says how much of an allowance a difference used.
func share(worst float64) string {
	if worst > 10 {
		return fmt.Sprintf("%.0f× the", worst)
	}
	return fmt.Sprintf("%.0f%% of the", 100*worst)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

// runDoctor writes the report and returns errDoctorFailed on FAIL.
func runDoctor(w io.Writer, env doctorEnv) error {
	fmt.Fprintf(w, "anetop doctor · %s\n\n", versionString())
	probe := env.probe()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "system\t%s\n", probe.OS)
	fmt.Fprintf(tw, "CPU\t%s, %d threads\n", orUnknown(probe.Chip.Brand, sysinfo.CPUModel()), runtime.GOMAXPROCS(0))
	if probe.OK || env.appleSilicon {
		fmt.Fprintf(tw, "ANE sub-type\t%s\n", orUnknown(probe.Chip.SubType, "unknown (+[_ANEDeviceInfo aneSubType] gave nothing)"))
		cores := "unknown"
		if probe.Chip.Cores > 0 {
			cores = fmt.Sprint(probe.Chip.Cores)
		}
		fmt.Fprintf(tw, "ANE cores\t%s\n", cores)
		peak := fmt.Sprintf("%.2f TFLOPS fp16 — %s", probe.Chip.Peak/1e12, probe.Chip.PeakSource)
		fmt.Fprintf(tw, "peak\t%s\n", peak)
	}
	tw.Flush()
	if len(probe.Symbols) > 0 {
		fmt.Fprintln(w, "\nframework symbols:")
		for _, s := range probe.Symbols {
			if s.Kind != "class" && s.Kind != "selector" && s.Found {
				continue // libraries, functions and constants: listed only when missing
			}
			mark, note := "found  ", ""
			if !s.Found {
				mark = "MISSING"
				if s.Optional {
					note = " (optional)"
				}
			}
			fmt.Fprintf(w, "  %s %-8s %s%s\n", mark, s.Kind, s.Name, note)
		}
	}
	emu, err := sim.New(ane.Options{})
	if err != nil {
		return fmt.Errorf("doctor: open the emulator: %w", err)
	}
	defer emu.Close()
	if !probe.OK {
		plat := runtime.GOOS + "/" + runtime.GOARCH
		if env.appleSilicon {
			fmt.Fprintf(w, "\nNeural Engine: cannot be used: %s\n", probe.Reason)
		} else {
			fmt.Fprintf(w, "\nNeural Engine: no Neural Engine on this machine: %s\n  (%s)\n", plat, probe.Reason)
		}
	}
	p, _, err := doctorKernel()
	if err != nil {
		return fmt.Errorf("doctor: build the test kernel: %w", err)
	}
	fmt.Fprintf(w, "\ntest kernel: dynamic-weight matmul, x [%d×%d] and W [%d×%d] packed in one [1,%d,1,%d] fp16 input → [1,%d,1,%d] (%.0f kFLOP)\n",
		doctorIC, doctorS, doctorIC, doctorOC, doctorIC, doctorS+doctorOC, doctorOC, doctorS, ane.ProgramFLOPs(p.Main())/1e3)
	c := newDoctorCase()
	if !probe.OK {
		return doctorEmulatorOnly(w, env, emu, c)
	}
	return doctorHardware(w, env, emu, c)
}

func orUnknown(s, alt string) string {
	if strings.TrimSpace(s) == "" {
		return alt
	}
	return s
}

// doctorEmulatorOnly reports a machine whose Neural Engine anetop cannot use
// and checks the emulator against the float64 reference.
func doctorEmulatorOnly(w io.Writer, env doctorEnv, emu ane.Device, c doctorCase) error {
	fmt.Fprintln(w, "\nemulator self-check: the test kernel on the emulator against a float64 reference")
	r := runKernel(emu, c, env.evals, nil)
	ok := reportRun(w, r, emu)
	if ok {
		d, worst := compareRuns(r.out, c.want, c.tol, 1)
		fmt.Fprintf(w, "  max |emulator − reference|  %.3g (%s fp16 error bound)\n", d, share(worst))
		ok = worst <= 1
	}
	fmt.Fprintln(w)
	switch {
	case env.appleSilicon:
		fmt.Fprintln(w, "FAIL — this Mac has a Neural Engine, but anetop cannot reach it.")
		fmt.Fprintln(w, "hint: Apple may have changed the private API in this macOS; report the output of `anetop doctor`.")
		fmt.Fprintln(w, "      Meanwhile anetop runs on the emulator: --device sim.")
		return errDoctorFailed
	case !ok:
		fmt.Fprintln(w, "FAIL — the emulator disagrees with the float64 reference; this is a bug in anetop, please report it.")
		return errDoctorFailed
	}
	fmt.Fprintln(w, "PASS — the emulator computes the kernel within fp16 error; here anetop runs on it (--device sim).")
	return nil
}

// reportRun prints a device's compile and evaluation; false on failure.
func reportRun(w io.Writer, r kernelRun, dev ane.Device) bool {
	fmt.Fprintf(w, "  device          %s\n", r.device)
	if r.err != nil {
		fmt.Fprintf(w, "  %s failed: %v\n", r.stage, r.err)
		return false
	}
	label := "compile + load"
	if dev.Emulated() {
		label = "compile"
	}
	fmt.Fprintf(w, "  %-14s  %s\n", label, ms(r.compile))
	fmt.Fprintf(w, "  eval            %s (median)\n", ms(r.eval))
	used, limit := dev.Budget()
	fmt.Fprintf(w, "  budget used     %d of %d compiles\n", used, limit)
	if r.layout != "" {
		fmt.Fprintf(w, "  surface layout  %s\n", r.layout)
	}
	switch {
	case r.addrErr != nil:
		fmt.Fprintf(w, "  surface address CHECK FAILED: %v\n", r.addrErr)
	case r.addrChecked:
		fmt.Fprintln(w, "  surface address unchanged under a lock (IOSurfaceGetBaseAddress)")
	}
	return true
}

// doctorHardware runs the test kernel on the Neural Engine and the emulator
// and compares them.
func doctorHardware(w io.Writer, env doctorEnv, emu ane.Device, c doctorCase) error {
	fmt.Fprintln(w, "\nNeural Engine:")
	dev, err := env.open()
	if err != nil {
		fmt.Fprintf(w, "  open failed: %v\n\nFAIL — the Neural Engine did not open.\n", err)
		fmt.Fprintln(w, "hint: another process may hold it, or the system refused; try again, then report the output.")
		return errDoctorFailed
	}
	defer dev.Close()
	ne, _ := dev.(*ane.NeuralEngine)
	var calls0 int64
	if ne != nil {
		calls0 = ne.ForeignCalls()
	}
	check := env.checkAddress
	if check == nil {
		check = ane.CheckSurfaceAddress
	}
	hw := runKernel(dev, c, env.evals, check)
	hwOK := reportRun(w, hw, dev)
	if ne != nil {
		st := ne.Stats()
		fmt.Fprintf(w, "  foreign calls   %d during the check\n", ne.ForeignCalls()-calls0)
		fmt.Fprintf(w, "  suspected CPU fallbacks  %d\n", st.SuspectedFallbacks)
	}
	fmt.Fprintln(w, "\nemulator:")
	em := runKernel(emu, c, env.evals, nil)
	emOK := reportRun(w, em, emu)
	fmt.Fprintln(w)
	if !hwOK {
		fmt.Fprintf(w, "FAIL — the Neural Engine could not %s the test kernel.\n", hw.stage)
		switch hw.stage {
		case "compile":
			fmt.Fprintln(w, "hint: the ANE compiler refused a kernel the training loop relies on; report the output of")
			fmt.Fprintln(w, "      `anetop doctor` and of `go test ./ane/anetest -device=ane` with your chip and macOS version.")
		default:
			fmt.Fprintln(w, "hint: report the output of `anetop doctor` with your chip and macOS version.")
		}
		return errDoctorFailed
	}
	if hw.addrErr != nil {
		fmt.Fprintln(w, "FAIL — an IOSurface's memory is not where it was when the surface was created.")
		fmt.Fprintln(w, "hint: anetop reads each surface's base address once and reads and writes through it;")
		fmt.Fprintln(w, "      on this macOS it must re-read it after every lock. Report the output of `anetop doctor`")
		fmt.Fprintln(w, "      with your chip and macOS version, and do not train on the Neural Engine until it is fixed.")
		return errDoctorFailed
	}
	if !emOK {
		fmt.Fprintln(w, "FAIL — the emulator could not run the test kernel; this is a bug in anetop, please report it.")
		return errDoctorFailed
	}
	// Each result lies within its bound of the exact value, so the two may
	// differ by twice the bound.
	d, worst := compareRuns(hw.out, em.out, c.tol, 2)
	dr, worstRef := compareRuns(hw.out, c.want, c.tol, 1)
	fmt.Fprintf(w, "max |ANE − emulator|   %.3g (%s allowance of two fp16 error bounds)\n", d, share(worst))
	fmt.Fprintf(w, "max |ANE − reference|  %.3g (%s fp16 error bound)\n\n", dr, share(worstRef))
	if !(worst <= 1) {
		fmt.Fprintln(w, "FAIL — the Neural Engine's result differs from the emulator's beyond fp16 rounding.")
		fmt.Fprintln(w, "hint: a surface layout mismatch (row stride) or a chip difference; run the conformance suite,")
		fmt.Fprintln(w, "      `go test ./ane/anetest -device=ane`, and report both outputs.")
		return errDoctorFailed
	}
	fmt.Fprintln(w, "PASS — the Neural Engine computes what the emulator computes.")
	fmt.Fprintln(w, "next: `go test ./ane/anetest -device=ane` runs the full conformance suite on it.")
	return nil
}
