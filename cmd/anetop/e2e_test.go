package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/model"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// anetopBinary builds the command once per test process (for tests and
// benchmarks).
func anetopBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "anetop-e2e-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "anetop")
		if runtime.GOOS == "windows" {
			binPath += ".exe"
		}
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = errors.New(err.Error() + ": " + string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v", binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// e2eModel is a small shape so that the emulator trains 30 steps in a
// second or two; warm-up and lr are set so the loss visibly falls.
var e2eModel = []string{"--no-tui", "--json", "--dim", "64", "--layers", "2", "--seq", "64",
	"--hidden", "192", "--warmup", "5", "--lr", "3e-3", "--device", "sim", "--sample-every", "0", "--log-every", "0"}

type event struct {
	Schema int     `json:"schema"`
	Type   string  `json:"type"`
	Step   int     `json:"step"`
	Loss   float64 `json:"loss"`
	Path   string  `json:"path"`
	OK     bool    `json:"ok"`
	Reason string  `json:"reason"`

	ScoredVocab int `json:"scored_vocab"`

	Prompt      []int32         `json:"prompt"`
	Tokens      json.RawMessage `json:"tokens"` // a count in steps, ids in samples
	Temperature float64         `json:"temperature"`
	TopP        float64         `json:"top_p"`
	Seed        uint64          `json:"seed"`
}

func parseEvents(t *testing.T, r io.Reader) []event {
	t.Helper()
	var evs []event
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("stdout line is not a JSON event: %q: %v", sc.Text(), err)
		}
		if e.Schema != 1 {
			t.Fatalf("event without schema 1: %q", sc.Text())
		}
		evs = append(evs, e)
	}
	return evs
}

func runE2E(t *testing.T, args ...string) (code int, evs []event, stderr string) {
	t.Helper()
	cmd := exec.Command(anetopBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, parseEvents(t, &out), errb.String()
}

func steps(evs []event) []event {
	var s []event
	for _, e := range evs {
		if e.Type == "step" {
			s = append(s, e)
		}
	}
	return s
}

// TestE2ETrainResume is issue #8's headless test: 30 steps with
// checkpoints, the loss falls, then --resume continues from step 30.
func TestE2ETrainResume(t *testing.T) {
	dir := t.TempDir()
	code, evs, stderr := runE2E(t, append(e2eModel, "--steps", "30", "--ckpt-every", "10", "--run-dir", dir)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	st := steps(evs)
	if len(st) < 30 {
		t.Fatalf("%d step events, want ≥ 30; stderr:\n%s", len(st), stderr)
	}
	for i, e := range st {
		if e.Step != i+1 {
			t.Fatalf("step event %d has step %d", i, e.Step)
		}
	}
	first := st[0].Loss
	var last5 float64
	for _, e := range st[len(st)-5:] {
		last5 += e.Loss / 5
	}
	if !(last5 < st[0].Loss) {
		t.Errorf("loss did not fall: first %.4f, mean of last 5 %.4f", st[0].Loss, last5)
	}
	var ckSteps []int
	for _, e := range evs {
		if e.Type == "checkpoint" {
			if !e.OK {
				t.Errorf("checkpoint event failed: %+v", e)
			}
			ckSteps = append(ckSteps, e.Step)
		}
	}
	if len(ckSteps) != 3 || ckSteps[2] != 30 {
		t.Errorf("checkpoints at steps %v, want 10, 20, 30", ckSteps)
	}
	ck, skipped, err := checkpoint.Latest(dir)
	if err != nil || len(skipped) > 0 || ck.Step != 30 {
		t.Fatalf("latest checkpoint: %v, skipped %v, err %v", ck, skipped, err)
	}

	code, evs, stderr = runE2E(t, append(e2eModel, "--resume", "--steps", "40", "--ckpt-every", "10", "--run-dir", dir)...)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	st = steps(evs)
	if len(st) != 10 || st[0].Step != 31 || st[9].Step != 40 {
		t.Fatalf("resume: %d step events from %v; want 10 from step 31", len(st), st)
	}
	if !strings.Contains(stderr, "resuming from "+filepath.Join(dir, checkpoint.StepName(30))) {
		t.Errorf("resume does not say what it resumed from:\n%s", stderr)
	}
	// The resumed run continues the trained model, not a fresh one.
	if !(st[0].Loss < first) {
		t.Errorf("resumed loss %.4f is not below the untrained loss %.4f", st[0].Loss, first)
	}
	if ck, _, err := checkpoint.Latest(dir); err != nil || ck.Step != 40 {
		t.Errorf("after resume, latest checkpoint %v, %v; want step 40", ck, err)
	}
}

// TestE2EInterrupt sends SIGINT after a few steps: the run checkpoints the
// last finished step and exits 130.
func TestE2EInterrupt(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT on Windows")
	}
	dir := t.TempDir()
	cmd := exec.Command(anetopBinary(t), append(e2eModel, "--steps", "100000", "--ckpt-every", "0", "--run-dir", dir)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	seen, sent := 0, false
	var lastCk event
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad event %q", sc.Text())
		}
		if e.Type == "step" {
			seen++
		}
		if e.Type == "checkpoint" {
			lastCk = e
		}
		if seen == 3 && !sent {
			sent = true
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("after SIGINT: %v, want exit %d; stderr:\n%s", err, exitInterrupted, errb.String())
	}
	if !lastCk.OK || lastCk.Step < 3 {
		t.Fatalf("no checkpoint event after SIGINT (last %+v); stderr:\n%s", lastCk, errb.String())
	}
	ck, _, err := checkpoint.Latest(dir)
	if err != nil || ck.Step != lastCk.Step {
		t.Fatalf("latest checkpoint %v, %v; want step %d", ck, err, lastCk.Step)
	}
	if !strings.Contains(errb.String(), "anetop --resume") {
		t.Errorf("interrupt message does not say how to resume:\n%s", errb.String())
	}
}

// TestE2EExactResume is issue #7's exact-resume criterion through the
// command: 20 steps straight, and 10 steps + --resume + 10 steps, give
// bit-identical weights and Adam moments on the emulator.
func TestE2EExactResume(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	args := append(e2eModel, "--steps", "20", "--ckpt-every", "10")
	if code, _, stderr := runE2E(t, append(args, "--run-dir", a)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	src, err := os.ReadFile(filepath.Join(a, checkpoint.StepName(10)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, checkpoint.StepName(10)), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runE2E(t, append(args, "--run-dir", b, "--resume")...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	sameCheckpoints(t, filepath.Join(a, checkpoint.StepName(20)), filepath.Join(b, checkpoint.StepName(20)))
}

// sameCheckpoints fails unless the two checkpoints hold bit-identical
// tensors (weights and Adam moments) and the same training counters.
func sameCheckpoints(t *testing.T, pa, pb string) {
	t.Helper()
	fa, err := checkpoint.Load(pa)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := checkpoint.Load(pb)
	if err != nil {
		t.Fatal(err)
	}
	if len(fa.Tensors) != len(fb.Tensors) {
		t.Fatalf("%d vs %d tensors", len(fa.Tensors), len(fb.Tensors))
	}
	for _, ta := range fa.Tensors {
		tb := fb.Tensor(ta.Name)
		if tb == nil {
			t.Fatalf("resumed checkpoint lacks %s", ta.Name)
		}
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(tb.Data[i]) {
				t.Fatalf("%s[%d]: %v uninterrupted, %v resumed", ta.Name, i, ta.Data[i], tb.Data[i])
			}
		}
	}
	for _, k := range []string{metaDataCursor, metaTokens, metaUpdates, metaLossScale, metaLRStep} {
		if fa.Metadata[k] != fb.Metadata[k] {
			t.Errorf("metadata %s: %q uninterrupted, %q resumed", k, fa.Metadata[k], fb.Metadata[k])
		}
	}
}

// TestE2EValidation: validation losses every --eval-every steps and at the
// end, recorded in the checkpoints of those steps, the best carried across
// a resume, and the best checkpoint kept however small --keep is.
func TestE2EValidation(t *testing.T) {
	dir := t.TempDir()
	args := append(e2eModel, "--steps", "30", "--ckpt-every", "10", "--eval-every", "10", "--eval-windows", "4", "--keep", "1", "--run-dir", dir)
	code, evs, stderr := runE2E(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	val := map[int]float64{}
	for _, e := range evs {
		if e.Type == "eval" {
			val[e.Step] = e.Loss
		}
	}
	if len(val) != 3 || val[10] == 0 || val[20] == 0 || val[30] == 0 {
		t.Fatalf("eval events at %v, want steps 10, 20, 30", val)
	}
	if !(val[30] < val[10]) {
		t.Errorf("validation loss did not fall: %v", val)
	}
	best := min(val[10], val[20], val[30])
	ck, _, err := checkpoint.Latest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ck.Metadata[checkpoint.MetaValLoss]; got != strconv.FormatFloat(val[30], 'g', -1, 64) {
		t.Errorf("checkpoint 30 val_loss %q, want the eval event's %v", got, val[30])
	}
	if got := ck.Metadata[metaBestVal]; got != strconv.FormatFloat(best, 'g', -1, 64) {
		t.Errorf("checkpoint 30 best_val_loss %q, want %v", got, best)
	}
	b, _, err := checkpoint.Best(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Metadata[checkpoint.MetaValLoss] != strconv.FormatFloat(best, 'g', -1, 64) {
		t.Errorf("Best is step %d with val_loss %s, want %v", b.Step, b.Metadata[checkpoint.MetaValLoss], best)
	}

	// Resume to 40 without --eval: the best so far is carried over.
	code, evs, stderr = runE2E(t, append(e2eModel, "--resume", "--steps", "40", "--eval-every", "0", "--run-dir", dir)...)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	for _, e := range evs {
		if e.Type == "eval" {
			t.Errorf("--eval-every 0 still measured: %+v", e)
		}
	}
	ck, _, err = checkpoint.Latest(dir)
	if err != nil || ck.Step != 40 {
		t.Fatalf("latest %v, %v; want step 40", ck, err)
	}
	if _, ok := ck.Metadata[checkpoint.MetaValLoss]; ok {
		t.Errorf("checkpoint 40 claims a validation loss that was never measured")
	}
	if got := ck.Metadata[metaBestVal]; got != strconv.FormatFloat(best, 'g', -1, 64) {
		t.Errorf("after resume best_val_loss %q, want %v", got, best)
	}
}

// TestE2ESamples: a sample every --sample-every steps and one of the
// finished model, the engine's continuation of the event's prompt with its
// options for the weights of its step (checked at the end, against the
// final checkpoint).
func TestE2ESamples(t *testing.T) {
	dir := t.TempDir()
	args := append(slices.Clone(e2eModel), "--steps", "25", "--sample-every", "10", "--sample-len", "12", "--run-dir", dir)
	code, evs, stderr := runE2E(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var at []int
	var last event
	for _, e := range evs {
		if e.Type == "sample" {
			at = append(at, e.Step)
			last = e
		}
	}
	if !slices.Equal(at, []int{10, 20, 25}) {
		t.Fatalf("samples at steps %v, want 10, 20 and 25 (the end)", at)
	}
	ck, _, err := checkpoint.Latest(dir)
	if err != nil || ck.Step != 25 {
		t.Fatalf("latest %v, %v; want step 25", ck, err)
	}
	p, err := checkpointParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	var got []int32
	if err := json.Unmarshal(last.Tokens, &got); err != nil {
		t.Fatalf("sample tokens %s: %v", last.Tokens, err)
	}
	opt := engine.SampleOptions{Temperature: last.Temperature, TopP: last.TopP, Seed: last.Seed}
	want, err := engine.Generate(p, last.Prompt, len(got), opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 12 || opt.Temperature == 0 {
		t.Fatalf("the final sample has %d tokens at temperature %v; want 12 sampled ones", len(want), opt.Temperature)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the final sample %v is not the checkpoint's continuation %v", last.Tokens, want)
	}
}

// TestE2ETrace: --trace writes a trace-event file Perfetto can open, with
// one device span per kernel evaluation of the run.
func TestE2ETrace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.json")
	code, evs, stderr := runE2E(t, append(e2eModel, "--steps", "3", "--run-dir", dir, "--trace", path)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spans []struct {
		Name string  `json:"name"`
		Ph   string  `json:"ph"`
		Tid  int     `json:"tid"`
		Dur  float64 `json:"dur"`
	}
	if err := json.Unmarshal(raw, &spans); err != nil {
		t.Fatalf("trace is not a JSON array of events: %v", err)
	}
	kernels := map[string]bool{}
	for _, k := range model.Kernels {
		kernels[k.String()] = true
	}
	device := 0
	for _, s := range spans {
		if s.Ph == "X" && kernels[s.Name] {
			device++
		}
	}
	// e2eModel: 2 layers, 4 kernels per layer and step.
	if want := 3 * 2 * int(model.NumKernels); device != want || len(steps(evs)) != 3 {
		t.Errorf("%d kernel spans over %d steps, want %d", device, len(steps(evs)), want)
	}
	if !strings.Contains(stderr, "ui.perfetto.dev") {
		t.Errorf("no word on where to open the trace:\n%s", stderr)
	}
}

func TestTracePath(t *testing.T) {
	for _, c := range []struct{ file, env, want string }{
		{"t.json", "", "t.json"},
		{"t.json", "0", "t.json"},
		{"t.json", "2", "t.restart-2.json"},
		{"out/trace", "1", "out/trace.restart-1"},
		{"t.json", "junk", "t.json"},
	} {
		if got := tracePath(c.file, c.env); got != c.want {
			t.Errorf("tracePath(%q, %q) = %q, want %q", c.file, c.env, got, c.want)
		}
	}
}

// TestE2EBudgetRestarts is issue #7's restart criterion: the static
// pipeline on the emulator with a compile budget of three steps per
// process crosses three exec restarts on its own and ends with exactly the
// weights, moments and counters of an uninterrupted run.
func TestE2EBudgetRestarts(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	args := append(e2eModel, "--steps", "12", "--ckpt-every", "0", "--pipeline", "static")
	// e2eModel has 2 layers: 4 shared compiles, then 8 per step.
	code, evs, stderr := runE2E(t, append(args, "--run-dir", a, "--budget", "28")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(stderr, "would exceed this process's compile budget"); n != 3 {
		t.Errorf("%d budget restarts, want 3:\n%s", n, stderr)
	}
	st := steps(evs)
	if len(st) != 12 || st[11].Step != 12 {
		t.Fatalf("%d step events (last %v), want 12 across the restarts", len(st), st[len(st)-1])
	}
	for i, e := range st {
		if e.Step != i+1 {
			t.Fatalf("step event %d is step %d: a restart repeated or skipped a step", i, e.Step)
		}
	}
	var reasons []string
	for _, e := range evs {
		if e.Type == "checkpoint" {
			reasons = append(reasons, fmt.Sprintf("%d:%s", e.Step, e.Reason))
		}
	}
	if want := "[3:restart 6:restart 9:restart 12:final]"; fmt.Sprint(reasons) != want {
		t.Errorf("checkpoints %v, want %s", reasons, want)
	}
	if code, _, stderr := runE2E(t, append(args, "--run-dir", b)...); code != 0 {
		t.Fatalf("uninterrupted: exit %d: %s", code, stderr)
	}
	sameCheckpoints(t, filepath.Join(b, checkpoint.StepName(12)), filepath.Join(a, checkpoint.StepName(12)))
}

// TestE2ECompactVocab: --compact-vocab scores the ids of the training
// data only, says so in every step event, and a resume keeps it.
func TestE2ECompactVocab(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "toks.bin")
	// 20000 tokens over 37 distinct ids of a 512 vocabulary.
	raw := make([]byte, 2*20000)
	for i := range 20000 {
		id := uint16((i*7 + i/13) % 37 * 13)
		raw[2*i], raw[2*i+1] = byte(id), byte(id>>8)
	}
	if err := os.WriteFile(data, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(e2eModel, "--data", data, "--vocab", "512", "--run-dir", dir, "--ckpt-every", "0", "--log-every", "1")
	code, evs, stderr := runE2E(t, append(args, "--steps", "4", "--compact-vocab")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	scored := func(evs []event) []int {
		var n []int
		for _, e := range evs {
			if e.Type == "step" {
				n = append(n, e.ScoredVocab)
			}
		}
		return n
	}
	if got := scored(evs); len(got) != 4 || got[0] != 37 || got[3] != 37 {
		t.Errorf("scored_vocab per step %v, want 37 each (the training split's ids)", got)
	}
	if !strings.Contains(stderr, "loss") || !strings.Contains(stderr, "(37/512 vocab)") {
		t.Errorf("the progress line does not label the compacted loss:\n%s", stderr)
	}
	code, evs, stderr = runE2E(t, append(args, "--steps", "6", "--resume")...)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	if got := scored(evs); len(got) != 2 || got[0] != 37 {
		t.Errorf("after resume scored_vocab %v, want 37: the checkpoint's --compact-vocab is kept", got)
	}
}
