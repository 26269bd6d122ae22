package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/tui"
)

func TestRestartArgs(t *testing.T) {
	const c = "/runs/x/step-000007.safetensors"
	r := "--resume=" + c
	cases := []struct{ in, want []string }{
		{nil, []string{r}},
		{[]string{"--steps", "40"}, []string{"--steps", "40", r}},
		{[]string{"--resume"}, []string{r}},
		{[]string{"--resume", "--steps", "40"}, []string{"--steps", "40", r}},
		{[]string{"--resume", "runs/x", "--steps", "40"}, []string{"--steps", "40", r}},
		{[]string{"--steps", "9", "--resume", "runs/z"}, []string{"--steps", "9", r}},
		{[]string{"--resume=runs/y/a.safetensors", "--json"}, []string{"--json", r}},
		{[]string{"-resume", "--no-tui", "-lr=1e-3"}, []string{"--no-tui", "-lr=1e-3", r}},
		{[]string{"--resume=false", "--steps=5"}, []string{"--steps=5", r}},
		{[]string{"--resume", "a", "--seed", "3", "--resume=b", "--run-dir", "d"}, []string{"--seed", "3", "--run-dir", "d", r}},
		// --init conflicts with --resume: the checkpoint has the weights.
		{[]string{"--init", "m.bin", "--lr", "1e-4"}, []string{"--lr", "1e-4", r}},
		{[]string{"--init=m.bin", "--data", "tinystories"}, []string{"--data", "tinystories", r}},
		// A value that looks like neither flag is kept with its flag.
		{[]string{"--run-dir", "resume", "--model", "tiny"}, []string{"--run-dir", "resume", "--model", "tiny", r}},
		{[]string{"--json", "--", "x"}, []string{"--json", r, "--", "x"}},
	}
	for _, tc := range cases {
		got := restartArgs(tc.in, c)
		if !slices.Equal(got, tc.want) {
			t.Errorf("restartArgs(%q) = %q, want %q", tc.in, got, tc.want)
			continue
		}
		if slices.Contains(tc.in, "--") {
			continue
		}
		// The rewritten arguments parse, resuming from c.
		o, err := parseTrainFlags(got, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", got, err)
			continue
		}
		if !o.resume.on || o.resume.path != c || o.init != "" {
			t.Errorf("%q: resume %v %q, init %q; want resume from %s", got, o.resume.on, o.resume.path, o.init, c)
		}
	}
}

func TestRestartEnviron(t *testing.T) {
	env, err := restartEnviron([]string{"PATH=/bin", "HOME=/h"}, 7)
	if err != nil || !slices.Equal(env, []string{"PATH=/bin", "HOME=/h", restartEnv + "=1", restartStepEnv + "=7"}) {
		t.Errorf("first restart: %q, %v", env, err)
	}
	env, err = restartEnviron([]string{restartEnv + "=5", "A=b", restartStepEnv + "=40"}, 41)
	if err != nil || !slices.Equal(env, []string{"A=b", restartEnv + "=6", restartStepEnv + "=41"}) {
		t.Errorf("sixth restart: %q, %v", env, err)
	}
	// Hundreds of restarts are fine while each one trains.
	if _, err = restartEnviron([]string{restartEnv + "=500", restartStepEnv + "=4000"}, 4009); err != nil {
		t.Errorf("restart 501 after progress: %v", err)
	}
	for _, step := range []int{40, 39} {
		if _, err := restartEnviron([]string{restartEnv + "=5", restartStepEnv + "=40"}, step); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("restart at step %d after one at 40: %v, want a refusal", step, err)
		}
	}
	for _, bad := range []string{restartEnv + "=x", restartStepEnv + "=-1"} {
		if _, err := restartEnviron([]string{bad}, 3); err == nil {
			t.Errorf("garbled %s accepted", bad)
		}
	}
}

type fakeSender struct {
	cmds []engine.Command
	full bool
}

func (f *fakeSender) Send(c engine.Command) bool {
	if f.full {
		return false
	}
	f.cmds = append(f.cmds, c)
	return true
}

func TestRestartCtl(t *testing.T) {
	f := &fakeSender{}
	c := &restartCtl{r: f}
	if !c.Send(engine.Pause) || c.Requested() {
		t.Fatal("Pause: not passed through, or counted as a restart")
	}
	if !c.Send(engine.Restart) || !c.Requested() {
		t.Fatal("Restart not accepted")
	}
	c.Send(engine.Restart) // a second r adds nothing
	want := []engine.Command{engine.Pause, engine.Checkpoint, engine.Stop}
	if !slices.Equal(f.cmds, want) {
		t.Errorf("commands %v, want %v (never the engine's Restart)", f.cmds, want)
	}
	busy := &restartCtl{r: &fakeSender{full: true}}
	if busy.Send(engine.Restart) || busy.Requested() {
		t.Error("a restart that could not be queued was reported as requested")
	}
}

// restartConsole stands in for tui.Run: after a few steps it presses r and
// waits to be closed, as the real console does.
func restartConsole(ctx context.Context, src tui.Source, ctl tui.Controller, _ tui.RunInfo) error {
	evs, cancel := src.Subscribe(1 << 14)
	defer cancel()
	timeout := time.After(60 * time.Second)
	for pressed := false; ; {
		select {
		case ev := <-evs:
			if s, ok := ev.(engine.StepEvent); ok && s.Step >= 2 && !pressed {
				if !ctl.Send(engine.Restart) {
					return errors.New("restart not queued")
				}
				pressed = true
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return errors.New("the console was never closed after r")
		}
	}
}

type execCall struct {
	path      string
	argv, env []string
	step      int // of the checkpoint found at exec time
	loadErr   error
}

func consoleRestart(t *testing.T, restarts, lastStep string) (args []string, calls []execCall, err error, dir string) {
	dir = t.TempDir()
	t.Setenv(restartEnv, restarts)
	t.Setenv(restartStepEnv, lastStep)
	oldExec, oldConsole, oldTTY := restartExec, consoleRun, stdoutIsConsole
	t.Cleanup(func() { restartExec, consoleRun, stdoutIsConsole = oldExec, oldConsole, oldTTY })
	consoleRun = restartConsole
	stdoutIsConsole = func(io.Writer) bool { return true }
	restartExec = func(path string, argv, env []string) error {
		c := execCall{path: path, argv: argv, env: env}
		ck := strings.TrimPrefix(argv[len(argv)-1], "--resume=")
		f, err := checkpoint.Load(ck)
		if err == nil {
			c.step, err = strconv.Atoi(f.Metadata[checkpoint.MetaStep])
		}
		c.loadErr = err
		calls = append(calls, c)
		return nil
	}
	args = []string{"--dim", "64", "--layers", "2", "--seq", "64", "--hidden", "192", "--device", "sim",
		"--sample-every", "0", "--ckpt-every", "0", "--log-every", "0", "--steps", "40", "--run-dir", dir}
	var stdout, stderr bytes.Buffer
	err = trainCmd(args, &stdout, &stderr)
	t.Logf("stderr:\n%s", stderr.String())
	return args, calls, err, dir
}

// TestRestartConsole: r in the console checkpoints the current step, stops,
// closes the console and execs the binary with --resume=<that checkpoint>.
func TestRestartConsole(t *testing.T) {
	args, calls, err, dir := consoleRestart(t, "3", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 {
		t.Fatalf("%d execs, want 1", len(calls))
	}
	c := calls[0]
	exe, _ := os.Executable()
	if c.path != exe || c.argv[0] != os.Args[0] {
		t.Errorf("exec %s argv[0] %s, want %s, %s", c.path, c.argv[0], exe, os.Args[0])
	}
	ck := strings.TrimPrefix(c.argv[len(c.argv)-1], "--resume=")
	if filepath.Dir(ck) != dir || !filepath.IsAbs(ck) {
		t.Errorf("resumes from %s, want a checkpoint in %s", ck, dir)
	}
	if !slices.Equal(c.argv[1:], restartArgs(args, ck)) {
		t.Errorf("argv %q, want %q", c.argv[1:], restartArgs(args, ck))
	}
	if c.loadErr != nil {
		t.Fatalf("checkpoint at exec time: %v", c.loadErr)
	}
	if c.step < 3 || c.step >= 40 || filepath.Base(ck) != filepath.Base(checkpointPath(t, dir, c.step)) {
		t.Errorf("checkpoint %s of step %d, want the step r was pressed at", ck, c.step)
	}
	if !slices.Contains(c.env, restartEnv+"=4") || !slices.Contains(c.env, "PATH="+os.Getenv("PATH")) {
		t.Errorf("env lacks %s=4 or PATH: %q", restartEnv, c.env)
	}

	// What the fresh process would do: continue at that step, to the end.
	stdoutIsConsole = func(io.Writer) bool { return false }
	restartExec = func(string, []string, []string) error { t.Error("exec without r"); return nil }
	var stdout, stderr bytes.Buffer
	if err := trainCmd(c.argv[1:], &stdout, &stderr); err != nil {
		t.Fatalf("the restarted run: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{fmt.Sprintf("resuming from %s (step %d)", ck, c.step), "done: 40 steps"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the restarted run's stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func checkpointPath(t *testing.T, dir string, step int) string {
	t.Helper()
	run, err := checkpoint.OpenRun(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	return run.Path(step)
}

// TestRestartLoopGuard: past maxRestarts the checkpoint is written but the
// exec refused, with the way to continue by hand.
func TestRestartLoopGuard(t *testing.T) {
	// The previous restart resumed at step 1000: this one, at most at
	// step 40, would make no progress.
	_, calls, err, _ := consoleRestart(t, "3", "1000")
	if len(calls) != 0 {
		t.Fatalf("exec'd %d times past the guard", len(calls))
	}
	if err == nil || !strings.Contains(err.Error(), "refusing") || !strings.Contains(err.Error(), "--resume=") {
		t.Fatalf("error %v, want a refusal naming the checkpoint", err)
	}
}

// TestRunStartCarriesAcrossRestarts: the first restart records when the
// run started; later ones keep that; a restarted process reads it back.
func TestRunStartCarriesAcrossRestarts(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 123)
	env := withRunStart([]string{"A=b"}, t0)
	if !slices.Equal(env, []string{"A=b", runStartEnv + "=1700000000000000123"}) {
		t.Fatalf("first restart's env %q", env)
	}
	if again := withRunStart(env, t0.Add(time.Hour)); !slices.Equal(again, env) {
		t.Errorf("a later restart replaced the run's start: %q", again)
	}
	t.Setenv(runStartEnv, "1700000000000000123")
	t.Setenv(restartEnv, "")
	if got := runStart(); !got.IsZero() {
		t.Errorf("a process no restart started read a run start %v", got)
	}
	t.Setenv(restartEnv, "2")
	if got := runStart(); !got.Equal(t0) {
		t.Errorf("runStart() = %v, want %v", got, t0)
	}
}
