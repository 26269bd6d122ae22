package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/model"
)

// TestReadInitWeights writes one set of weights in every format --init
// takes, each with its own writer, and reads each back through --init's
// format detection.
func TestReadInitWeights(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 160, Layers: 2, Heads: 4, KVHeads: 2, Seq: 32, Vocab: 96, Tied: false}.Resolved()
	p, err := model.NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	p.Init(9)
	dir := t.TempDir()

	bin := filepath.Join(dir, "model.bin")
	if err := checkpoint.WriteLlama2CVersion(bin, p, 1); err != nil {
		t.Fatal(err)
	}
	hf := filepath.Join(dir, "hf")
	if err := checkpoint.WriteHF(hf, p); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(c)
	var ts []checkpoint.Tensor
	for _, tn := range p.Tensors {
		ts = append(ts, checkpoint.Tensor{Name: tn.HFName(), Shape: tn.Shape, Data: p.Data[tn.Offset : tn.Offset+tn.Size]})
	}
	ckpt := filepath.Join(run, checkpoint.StepName(7))
	if err := checkpoint.Save(ckpt, ts, map[string]string{metaConfig: string(cfg), checkpoint.MetaStep: "7"}); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{bin, hf, filepath.Join(hf, checkpoint.HFWeightsFile), ckpt, run} {
		got, err := readInitWeights(path, func(s string) { t.Errorf("%s: unexpected warning %s", path, s) })
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got.Config.Resolved() != c {
			t.Errorf("%s: config %+v, want %+v", path, got.Config, c)
			continue
		}
		for i := range p.Data {
			if math.Float32bits(got.Data[i]) != math.Float32bits(p.Data[i]) {
				t.Errorf("%s: weight %d is %v, want %v", path, i, got.Data[i], p.Data[i])
				break
			}
		}
	}

	if _, err := readInitWeights(filepath.Join(dir, "missing.bin"), nil); err == nil || !strings.Contains(err.Error(), "missing.bin") {
		t.Errorf("missing file: %v, want an error naming it", err)
	}
	junk := filepath.Join(dir, "junk.bin")
	os.WriteFile(junk, []byte("not a model"), 0o644)
	if _, err := readInitWeights(junk, nil); err == nil || !strings.Contains(err.Error(), "junk.bin") {
		t.Errorf("junk file: %v, want an error naming it", err)
	}
}
