package main

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/mil"
)

func TestDoctorWithoutANeuralEngine(t *testing.T) {
	if runtime.GOOS == "darwin" && runtime.GOARCH == "arm64" {
		t.Skip("this machine may have a Neural Engine; the fake-Mac tests cover the report")
	}
	code, out, errs := runCLI("doctor")
	if code != exitOK {
		t.Fatalf("doctor exit %d:\n%s%s", code, out, errs)
	}
	plat := runtime.GOOS + "/" + runtime.GOARCH
	for _, want := range []string{
		"system  " + plat,
		"no Neural Engine on this machine: " + plat,
		"use --device sim",
		"emulator self-check",
		"max |emulator − reference|",
		"PASS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("doctor failed:\n%s", out)
	}
}

func TestDoctorUsage(t *testing.T) {
	if code, _, errs := runCLI("doctor", "now"); code != exitUsage || !strings.Contains(errs, "doctor takes no arguments") {
		t.Errorf("doctor now: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI("doctor", "-h"); code != exitOK || !strings.Contains(errs, "Usage: anetop doctor") {
		t.Errorf("doctor -h: exit %d, %q", code, errs)
	}
	if _, out, _ := runCLI("help"); !strings.Contains(out, "doctor") {
		t.Errorf("help does not list doctor:\n%s", out)
	}
}

// fakeMac is a probe of an Apple-silicon Mac whose framework has everything.
func fakeMac() ane.Probe {
	return ane.Probe{
		OS:   "macOS 15.3.1 (darwin/arm64)",
		Chip: ane.Chip{Brand: "Apple M4", Generation: "M4", SubType: "h16", Cores: 16, Peak: 18.6e12, PeakMeasured: true, PeakSource: "test"},
		Symbols: []ane.Symbol{
			{Kind: "library", Name: "AppleNeuralEngine", Found: true},
			{Kind: "class", Name: "_ANEInMemoryModel", Found: true},
			{Kind: "selector", Name: "-[_ANEInMemoryModel compileWithQoS:options:error:]", Found: true},
			{Kind: "selector", Name: "-[_ANEModel modelAttributes]", Optional: true},
		},
		OK: true,
	}
}

// pretend stands in for the hardware with the emulator, optionally broken.
type pretend struct {
	ane.Device
	compileErr error
	corrupt    bool
}

func (d pretend) Compile(name string, p *mil.Program, w mil.Weights) (ane.Kernel, error) {
	if d.compileErr != nil {
		return nil, d.compileErr
	}
	k, err := d.Device.Compile(name, p, w)
	if err != nil || !d.corrupt {
		return k, err
	}
	return corruptKernel{k}, nil
}

// corruptKernel writes a wrong first output, as a layout mismatch would.
type corruptKernel struct{ ane.Kernel }

func (k corruptKernel) Eval(in, out []*ane.Surface) error {
	if err := k.Kernel.Eval(in, out); err != nil {
		return err
	}
	out[0].Lock(false)
	out[0].WriteBlock(0, 0, 1, 1, []float32{1000}, 1)
	return out[0].Unlock(false)
}

// doctorWith runs the doctor on a fake Mac. check stands for
// ane.CheckSurfaceAddress, whose real version checks nothing on the
// emulator's surfaces; nil means that real version.
func doctorWith(t *testing.T, probe ane.Probe, open func() (ane.Device, error), check ...func(*ane.Surface) (bool, error)) (string, error) {
	t.Helper()
	var b bytes.Buffer
	env := doctorEnv{probe: func() ane.Probe { return probe }, open: open, appleSilicon: true, evals: 3}
	if len(check) > 0 {
		env.checkAddress = check[0]
	}
	err := runDoctor(&b, env)
	return b.String(), err
}

// addressesFine and addressMoved stand for the IOSurface address check on
// a Mac whose surfaces stay put, and on one where they move.
func addressesFine(*ane.Surface) (bool, error) { return true, nil }
func addressMoved(*ane.Surface) (bool, error) {
	return true, errors.New("IOSurfaceGetBaseAddress under a lock is 0x2000, but the surface was created at 0x1000")
}

func openPretend(p pretend) func() (ane.Device, error) {
	return func() (ane.Device, error) {
		d, err := sim.New(ane.Options{})
		if err != nil {
			return nil, err
		}
		p.Device = d
		return p, nil
	}
}

func TestDoctorOnAWorkingMac(t *testing.T) {
	out, err := doctorWith(t, fakeMac(), openPretend(pretend{}), addressesFine)
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	for _, want := range []string{
		"system        macOS 15.3.1 (darwin/arm64)",
		"ANE sub-type  h16",
		"ANE cores     16",
		"18.60 TFLOPS fp16",
		"found   class    _ANEInMemoryModel",
		"found   selector -[_ANEInMemoryModel compileWithQoS:options:error:]",
		"MISSING selector -[_ANEModel modelAttributes] (optional)",
		"Neural Engine:",
		"compile",
		fmt.Sprintf("budget used     1 of %d", ane.DefaultBudget),
		"surface address unchanged under a lock (IOSurfaceGetBaseAddress)",
		"max |ANE − emulator|",
		"PASS — the Neural Engine computes what the emulator computes.",
		"go test ./ane/anetest -device=ane",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "library") {
		t.Errorf("found libraries should not be listed one by one:\n%s", out)
	}
	if n := strings.Count(out, "surface address"); n != 1 {
		t.Errorf("the address check is reported %d times; want once, for the Neural Engine only:\n%s", n, out)
	}
}

// TestDoctorKernelRowsAreAligned: the doctor kernel's tensors have at least
// 64 channels and rows that are multiples of 128 bytes, as docs/mac.md says.
func TestDoctorKernelRowsAreAligned(t *testing.T) {
	p, _, err := doctorKernel()
	if err != nil {
		t.Fatal(err)
	}
	f := p.Main()
	for _, v := range append(append([]*mil.Var{}, f.Inputs...), f.Outputs...) {
		s := v.Type.Shape
		if len(s) != 4 || s[1] < 64 || (2*s[3])%128 != 0 {
			t.Errorf("%s %v: want [1, C ≥ 64, 1, S] with rows of a multiple of 128 fp16 bytes", v.Name, s)
		}
	}
}

func TestDoctorFailures(t *testing.T) {
	broken := fakeMac()
	broken.OK = false
	broken.Reason = "macOS 15.3.1 (darwin/arm64) lacks -[_ANEInMemoryModel loadWithQoS:options:error:], which anetop needs"
	for _, c := range []struct {
		what  string
		probe ane.Probe
		open  func() (ane.Device, error)
		want  []string
	}{
		{"wrong results", fakeMac(), openPretend(pretend{corrupt: true}),
			[]string{"FAIL — the Neural Engine's result differs", "row stride", "-device=ane"}},
		{"compile refused", fakeMac(), openPretend(pretend{compileErr: errors.New("ANECCompile() FAILED")}),
			[]string{"compile failed: ANECCompile() FAILED", "FAIL — the Neural Engine could not compile", "-device=ane"}},
		{"open fails", fakeMac(), func() (ane.Device, error) { return nil, errors.New("no slot") },
			[]string{"open failed: no slot", "FAIL — the Neural Engine did not open"}},
		{"surface moved", fakeMac(), openPretend(pretend{}),
			[]string{"surface address CHECK FAILED: IOSurfaceGetBaseAddress under a lock is 0x2000",
				"FAIL — an IOSurface's memory is not where it was", "re-read it after every lock"}},
		{"framework changed", broken, nil,
			[]string{"cannot be used: macOS 15.3.1", "emulator self-check", "max |emulator − reference|",
				"FAIL — this Mac has a Neural Engine, but anetop cannot reach it", "--device sim"}},
	} {
		t.Run(c.what, func(t *testing.T) {
			check := addressesFine
			if c.what == "surface moved" {
				check = addressMoved
			}
			out, err := doctorWith(t, c.probe, c.open, check)
			if !errors.Is(err, errDoctorFailed) {
				t.Errorf("doctor returned %v, want errDoctorFailed", err)
			}
			for _, want := range append(c.want, "hint:") {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "PASS") {
				t.Errorf("a failing check printed PASS:\n%s", out)
			}
		})
	}
}
