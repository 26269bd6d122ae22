package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/anetop/anetop/model"
)

func TestBenchModelFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--model", "nope"}, "--model"},
		{[]string{"bench", "--model", "tiny", "--steps", "0"}, "--steps is 0"},
		{[]string{"bench", "--model", "tiny", "--accum", "0"}, "--accum is 0"},
		{[]string{"bench", "--model", "tiny", "--time", "1s"}, "--time measures the CPU rows"},
		{[]string{"bench", "--steps", "3"}, "--steps needs --model"},
		{[]string{"bench", "--json"}, "--json needs --model"},
	} {
		code, out, errs := runCLI(c.args...)
		if code != exitUsage || !strings.Contains(out+errs, c.want) {
			t.Errorf("anetop %q: exit %d, output %q; want exit %d containing %q", c.args, code, out+errs, exitUsage, c.want)
		}
	}
}

// TestBenchModelJSON runs the training benchmark on the tiny preset and
// checks its figures against what they must be: FLOP counts from the
// model's own accounting, evaluation counts from the layer count, and
// consistent derived rates.
func TestBenchModelJSON(t *testing.T) {
	code, out, errs := runCLI("bench", "--model", "tiny", "--steps", "2", "--device", "sim", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r stepBench
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	mc, _ := model.Preset("tiny")
	mc = mc.Resolved()
	lay, err := model.NewLayout(mc)
	if err != nil {
		t.Fatal(err)
	}
	fl := lay.FLOPs()
	near := func(what string, got, want, rel float64) {
		t.Helper()
		if math.Abs(got-want) > rel*math.Abs(want) {
			t.Errorf("%s = %v, want %v (±%g)", what, got, want, rel)
		}
	}
	if r.Schema != 1 || !r.Emulated || r.Model != "tiny" || r.Steps != 2 || r.Params != int64(mc.NumParams()) || r.Compiles != int(model.NumKernels) {
		t.Errorf("header fields wrong: %+v", r)
	}
	near("device GFLOP/step", r.DeviceGFLOPPerStep, fl.Device/1e9, 1e-9)
	near("tokens/s", r.TokensPerSec, float64(mc.Seq)/(r.MsPerStep/1e3), 1e-9)
	near("model TFLOP/s", r.ModelTFLOPS, fl.Model/(r.MsPerStep/1e3)/1e12, 1e-9)
	near("utilisation", r.Utilisation, r.DeviceTFLOPS/r.PeakTFLOPS, 1e-9)
	if !(r.MsPerStepMin <= r.MsPerStep && r.MsPerStep <= r.MsPerStepMax) || r.MsPerStepMin <= 0 {
		t.Errorf("step times min %v median %v max %v out of order", r.MsPerStepMin, r.MsPerStep, r.MsPerStepMax)
	}
	if len(r.Kernels) != int(model.NumKernels) {
		t.Fatalf("%d kernels, want %d", len(r.Kernels), model.NumKernels)
	}
	for i, k := range r.Kernels {
		if k.Name != model.KernelID(i).String() || k.EvalsPerStep != float64(mc.Layers) || !(k.Ms > 0) {
			t.Errorf("kernel %d: %+v; want %v with %d evals and a positive time", i, k, model.KernelID(i), mc.Layers)
		}
	}
	for _, ph := range []string{"staging", "classifier", "norms", "dw_wait", "optimizer"} {
		if _, ok := r.CPU[ph]; !ok {
			t.Errorf("CPU phase %q missing from %v", ph, r.CPU)
		}
	}
	if r.PeakRSSBytes <= 0 || r.DWMs <= 0 || r.DWHiddenMs > r.DWMs {
		t.Errorf("peak RSS %d, dW %v ms, hidden %v ms: want positive figures, hidden ≤ busy", r.PeakRSSBytes, r.DWMs, r.DWHiddenMs)
	}
}

func TestBenchModelTable(t *testing.T) {
	code, out, errs := runCLI("bench", "--model", "tiny", "--steps", "1", "--device", "sim")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"emulator figures", "tokens/s", "attn_fwd", "ffn_bwd", "dW worker", "optimizer", "allocs/step", "peak RSS"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
