package checkpoint

// This file writes and reads Hugging Face transformers' Llama model
// directories (config.json and model.safetensors), and copies the weights
// out of anetop's own checkpoints.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/anetop/anetop/model"
)

// The files of a Hugging Face model directory that WriteHF writes and ReadHF
// reads.
const (
	HFConfigFile  = "config.json"
	HFWeightsFile = "model.safetensors"
)

// hfConfig is the part of transformers' LlamaConfig that anetop writes, in
// the order it is written.
type hfConfig struct {
	Architectures         []string `json:"architectures"`
	ModelType             string   `json:"model_type"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	HeadDim               int      `json:"head_dim"`
	VocabSize             int      `json:"vocab_size"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	RopeTheta             float64  `json:"rope_theta"`
	RopeScaling           any      `json:"rope_scaling"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	HiddenAct             string   `json:"hidden_act"`
	AttentionBias         bool     `json:"attention_bias"`
	MLPBias               bool     `json:"mlp_bias"`
	TorchDtype            string   `json:"torch_dtype"`
}

// HFConfigJSON returns the config.json of c as a transformers
// LlamaForCausalLM: the shape, max_position_embeddings = Seq, the norm
// epsilon and RoPE base, tied or not, float32, SiLU, no biases.
func HFConfigJSON(c model.Config) ([]byte, error) {
	c = c.Resolved()
	if err := c.CheckShape(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(hfConfig{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		HiddenSize: c.Dim, IntermediateSize: c.Hidden, NumHiddenLayers: c.Layers,
		NumAttentionHeads: c.Heads, NumKeyValueHeads: c.KVHeads, HeadDim: c.HeadDim,
		VocabSize: c.Vocab, MaxPositionEmbeddings: c.Seq, RMSNormEps: c.NormEps, RopeTheta: c.RopeTheta,
		TieWordEmbeddings: c.Tied, HiddenAct: "silu", TorchDtype: "float32",
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// permuteHeads reorders the rows of each head of w [heads·hd, cols] between
// llama2.c's RoPE layout, which rotates adjacent pairs (2i, 2i+1), and
// Hugging Face's, which rotates (i, i+hd/2) (rotate_half): Hugging Face's
// row j·hd/2 + i of a head is llama2.c's row 2i + j (j = 0, 1). Both rotate
// pair i by the same angle pos·θ^(−2i/hd), and q and k are permuted alike,
// so the attention scores are unchanged. toHF chooses the direction; w is
// not modified.
func permuteHeads(w []float32, heads, hd, cols int, toHF bool) []float32 {
	out := make([]float32, len(w))
	half := hd / 2
	for h := range heads {
		for i := range half {
			for j := range 2 {
				ll := (h*hd + 2*i + j) * cols    // llama2.c's row
				hf := (h*hd + j*half + i) * cols // Hugging Face's row
				if toHF {
					copy(out[hf:hf+cols], w[ll:ll+cols])
				} else {
					copy(out[ll:ll+cols], w[hf:hf+cols])
				}
			}
		}
	}
	return out
}

// HFTensors returns p's weights under Hugging Face Llama names and layout:
// wq and wk rows permuted for rotate_half RoPE (permuteHeads), everything
// else shared with p. A tied model has no lm_head.weight (transformers ties
// it to the embedding when tie_word_embeddings is true).
func HFTensors(p *model.Params) []Tensor {
	c := p.Config.Resolved()
	ts := make([]Tensor, 0, len(p.Tensors))
	for _, t := range p.Tensors {
		d := p.Data[t.Offset : t.Offset+t.Size : t.Offset+t.Size]
		switch t.Kind {
		case model.Wq:
			d = permuteHeads(d, c.Heads, c.HeadDim, c.Dim, true)
		case model.Wk:
			d = permuteHeads(d, c.KVHeads, c.HeadDim, c.Dim, true)
		}
		ts = append(ts, Tensor{Name: t.HFName(), Shape: slices.Clone(t.Shape), Data: d})
	}
	return ts
}

// WriteHF writes p as a Hugging Face transformers Llama model in dir:
// config.json (HFConfigJSON) and model.safetensors (HFTensors, float32, with
// anetop's CRC-32C checksums in its metadata, which transformers ignores).
// transformers loads it with AutoModelForCausalLM.from_pretrained(dir).
//
// If dir does not exist, both files are written into a temporary directory
// beside it, which is then renamed to dir: dir appears complete or not at
// all. If dir exists, each file is replaced atomically and other files (a
// tokenizer, say) are left alone. Either way every file is fsynced before
// its rename and the directory after.
func WriteHF(dir string, p *model.Params) (err error) {
	cfg, err := HFConfigJSON(p.Config)
	if err != nil {
		return fmt.Errorf("write Hugging Face model %s: %w", dir, err)
	}
	if len(p.Data) != p.Config.NumParams() {
		return fmt.Errorf("write Hugging Face model %s: %d weights for a model of %d parameters", dir, len(p.Data), p.Config.NumParams())
	}
	tensors := HFTensors(p)
	write := func(into string) error {
		if err := writeAtomic(filepath.Join(into, HFWeightsFile), func(w io.Writer) error {
			return EncodeCheckpoint(w, tensors, nil)
		}); err != nil {
			return err
		}
		return writeAtomic(filepath.Join(into, HFConfigFile), func(w io.Writer) error {
			_, err := w.Write(cfg)
			return err
		})
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("write Hugging Face model %s: it exists and is not a directory", dir)
	case err == nil:
		if err := write(dir); err != nil {
			return fmt.Errorf("write Hugging Face model: %w", err)
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("write Hugging Face model: %w", err)
	}
	clean := filepath.Clean(dir)
	parent := filepath.Dir(clean)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(clean)+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("write Hugging Face model %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			err = fmt.Errorf("write Hugging Face model %s: %w", dir, err)
		}
	}()
	if err = os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700
		return err
	}
	if err = write(tmp); err != nil {
		return err
	}
	if err = os.Rename(tmp, clean); err != nil {
		return err
	}
	return syncDir(parent)
}

// hfConfigIn is config.json as read: pointers tell a missing field (which
// gets LlamaConfig's default) from a zero one.
type hfConfigIn struct {
	ModelType             *string         `json:"model_type"`
	Architectures         []string        `json:"architectures"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	VocabSize             *int            `json:"vocab_size"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	RopeParameters        *struct {
		RopeType  *string  `json:"rope_type"`
		RopeTheta *float64 `json:"rope_theta"`
	} `json:"rope_parameters"`
	TieWordEmbeddings *bool   `json:"tie_word_embeddings"`
	HiddenAct         *string `json:"hidden_act"`
	AttentionBias     *bool   `json:"attention_bias"`
	MLPBias           *bool   `json:"mlp_bias"`
}

// maxHFConfig bounds config.json (real ones are a few kilobytes).
const maxHFConfig = 1 << 20

// parseHFConfig turns a Llama config.json into a model config, with
// transformers' LlamaConfig defaults for missing optional fields (kv heads
// = heads, head_dim = hidden/heads, max_position_embeddings 2048, eps 1e-6,
// θ 10000, untied). It refuses what anetop's model cannot compute: another
// model_type, an activation other than SiLU, biases, RoPE scaling.
func parseHFConfig(b []byte) (model.Config, error) {
	var in hfConfigIn
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&in); err != nil {
		return model.Config{}, fmt.Errorf("not a transformers config: %v", err)
	}
	if in.ModelType == nil || *in.ModelType != "llama" {
		mt := "missing"
		if in.ModelType != nil {
			mt = fmt.Sprintf("%q", *in.ModelType)
		}
		return model.Config{}, fmt.Errorf("model_type is %s; anetop imports Llama models (model_type \"llama\") only", mt)
	}
	var missing []string
	need := func(name string, v *int) int {
		if v == nil {
			missing = append(missing, name)
			return 0
		}
		return *v
	}
	c := model.Config{
		Dim:     need("hidden_size", in.HiddenSize),
		Hidden:  need("intermediate_size", in.IntermediateSize),
		Layers:  need("num_hidden_layers", in.NumHiddenLayers),
		Heads:   need("num_attention_heads", in.NumAttentionHeads),
		Vocab:   need("vocab_size", in.VocabSize),
		Seq:     2048,
		NormEps: 1e-6,
	}
	if len(missing) > 0 {
		return model.Config{}, fmt.Errorf("%s missing", strings.Join(missing, ", "))
	}
	if in.NumKeyValueHeads != nil {
		c.KVHeads = *in.NumKeyValueHeads
	}
	if in.HeadDim != nil {
		c.HeadDim = *in.HeadDim
	}
	if in.MaxPositionEmbeddings != nil {
		c.Seq = *in.MaxPositionEmbeddings
	}
	if in.RMSNormEps != nil {
		c.NormEps = *in.RMSNormEps
	}
	c.RopeTheta = model.DefaultRopeTheta
	if in.RopeTheta != nil {
		c.RopeTheta = *in.RopeTheta
	}
	if rp := in.RopeParameters; rp != nil {
		if rp.RopeType != nil && *rp.RopeType != "default" {
			return model.Config{}, fmt.Errorf("rope_parameters.rope_type is %q; anetop computes plain RoPE only (\"default\")", *rp.RopeType)
		}
		if rp.RopeTheta != nil {
			c.RopeTheta = *rp.RopeTheta
		}
	}
	if s := bytes.TrimSpace(in.RopeScaling); len(s) > 0 && !bytes.Equal(s, []byte("null")) {
		return model.Config{}, fmt.Errorf("rope_scaling is %s; anetop computes plain RoPE only (rope_scaling null)", s)
	}
	if in.TieWordEmbeddings != nil {
		c.Tied = *in.TieWordEmbeddings
	}
	if in.HiddenAct != nil && *in.HiddenAct != "silu" {
		return model.Config{}, fmt.Errorf("hidden_act is %q; anetop's FFN is SwiGLU (\"silu\")", *in.HiddenAct)
	}
	if in.AttentionBias != nil && *in.AttentionBias || in.MLPBias != nil && *in.MLPBias {
		return model.Config{}, errors.New("attention_bias or mlp_bias is true; anetop's model has no biases")
	}
	if err := c.CheckShape(); err != nil {
		return model.Config{}, err
	}
	return c.Resolved(), nil
}

// ReadHF reads a Hugging Face transformers Llama model directory written by
// WriteHF or by transformers (save_pretrained with safe serialization, one
// model.safetensors; F32, F16 or BF16): config.json gives the shape
// (max_position_embeddings becomes Seq), and wq and wk rows are permuted
// back to llama2.c's RoPE layout. Tensors anetop's model has no use for are
// refused, except RoPE inverse-frequency buffers. The error names the file
// and what is wrong.
func ReadHF(dir string) (*model.Params, error) {
	fail := func(file string, format string, a ...any) error {
		return fmt.Errorf("read Hugging Face model %s: %s", filepath.Join(dir, file), fmt.Sprintf(format, a...))
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("read Hugging Face model: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("read Hugging Face model %s: not a directory; pass the directory that holds %s and %s", dir, HFConfigFile, HFWeightsFile)
	}
	cf, err := os.Open(filepath.Join(dir, HFConfigFile))
	if err != nil {
		return nil, fmt.Errorf("read Hugging Face model: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(cf, maxHFConfig+1))
	cf.Close()
	if err != nil {
		return nil, fail(HFConfigFile, "%v", err)
	}
	if len(b) > maxHFConfig {
		return nil, fail(HFConfigFile, "larger than %d bytes; not a transformers config", maxHFConfig)
	}
	c, err := parseHFConfig(b)
	if err != nil {
		return nil, fail(HFConfigFile, "%v", err)
	}
	wpath := filepath.Join(dir, HFWeightsFile)
	if _, err := os.Stat(wpath); errors.Is(err, os.ErrNotExist) {
		for _, alt := range []struct{ name, fix string }{
			{"model.safetensors.index.json", "the weights are sharded, which anetop does not read: save them as one file " +
				"(model.save_pretrained(dir, max_shard_size=\"100GB\"))"},
			{"pytorch_model.bin", "the weights are a PyTorch pickle, which anetop does not read: re-save them as safetensors " +
				"(model.save_pretrained(dir, safe_serialization=True))"},
		} {
			if _, err := os.Stat(filepath.Join(dir, alt.name)); err == nil {
				return nil, fail(HFWeightsFile, "missing; %s", alt.fix)
			}
		}
	}
	sf, err := ReadSafetensors(wpath)
	if err != nil {
		return nil, fmt.Errorf("read Hugging Face model: %w", err)
	}
	// config.json is a claim until the tensors agree with it: check them
	// before allocating anything it sizes.
	ignore := func(name string) bool {
		// transformers ties lm_head to the embedding and ignores a stored copy.
		return strings.HasSuffix(name, "rotary_emb.inv_freq") || c.Tied && name == "lm_head.weight"
	}
	if m := checkTensors(sf, c, []TensorGroup{{}}, false, ignore); m != nil {
		switch {
		case m.extra:
			return nil, fail(HFWeightsFile, "tensor %s is not part of a Llama model as config.json describes it (%v)", m.name, c)
		case m.want != nil:
			return nil, fail(HFWeightsFile, "tensor %s has shape %v; config.json implies %v", m.name, m.got, m.want)
		}
		return nil, fail(HFWeightsFile, "tensor %s is missing (config.json says %v)", m.name, c)
	}
	if err := CheckMemory(c, 1); err != nil {
		return nil, fail(HFConfigFile, "%v", err)
	}
	p, err := model.NewParams(c)
	if err != nil {
		return nil, fail(HFConfigFile, "%v", err)
	}
	for _, t := range p.Tensors {
		d := sf.Tensor(t.HFName()).Data
		switch t.Kind {
		case model.Wq:
			d = permuteHeads(d, c.Heads, c.HeadDim, c.Dim, false)
		case model.Wk:
			d = permuteHeads(d, c.KVHeads, c.HeadDim, c.Dim, false)
		}
		copy(p.Data[t.Offset:t.Offset+t.Size], d)
	}
	if err := checkFinite(p, true); err != nil {
		return nil, fail(HFWeightsFile, "%v", err)
	}
	return p, nil
}

// Weights copies the weights of a model of config c out of an anetop
// checkpoint f (read from path, which errors name): the tensors named by
// model.Tensor.HFName. anetop's checkpoints use Hugging Face's names but
// keep llama2.c's row order (its RoPE rotates adjacent pairs), so nothing is
// permuted here; WriteHF does that. Other tensors, such as the optimizer's
// moments, are ignored (CheckTensors refuses them). Missing tensors and
// wrong shapes are errors found before anything sized by c is allocated,
// as are a c whose weights would not fit in memory and non-finite weights.
func Weights(f *File, c model.Config, path string) (*model.Params, error) {
	if err := c.CheckShape(); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	c = c.Resolved()
	if m := checkTensors(f, c, []TensorGroup{{}}, true, nil); m != nil {
		return nil, fmt.Errorf("checkpoint %s: its metadata and its tensors disagree: %v (its config is %v); "+
			"the file is corrupt or was edited: use another checkpoint", path, m, c)
	}
	if err := CheckMemory(c, 1); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	p, err := model.NewParams(c)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	for _, t := range p.Tensors {
		copy(p.Data[t.Offset:], f.Tensor(t.HFName()).Data)
	}
	if err := checkFinite(p, true); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return p, nil
}
