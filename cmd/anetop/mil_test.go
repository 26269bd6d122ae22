package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anetop/anetop/mil"
)

// writeKernel builds a small RMSNorm-style kernel whose gain lives in a
// weight blob, and writes it as dir/name plus dir/weights/weight.bin.
func writeKernel(t *testing.T, dir, name string) string {
	t.Helper()
	b := mil.NewBuilder(mil.IOS18)
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
	if code, _, _ := runCLI("mil", "lint"); code != exitUsage {
		t.Errorf("unknown subcommand: exit %d, want usage", code)
	}
}
