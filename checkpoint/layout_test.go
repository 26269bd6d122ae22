package checkpoint

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/anetop/anetop/model"
)

// layoutFile is a file holding the weights of c and, for each prefix, a
// copy of them under that prefix, as the training command's checkpoints do.
func layoutFile(t *testing.T, c model.Config, prefixes ...string) *File {
	t.Helper()
	p := randomParams(t, c, 3)
	f := &File{}
	for _, pre := range append([]string{""}, prefixes...) {
		for _, tn := range p.Tensors {
			f.Tensors = append(f.Tensors, Tensor{Name: pre + tn.HFName(), Shape: tn.Shape, Data: slices.Clone(p.Data[tn.Offset : tn.Offset+tn.Size])})
		}
	}
	return f
}

var layoutConfig = model.Config{Dim: 8, Hidden: 8, Layers: 2, Heads: 2, Seq: 4, Vocab: 5, Tied: true}

// heapGrowth runs fn and returns how much the heap grew meanwhile.
func heapGrowth(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestCheckTensors(t *testing.T) {
	c := layoutConfig
	moments := []TensorGroup{{}, {Prefix: "exp_avg.", Optional: true}, {Prefix: "exp_avg_sq.", Optional: true}}
	required := []TensorGroup{{}, {Prefix: "exp_avg."}, {Prefix: "exp_avg_sq."}}
	more := c
	more.Layers = 3
	huge := c
	huge.Layers = 1 << 24 // the most CheckShape allows: 2^24 × 9 tensors to list
	untied := c
	untied.Tied = false
	for _, tc := range []struct {
		name   string
		file   *File
		c      model.Config
		groups []TensorGroup
		want   string // "" for no error
	}{
		{"weights", layoutFile(t, c), c, nil, ""},
		{"weights and moments", layoutFile(t, c, "exp_avg.", "exp_avg_sq."), c, moments, ""},
		{"moments required", layoutFile(t, c, "exp_avg.", "exp_avg_sq."), c, required, ""},
		{"weights only, moments optional", layoutFile(t, c), c, moments, ""},
		{"weights only, moments required", layoutFile(t, c), c, required, "tensor exp_avg.model.embed_tokens.weight is missing"},
		{"moments without a group", layoutFile(t, c, "exp_avg."), c, nil, "tensor exp_avg.model.embed_tokens.weight is not part of that model"},
		{"one moment of two", layoutFile(t, c, "exp_avg."), c, moments, ""},
		{"part of a moment", func() *File {
			f := layoutFile(t, c, "exp_avg.")
			f.Tensors = f.Tensors[:len(f.Tensors)-1]
			return f
		}(), c, moments, "tensor exp_avg.model.norm.weight is missing"},
		{"config says more layers", layoutFile(t, c, "exp_avg.", "exp_avg_sq."), more, moments, "tensor model.layers.2.input_layernorm.weight is missing"},
		{"config says 2^24 layers", layoutFile(t, c), huge, nil, "tensor model.layers.2.input_layernorm.weight is missing"},
		{"file holds more layers", layoutFile(t, more, "exp_avg.", "exp_avg_sq."), c, moments, "tensor model.layers.2."},
		{"untied config, tied file", layoutFile(t, c), untied, nil, "tensor lm_head.weight is missing"},
		{"tied config, untied file", layoutFile(t, untied), c, nil, "tensor lm_head.weight is not part of that model"},
		{"shape", func() *File {
			f := layoutFile(t, c)
			f.Tensors[0].Shape = []int{8, 5}
			return f
		}(), c, nil, "tensor model.embed_tokens.weight has shape [8 5], the config implies [5 8]"},
		{"bad config", layoutFile(t, c), model.Config{Dim: -1}, nil, "Dim is -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			grew := heapGrowth(func() { err = CheckTensors(tc.file, tc.c, "ck.safetensors", tc.groups...) })
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error about %q", tc.want)
			}
			for _, s := range []string{"ck.safetensors", tc.want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tc.c.Dim > 0 && !strings.Contains(err.Error(), "its metadata and its tensors disagree") {
				t.Errorf("error %q does not say the metadata and the tensors disagree", err)
			}
			// The work is bounded by the file, not by what the config claims.
			if grew > 1<<20 {
				t.Errorf("CheckTensors allocated %d bytes", grew)
			}
		})
	}
}

func TestCheckFinite(t *testing.T) {
	f := layoutFile(t, layoutConfig, "exp_avg.")
	if err := CheckFinite(f, "ck.safetensors"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		g := layoutFile(t, layoutConfig, "exp_avg.")
		last := &g.Tensors[len(g.Tensors)-1]
		last.Data[1] = v
		err := CheckFinite(g, "ck.safetensors")
		if err == nil || !strings.Contains(err.Error(), "ck.safetensors: tensor "+last.Name+" element 1 is ") ||
			!strings.Contains(err.Error(), "diverged") {
			t.Errorf("%v: %v", v, err)
		}
	}
}

func TestCheckMemory(t *testing.T) {
	defer func(f func() int64) { totalMemory = f }(totalMemory)
	c := layoutConfig.Resolved()
	bytes := int64(4 * c.NumParams())
	for _, tc := range []struct {
		mem    int64
		copies int
		ok     bool
	}{
		{0, 1, true}, // unknown
		{bytes, 1, true},
		{bytes - 1, 1, false},
		{3 * bytes, 3, true},
		{3*bytes - 1, 3, false},
	} {
		totalMemory = func() int64 { return tc.mem }
		err := CheckMemory(c, tc.copies)
		if (err == nil) != tc.ok {
			t.Errorf("%d bytes of memory, %d copies: %v", tc.mem, tc.copies, err)
		}
		if err != nil && (!strings.Contains(err.Error(), c.String()) || !strings.Contains(err.Error(), "physical memory")) {
			t.Errorf("error %q does not name the config and the memory", err)
		}
	}
	// The real machine: a trillion-parameter config never fits.
	totalMemory = func() int64 { return 64 << 30 }
	big := model.Config{Dim: 1 << 14, Hidden: 1 << 16, Layers: 300, Heads: 128, Seq: 4, Vocab: 1 << 16}
	if err := CheckMemory(big, 1); err == nil || !strings.Contains(err.Error(), "GiB") {
		t.Errorf("huge config: %v", err)
	}
}

// TestWeightsHugeConfig: a checkpoint whose config claims far more layers
// than it holds is refused before the parameters are allocated, and a
// config too large for the memory is refused by name.
func TestWeightsHugeConfig(t *testing.T) {
	f := layoutFile(t, layoutConfig)
	c := layoutConfig
	c.Layers = 100000
	var err error
	grew := heapGrowth(func() { _, err = Weights(f, c, "ck.safetensors") })
	if err == nil || !strings.Contains(err.Error(), "model.layers.2.input_layernorm.weight is missing") ||
		!strings.Contains(err.Error(), "ck.safetensors") || !strings.Contains(err.Error(), "disagree") {
		t.Errorf("100000 layers: %v", err)
	}
	if grew > 1<<20 {
		t.Errorf("Weights allocated %d bytes before refusing", grew)
	}

	defer func(f func() int64) { totalMemory = f }(totalMemory)
	totalMemory = func() int64 { return 100 }
	if _, err := Weights(f, layoutConfig, "ck.safetensors"); err == nil || !strings.Contains(err.Error(), "physical memory") {
		t.Errorf("too little memory: %v", err)
	}
}

// TestReadHFHugeConfig: a config.json claiming more layers than
// model.safetensors holds is refused before anything is allocated.
func TestReadHFHugeConfig(t *testing.T) {
	p := randomParams(t, layoutConfig, 1)
	dir := filepath.Join(t.TempDir(), "m")
	if err := WriteHF(dir, p); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, HFConfigFile))
	json.Unmarshal(b, &m)
	m["num_hidden_layers"] = 100000
	b, _ = json.Marshal(m)
	os.WriteFile(filepath.Join(dir, HFConfigFile), b, 0o644)
	var err error
	grew := heapGrowth(func() { _, err = ReadHF(dir) })
	if err == nil || !strings.Contains(err.Error(), "model.layers.2.input_layernorm.weight is missing") {
		t.Errorf("100000 layers: %v", err)
	}
	if grew > 16<<20 {
		t.Errorf("ReadHF allocated %d bytes before refusing", grew)
	}
}

// TestFormatErrors: files that are not in a format at all get a
// *FormatError saying why, so callers can report every format they tried;
// files in the format but corrupt do not.
func TestFormatErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	junk := make([]byte, 1234)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	junkPath := write("junk", junk)
	var fe *FormatError
	if err := SniffSafetensors(junkPath); !errors.As(err, &fe) || fe.Format != "safetensors file" ||
		!strings.Contains(fe.Reason, "does not fit in a file of 1234 bytes") || !strings.Contains(err.Error(), junkPath) {
		t.Errorf("junk as safetensors: %v", err)
	}
	if _, err := Load(junkPath); !errors.As(err, &fe) {
		t.Errorf("Load(junk): %v is not a *FormatError", err)
	}
	if err := SniffLlama2C(junkPath); !errors.As(err, &fe) || fe.Format != "llama2.c model.bin" ||
		!strings.HasPrefix(fe.Reason, "the header's ") || strings.Contains(fe.Reason, ";") || !strings.Contains(err.Error(), junkPath) {
		t.Errorf("junk as llama2.c: %v", err)
	}

	// A real model.bin: llama2.c's sniff accepts it, safetensors' refuses it.
	p := randomParams(t, layoutConfig, 2)
	bin := filepath.Join(dir, "model.bin")
	if err := WriteLlama2C(bin, p); err != nil {
		t.Fatal(err)
	}
	if err := SniffLlama2C(bin); err != nil {
		t.Errorf("model.bin: %v", err)
	}
	if err := SniffSafetensors(bin); !errors.As(err, &fe) {
		t.Errorf("model.bin as safetensors: %v", err)
	}
	// Truncated: the size no longer matches the header.
	b, _ := os.ReadFile(bin)
	err := SniffLlama2C(write("trunc.bin", b[:len(b)-4]))
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "truncated") {
		t.Errorf("truncated model.bin: %v", err)
	}
	// A version-2 file has llama2.c's magic: it is a model.bin anetop
	// cannot read, not another format.
	v2 := make([]byte, 256)
	copy(v2, []byte{0x32, 0x34, 0x6b, 0x61, 2, 0, 0, 0})
	if err := SniffLlama2C(write("v2.bin", v2)); err == nil || errors.As(err, &fe) {
		t.Errorf("version 2: %v", err)
	}
	// A checkpoint with a flipped data byte is corrupt, not foreign.
	ck := filepath.Join(dir, "ck.safetensors")
	if err := Save(ck, layoutFile(t, layoutConfig).Tensors, nil); err != nil {
		t.Fatal(err)
	}
	if err := SniffSafetensors(ck); err != nil {
		t.Errorf("checkpoint: %v", err)
	}
	b, _ = os.ReadFile(ck)
	b[len(b)-1] ^= 1
	if _, err := Load(write("flip.safetensors", b)); err == nil || errors.As(err, &fe) {
		t.Errorf("corrupt checkpoint: %v", err)
	}
}
