package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anetop/anetop/mil"
)

// writeKernel builds a small RMSNorm-style kernel whose gain lives in a
// weight blob, and writes it as dir/name plus dir/weights/weight.bin.
func writeKernel(t *testing.T, dir, name string) string {
	t.Helper()
	return writeKernelFor(t, mil.IOS18, dir, name)
}

// writeKernelFor is writeKernel for opset target, in its dialect.
func writeKernelFor(t *testing.T, target mil.Target, dir, name string) string {
	t.Helper()
	b := mil.NewBuilder(target)
	x := b.Input("x", mil.TensorOf(mil.FP16, 1, 16, 1, 32))
	g := b.ConstFP16("g", mil.Shape{1, 16, 1, 1}, make([]float32, 16))
	b.Output(b.Mul("y", x, g))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, mil.Print(p), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "weights"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "weights", "weight.bin"), w[mil.WeightPath], 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMilCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeKernel(t, dir, "good.mil")
	bad := filepath.Join(dir, "bad.mil")
	text, _ := os.ReadFile(good)
	// Declare the output with a wrong shape: a type error on line 6.
	broken := strings.Replace(string(text), "tensor<fp16, [1, 16, 1, 32]> y = mul", "tensor<fp16, [1, 16, 1, 31]> y = mul", 1)
	if broken == string(text) {
		t.Fatalf("test kernel changed shape:\n%s", text)
	}
	os.WriteFile(bad, []byte(broken), 0o644)

	code, out, _ := runCLI("mil", "check", good)
	if code != exitOK || !strings.Contains(out, good+": ok · main<ios18> · in tensor<fp16, [1, 16, 1, 32]>") ||
		!strings.Contains(out, "512 FLOP") {
		t.Errorf("good kernel: exit %d\n%s", code, out)
	}
	code, out, errs := runCLI("mil", "check", good, bad)
	if code != exitError || !strings.Contains(out, bad+":6:13:") || !strings.Contains(out, "declared tensor<fp16, [1, 16, 1, 31]>") ||
		!strings.Contains(errs, "1 of 2 MIL files have errors") {
		t.Errorf("bad kernel: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}

	os.Remove(filepath.Join(dir, "weights", "weight.bin"))
	code, out, _ = runCLI("mil", "check", good)
	if code != exitError || !strings.Contains(out, "weight file") || !strings.Contains(out, "is missing") {
		t.Errorf("missing weights: exit %d\n%s", code, out)
	}

	code, out, _ = runCLI("mil", "check", filepath.Join(dir, "nope.mil"))
	if code != exitError || !strings.Contains(out, "no such file") {
		t.Errorf("missing file: exit %d\n%s", code, out)
	}
	if code, _, _ := runCLI("mil", "check"); code != exitUsage {
		t.Errorf("no files: exit %d, want usage", code)
	}
	if code, _, errs := runCLI("mil", "lint", "x.mil"); code != exitUsage || !strings.Contains(errs, `unknown subcommand "lint"`) ||
		strings.Contains(errs, "Parses and type-checks") {
		t.Errorf("unknown subcommand: exit %d, stderr %q; want usage naming \"lint\" without the whole usage", code, errs)
	}
}

// TestMilCheckFlagsAfterFiles: mil check's flags may follow the files, as
// export's do, and a flag is not taken for a file.
func TestMilCheckFlagsAfterFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeKernel(t, dir, "good.mil")
	for _, args := range [][]string{{"mil", "check", good, "--multi-io"}, {"mil", "check", "--multi-io", good}} {
		code, out, errs := runCLI(args...)
		if code != exitOK || !strings.Contains(out, good+": ok") || strings.Contains(out+errs, "multi-io:") {
			t.Errorf("anetop %q: exit %d\nstdout %s\nstderr %s", args, code, out, errs)
		}
	}
	code, out, errs := runCLI("mil", "check", good, "--bogus")
	if code != exitUsage || !strings.Contains(errs, "flag provided but not defined: -bogus") || strings.Contains(out, "ok") {
		t.Errorf("unknown flag after the file: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
}

// TestMilCheckProgramVersion: only program(1.0) and program(1.3) are
// accepted, with a file:line:col error naming them; both of the compiler's
// forms still check.
func TestMilCheckProgramVersion(t *testing.T) {
	dir := t.TempDir()
	good := writeKernel(t, dir, "good.mil")
	text, _ := os.ReadFile(good)
	if !strings.HasPrefix(string(text), "program(1.3)") {
		t.Fatalf("test kernel does not start with program(1.3):\n%s", text)
	}
	bad := filepath.Join(dir, "v99.mil")
	os.WriteFile(bad, []byte(strings.Replace(string(text), "program(1.3)", "program(9.9)", 1)), 0o644)
	code, out, _ := runCLI("mil", "check", bad)
	if code != exitError || !strings.Contains(out, bad+":1:9: unsupported program version 9.9") ||
		!strings.Contains(out, "program(1.0)") || !strings.Contains(out, "program(1.3)") {
		t.Errorf("program(9.9): exit %d\n%s", code, out)
	}
	// Both dialects the compiler writes still check.
	for _, target := range []mil.Target{mil.IOS16, mil.IOS18} {
		path := writeKernelFor(t, target, t.TempDir(), "k.mil")
		text, _ := os.ReadFile(path)
		header := "program(" + target.Version() + ")"
		code, out, errs := runCLI("mil", "check", path)
		if !strings.HasPrefix(string(text), header) || code != exitOK || !strings.Contains(out, path+": ok · main<"+target.String()+">") {
			t.Errorf("%s kernel: exit %d\nstdout %s\nstderr %s\n%s", header, code, out, errs, text)
		}
	}
}

// TestMilCheckWeightsNotRegular: a weights path linked to /dev/zero is
// refused, naming the file, instead of being read until memory runs out.
func TestMilCheckWeightsNotRegular(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero here")
	}
	dir := t.TempDir()
	good := writeKernel(t, dir, "good.mil")
	weights := filepath.Join(dir, "weights", "weight.bin")
	os.Remove(weights)
	if err := os.Symlink("/dev/zero", weights); err != nil {
		t.Skipf("cannot symlink: %v", err)
	}
	type result struct {
		code      int
		out, errs string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errs := runCLI("mil", "check", good)
		done <- result{code, out, errs}
	}()
	select {
	case r := <-done:
		if r.code != exitError || !strings.Contains(r.out, weights+" is a character device, not a regular file") {
			t.Errorf("weights linked to /dev/zero: exit %d\nstdout %s\nstderr %s", r.code, r.out, r.errs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mil check is still reading weights linked to /dev/zero after 20s")
	}
}
