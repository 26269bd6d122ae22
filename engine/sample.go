package engine

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/anetop/anetop/model"
)

// SampleOptions choose how Generate picks tokens.
type SampleOptions struct {
	// Temperature 0 is greedy (argmax); otherwise logits are divided by it.
	Temperature float64
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP (nucleus sampling); 0 or ≥ 1 keeps all.
	TopP float64
	// Seed seeds the generator: the same seed, weights and prompt give the
	// same text.
	Seed uint64
}

// Generate continues prompt by n tokens from the current weights (see
// Tokens). It must not run concurrently with Step.
func (e *Engine) Generate(prompt []int32, n int, opt SampleOptions) ([]int32, error) {
	e.settle() // an error stays in optErr and fails the next Step
	return Generate(e.params, prompt, n, opt)
}

// Generate returns the first n tokens of Tokens(p, prompt, opt).
func Generate(p *model.Params, prompt []int32, n int, opt SampleOptions) ([]int32, error) {
	out := make([]int32, 0, n)
	if n <= 0 {
		return out, nil
	}
	for t, err := range Tokens(p, prompt, opt) {
		if err != nil {
			return nil, err
		}
		if out = append(out, t); len(out) == n {
			break
		}
	}
	return out, nil
}

// Tokens continues prompt one token at a time, for as long as the caller
// ranges over it: the same options and weights give the same sequence
// however many tokens are taken, so a streamed sample and a collected one
// agree. An invalid prompt yields one error and ends.
//
// The model runs forward on the CPU in float32 with a key/value cache: a
// token costs one row through the layers. The context is the last Seq
// tokens, at positions 0…Seq−1 as in training; once the text outgrows it,
// the window slides and every further token runs the whole window again
// (exact, and as costly as it sounds: Seq rows per token).
func Tokens(p *model.Params, prompt []int32, opt SampleOptions) iter.Seq2[int32, error] {
	return func(yield func(int32, error) bool) {
		c := p.Config
		if len(prompt) == 0 {
			yield(0, errors.New("engine: sampling needs a prompt of at least one token"))
			return
		}
		for _, t := range prompt {
			if t < 0 || int(t) >= c.Vocab {
				yield(0, fmt.Errorf("engine: prompt token %d outside the vocabulary of %d", t, c.Vocab))
				return
			}
		}
		f := newCPUForward(c)
		rng := rand.New(rand.NewPCG(opt.Seed, 0x73616d70))
		probs := make([]float64, c.Vocab)
		idx := make([]int, c.Vocab)
		// ctx holds the last Seq tokens at most; it is compacted to its tail
		// now and then rather than kept whole.
		ctx := slices.Clone(prompt[max(0, len(prompt)-c.Seq):])
		logits := f.lastLogits(p, ctx)
		for {
			t := pick(logits, probs, idx, opt, rng)
			if !yield(t, nil) {
				return
			}
			if ctx = append(ctx, t); len(ctx) > 2*c.Seq {
				ctx = append(ctx[:0], ctx[len(ctx)-c.Seq:]...)
			}
			if f.n < c.Seq {
				logits = f.next(p, ctx[len(ctx)-1:])
			} else {
				logits = f.lastLogits(p, ctx[len(ctx)-c.Seq:])
			}
		}
	}
}

func pick(logits []float32, probs []float64, idx []int, opt SampleOptions, rng *rand.Rand) int32 {
	best := 0
	for j, z := range logits {
		if z > logits[best] {
			best = j
		}
	}
	if opt.Temperature <= 0 {
		return int32(best)
	}
	var sum float64
	for j, z := range logits {
		probs[j] = math.Exp(float64(z-logits[best]) / opt.Temperature)
		sum += probs[j]
	}
	for j := range probs {
		probs[j] /= sum
		idx[j] = j
	}
	keep := len(idx)
	if opt.TopP > 0 && opt.TopP < 1 {
		slices.SortFunc(idx, func(a, b int) int {
			switch {
			case probs[a] > probs[b]:
				return -1
			case probs[a] < probs[b]:
				return 1
			}
			return a - b
		})
		var cum float64
		for i, j := range idx {
			cum += probs[j]
			if cum >= opt.TopP {
				keep = i + 1
				break
			}
		}
	}
	var mass float64
	for _, j := range idx[:keep] {
		mass += probs[j]
	}
	u := rng.Float64() * mass
	for _, j := range idx[:keep] {
		u -= probs[j]
		if u <= 0 {
			return int32(j)
		}
	}
	return int32(idx[keep-1])
}
