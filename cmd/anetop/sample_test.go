package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/data"
	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/model"
)

// sampleModel is a small shape with the built-in vocabulary.
func sampleModel(t *testing.T) *model.Params {
	t.Helper()
	c := model.Config{Dim: 64, Hidden: 192, Layers: 2, Heads: 4, KVHeads: 4, Seq: 64, Vocab: data.BuiltinVocab}
	p, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(7)
	return p
}

// writeCheckpoint writes p as a training checkpoint of step, trained on
// the data named dataName, in the layout snapshot writes.
func writeCheckpoint(t *testing.T, path string, p *model.Params, step int, dataName string) {
	t.Helper()
	var ts []checkpoint.Tensor
	zero := make([]float32, len(p.Data))
	for _, tn := range p.Tensors {
		name := tn.HFName()
		w := p.Data[tn.Offset : tn.Offset+tn.Size]
		z := zero[tn.Offset : tn.Offset+tn.Size]
		ts = append(ts, checkpoint.Tensor{Name: name, Shape: tn.Shape, Data: w},
			checkpoint.Tensor{Name: momentPrefix1 + name, Shape: tn.Shape, Data: z},
			checkpoint.Tensor{Name: momentPrefix2 + name, Shape: tn.Shape, Data: z})
	}
	cfg, _ := json.Marshal(p.Config)
	md := map[string]string{metaConfig: string(cfg), metaUpdates: strconv.Itoa(step), metaClean: "0",
		metaLRStep: strconv.Itoa(step), metaTokens: "0", metaLossScale: "1024", metaData: dataName,
		checkpoint.MetaStep: strconv.Itoa(step)}
	if err := checkpoint.Save(path, ts, md); err != nil {
		t.Fatal(err)
	}
}

func runSample(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"sample"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// upToStop is engine.Generate's continuation cut after the first BOS or
// EOS, where anetop sample stops.
func upToStop(toks []int32) []int32 {
	for i, t := range toks {
		if t == data.BOS || t == data.EOS {
			return toks[:i+1]
		}
	}
	return toks
}

// TestGenerateIsEngineGenerate: streamed token by token, greedy or with a
// temperature, generation is engine.Generate's (the training panel's)
// continuation, cut after the end of a story.
func TestGenerateIsEngineGenerate(t *testing.T) {
	p := sampleModel(t)
	prompt := []int32{data.BOS, 300, 17, 42}
	const n = 80 // past Seq: the context window slides
	for _, opt := range []engine.SampleOptions{{}, {Temperature: 0.8, TopP: 0.9, Seed: 7}} {
		want, err := engine.Generate(p, prompt, n, opt)
		if err != nil {
			t.Fatal(err)
		}
		var got []int32
		if err := generate(p, prompt, n, opt, func(tk int32) error {
			got = append(got, tk)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want = upToStop(want); !slices.Equal(got, want) {
			t.Fatalf("%+v: generate: %v\nengine.Generate: %v", opt, got, want)
		}
		t.Logf("%+v: %d tokens: %v", opt, len(got), got)
		if len(got) < 2 {
			t.Fatalf("only %d tokens: the model stops at once, which proves little", len(got))
		}
	}
}

// TestSampleGreedyFromCheckpoint trains a few steps, then samples the
// checkpoint greedily through the command: the text is the same every
// time and is engine.Generate's for the checkpoint's weights, decoded with
// the built-in tokenizer the run trained with.
func TestSampleGreedyFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"--no-tui", "--device", "sim", "--dim", "64", "--layers", "2", "--seq", "64", "--hidden", "192",
		"--steps", "3", "--warmup", "1", "--lr", "3e-3", "--sample-every", "0", "--log-every", "0", "--run-dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("training: exit %d: %s", code, errb.String())
	}
	const n = 40
	args := []string{"--ckpt", dir, "--temp", "0", "--n", strconv.Itoa(n), "--prompt", "Once upon a time"}
	code, first, stderr := runSample(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, filepath.Join(dir, checkpoint.StepName(3))) {
		t.Errorf("stderr does not name the checkpoint sampled:\n%s", stderr)
	}
	if _, again, _ := runSample(t, args...); again != first {
		t.Fatalf("greedy sampling differs between runs:\n%q\n%q", first, again)
	}

	ck, _, err := checkpoint.Latest(dir)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := decodeCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	p := &model.Params{Config: rp.config, Tensors: rp.config.Tensors(), Data: rp.weights}
	c, err := data.Builtin(rp.config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	var prompt []int32
	for _, tk := range c.Tokenizer.Encode("Once upon a time", true, false) {
		prompt = append(prompt, int32(tk))
	}
	toks, err := engine.Generate(p, prompt, n, engine.SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := sampleText(c.Tokenizer, prompt, upToStop(toks)) + "\n"
	if first != want {
		t.Fatalf("anetop sample printed\n%q\nengine.Generate gives\n%q", first, want)
	}
	t.Logf("greedy: %q", first)
	if !strings.HasPrefix(first, "Once upon a time") {
		t.Errorf("the output does not start with the prompt: %q", first)
	}
}

// TestSampleSeeded: with a temperature the seed decides the text.
func TestSampleSeeded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	writeCheckpoint(t, path, sampleModel(t), 5, data.BuiltinName)
	sample := func(seed string) string {
		code, out, stderr := runSample(t, "--ckpt", path, "--temp", "1", "--top-p", "0.95", "--n", "30", "--seed", seed)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		return out
	}
	a, b, c := sample("1"), sample("1"), sample("2")
	if a != b {
		t.Errorf("seed 1 twice gave\n%q\n%q", a, b)
	}
	if a == c {
		t.Errorf("seeds 1 and 2 gave the same text %q", a)
	}
}

// TestSampleTokenIDs: without a known tokenizer the output is token ids,
// the greedy continuation of BOS.
func TestSampleTokenIDs(t *testing.T) {
	dir := t.TempDir()
	p := sampleModel(t)
	path := filepath.Join(dir, "ids.safetensors")
	writeCheckpoint(t, path, p, 5, filepath.Join(dir, "shards-without-tokenizer"))
	code, out, stderr := runSample(t, "--ckpt", path, "--temp", "0", "--n", "20")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "--tokenizer") {
		t.Errorf("no hint about --tokenizer:\n%s", stderr)
	}
	toks, err := engine.Generate(p, []int32{data.BOS}, 20, engine.SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{strconv.Itoa(data.BOS)}
	for _, tk := range upToStop(toks) {
		want = append(want, strconv.Itoa(int(tk)))
	}
	if w := strings.Join(want, " ") + "\n"; out != w {
		t.Fatalf("printed %q, want %q", out, w)
	}

	// A prompt is text: it needs a tokenizer.
	code, _, stderr = runSample(t, "--ckpt", path, "--prompt", "Once")
	if code != exitUsage || !strings.Contains(stderr, "--tokenizer") {
		t.Errorf("--prompt without a tokenizer: exit %d, %q; want %d and a hint", code, stderr, exitUsage)
	}
}

func TestSampleErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	writeCheckpoint(t, good, sampleModel(t), 5, data.BuiltinName)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.safetensors")
	if err := os.WriteFile(truncated, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Join(dir, "flipped.safetensors")
	bad := slices.Clone(raw)
	bad[len(bad)-100] ^= 0xff // a weight: the tensor's CRC catches it
	if err := os.WriteFile(flipped, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	corruptRun := filepath.Join(dir, "corrupt-run")
	os.Mkdir(corruptRun, 0o755)
	os.WriteFile(filepath.Join(corruptRun, checkpoint.StepName(9)), raw[:len(raw)/2], 0o644)
	notOurs := filepath.Join(dir, "not-ours.safetensors")
	if err := checkpoint.Save(notOurs, []checkpoint.Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1, 2}}},
		map[string]string{checkpoint.MetaStep: "1"}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in stderr
	}{
		{"missing", []string{"--ckpt", filepath.Join(dir, "nope")}, exitUsage, []string{"--ckpt", "nope", "no such file"}},
		{"empty run dir", []string{"--ckpt", empty}, exitUsage, []string{"no valid checkpoint", empty}},
		{"corrupt run dir", []string{"--ckpt", corruptRun}, exitUsage, []string{"skipped", checkpoint.StepName(9), "no valid checkpoint"}},
		{"truncated", []string{"--ckpt", truncated}, exitError, []string{truncated}},
		{"flipped bit", []string{"--ckpt", flipped}, exitError, []string{flipped}},
		{"not anetop's", []string{"--ckpt", notOurs}, exitError, []string{notOurs, "config"}},
		{"n", []string{"--ckpt", good, "--n", "0"}, exitUsage, []string{"--n"}},
		{"temp", []string{"--ckpt", good, "--temp", "-1"}, exitUsage, []string{"--temp"}},
		{"temp nan", []string{"--ckpt", good, "--temp", "NaN"}, exitUsage, []string{"--temp"}},
		{"top-p", []string{"--ckpt", good, "--top-p", "1.5"}, exitUsage, []string{"--top-p"}},
		{"unknown flag", []string{"--ckpt", good, "--steps", "3"}, exitUsage, []string{"-steps"}},
		{"argument", []string{good}, exitUsage, []string{"--ckpt"}},
		{"tokenizer", []string{"--ckpt", good, "--tokenizer", filepath.Join(dir, "none.bin")}, exitError, []string{"none.bin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runSample(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if out != "" {
				t.Errorf("stdout %q; want nothing on failure", out)
			}
		})
	}
}

// TestSampleUsesTheRunsTokenizer: a run trained with --tokenizer from
// elsewhere than its data's directory records it, and anetop sample decodes
// text with it without being told.
func TestSampleUsesTheRunsTokenizer(t *testing.T) {
	root := t.TempDir()
	c, err := data.Builtin(data.BuiltinVocab)
	if err != nil {
		t.Fatal(err)
	}
	toks := c.Tokens[:200_000]
	b := make([]byte, 2*len(toks))
	for i, v := range toks {
		b[2*i], b[2*i+1] = byte(v), byte(v>>8)
	}
	bin := filepath.Join(root, "shards", "train.bin")
	tok := filepath.Join(root, "elsewhere", "tok.bin")
	for _, d := range []string{filepath.Dir(bin), filepath.Dir(tok)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(bin, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteTokenizer(tok, c.Tokenizer); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "run")
	if code, _, errs := runCLI(smallRun(dir, "--steps", "2", "--data", bin, "--tokenizer", tok, "--vocab", strconv.Itoa(data.BuiltinVocab))...); code != exitOK {
		t.Fatalf("training: exit %d: %s", code, errs)
	}
	code, out, errs := runSample(t, "--ckpt", dir, "--temp", "0", "--n", "5", "--prompt", "Once upon a time")
	if code != 0 || !strings.HasPrefix(out, "Once upon a time") {
		t.Errorf("exit %d, stdout %q, stderr %q; want text from the run's tokenizer", code, out, errs)
	}
}
