package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/model"
)

// exportTestConfig is a tiny GQA model with llama2.c's defaults.
var exportTestConfig = model.Config{Dim: 16, Hidden: 24, Layers: 2, Heads: 4, KVHeads: 2, Seq: 32, Vocab: 10, Tied: true}

// saveTrainingCheckpoint writes a checkpoint shaped like the training
// command's (HF-named weights, both Adam moments, the config and counters
// in the metadata) into run directory dir at step, and returns its weights.
func saveTrainingCheckpoint(t *testing.T, dir string, c model.Config, step int, seed uint64) *model.Params {
	t.Helper()
	p, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(seed)
	var ts []checkpoint.Tensor
	for _, tn := range p.Tensors {
		m := make([]float32, tn.Size)
		for i := range m {
			m[i] = 0.5
		}
		ts = append(ts,
			checkpoint.Tensor{Name: tn.HFName(), Shape: tn.Shape, Data: p.Data[tn.Offset : tn.Offset+tn.Size]},
			checkpoint.Tensor{Name: momentPrefix1 + tn.HFName(), Shape: tn.Shape, Data: m},
			checkpoint.Tensor{Name: momentPrefix2 + tn.HFName(), Shape: tn.Shape, Data: m})
	}
	cfg, _ := json.Marshal(p.Config)
	run, err := checkpoint.OpenRun(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Save(step, ts, map[string]string{metaConfig: string(cfg), metaData: "builtin"}); err != nil {
		t.Fatal(err)
	}
	return p
}

func runExport(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(append([]string{"export"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func sameWeights(t *testing.T, got, want *model.Params) {
	t.Helper()
	if got.Config != want.Config {
		t.Fatalf("config %+v, want %+v", got.Config, want.Config)
	}
	if !slices.Equal(got.Data, want.Data) {
		t.Fatal("weights differ from the checkpoint's")
	}
}

// TestExportLlama2C exports a run directory's newest checkpoint as version
// 0 (the default) and a checkpoint file as version 1 (flags after the
// argument), and reads both back.
func TestExportLlama2C(t *testing.T) {
	runDir := t.TempDir()
	saveTrainingCheckpoint(t, runDir, exportTestConfig, 10, 1)
	p := saveTrainingCheckpoint(t, runDir, exportTestConfig, 20, 2)
	out := filepath.Join(t.TempDir(), "model.bin")
	code, stdout, stderr := runExport("--format", "llama2c", "--out", out, runDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "step 20") || !strings.Contains(stdout, "./run "+out+" -z tokenizer.bin") {
		t.Errorf("stdout: %s", stdout)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// run.c's header: 7 int32, vocab positive (tied), n_kv_heads 2.
	var h [7]int32
	binary.Read(bytes.NewReader(raw), binary.LittleEndian, &h)
	if h != [7]int32{16, 24, 2, 4, 2, 10, 32} {
		t.Errorf("header %v", h)
	}
	back, err := checkpoint.ReadLlama2C(out)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, back, p)

	ck := filepath.Join(runDir, checkpoint.StepName(10))
	out1 := filepath.Join(t.TempDir(), "v1.bin")
	if code, _, stderr := runExport(ck, "--out", out1, "--format=llama2c", "--version", "1"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, _ = os.ReadFile(out1)
	if !bytes.HasPrefix(raw, []byte("24ka\x01\x00\x00\x00")) {
		t.Errorf("version 1 file starts %q", raw[:8])
	}
	back, err = checkpoint.ReadLlama2C(out1)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := model.NewParams(exportTestConfig)
	first.Init(1)
	sameWeights(t, back, first)
}

// TestExportHF exports an untied checkpoint as a Hugging Face directory:
// config.json and model.safetensors with the weights only, which ReadHF
// brings back to the checkpoint's weights.
func TestExportHF(t *testing.T) {
	c := exportTestConfig
	c.Tied = false
	runDir := t.TempDir()
	p := saveTrainingCheckpoint(t, runDir, c, 5, 3)
	out := filepath.Join(t.TempDir(), "hf")
	code, stdout, stderr := runExport("--format", "hf", "--out", out, filepath.Join(runDir, checkpoint.StepName(5)))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "from_pretrained") {
		t.Errorf("stdout: %s", stdout)
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"config.json", "model.safetensors"}) {
		t.Errorf("output holds %v", names)
	}
	sf, err := checkpoint.ReadSafetensors(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sf.Tensors) != len(p.Tensors) {
		t.Errorf("%d tensors exported, the model has %d", len(sf.Tensors), len(p.Tensors))
	}
	for _, tn := range sf.Tensors {
		if strings.HasPrefix(tn.Name, "exp_avg") {
			t.Errorf("optimizer state %s exported", tn.Name)
		}
	}
	back, err := checkpoint.ReadHF(out)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, back, p)
}

// TestExportSkipsCorrupt: a run directory whose newest checkpoint is
// corrupt exports the one before, with a warning naming the bad file.
func TestExportSkipsCorrupt(t *testing.T) {
	runDir := t.TempDir()
	p := saveTrainingCheckpoint(t, runDir, exportTestConfig, 10, 1)
	saveTrainingCheckpoint(t, runDir, exportTestConfig, 20, 2)
	bad := filepath.Join(runDir, checkpoint.StepName(20))
	flipByte(t, bad)
	out := filepath.Join(t.TempDir(), "m.bin")
	code, stdout, stderr := runExport("--format", "llama2c", "--out", out, runDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "skipped "+bad) || !strings.Contains(stdout, "step 10") {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	back, err := checkpoint.ReadLlama2C(out)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, back, p)
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestExportErrors checks the refusals: each exits non-zero, names what is
// wrong, and writes nothing.
func TestExportErrors(t *testing.T) {
	runDir := t.TempDir()
	saveTrainingCheckpoint(t, runDir, exportTestConfig, 10, 1)
	ck := filepath.Join(runDir, checkpoint.StepName(10))
	corrupt := filepath.Join(t.TempDir(), "corrupt.safetensors")
	b, _ := os.ReadFile(ck)
	os.WriteFile(corrupt, b, 0o644)
	flipByte(t, corrupt)
	theta := exportTestConfig
	theta.RopeTheta = 500000
	thetaDir := t.TempDir()
	saveTrainingCheckpoint(t, thetaDir, theta, 1, 1)
	foreign := filepath.Join(t.TempDir(), "foreign.safetensors")
	if err := checkpoint.Save(foreign, []checkpoint.Tensor{{Name: "x", Shape: []int{1}, Data: []float32{1}}}, nil); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(t.TempDir(), "exists.bin")
	os.WriteFile(existing, []byte("keep me"), 0o644)
	out := filepath.Join(t.TempDir(), "out")
	missing := filepath.Join(t.TempDir(), "missing.safetensors")

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing checkpoint", []string{"--format", "hf", "--out", out, missing}, exitError, missing + ": no such file or directory"},
		{"corrupt checkpoint", []string{"--format", "hf", "--out", out, corrupt}, exitError, corrupt},
		{"corrupt says CRC", []string{"--format", "hf", "--out", out, corrupt}, exitError, "CRC-32C"},
		{"empty run dir", []string{"--format", "hf", "--out", out, t.TempDir()}, exitError, "no valid checkpoint"},
		{"foreign file", []string{"--format", "hf", "--out", out, foreign}, exitError, `no "config" in its metadata`},
		{"unknown format", []string{"--format", "gguf", "--out", out, ck}, exitUsage, `unknown --format "gguf"`},
		{"no format", []string{"--out", out, ck}, exitUsage, "needs --format"},
		{"no out", []string{"--format", "hf", ck}, exitUsage, "needs --out"},
		{"no checkpoint", []string{"--format", "hf", "--out", out}, exitUsage, "needs a CHECKPOINT"},
		{"two checkpoints", []string{"--format", "hf", "--out", out, ck, ck}, exitUsage, "one CHECKPOINT"},
		{"version 2", []string{"--format", "llama2c", "--version", "2", "--out", out, ck}, exitUsage, "int8-quantized"},
		{"version with hf", []string{"--format", "hf", "--version", "1", "--out", out, ck}, exitUsage, "--version applies to --format llama2c"},
		{"existing output", []string{"--format", "llama2c", "--out", existing, ck}, exitUsage, existing + " already exists; pass --force"},
		{"directory for llama2c", []string{"--format", "llama2c", "--force", "--out", runDir, ck}, exitUsage, "is a directory"},
		{"file for hf", []string{"--format", "hf", "--force", "--out", existing, ck}, exitUsage, "is a file"},
		{"output is the checkpoint", []string{"--format", "llama2c", "--force", "--out", ck, ck}, exitUsage, "is the checkpoint being exported"},
		{"theta for llama2c", []string{"--format", "llama2c", "--out", out, thetaDir}, exitError, "RoPE-base field"},
		{"theta suggests hf", []string{"--format", "llama2c", "--out", out, thetaDir}, exitError, "--format hf instead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runExport(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("an output was written")
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Error("the existing output was modified")
	}
	if b2, _ := os.ReadFile(ck); !bytes.Equal(b2, b) {
		t.Error("the checkpoint was modified")
	}

	// --force replaces it.
	if code, _, stderr := runExport("--format", "llama2c", "--force", "--out", existing, ck); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	if _, err := checkpoint.ReadLlama2C(existing); err != nil {
		t.Errorf("--force output: %v", err)
	}
	// An existing HF directory is refused, then replaced with --force.
	hf := t.TempDir()
	if code, _, stderr := runExport("--format", "hf", "--out", hf, ck); code != exitUsage || !strings.Contains(stderr, "already exists") {
		t.Errorf("existing dir: exit %d %s", code, stderr)
	}
	if code, _, stderr := runExport("--format", "hf", "--force", "--out", hf, ck); code != 0 {
		t.Errorf("existing dir with --force: exit %d %s", code, stderr)
	}
	if _, err := checkpoint.ReadHF(hf); err != nil {
		t.Error(err)
	}
}

// TestExportHelp: --help prints the usage and exits 0.
func TestExportHelp(t *testing.T) {
	code, _, stderr := runExport("--help")
	if code != 0 || !strings.Contains(stderr, "Usage: anetop export --format llama2c|hf") || !strings.Contains(stderr, "-force") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
