package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/internal/sysinfo"
	"github.com/anetop/anetop/model"
)

// benchSchema versions the JSON of `anetop bench --model --json`, so results
// kept from one anetop can be compared with another's.
const benchSchema = 1

// stepBench is the result of `anetop bench --model`: every figure measured
// in this run, medians over the measured steps (the first step, which pays
// first-use costs, is run but not counted). The JSON names are part of the
// command's interface.
type stepBench struct {
	Schema       int     `json:"schema"` // benchSchema: bump when a field changes meaning
	Model        string  `json:"model"`
	Params       int64   `json:"params"`
	Seq          int     `json:"seq"`
	Accum        int     `json:"accum"`
	Device       string  `json:"device"`
	Emulated     bool    `json:"emulated"`
	Machine      string  `json:"machine"`
	BLAS         string  `json:"blas"`
	Steps        int     `json:"steps"`
	MsPerStep    float64 `json:"ms_per_step"`     // median wall time of a step
	MsPerStepMin float64 `json:"ms_per_step_min"` // fastest step
	MsPerStepMax float64 `json:"ms_per_step_max"` // slowest step
	TokensPerSec float64 `json:"tokens_per_sec"`  // tokens of a step ÷ median step time
	// Device figures: FLOPs the kernels do in a step, the device's busy time,
	// and their ratio; utilisation divides it by the device's peak.
	DeviceGFLOPPerStep float64 `json:"device_gflop_per_step"`
	DeviceMs           float64 `json:"device_ms"`
	DeviceTFLOPS       float64 `json:"device_tflops"`
	PeakTFLOPS         float64 `json:"peak_tflops"`
	Utilisation        float64 `json:"utilisation"`
	// ModelTFLOPS is the model's conventional training FLOPs per step (3 ×
	// its forward matmuls, model.StepFLOPs.Model) ÷ the median step time:
	// the figure comparable with other trainers.
	ModelTFLOPS   float64            `json:"model_tflops"`
	Kernels       []kernelBench      `json:"kernels"`
	CPU           map[string]float64 `json:"cpu_ms"`       // CPU phases, ms per step
	DWMs          float64            `json:"dw_ms"`        // dW worker busy time per step
	DWHiddenMs    float64            `json:"dw_hidden_ms"` // of it, run behind other work
	AllocsPerStep float64            `json:"allocs_per_step"`
	PeakRSSBytes  int64              `json:"peak_rss_bytes"`
	CompileMs     float64            `json:"compile_ms"` // engine start-up: kernel compiles and staging
	Compiles      int                `json:"compiles"`
}

type kernelBench struct {
	Name         string  `json:"name"`
	EvalsPerStep float64 `json:"evals_per_step"`
	Ms           float64 `json:"ms"`
	TFLOPS       float64 `json:"tflops"`
}

// benchModel trains steps+1 steps of preset on random tokens and reports
// the medians of the last steps.
func benchModel(preset, device string, steps, accum int, seed uint64) (*stepBench, error) {
	mc, err := model.Preset(preset)
	if err != nil {
		return nil, usageError{msg: fmt.Sprintf("--model: %v", err)}
	}
	mc = mc.Resolved()
	dev, err := ane.Open(device, ane.Options{})
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	t0 := time.Now()
	eng, err := engine.New(engine.Config{Model: mc, Device: dev, Seed: seed, Accum: accum, Steps: steps + 1})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	compile := time.Since(t0)

	// Random tokens: the speed of a step does not depend on what it reads.
	n := accum * mc.Seq
	x, y := make([]int32, n), make([]int32, n)
	rng := rand.New(rand.NewPCG(seed, 0xbe4c))
	batch := func() {
		for i := range x {
			x[i], y[i] = int32(rng.IntN(mc.Vocab)), int32(rng.IntN(mc.Vocab))
		}
	}
	batch()
	if _, err := eng.Step(x, y); err != nil { // first-use costs: not counted
		return nil, err
	}
	all := make([]engine.StepStats, 0, steps)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	for range steps {
		batch()
		st, err := eng.Step(x, y)
		if err != nil {
			return nil, err
		}
		all = append(all, st)
	}
	runtime.ReadMemStats(&ms)
	allocs := float64(ms.Mallocs-mallocs) / float64(steps)
	used, _ := dev.Budget()

	r := &stepBench{Schema: benchSchema, Model: preset, Params: int64(mc.NumParams()), Seq: mc.Seq, Accum: accum,
		Device: dev.Name(), Emulated: dev.Emulated(), Machine: sysinfo.Describe(), BLAS: blas.Backend(),
		Steps: steps, AllocsPerStep: allocs, CompileMs: msec(compile), Compiles: used,
		PeakTFLOPS: dev.PeakFLOPS() / 1e12, CPU: map[string]float64{}}
	med := func(f func(engine.StepStats) float64) float64 {
		v := make([]float64, len(all))
		for i, st := range all {
			v[i] = f(st)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	wall := func(st engine.StepStats) float64 { return msec(st.Time) }
	r.MsPerStep = med(wall)
	// The same conversion as the median's, so min ≤ median ≤ max holds to
	// the last bit (Seconds()*1e3 rounds differently).
	r.MsPerStepMin = msec(slices.MinFunc(all, func(a, b engine.StepStats) int { return int(a.Time - b.Time) }).Time)
	r.MsPerStepMax = msec(slices.MaxFunc(all, func(a, b engine.StepStats) int { return int(a.Time - b.Time) }).Time)
	r.TokensPerSec = float64(n) / (r.MsPerStep / 1e3)
	r.DeviceGFLOPPerStep = all[0].DeviceFLOPs / 1e9
	r.DeviceMs = med(func(st engine.StepStats) float64 { return msec(st.DeviceTime) })
	r.DeviceTFLOPS = all[0].DeviceFLOPs / (r.DeviceMs / 1e3) / 1e12
	if pk := dev.PeakFLOPS(); pk > 0 {
		r.Utilisation = r.DeviceTFLOPS * 1e12 / pk
	}
	lay, err := model.NewLayout(mc)
	if err != nil {
		return nil, err
	}
	r.ModelTFLOPS = float64(accum) * lay.FLOPs().Model / (r.MsPerStep / 1e3) / 1e12
	for id := range model.NumKernels {
		k := kernelBench{Name: all[0].Kernels[id].Name, EvalsPerStep: float64(all[0].Kernels[id].Evals)}
		k.Ms = med(func(st engine.StepStats) float64 { return msec(st.Kernels[id].Time) })
		if k.Ms > 0 {
			k.TFLOPS = all[0].Kernels[id].FLOPs / (k.Ms / 1e3) / 1e12
		}
		r.Kernels = append(r.Kernels, k)
	}
	for _, ph := range []struct {
		name string
		f    func(engine.Phases) time.Duration
	}{
		{"staging", func(p engine.Phases) time.Duration { return p.Staging }},
		{"classifier", func(p engine.Phases) time.Duration { return p.Classifier }},
		{"norms", func(p engine.Phases) time.Duration { return p.Norms }},
		{"dw_wait", func(p engine.Phases) time.Duration { return p.DWWait }},
		{"optimizer", func(p engine.Phases) time.Duration { return p.Optimizer }},
	} {
		r.CPU[ph.name] = med(func(st engine.StepStats) float64 { return msec(ph.f(st.Phases)) })
	}
	r.DWMs = med(func(st engine.StepStats) float64 { return msec(st.DWTime) })
	r.DWHiddenMs = med(func(st engine.StepStats) float64 { return msec(st.DWHidden) })
	r.PeakRSSBytes = sysinfo.PeakRSS()
	return r, nil
}

// print writes the result as the table `anetop bench --model` shows.
func (r *stepBench) print(w io.Writer) error {
	label := ""
	if r.Emulated {
		label = " (emulator figures: what the CPU emulator does, not a Neural Engine)"
	}
	fmt.Fprintf(w, "anetop bench · %s · %d steps (medians; one warm-up step not counted)%s\n", r.Model, r.Steps, label)
	fmt.Fprintf(w, "device   %s\nmachine  %s\nblas     %s\n", r.Device, r.Machine, r.BLAS)
	fmt.Fprintf(w, "model    %.2fM parameters, seq %d, accum %d; start-up %.0f ms, %d compiles\n\n",
		float64(r.Params)/1e6, r.Seq, r.Accum, r.CompileMs, r.Compiles)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "step\t%.1f ms\t(min %.1f, max %.1f)\n", r.MsPerStep, r.MsPerStepMin, r.MsPerStepMax)
	fmt.Fprintf(tw, "tokens/s\t%.0f\t\n", r.TokensPerSec)
	fmt.Fprintf(tw, "model TFLOP/s\t%.3f\t(3 × forward matmul FLOPs ÷ step time)\n", r.ModelTFLOPS)
	fmt.Fprintf(tw, "device\t%.1f ms\t%.2f GFLOP, %.3f TFLOP/s, %.0f%% of %.3f TFLOP/s peak\n",
		r.DeviceMs, r.DeviceGFLOPPerStep, r.DeviceTFLOPS, 100*r.Utilisation, r.PeakTFLOPS)
	for _, k := range r.Kernels {
		fmt.Fprintf(tw, "  %s\t%.1f ms\t%.0f evals, %.3f TFLOP/s\n", k.Name, k.Ms, k.EvalsPerStep, k.TFLOPS)
	}
	fmt.Fprintf(tw, "dW worker\t%.1f ms\t%.1f ms hidden behind other work\n", r.DWMs, r.DWHiddenMs)
	fmt.Fprintf(tw, "CPU phases\t\t\n")
	for _, name := range []string{"staging", "classifier", "norms", "dw_wait", "optimizer"} {
		fmt.Fprintf(tw, "  %s\t%.1f ms\t\n", name, r.CPU[name])
	}
	fmt.Fprintf(tw, "allocs/step\t%.0f\t\n", r.AllocsPerStep)
	if r.PeakRSSBytes > 0 {
		fmt.Fprintf(tw, "peak RSS\t%s\t\n", formatBytes(r.PeakRSSBytes))
	}
	return tw.Flush()
}

func (r *stepBench) json(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
