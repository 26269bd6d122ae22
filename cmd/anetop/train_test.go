package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/model"
)

// TestTrainFlagErrors checks that bad training flags exit 2 with a message
// naming the flag and the fix, before any device or data work.
func TestTrainFlagErrors(t *testing.T) {
	empty := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--steps", "0"}, "--steps is 0; it must be at least 1"},
		{[]string{"--device", "gpu"}, `--device "gpu": choose auto, ane or sim`},
		{[]string{"--model", "huge"}, `--model: unknown model preset "huge"; choose one of tiny`},
		{[]string{"--lr", "-1"}, "--lr is -1"},
		{[]string{"--accum", "0"}, "--accum is 0"},
		{[]string{"--clip", "-2"}, "--clip is -2"},
		{[]string{"--dim", "0"}, "--dim is 0; it must be positive"},
		{[]string{"--budget", "-3"}, "--budget is -3"},
		{[]string{"--ckpt-every", "-1"}, "--ckpt-every"},
		{[]string{"--resume", "--init", "x.bin"}, "--resume and --init both given"},
		{[]string{"--steps", "3", "extra"}, `unexpected argument "extra"`},
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
		{[]string{"--seq", "100", "--run-dir", empty}, "Seq is 100; it must be a multiple of 32"},
		{[]string{"--heads", "3", "--run-dir", empty}, "Heads (3) must divide Dim (128)"},
		{[]string{"--resume", "--run-dir", empty}, "no valid checkpoint"},
		{[]string{"--resume", filepath.Join(empty, "missing.safetensors")}, "--resume " + filepath.Join(empty, "missing.safetensors")},
		{[]string{"--model", "stories15m", "--run-dir", empty}, "the model's vocabulary is 32000 tokens but the built-in data's is 512: pass --vocab 512"},
		{[]string{"--tokenizer", "tok.bin", "--run-dir", empty}, "drop --tokenizer"},
		{[]string{"--init", filepath.Join(empty, "none.bin")}, "none.bin"},
		{[]string{"--layers", "100000", "--run-dir", empty}, "more than this machine's"},
	}
	for _, c := range cases {
		code, out, errs := runCLI(c.args...)
		wantCode := exitUsage
		if strings.HasSuffix(c.want, "none.bin") {
			wantCode = exitError // a missing weights file is an I/O error, not a usage one
		}
		if code != wantCode || !strings.Contains(out+errs, c.want) {
			t.Errorf("anetop %q: exit %d, output %q; want exit %d containing %q", c.args, code, out+errs, wantCode, c.want)
		}
	}
}

func TestTrainHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--steps", "5", "-h"}} {
		code, out, errs := runCLI(args...)
		if code != exitOK || !strings.Contains(out+errs, "Examples:") || !strings.Contains(out+errs, "-resume PATH") {
			t.Errorf("anetop %q: exit %d, output %q; want exit 0 with examples and flags", args, code, out+errs)
		}
	}
}

func TestParseResume(t *testing.T) {
	cases := []struct {
		args  []string
		on    bool
		path  string
		steps int
	}{
		{[]string{"--steps", "7"}, false, "", 7},
		{[]string{"--resume"}, true, "", 1000},
		{[]string{"--resume", "--steps", "40"}, true, "", 40},
		{[]string{"--resume", "runs/x", "--steps", "40"}, true, "runs/x", 40},
		{[]string{"--resume=runs/y/step-000010.safetensors"}, true, "runs/y/step-000010.safetensors", 1000},
		{[]string{"--steps", "9", "--resume", "runs/z"}, true, "runs/z", 9},
	}
	for _, c := range cases {
		o, err := parseTrainFlags(c.args, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if o.resume.on != c.on || o.resume.path != c.path || o.steps != c.steps {
			t.Errorf("%q: resume %v %q, steps %d; want %v %q, %d", c.args, o.resume.on, o.resume.path, o.steps, c.on, c.path, c.steps)
		}
	}
}

func TestModelOverrides(t *testing.T) {
	o, err := parseTrainFlags([]string{"--dim", "64", "--heads", "2", "--layers", "1", "--seq", "64"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.modelConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := c.Resolved()
	if r.Dim != 64 || r.Heads != 2 || r.KVHeads != 2 || r.HeadDim != 32 || r.Layers != 1 || r.Seq != 64 || r.Vocab != 512 {
		t.Errorf("overrides gave %+v", r)
	}
	// The default preset must match the default (built-in) data.
	tiny, _ := model.Preset(model.DefaultPreset)
	if tiny.Vocab != 512 {
		t.Errorf("tiny preset vocab %d, built-in data vocab 512", tiny.Vocab)
	}
	// Explicit shape flags that disagree with a file are refused.
	if err := o.checkFileShape(tiny, "checkpoint X"); err == nil || !strings.Contains(err.Error(), "--dim 64 but it has 128") {
		t.Errorf("checkFileShape: %v", err)
	}
}

// TestSchedule: a new run's warm-up default shrinks with short runs; a
// resumed run takes the hyper-parameters it was not given from its
// checkpoint, and says which ones the flags replace.
func TestSchedule(t *testing.T) {
	for _, c := range []struct {
		args   []string
		warmup int
	}{
		{[]string{"--steps", "5000"}, 100},
		{[]string{"--steps", "200"}, 20},
		{[]string{"--steps", "5"}, 0},
		{[]string{"--steps", "200", "--warmup", "150"}, 150},
	} {
		o, err := parseTrainFlags(c.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		o.schedule(nil, nil)
		if o.warmup != c.warmup {
			t.Errorf("%q: warmup %d, want %d", c.args, o.warmup, c.warmup)
		}
	}

	from := &trainMeta{LR: 3e-4, Warmup: 7, Steps: 300, Accum: 2, Clip: 0.5}
	o, err := parseTrainFlags([]string{"--resume", "--steps", "400"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	o.schedule(from, func(s string) { notes = append(notes, s) })
	if o.steps != 400 || o.warmup != 7 || o.accum != 2 || o.lr != 3e-4 || o.clip != 0.5 {
		t.Errorf("resumed schedule: steps %d warmup %d accum %d lr %g clip %g; want 400 7 2 3e-4 0.5",
			o.steps, o.warmup, o.accum, o.lr, o.clip)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "--steps 400 replaces the checkpoint's 300") {
		t.Errorf("notes %q, want one about --steps", notes)
	}
}

// smallRun is a model and schedule that train a few steps in well under a
// second on the emulator, headless and quiet.
func smallRun(dir string, more ...string) []string {
	return append([]string{"--no-tui", "--device", "sim", "--dim", "64", "--layers", "1", "--seq", "32", "--hidden", "128",
		"--warmup", "1", "--sample-every", "0", "--log-every", "0", "--eval-every", "0", "--run-dir", dir}, more...)
}

// TestNewRunRefusesUsedRunDir: a new run in a directory that holds another
// run's checkpoints is refused before anything is written (it would
// overwrite and prune them), naming --resume and a free directory; the
// old checkpoint is untouched. --resume still continues there.
func TestNewRunRefusesUsedRunDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if code, _, errs := runCLI(smallRun(dir, "--steps", "2")...); code != exitOK {
		t.Fatalf("first run: exit %d: %s", code, errs)
	}
	ck := filepath.Join(dir, checkpoint.StepName(2))
	before, err := os.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(smallRun(dir, "--steps", "2", "--dim", "32")...)
	if code != exitUsage || !strings.Contains(errs, "already holds checkpoints") || !strings.Contains(errs, "--resume") ||
		!strings.Contains(errs, "--run-dir "+dir+"-2") {
		t.Errorf("second run: exit %d, stderr %q, stdout %q; want exit 2 naming --resume and %s-2", code, errs, out, dir)
	}
	if after, err := os.ReadFile(ck); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the first run's checkpoint changed (err %v)", err)
	}
	if code, _, errs := runCLI(smallRun(dir, "--steps", "3", "--resume")...); code != exitOK {
		t.Errorf("--resume in the same directory: exit %d: %s", code, errs)
	}
}

// TestResumeWithOtherModelIsRefused: --model naming another preset than the
// checkpoint's is refused, not silently ignored (the banner called the
// checkpoint's model by the flag's name).
func TestResumeWithOtherModelIsRefused(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := runCLI(smallRun(dir, "--steps", "1")...); code != exitOK {
		t.Fatalf("training: exit %d: %s", code, errs)
	}
	code, _, errs := runCLI("--no-tui", "--device", "sim", "--resume", "--run-dir", dir, "--steps", "2", "--model", "stories15m")
	if code != exitUsage || !strings.Contains(errs, "--model stories15m is dim 288") {
		t.Errorf("exit %d, stderr %q; want exit 2 saying the checkpoint is not stories15m", code, errs)
	}
	if got := presetOf(model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 4, Seq: 32, Vocab: 512, Tied: true}); got != "custom" {
		t.Errorf("presetOf(a custom shape) = %q", got)
	}
	for _, name := range model.PresetNames() {
		c, _ := model.Preset(name)
		c.Seq *= 2
		if got := presetOf(c); got != name {
			t.Errorf("presetOf(%s with another seq) = %q", name, got)
		}
	}
}

// TestDivergedRunStops: a learning rate that blows the weights up ends the
// run with exit 1 and a message naming --lr, long before --steps, and no
// final checkpoint of the ruined weights.
func TestDivergedRunStops(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := runCLI(smallRun(dir, "--steps", "200", "--lr", "1e10", "--ckpt-every", "0")...)
	if code != exitError || !strings.Contains(errs, "diverged") || !strings.Contains(errs, "lower --lr") {
		t.Fatalf("exit %d, stderr %q; want exit 1: diverged, lower --lr", code, errs)
	}
	if last := checkpoint.NewestFile(dir); last != "" {
		t.Errorf("a diverged run wrote %s", last)
	}
}

// TestJSONSetupError: with --json, a run that fails before training starts
// still says why on stdout, as one error event.
func TestJSONSetupError(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.bin")
	code, out, _ := runCLI(smallRun(dir, "--json", "--steps", "2", "--data", missing)...)
	evs := parseEvents(t, strings.NewReader(out))
	if code == exitOK || len(evs) != 1 || evs[0].Type != "error" || !strings.Contains(out, "none.bin") {
		t.Errorf("exit %d, stdout %q; want one error event naming none.bin", code, out)
	}
}

// TestTextDataSaysItTokenizes: a text file is tokenized once, saying so
// (it can take minutes), and its cache is reused silently; sample decodes
// the run's checkpoints with the same tokenizer.
func TestTextDataSaysItTokenizes(t *testing.T) {
	root := t.TempDir()
	text := filepath.Join(root, "stories.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("Once upon a time there was a cat.\n<|endoftext|>\n", 400)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(smallRun(filepath.Join(root, "a"), "--steps", "1", "--data", text)...)
	if code != exitOK || !strings.Contains(errs, "tokenizing "+text) || !strings.Contains(errs, "tokenized "+text) {
		t.Fatalf("exit %d, stderr %q; want the tokenizing and tokenized lines", code, errs)
	}
	code, _, errs = runCLI(smallRun(filepath.Join(root, "b"), "--steps", "1", "--data", text)...)
	if code != exitOK || strings.Contains(errs, "tokeniz") {
		t.Errorf("second run: exit %d, stderr %q; want the cache reused without a word", code, errs)
	}
	// The run's checkpoints say how its text was tokenized, so sample
	// writes text without being told the tokenizer.
	code, out, errs := runCLI("sample", "--ckpt", filepath.Join(root, "a"), "--temp", "0", "--n", "3", "--prompt", "Once upon a time")
	if code != exitOK || !strings.HasPrefix(out, "Once upon a time") {
		t.Errorf("sample: exit %d, stdout %q, stderr %q; want text", code, out, errs)
	}
}

// TestWarmupPastStepsWarns: a warm-up as long as the run never reaches the
// peak learning rate; the run goes on, saying so.
func TestWarmupPastStepsWarns(t *testing.T) {
	code, _, errs := runCLI(smallRun(t.TempDir(), "--steps", "2", "--warmup", "5")...)
	if code != exitOK || !strings.Contains(errs, "--warmup 5 is not below --steps 2") {
		t.Errorf("exit %d, stderr %q; want a warning about --warmup", code, errs)
	}
}

// TestResumeDoesNotReEvaluate: a checkpoint that records the validation
// loss of its step is not measured again when the run resumes there.
func TestResumeDoesNotReEvaluate(t *testing.T) {
	dir := t.TempDir()
	evals := func(args ...string) []int {
		t.Helper()
		code, out, errs := runCLI(smallRun(dir, append([]string{"--json", "--eval-every", "5", "--eval-windows", "2"}, args...)...)...)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var at []int
		for _, e := range parseEvents(t, strings.NewReader(out)) {
			if e.Type == "eval" {
				at = append(at, e.Step)
			}
		}
		return at
	}
	if got := evals("--steps", "10"); fmt.Sprint(got) != "[5 10]" {
		t.Fatalf("first run evaluated at %v, want [5 10]", got)
	}
	if got := evals("--steps", "15", "--resume"); fmt.Sprint(got) != "[15]" {
		t.Errorf("resumed run evaluated at %v, want [15]: step 10's loss is in its checkpoint", got)
	}
}
