package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

// readSTForTest parses a safetensors file with nothing but the published
// format (8-byte length, JSON header, F32 little-endian data), so the HF
// test does not trust the package's own reader.
func readSTForTest(t *testing.T, path string) map[string]struct {
	shape []int
	data  []float64
} {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	body := b[8+n:]
	out := map[string]struct {
		shape []int
		data  []float64
	}{}
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		if e.DType != "F32" {
			t.Fatalf("%s: dtype %s, want F32", name, e.DType)
		}
		d := make([]float64, (e.Offsets[1]-e.Offsets[0])/4)
		for i := range d {
			d[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(body[e.Offsets[0]+4*int64(i):])))
		}
		out[name] = struct {
			shape []int
			data  []float64
		}{e.Shape, d}
	}
	return out
}

// hfForward is an independent float64 forward pass in Hugging Face's
// LlamaForCausalLM convention, reading only an exported directory: its
// config.json as a generic JSON object and the tensors by their HF names.
// Activations are token-major [S][D] (the reference is channel-first),
// RoPE is rotate_half over (i, i+hd/2), and query head h reads key/value
// head h/(heads/kv_heads) (repeat_kv). It returns logits[t][v].
func hfForward(t *testing.T, dir string, tokens []int) [][]float64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	num := func(k string) float64 {
		v, ok := cfg[k].(float64)
		if !ok {
			t.Fatalf("config.json: %s is %v", k, cfg[k])
		}
		return v
	}
	D, L := int(num("hidden_size")), int(num("num_hidden_layers"))
	H, KV, hd := int(num("num_attention_heads")), int(num("num_key_value_heads")), int(num("head_dim"))
	V, eps, theta := int(num("vocab_size")), num("rms_norm_eps"), num("rope_theta")
	tie := cfg["tie_word_embeddings"].(bool)
	w := readSTForTest(t, filepath.Join(dir, "model.safetensors"))
	get := func(name string, shape ...int) []float64 {
		e, ok := w[name]
		if !ok {
			t.Fatalf("model.safetensors has no %s", name)
		}
		if !slices.Equal(e.shape, shape) {
			t.Fatalf("%s has shape %v, want %v", name, e.shape, shape)
		}
		return e.data
	}
	// y = x W^T for W [out, in] (nn.Linear)
	lin := func(x []float64, W []float64, out int) []float64 {
		in := len(x)
		y := make([]float64, out)
		for o := range out {
			for i := range in {
				y[o] += W[o*in+i] * x[i]
			}
		}
		return y
	}
	norm := func(x, g []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+eps)
		y := make([]float64, len(x))
		for i := range x {
			y[i] = g[i] * (x[i] * r)
		}
		return y
	}
	ropeHalf := func(v []float64, heads, pos int) {
		for h := range heads {
			x := v[h*hd : (h+1)*hd]
			for i := range hd / 2 {
				a := float64(pos) / math.Pow(theta, float64(2*i)/float64(hd))
				c, s := math.Cos(a), math.Sin(a)
				x1, x2 := x[i], x[i+hd/2]
				x[i], x[i+hd/2] = x1*c-x2*s, x2*c+x1*s
			}
		}
	}
	S := len(tokens)
	emb := get("model.embed_tokens.weight", V, D)
	xs := make([][]float64, S)
	for p, tok := range tokens {
		xs[p] = slices.Clone(emb[tok*D : (tok+1)*D])
	}
	for l := range L {
		pre := "model.layers." + itoa(l) + "."
		qW, kW := get(pre+"self_attn.q_proj.weight", H*hd, D), get(pre+"self_attn.k_proj.weight", KV*hd, D)
		vW, oW := get(pre+"self_attn.v_proj.weight", KV*hd, D), get(pre+"self_attn.o_proj.weight", D, H*hd)
		qs, ks, vs := make([][]float64, S), make([][]float64, S), make([][]float64, S)
		for p := range S {
			h := norm(xs[p], get(pre+"input_layernorm.weight", D))
			qs[p], ks[p], vs[p] = lin(h, qW, H*hd), lin(h, kW, KV*hd), lin(h, vW, KV*hd)
			ropeHalf(qs[p], H, p)
			ropeHalf(ks[p], KV, p)
		}
		for p := range S {
			att := make([]float64, H*hd)
			for h := range H {
				kvh := h / (H / KV)
				sc := make([]float64, p+1)
				mx := math.Inf(-1)
				for u := range p + 1 {
					for i := range hd {
						sc[u] += qs[p][h*hd+i] * ks[u][kvh*hd+i]
					}
					sc[u] /= math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[u])
				}
				var z float64
				for u := range sc {
					sc[u] = math.Exp(sc[u] - mx)
					z += sc[u]
				}
				for u := range sc {
					for i := range hd {
						att[h*hd+i] += sc[u] / z * vs[u][kvh*hd+i]
					}
				}
			}
			o := lin(att, oW, D)
			for i := range D {
				xs[p][i] += o[i]
			}
		}
		I := int(num("intermediate_size"))
		gW, uW, dW := get(pre+"mlp.gate_proj.weight", I, D), get(pre+"mlp.up_proj.weight", I, D), get(pre+"mlp.down_proj.weight", D, I)
		for p := range S {
			h := norm(xs[p], get(pre+"post_attention_layernorm.weight", D))
			g, u := lin(h, gW, I), lin(h, uW, I)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			d := lin(g, dW, D)
			for i := range D {
				xs[p][i] += d[i]
			}
		}
	}
	head := emb
	if !tie {
		head = get("lm_head.weight", V, D)
	} else if _, ok := w["lm_head.weight"]; ok {
		t.Error("tied model stores lm_head.weight")
	}
	logits := make([][]float64, S)
	for p := range S {
		logits[p] = lin(norm(xs[p], get("model.norm.weight", D)), head, V)
	}
	return logits
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// maxLogitDiff compares hfForward's logits [t][v] with the reference's
// channel-first [v·S + t].
func maxLogitDiff(hf [][]float64, refLogits []float64, s int) float64 {
	var m float64
	for t := range hf {
		for v, x := range hf[t] {
			m = math.Max(m, math.Abs(x-refLogits[v*s+t]))
		}
	}
	return m
}

// hfTolerance is the largest logit difference accepted between the
// independent HF-convention forward and model/ref on the same float32
// weights: both run in float64, so only summation order differs (~1e-14
// here); a wrong permutation gives differences of order 0.1–1.
const hfTolerance = 1e-9

// TestHFExportMatchesReference exports models to Hugging Face format and
// runs an independent forward pass in HF's conventions on the files; its
// logits match model/ref on the original weights. Writing wq and wk
// without the RoPE permutation must not match, or the test proves nothing.
func TestHFExportMatchesReference(t *testing.T) {
	for _, c := range []model.Config{
		{Dim: 16, Hidden: 24, Layers: 2, Heads: 4, Seq: 7, Vocab: 11, Tied: true},
		{Dim: 16, Hidden: 20, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 6, Seq: 6, Vocab: 13, RopeTheta: 500000, NormEps: 1e-6},
	} {
		t.Run(c.String(), func(t *testing.T) {
			p := randomParams(t, c, 3)
			for i := range p.Data { // larger weights: positions matter visibly
				p.Data[i] *= 15
			}
			p.Config = p.Config.Resolved()
			m := ref.FromParams(p)
			tokens := make([]int, m.Config.Seq)
			for i := range tokens {
				tokens[i] = (5*i + 3) % m.Config.Vocab
			}
			pass, err := m.Forward(tokens, tokens)
			if err != nil {
				t.Fatal(err)
			}

			dir := filepath.Join(t.TempDir(), "hf")
			if err := WriteHF(dir, p); err != nil {
				t.Fatal(err)
			}
			diff := maxLogitDiff(hfForward(t, dir, tokens), pass.Logits, m.Config.Seq)
			t.Logf("max |logit difference| = %.3g", diff)
			if diff > hfTolerance {
				t.Errorf("HF forward differs from the reference by %g (tolerance %g)", diff, hfTolerance)
			}

			// The negative control: the same export with wq and wk in
			// llama2.c's row order.
			bad := filepath.Join(t.TempDir(), "unpermuted")
			if err := os.Mkdir(bad, 0o755); err != nil {
				t.Fatal(err)
			}
			var ts []Tensor
			for _, tn := range p.Tensors {
				ts = append(ts, Tensor{Name: tn.HFName(), Shape: tn.Shape, Data: p.Data[tn.Offset : tn.Offset+tn.Size]})
			}
			if err := Save(filepath.Join(bad, HFWeightsFile), ts, nil); err != nil {
				t.Fatal(err)
			}
			cfg, _ := HFConfigJSON(p.Config)
			if err := os.WriteFile(filepath.Join(bad, HFConfigFile), cfg, 0o644); err != nil {
				t.Fatal(err)
			}
			badDiff := maxLogitDiff(hfForward(t, bad, tokens), pass.Logits, m.Config.Seq)
			t.Logf("without the permutation: max |logit difference| = %.3g", badDiff)
			if badDiff < 1e-3 {
				t.Errorf("an export without the RoPE permutation matches too (%g): the test cannot tell", badDiff)
			}
		})
	}
}

// TestPermuteHeads checks the row permutation on a hand-worked example:
// head width 4, two heads, one column. llama2.c pairs rows (0,1) and (2,3)
// of a head; Hugging Face pairs (0,2) and (1,3).
func TestPermuteHeads(t *testing.T) {
	ll := []float32{10, 11, 12, 13, 20, 21, 22, 23}
	hf := permuteHeads(ll, 2, 4, 1, true)
	if want := []float32{10, 12, 11, 13, 20, 22, 21, 23}; !slices.Equal(hf, want) {
		t.Fatalf("to HF: %v, want %v", hf, want)
	}
	ll6 := []float32{0, 1, 2, 3, 4, 5} // head width 6: pairs (0,1),(2,3),(4,5) → (0,3),(1,4),(2,5)
	if got, want := permuteHeads(ll6, 1, 6, 1, true), []float32{0, 2, 4, 1, 3, 5}; !slices.Equal(got, want) {
		t.Fatalf("to HF, width 6: %v, want %v", got, want)
	}
	if back := permuteHeads(hf, 2, 4, 1, false); !slices.Equal(back, ll) {
		t.Fatalf("back: %v, want %v", back, ll)
	}
	// Two columns: whole rows move.
	if got, want := permuteHeads([]float32{0, 1, 2, 3, 4, 5, 6, 7}, 1, 4, 2, true), []float32{0, 1, 4, 5, 2, 3, 6, 7}; !slices.Equal(got, want) {
		t.Fatalf("two columns: %v, want %v", got, want)
	}
}

// TestHFConfigAndRoundTrip checks config.json's fields and that ReadHF
// undoes WriteHF bit-exactly, tied and untied.
func TestHFConfigAndRoundTrip(t *testing.T) {
	for _, c := range []model.Config{
		{Dim: 16, Hidden: 24, Layers: 2, Heads: 4, Seq: 32, Vocab: 11, Tied: true},
		{Dim: 16, Hidden: 20, Layers: 1, Heads: 4, KVHeads: 1, HeadDim: 6, Seq: 8, Vocab: 5, RopeTheta: 1e6, NormEps: 1e-6},
	} {
		p := randomParams(t, c, 9)
		dir := filepath.Join(t.TempDir(), "out")
		if err := WriteHF(dir, p); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, HFConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		r := p.Config
		for k, v := range map[string]any{
			"architectures": []any{"LlamaForCausalLM"}, "model_type": "llama", "hidden_size": float64(r.Dim),
			"intermediate_size": float64(r.Hidden), "num_hidden_layers": float64(r.Layers),
			"num_attention_heads": float64(r.Heads), "num_key_value_heads": float64(r.KVHeads),
			"head_dim": float64(r.HeadDim), "vocab_size": float64(r.Vocab), "max_position_embeddings": float64(r.Seq),
			"rms_norm_eps": r.NormEps, "rope_theta": r.RopeTheta, "tie_word_embeddings": r.Tied,
			"torch_dtype": "float32", "hidden_act": "silu", "rope_scaling": nil,
		} {
			if gb, _ := json.Marshal(got[k]); string(gb) != mustJSON(v) {
				t.Errorf("config.json %s = %s, want %s", k, gb, mustJSON(v))
			}
		}
		back, err := ReadHF(dir)
		if err != nil {
			t.Fatal(err)
		}
		sameParams(t, back, p)
		// The exported wq really is permuted (not the identity).
		sf, err := ReadSafetensors(filepath.Join(dir, HFWeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		if q := sf.Tensor("model.layers.0.self_attn.q_proj.weight"); slices.Equal(q.Data, p.Layer(0).Wq) {
			t.Error("q_proj stored in llama2.c's order")
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".*")); len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestWriteHFExisting: an existing directory gets both files replaced and
// keeps its other files; a file in the way is an error.
func TestWriteHFExisting(t *testing.T) {
	p := randomParams(t, model.Config{Dim: 8, Hidden: 8, Layers: 1, Heads: 2, Seq: 4, Vocab: 5, Tied: true}, 1)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, HFConfigFile), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{}"), 0o644)
	if err := WriteHF(dir, p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, HFConfigFile)); string(b) == "old" {
		t.Error("config.json not replaced")
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Error("tokenizer.json removed")
	}
	if _, err := ReadHF(dir); err != nil {
		t.Error(err)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	if err := WriteHF(file, p); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file in the way: %v", err)
	}
}

// TestReadHFBad checks ReadHF's refusals name the file and the problem.
func TestReadHFBad(t *testing.T) {
	p := randomParams(t, model.Config{Dim: 8, Hidden: 8, Layers: 1, Heads: 2, Seq: 4, Vocab: 5}, 1)
	write := func(t *testing.T, cfgEdit func(map[string]any), tensors func([]Tensor) []Tensor) string {
		dir := filepath.Join(t.TempDir(), "m")
		if err := WriteHF(dir, p); err != nil {
			t.Fatal(err)
		}
		if cfgEdit != nil {
			var m map[string]any
			b, _ := os.ReadFile(filepath.Join(dir, HFConfigFile))
			json.Unmarshal(b, &m)
			cfgEdit(m)
			b, _ = json.Marshal(m)
			os.WriteFile(filepath.Join(dir, HFConfigFile), b, 0o644)
		}
		if tensors != nil {
			if err := Save(filepath.Join(dir, HFWeightsFile), tensors(HFTensors(p)), nil); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name    string
		cfg     func(map[string]any)
		tensors func([]Tensor) []Tensor
		file    string
		want    string
	}{
		{"model type", func(m map[string]any) { m["model_type"] = "mistral" }, nil, HFConfigFile, `model_type is "mistral"`},
		{"rope scaling", func(m map[string]any) { m["rope_scaling"] = map[string]any{"rope_type": "llama3"} }, nil, HFConfigFile, "rope_scaling"},
		{"act", func(m map[string]any) { m["hidden_act"] = "gelu" }, nil, HFConfigFile, `hidden_act is "gelu"`},
		{"missing size", func(m map[string]any) { delete(m, "hidden_size") }, nil, HFConfigFile, "hidden_size missing"},
		{"vocab", func(m map[string]any) { m["vocab_size"] = 6 }, nil, HFWeightsFile, "model.embed_tokens.weight has shape [5 8]; config.json implies [6 8]"},
		{"missing tensor", nil, func(ts []Tensor) []Tensor { return ts[1:] }, HFWeightsFile, "model.embed_tokens.weight is missing"},
		{"extra tensor", nil, func(ts []Tensor) []Tensor {
			return append(ts, Tensor{Name: "model.layers.0.self_attn.q_proj.bias", Shape: []int{8}, Data: make([]float32, 8)})
		}, HFWeightsFile, "q_proj.bias is not part of a Llama model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, tc.cfg, tc.tensors)
			_, err := ReadHF(dir)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Join(dir, tc.file)) {
				t.Errorf("error %q does not mention %q and %s", err, tc.want, tc.file)
			}
		})
	}
	t.Run("sharded", func(t *testing.T) {
		dir := write(t, nil, nil)
		os.Remove(filepath.Join(dir, HFWeightsFile))
		os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte("{}"), 0o644)
		if _, err := ReadHF(dir); err == nil || !strings.Contains(err.Error(), "sharded") {
			t.Errorf("sharded: %v", err)
		}
	})
	if _, err := ReadHF(filepath.Join(t.TempDir(), "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing dir: %v", err)
	}
}

// TestWeights copies the weights out of a training-style checkpoint
// (weights and moments) and refuses incomplete ones.
func TestWeights(t *testing.T) {
	c := model.Config{Dim: 8, Hidden: 8, Layers: 1, Heads: 2, Seq: 4, Vocab: 5}
	p := randomParams(t, c, 4)
	var ts []Tensor
	for _, tn := range p.Tensors {
		ts = append(ts, Tensor{Name: tn.HFName(), Shape: tn.Shape, Data: p.Data[tn.Offset : tn.Offset+tn.Size]},
			Tensor{Name: "exp_avg." + tn.HFName(), Shape: tn.Shape, Data: make([]float32, tn.Size)})
	}
	path := filepath.Join(t.TempDir(), "ck.safetensors")
	if err := Save(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Weights(f, c, path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Data, p.Data) {
		t.Error("weights differ")
	}
	f.Tensors = slices.DeleteFunc(f.Tensors, func(t Tensor) bool { return t.Name == "lm_head.weight" })
	if _, err := Weights(f, c, path); err == nil || !strings.Contains(err.Error(), "lm_head.weight is missing") || !strings.Contains(err.Error(), path) {
		t.Errorf("missing classifier: %v", err)
	}
	c.Tied = true
	if _, err := Weights(f, c, path); err != nil {
		t.Errorf("tied: %v", err)
	}
}
