package engine

import (
	"math"
	"slices"
	"testing"

	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

// TestCPUForwardMatchesRef checks the sampler's float32 forward against the
// float64 reference's logits (GQA, untied): run over the whole window at
// once, at the last position; and fed through the key/value cache one token
// at a time after a three-token prompt, at every position (causal: the
// logits at a position are its prefix's).
func TestCPUForwardMatchesRef(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 96, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 24, Seq: 32, Vocab: 40}.Resolved()
	p, _ := model.NewParams(c)
	p.Init(4)
	for i := range p.Data {
		p.Data[i] *= 3
	}
	toks := make([]int32, c.Seq)
	in := make([]int, c.Seq)
	for i := range toks {
		toks[i], in[i] = int32(i*11%c.Vocab), i*11%c.Vocab
	}
	pass, err := ref.FromParams(p).Forward(in, in)
	if err != nil {
		t.Fatal(err)
	}
	check := func(how string, pos int, got []float32) {
		var num, den float64
		for j := range c.Vocab {
			w := pass.Logits[j*c.Seq+pos]
			num += (float64(got[j]) - w) * (float64(got[j]) - w)
			den += w * w
		}
		if r := math.Sqrt(num / den); r > 1e-4 {
			t.Errorf("%s, position %d: logits relative L2 error %.3g", how, pos, r)
		}
	}
	f := newCPUForward(c)
	check("whole window", c.Seq-1, f.lastLogits(p, toks))
	check("cached", 2, f.lastLogits(p, toks[:3]))
	for pos := 3; pos < c.Seq; pos++ {
		check("cached", pos, f.next(p, toks[pos:pos+1]))
	}
	if f.n != c.Seq {
		t.Errorf("cache holds %d positions after %d tokens", f.n, c.Seq)
	}
}

// TestGenerateSlidesWindow: greedy generation past the context is, token by
// token, the argmax of the last Seq tokens run from position 0, the
// definition Tokens documents, computed here without the cache.
func TestGenerateSlidesWindow(t *testing.T) {
	c := model.Config{Dim: 48, Hidden: 96, Layers: 2, Heads: 4, KVHeads: 2, Seq: 16, Vocab: 32}.Resolved()
	p, _ := model.NewParams(c)
	p.Init(8)
	for i := range p.Data {
		p.Data[i] *= 4
	}
	prompt := []int32{1, 5, 9}
	const n = 3 * 16
	got, err := Generate(p, prompt, n, SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	toks := slices.Clone(prompt)
	f := newCPUForward(c)
	for i := range n {
		logits := f.lastLogits(p, toks[max(0, len(toks)-c.Seq):])
		best := 0
		for j, z := range logits {
			if z > logits[best] {
				best = j
			}
		}
		if got[i] != int32(best) {
			t.Fatalf("token %d: Generate gave %d, the window's argmax is %d\n%v", i, got[i], best, got)
		}
		toks = append(toks, int32(best))
	}
	// Taking fewer tokens gives a prefix: the stream does not depend on
	// how much of it is read, with a temperature too.
	opt := SampleOptions{Temperature: 0.9, TopP: 0.95, Seed: 3}
	long, _ := Generate(p, prompt, n, opt)
	short, _ := Generate(p, prompt, 10, opt)
	if !slices.Equal(short, long[:10]) {
		t.Errorf("10 tokens %v are not the first 10 of %d: %v", short, n, long)
	}
}

// TestTokensRejectsBadPrompt: an empty prompt or an id outside the
// vocabulary is an error, yielded once.
func TestTokensRejectsBadPrompt(t *testing.T) {
	c := model.Config{Dim: 16, Hidden: 32, Layers: 1, Heads: 2, Seq: 8, Vocab: 10}.Resolved()
	p, _ := model.NewParams(c)
	for _, prompt := range [][]int32{nil, {3, 10}, {-1}} {
		var errs int
		for _, err := range Tokens(p, prompt, SampleOptions{}) {
			if err == nil {
				t.Fatalf("prompt %v: a token instead of an error", prompt)
			}
			errs++
		}
		if errs != 1 {
			t.Errorf("prompt %v: %d errors, want 1", prompt, errs)
		}
	}
}

// TestSampleCycle trains on a deterministic cycle and checks that greedy
// sampling reproduces it, and that seeded sampling is repeatable.
func TestSampleCycle(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 2, Seq: 32, Vocab: 16, Tied: true}
	perm := []int32{3, 9, 0, 14, 7, 1, 12, 5, 10, 2, 15, 8, 4, 11, 6, 13}
	next := make([]int32, c.Vocab)
	for i, tok := range perm {
		next[tok] = perm[(i+1)%len(perm)]
	}
	e, err := New(Config{Model: c, Device: openSim(t), Seed: 2, LR: 1e-2, MinLR: 1e-3, Warmup: 5, Steps: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x, y := make([]int32, c.Seq), make([]int32, c.Seq)
	var st StepStats
	for step := range 80 {
		x[0] = perm[step%len(perm)]
		for i := range x {
			if i > 0 {
				x[i] = y[i-1]
			}
			y[i] = next[x[i]]
		}
		if st, err = e.Step(x, y); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("final loss %.4f", st.Loss)
	out, err := e.Generate([]int32{perm[5]}, 40, SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int32, 40)
	prev := perm[5]
	for i := range want {
		want[i] = next[prev]
		prev = want[i]
	}
	if !slices.Equal(out, want) {
		t.Errorf("greedy sample %v, want the cycle %v", out, want)
	}
	a, _ := e.Generate([]int32{perm[0]}, 20, SampleOptions{Temperature: 1, TopP: 0.9, Seed: 5})
	b, _ := e.Generate([]int32{perm[0]}, 20, SampleOptions{Temperature: 1, TopP: 0.9, Seed: 5})
	if !slices.Equal(a, b) {
		t.Errorf("seeded samples differ: %v, %v", a, b)
	}
}
