package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/internal/sysinfo"
	"github.com/anetop/anetop/mil/fp16"
	"github.com/anetop/anetop/model"
)

// benchCmd measures the CPU paths a training step leans on: sgemm on every
// BLAS backend that loads here, and bulk fp16 conversion (weights are
// restaged as fp16 after every optimizer step).
func benchCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "anetop bench [--time D]                  CPU paths: sgemm, fp16 conversion\n"+
		"       anetop bench --model PRESET [--steps N] [--accum A] [--device D] [--json]   training steps", stderr)
	minTime := fs.Duration("time", 400*time.Millisecond, "minimum measuring time per row")
	preset := fs.String("model", "", "benchmark training steps of this preset: "+strings.Join(model.PresetNames(), ", "))
	steps := fs.Int("steps", 10, "with --model: steps measured (after one warm-up step)")
	accum := fs.Int("accum", 1, "with --model: windows of seq tokens per step")
	device := fs.String("device", "auto", "with --model: auto, ane or sim")
	asJSON := fs.Bool("json", false, "with --model: print one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("bench takes no arguments, got %q", fs.Args())}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *preset != "" {
		switch {
		case *steps < 1:
			return usageError{msg: fmt.Sprintf("--steps is %d; it must be at least 1", *steps)}
		case *accum < 1:
			return usageError{msg: fmt.Sprintf("--accum is %d; it must be at least 1", *accum)}
		case set["time"]:
			return usageError{msg: "--time measures the CPU rows; with --model the measure is --steps"}
		case *device != "auto" && *device != "ane" && *device != "sim":
			return usageError{msg: fmt.Sprintf("--device %q: choose auto, ane or sim", *device)}
		}
		r, err := benchModel(*preset, *device, *steps, *accum, 1)
		if err != nil {
			return err
		}
		if *asJSON {
			return r.json(stdout)
		}
		return r.print(stdout)
	}
	for _, f := range []string{"steps", "accum", "device", "json"} {
		if set[f] {
			return usageError{msg: fmt.Sprintf("--%s needs --model PRESET", f)}
		}
	}
	if *minTime <= 0 {
		return usageError{msg: "--time must be positive"}
	}

	fmt.Fprintf(stdout, "anetop bench · %s · %s\n", sysinfo.Describe(), time.Now().UTC().Format(time.DateOnly))
	fmt.Fprintf(stdout, "CPU figures, best of repeated runs over at least %v each.\n\n", *minTime)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\tshape\timplementation\tspeed\t")
	for _, sh := range []struct{ m, n, k int }{
		{1024, 1024, 1024},
		{768, 768, 256}, // a Stories110M dW: x·dyᵀ over one 256-token sequence
	} {
		a, b, c := randSlice(sh.m*sh.k), randSlice(sh.k*sh.n), make([]float32, sh.m*sh.n)
		flops := 2 * float64(sh.m) * float64(sh.n) * float64(sh.k)
		for _, impl := range blas.Backends() {
			d := bestOf(*minTime, func() {
				impl.Sgemm(false, false, sh.m, sh.n, sh.k, 1, a, sh.k, b, sh.n, 0, c, sh.n)
			})
			fmt.Fprintf(tw, "sgemm\t%d×%d×%d\t%s\t%.1f GFLOP/s\t\n", sh.m, sh.n, sh.k, impl.Name(), flops/d.Seconds()/1e9)
		}
	}
	const n = 1 << 20
	src, half, back := randSlice(n), make([]fp16.Bits, n), make([]float32, n)
	enc := bestOf(*minTime, func() { fp16.FromFloat32s(half, src) })
	dec := bestOf(*minTime, func() { fp16.ToFloat32s(back, half) })
	fmt.Fprintf(tw, "fp32→fp16\t%d\t%s\t%.2f G elem/s\t\n", n, fp16.Accel(), n/enc.Seconds()/1e9)
	fmt.Fprintf(tw, "fp16→fp32\t%d\t%s\t%.2f G elem/s\t\n", n, fp16.Accel(), n/dec.Seconds()/1e9)
	return tw.Flush()
}

// bestOf runs fn once to warm up, then repeatedly for at least minTime and at
// least three times, and returns the fastest run: on a shared machine the
// fastest run is the one least disturbed by other work.
func bestOf(minTime time.Duration, fn func()) time.Duration {
	fn()
	best := time.Duration(1<<63 - 1)
	start := time.Now()
	for runs := 0; runs < 3 || time.Since(start) < minTime; runs++ {
		t := time.Now()
		fn()
		best = min(best, time.Since(t))
	}
	return best
}

func randSlice(n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	s := make([]float32, n)
	for i := range s {
		s[i] = r.Float32()*2 - 1
	}
	return s
}
