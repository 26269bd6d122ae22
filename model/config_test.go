package model

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/mil"
)

func TestMaxAxisMatchesEmulator(t *testing.T) {
	if MaxAxis != sim.MaxAxis {
		t.Fatalf("model.MaxAxis %d, sim.MaxAxis %d", MaxAxis, sim.MaxAxis)
	}
}

// TestPresets checks the presets against published figures: llama2.c's
// stories15M file size, the reference project's parameter counts
// (ane-anchor §5.1) and its dynamic-pipeline FLOPs (§5.2).
func TestPresets(t *testing.T) {
	want := map[string]int{
		"stories15m":       15191712,
		"stories110m":      109529856, // 84.95M transformer + 24.58M embedding + the final norm
		"qwen3-0.6b-shape": 596042752, // 440.46M + 155.58M + 1024
	}
	for _, name := range PresetNames() {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if n, ok := want[name]; ok && c.NumParams() != n {
			t.Errorf("%s: %d parameters, want %d", name, c.NumParams(), n)
		}
		t.Logf("%-17s %v: %.2fM parameters", name, c, float64(c.NumParams())/1e6)
	}
	if PresetNames()[0] != DefaultPreset {
		t.Errorf("PresetNames starts with %q, not the default", PresetNames()[0])
	}
	c, _ := Preset("stories15m")
	// llama2.c: 28 + 4·(params + seq·head_size) bytes.
	if size := 28 + 4*(c.NumParams()+c.Seq*c.HeadDim); size != 60816028 {
		t.Errorf("stories15M.bin would be %d bytes, llama2.c's is 60816028", size)
	}
	c, _ = Preset("stories110m")
	l, _ := NewLayout(c)
	if got := l.FLOPs().WeightGrads; got != 43486543872 {
		t.Errorf("stories110m forward projections %.0f FLOPs, the reference's 43,487M", got)
	}
	// Per-layer parameters: 7,079,424 (stories110m), 15,730,688 (Qwen3 shape).
	for name, want := range map[string]int{"stories110m": 7079424, "qwen3-0.6b-shape": 15730688} {
		c, _ := Preset(name)
		if got := c.Offset(AttnNorm, 1) - c.Offset(AttnNorm, 0); got != c.Dim {
			t.Errorf("%s: attention norm stride %d", name, got)
		}
		n := 0
		for _, tn := range c.Tensors() {
			if tn.Layer == 0 {
				n += tn.Size
			}
		}
		if n != want {
			t.Errorf("%s: %d parameters per layer, want %d", name, n, want)
		}
	}
	per := c.Offset(Wq, 1) - c.Offset(Wq, 0)
	if per != c.QDim()*c.Dim {
		t.Errorf("wq stride %d", per)
	}
	if _, err := Preset("nope"); err == nil || !strings.Contains(err.Error(), "stories15m") {
		t.Errorf("unknown preset: %v", err)
	}
}

// TestValidate checks that each bad config is refused with an error naming
// the field and the limit.
func TestValidate(t *testing.T) {
	ok := Config{Dim: 64, Hidden: 128, Layers: 2, Heads: 4, Seq: 64, Vocab: 100, Tied: true}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*Config)) Config { c := ok; f(&c); return c }
	for _, tc := range []struct {
		c    Config
		want []string
	}{
		{mod(func(c *Config) { c.Dim = 0 }), []string{"Dim is 0", "positive"}},
		{mod(func(c *Config) { c.Heads = 5 }), []string{"Heads (5) must divide Dim (64)"}},
		{mod(func(c *Config) { c.KVHeads = 3 }), []string{"KVHeads (3) must divide Heads (4)"}},
		{mod(func(c *Config) { c.KVHeads = 8 }), []string{"KVHeads (8) must divide Heads (4)"}},
		{mod(func(c *Config) { c.HeadDim = 15 }), []string{"HeadDim is 15", "even"}},
		{mod(func(c *Config) { c.Dim = 36; c.Heads = 4 }), []string{"HeadDim is 9", "even"}},
		{mod(func(c *Config) { c.Vocab = 1 }), []string{"Vocab is 1", "at least 2"}},
		{mod(func(c *Config) { c.Seq = 48 }), []string{"Seq is 48", "multiple of 32"}},
		{mod(func(c *Config) { c.Seq = 32768 }), []string{"Seq is 32768", "16384"}},
		{mod(func(c *Config) { c.Hidden = 20000 }), []string{"Hidden is 20000", "16384"}},
		{mod(func(c *Config) { c.Heads = 1; c.KVHeads = 1; c.Seq = 4096 }), []string{"attention surface", "16384"}},
		{mod(func(c *Config) { c.Heads = 8; c.KVHeads = 1; c.Seq = 4096 }), []string{"Group·Seq", "32768", "16384"}},
		{mod(func(c *Config) { c.Dim = 4096; c.Hidden = 8192; c.Heads = 32 }), []string{"attention surface", "16704 columns", "16384"}},
		{mod(func(c *Config) { c.Vocab = 1 << 24; c.Dim = 1 << 24 }), []string{"parameters"}},
		{mod(func(c *Config) { c.RopeTheta = -1 }), []string{"RopeTheta"}},
		{mod(func(c *Config) { c.NormEps = math.NaN() }), []string{"NormEps"}},
	} {
		err := tc.c.Validate()
		if err == nil {
			t.Errorf("%+v: accepted", tc.c)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not mention %q", tc.c, err, w)
			}
		}
	}
	// The reference fixture's seq 16 is a valid model, though not for the device.
	fx := Config{Dim: 32, Hidden: 64, Layers: 2, Heads: 4, KVHeads: 4, Seq: 16, Vocab: 64, Tied: true}
	if err := fx.CheckShape(); err != nil {
		t.Errorf("fixture config: %v", err)
	}
	if err := fx.Validate(); err == nil {
		t.Errorf("seq 16 passes Validate")
	}
}

// axisViolations lists the tensors of every kernel of l with a non-channel
// axis beyond MaxAxis, by the emulator's rule.
func axisViolations(t *testing.T, l *Layout) []string {
	var bad []string
	for _, id := range Kernels {
		p, _, err := l.Build(id)
		if err != nil {
			t.Fatal(err)
		}
		check := func(v *mil.Var) {
			for i, d := range v.Type.Shape {
				if d > MaxAxis && !(len(v.Type.Shape) == 4 && i == 1) {
					bad = append(bad, fmt.Sprintf("%v %s %v", id, v.Name, v.Type.Shape))
				}
			}
		}
		fn := p.Main()
		for _, v := range fn.Inputs {
			check(v)
		}
		for _, op := range fn.Ops {
			for _, v := range op.Outputs {
				check(v)
			}
		}
	}
	return bad
}

// TestValidateMatchesKernels builds the kernels of configs on both sides of
// the axis cap: whatever Validate accepts has no tensor beyond the cap, and
// what it refuses for the cap does have one.
func TestValidateMatchesKernels(t *testing.T) {
	var cs []Config
	for _, n := range PresetNames() {
		c, _ := Preset(n)
		cs = append(cs, c)
	}
	cs = append(cs,
		// Widest MHA attention surface: 5·256 + 4·3776 = 16384 columns.
		Config{Dim: 3776, Hidden: 3776, Layers: 1, Heads: 59, Seq: 256, Vocab: 2, Tied: true},
		Config{Dim: 3840, Hidden: 3840, Layers: 1, Heads: 60, Seq: 256, Vocab: 2, Tied: true},
		// Group·Seq: 17 query heads on one key/value head, 17·1024 rows.
		Config{Dim: 34, Hidden: 32, Layers: 1, Heads: 17, KVHeads: 1, Seq: 1024, Vocab: 2, Tied: true},
		Config{Dim: 32, Hidden: 32, Layers: 1, Heads: 16, KVHeads: 1, Seq: 1024, Vocab: 2, Tied: true},
	)
	for _, c := range cs {
		bad := axisViolations(t, newLayout(c))
		err := c.Validate()
		switch {
		case err == nil && len(bad) > 0:
			t.Errorf("%v: Validate accepts it but %v exceed the cap", c, bad)
		case err != nil && strings.Contains(err.Error(), "16384") && len(bad) == 0:
			t.Errorf("%v: Validate refuses it (%v) but no tensor exceeds the cap", c, err)
		}
	}
}

// TestLayout checks every packing: blocks inside the surface, disjoint, the
// right sizes; weights oriented with their long side along the channels;
// outputs channel-concatenated in order.
func TestLayout(t *testing.T) {
	cs := []Config{
		{Dim: 64, Hidden: 176, Layers: 1, Heads: 4, Seq: 64, Vocab: 2},
		{Dim: 64, Hidden: 48, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 24, Seq: 32, Vocab: 2},
	}
	for _, n := range PresetNames() {
		c, _ := Preset(n)
		cs = append(cs, c)
	}
	for _, c := range cs {
		l, err := NewLayout(c)
		if err != nil {
			t.Fatal(err)
		}
		c = l.Config
		for _, p := range []*Packing{&l.Attn.Packing, &l.FFN.Packing} {
			area := 0
			for i, b := range p.Blocks {
				if b.Row < 0 || b.Col < 0 || b.Row+b.Rows > p.Channels || b.Col+b.Cols > p.Width {
					t.Errorf("%v %s: %v outside %d×%d", c, p.Name, b, p.Channels, p.Width)
				}
				for _, o := range p.Blocks[:i] {
					if b.Row < o.Row+o.Rows && o.Row < b.Row+b.Rows && b.Col < o.Col+o.Cols && o.Col < b.Col+b.Cols {
						t.Errorf("%v %s: %v overlaps %v", c, p.Name, b, o)
					}
				}
				if b.Weight != NoWeight {
					sh := c.Shape(b.Weight)
					if b.Size() != sh[0]*sh[1] || b.Rows != max(sh[0], sh[1]) || b.Transposed != (sh[0] < sh[1]) {
						t.Errorf("%v %s: weight block %v for %v %v", c, p.Name, b, b.Weight, sh)
					}
				} else if b.Cols != c.Seq {
					t.Errorf("%v %s: activation block %v is not Seq wide", c, p.Name, b)
				}
				area += b.Size()
			}
			t.Logf("%v: %s surface %d×%d, %.0f%% used", c, p.Name, p.Channels, p.Width, 100*float64(area)/float64(p.Channels*p.Width))
		}
		for _, id := range Kernels {
			o := l.Output(id)
			row := 0
			for _, b := range o.Blocks {
				if b.Row != row || b.Col != 0 || b.Cols != c.Seq {
					t.Errorf("%v %v: output block %v", c, id, b)
				}
				row += b.Rows
			}
			if row != o.Channels || o.Width != c.Seq {
				t.Errorf("%v %v: output %d×%d, blocks cover %d rows", c, id, o.Channels, o.Width, row)
			}
		}
	}
}

func TestParams(t *testing.T) {
	c := Config{Dim: 32, Hidden: 48, Layers: 3, Heads: 4, KVHeads: 2, Seq: 32, Vocab: 50}
	p, err := NewParams(c)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for _, tn := range p.Tensors {
		if tn.Offset != off || c.Offset(tn.Kind, tn.Layer) != off {
			t.Errorf("%s at %d, Offset says %d, want %d", tn.Name, tn.Offset, c.Offset(tn.Kind, tn.Layer), off)
		}
		off += tn.Size
	}
	if off != c.NumParams() || len(p.Data) != off {
		t.Errorf("tensors cover %d, NumParams %d", off, c.NumParams())
	}
	if last := p.Tensors[len(p.Tensors)-1]; last.Name != "output.weight" || last.HFName() != "lm_head.weight" {
		t.Errorf("untied model ends with %s", last.Name)
	}
	if p.Tensor("model.layers.2.mlp.down_proj.weight") == nil || &p.Tensor("layers.2.feed_forward.w2.weight")[0] != &p.Layer(2).W2[0] {
		t.Error("names do not find layer 2's w2")
	}
	p.Init(42)
	q, _ := NewParams(c)
	q.Init(42)
	for i := range p.Data {
		if p.Data[i] != q.Data[i] {
			t.Fatal("Init is not deterministic")
		}
	}
	std := func(x []float32) float64 {
		var s float64
		for _, v := range x {
			s += float64(v) * float64(v)
		}
		return math.Sqrt(s / float64(len(x)))
	}
	var wq, wo []float32
	for l := range c.Layers {
		wq = append(wq, p.Layer(l).Wq...)
		wo = append(wo, p.Layer(l).Wo...)
		for _, g := range p.Layer(l).AttnNorm {
			if g != 1 {
				t.Fatal("norm gain not 1")
			}
		}
	}
	if s := std(wq); math.Abs(s-InitStd) > 0.1*InitStd {
		t.Errorf("wq std %.4f, want %.4f", s, InitStd)
	}
	if s, want := std(wo), InitStd/math.Sqrt(6); math.Abs(s-want) > 0.1*want {
		t.Errorf("wo std %.4f, want %.4f", s, want)
	}
	if len(p.Classifier()) != c.Vocab*c.Dim || &p.Classifier()[0] == &p.Embed()[0] {
		t.Error("untied classifier")
	}
	c.Tied = true
	p, _ = NewParams(c)
	if &p.Classifier()[0] != &p.Embed()[0] || c.Offset(Classifier, -1) != -1 {
		t.Error("tied classifier is not the embedding")
	}
}
