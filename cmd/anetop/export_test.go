package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/data"
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
	// An existing empty directory is filled; once it holds something it is
	// refused, then replaced with --force.
	hf := t.TempDir()
	if code, _, stderr := runExport("--format", "hf", "--out", hf, ck); code != 0 {
		t.Errorf("existing empty dir: exit %d %s", code, stderr)
	}
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

// craftCheckpoint writes a checkpoint whose metadata claims config claim
// over the tensors of a model of config have (weights, and both Adam
// moments if moments), after edit has had its way with the tensors, with
// valid checksums: the header is consistent, only the claim is wrong.
func craftCheckpoint(t *testing.T, path string, claim, have model.Config, moments bool, edit func([]checkpoint.Tensor)) {
	t.Helper()
	p, err := model.NewParams(have)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(5)
	var ts []checkpoint.Tensor
	for _, tn := range p.Tensors {
		ts = append(ts, checkpoint.Tensor{Name: tn.HFName(), Shape: tn.Shape, Data: slices.Clone(p.Data[tn.Offset : tn.Offset+tn.Size])})
		if moments {
			ts = append(ts,
				checkpoint.Tensor{Name: momentPrefix1 + tn.HFName(), Shape: tn.Shape, Data: make([]float32, tn.Size)},
				checkpoint.Tensor{Name: momentPrefix2 + tn.HFName(), Shape: tn.Shape, Data: make([]float32, tn.Size)})
		}
	}
	if edit != nil {
		edit(ts)
	}
	cfg, _ := json.Marshal(claim.Resolved())
	if err := checkpoint.Save(path, ts, map[string]string{metaConfig: string(cfg), checkpoint.MetaStep: "3", metaData: "builtin"}); err != nil {
		t.Fatal(err)
	}
}

// setTensor returns an edit that sets element i of the tensor called name.
func setTensor(name string, i int, v float32) func([]checkpoint.Tensor) {
	return func(ts []checkpoint.Tensor) {
		for _, t := range ts {
			if t.Name == name {
				t.Data[i] = v
				return
			}
		}
		panic("no tensor " + name)
	}
}

// TestCheckpointDisagrees: a checkpoint whose config and tensors disagree,
// or whose values are not finite, is refused by every command that reads
// one (sample, export, --init, and --resume through verifyCheckpoint),
// with an error naming the file and the tensor, before anything the config
// sizes is allocated: 100000 layers claimed over a 2-layer file is an
// error, not an out-of-memory crash.
func TestCheckpointDisagrees(t *testing.T) {
	c := exportTestConfig.Resolved()
	dir := t.TempDir()
	huge := c
	huge.Layers = 100000
	three := c
	three.Layers = 3
	untied := c
	untied.Tied = false
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name        string
		claim, have model.Config
		moments     bool
		edit        func([]checkpoint.Tensor)
		want        string // "" if valid
		resumeWant  string // what verifyCheckpoint(ck, true) says, if it differs from want
	}{
		{"valid", c, c, true, nil, "", ""},
		{"weights only", c, c, false, nil, "", "tensor exp_avg.model.embed_tokens.weight is missing"},
		{"100000 layers", huge, c, true, nil, "tensor model.layers.2.input_layernorm.weight is missing", ""},
		{"extra layer", c, three, true, nil, "tensor model.layers.2.input_layernorm.weight is not part of that model", ""},
		{"untied claim", untied, c, true, nil, "tensor lm_head.weight is missing", ""},
		{"wrong shape", func() model.Config { d := c; d.Vocab = 11; return d }(), c, true, nil,
			"tensor model.embed_tokens.weight has shape [10 16], the config implies [11 16]", ""},
		{"partial moment", c, c, true, func(ts []checkpoint.Tensor) { ts[1].Name = "exp_avg.stray" },
			"tensor exp_avg.model.embed_tokens.weight is missing", ""},
		{"NaN weight", c, c, true, setTensor("model.norm.weight", 2, nan), "tensor model.norm.weight element 2 is NaN", ""},
		{"Inf moment", c, c, true, setTensor(momentPrefix1+"model.layers.1.mlp.up_proj.weight", 0, float32(math.Inf(-1))),
			"tensor exp_avg.model.layers.1.mlp.up_proj.weight element 0 is -Inf", ""},
		{"negative second moment", c, c, true, setTensor(momentPrefix2+"model.norm.weight", 1, -1),
			"tensor exp_avg_sq.model.norm.weight element 1 is -1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors")
			craftCheckpoint(t, path, tc.claim, tc.have, tc.moments, tc.edit)
			check := func(what string, err error, want string) {
				t.Helper()
				if want == "" {
					if err != nil {
						t.Errorf("%s: %v", what, err)
					}
					return
				}
				if err == nil {
					t.Errorf("%s: accepted; want an error about %q", what, want)
					return
				}
				for _, s := range []string{path, want} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: error %q does not mention %q", what, err, s)
					}
				}
			}
			ck, err := openCheckpoint(path, func(s string) { t.Errorf("warning %s", s) })
			check("openCheckpoint", err, tc.want)
			_, err = readInitWeights(path, func(s string) { t.Errorf("warning %s", s) })
			check("--init", err, tc.want)
			code, _, stderr := runExport("--format", "hf", "--out", filepath.Join(t.TempDir(), "hf"), path)
			if tc.want != "" && (code != exitError || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "goroutine")) {
				t.Errorf("export: exit %d, %s", code, stderr)
			}
			code, _, stderr = runSample(t, "--ckpt", path, "--n", "2")
			if tc.want != "" && (code != exitError || !strings.Contains(stderr, tc.want)) {
				t.Errorf("sample: exit %d, %s", code, stderr)
			}
			// The resume path: the file as a bare --resume finds it in a
			// run directory (no openCheckpoint), checked by verifyCheckpoint.
			f, err := checkpoint.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if ck == nil {
				ck = &checkpoint.Checkpoint{Path: path, Step: 3, File: f}
			}
			want := tc.want
			if tc.resumeWant != "" {
				want = tc.resumeWant
			}
			got, err := verifyCheckpoint(ck, true)
			check("verifyCheckpoint", err, want)
			if err == nil && got != c {
				t.Errorf("verifyCheckpoint: config %v, want %v", got, c)
			}
		})
	}
}

// TestNotACheckpoint: given a file in no format anetop reads, or a llama2.c
// model.bin where a checkpoint is wanted, the error says which formats were
// tried and why each refused it.
func TestNotACheckpoint(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.safetensors")
	b := make([]byte, 1234)
	for i := range b {
		b[i] = byte(i*13 + 5)
	}
	os.WriteFile(junk, b, 0o644)
	p, err := model.NewParams(exportTestConfig)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(1)
	bin := filepath.Join(dir, "model.bin")
	if err := checkpoint.WriteLlama2C(bin, p); err != nil {
		t.Fatal(err)
	}

	code, _, stderr := runExport("--format", "hf", "--out", filepath.Join(dir, "out"), junk)
	for _, s := range []string{junk, "not a safetensors file (header length", "does not fit in a file of 1234 bytes", "not a llama2.c model.bin (the header's "} {
		if code != exitError || !strings.Contains(stderr, s) {
			t.Errorf("export junk: exit %d, %q does not mention %q", code, stderr, s)
		}
	}
	_, err = readInitWeights(junk, nil)
	for _, s := range []string{"--init " + junk, "not a safetensors file (header length", "not a llama2.c model.bin (the header's "} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("--init junk: %v does not mention %q", err, s)
		}
	}
	code, _, stderr = runSample(t, "--ckpt", bin)
	if code != exitError || !strings.Contains(stderr, bin+" is a llama2.c model.bin, not an anetop checkpoint") || strings.Contains(stderr, "does not fit") {
		t.Errorf("sample model.bin: exit %d, %s", code, stderr)
	}
	// A truncated checkpoint is still reported as a corrupt safetensors
	// file, not as an unknown format.
	runDir := t.TempDir()
	saveTrainingCheckpoint(t, runDir, exportTestConfig, 1, 1)
	ck, _ := os.ReadFile(filepath.Join(runDir, checkpoint.StepName(1)))
	trunc := filepath.Join(dir, "trunc.safetensors")
	os.WriteFile(trunc, ck[:len(ck)-8], 0o644)
	code, _, stderr = runExport("--format", "hf", "--out", filepath.Join(dir, "out"), trunc)
	if code != exitError || !strings.Contains(stderr, "not a valid safetensors file") || strings.Contains(stderr, "llama2.c") {
		t.Errorf("export truncated: exit %d, %s", code, stderr)
	}
}

// TestExportLlama2CTokenizer: a llama2.c export of a run whose tokenizer is
// known writes it as tokenizer.bin beside model.bin (run.c's -z), the same
// pieces and scores; a different tokenizer.bin already there is kept
// unless --force.
func TestExportLlama2CTokenizer(t *testing.T) {
	run := t.TempDir()
	if code, _, errs := runCLI(smallRun(run, "--steps", "1")...); code != exitOK {
		t.Fatalf("training: exit %d: %s", code, errs)
	}
	out := t.TempDir()
	bin := filepath.Join(out, "model.bin")
	code, stdout, stderr := runExport("--format", "llama2c", "--out", bin, run)
	tokPath := filepath.Join(out, "tokenizer.bin")
	if code != 0 || !strings.Contains(stdout, "-z "+tokPath) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the run command with %s", code, stdout, stderr, tokPath)
	}
	want, err := data.Builtin(data.BuiltinVocab)
	if err != nil {
		t.Fatal(err)
	}
	got, err := data.LoadTokenizer(tokPath, data.BuiltinVocab)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Pieces, want.Tokenizer.Pieces) || !slices.Equal(got.Scores, want.Tokenizer.Scores) {
		t.Error("the exported tokenizer.bin is not the run's tokenizer")
	}
	// Another tokenizer in its place is kept without --force.
	other := &data.Tokenizer{MaxLen: got.MaxLen, Pieces: slices.Clone(got.Pieces), Scores: slices.Clone(got.Scores)}
	other.Scores[300]++
	if err := data.WriteTokenizer(tokPath, other); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(tokPath)
	if code, _, stderr := runExport("--format", "llama2c", "--force", "--out", bin, run); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(tokPath); bytes.Equal(after, before) {
		t.Error("--force kept a different tokenizer.bin")
	}
	if err := data.WriteTokenizer(tokPath, other); err != nil {
		t.Fatal(err)
	}
	os.Remove(bin)
	code, stdout, stderr = runExport("--format", "llama2c", "--out", bin, run)
	if after, _ := os.ReadFile(tokPath); code != 0 || !bytes.Equal(after, before) || !strings.Contains(stderr, "not replaced") {
		t.Errorf("exit %d, stderr %q: a different tokenizer.bin must be kept, and the user told", code, stderr)
	}
}
