package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/anetop/anetop/data"
	"github.com/anetop/anetop/model"
)

// ngramEntropies returns, in nats per token, the entropy of the unigram
// distribution of toks and the conditional entropy H(next | previous) of
// its bigram distribution: what the best order-0 and order-1 models of
// this very text would score on it (in-sample, so optimistic for the
// bigram).
func ngramEntropies(toks []uint16, vocab int) (unigram, bigram float64) {
	uni := make([]float64, vocab)
	pair := map[[2]uint16]float64{}
	for i, t := range toks {
		uni[t]++
		if i > 0 {
			pair[[2]uint16{toks[i-1], t}]++
		}
	}
	n := float64(len(toks))
	for _, c := range uni {
		if c > 0 {
			unigram -= c / n * math.Log(c/n)
		}
	}
	prev := make([]float64, vocab) // counts as a predecessor
	for i := range len(toks) - 1 {
		prev[toks[i]]++
	}
	for k, c := range pair {
		bigram -= c / (n - 1) * math.Log(c/prev[k[0]])
	}
	return unigram, bigram
}

// TestItLearnsStories is TestItLearns on the built-in story corpus, the
// data a fresh install trains on. Its entropy is not known exactly, so the
// yardsticks are the corpus's own unigram and bigram entropies: after 500
// updates (64k tokens, 2.4% of the corpus, so nearly
// every window is unseen and the training loss is a held-out loss) a small
// model must beat the unigram entropy by far and the in-sample bigram
// model too — it has learnt more than which token follows which.
func TestItLearnsStories(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for 500 updates; run without -short")
	}
	corpus, err := data.Builtin(data.BuiltinVocab)
	if err != nil {
		t.Fatal(err)
	}
	c := model.Config{Dim: 96, Hidden: 256, Layers: 2, Heads: 3, Seq: 64, Vocab: data.BuiltinVocab, Tied: true}
	unigram, bigram := ngramEntropies(corpus.Tokens, c.Vocab)
	const steps, accum = 500, 2
	e, err := New(Config{Model: c, Device: openSim(t), Seed: 1, LR: 3e-3, MinLR: 3e-4, Warmup: 20, Steps: steps, Accum: accum})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rng := rand.New(rand.NewPCG(4, 4))
	const tailN = 30
	tail := trainTail(t, e, steps, tailN, func(x, y []int32) {
		pos := rng.IntN(len(corpus.Tokens) - c.Seq - 1)
		for j := range c.Seq {
			x[j], y[j] = int32(corpus.Tokens[pos+j]), int32(corpus.Tokens[pos+j+1])
		}
	})
	t.Logf("corpus %d tokens: unigram entropy %.4f nats, bigram conditional entropy %.4f, uniform %.4f; mean loss of the last %d steps %.4f",
		len(corpus.Tokens), unigram, bigram, math.Log(float64(c.Vocab)), tailN, tail)
	if tail > bigram || tail > unigram-1.5 {
		t.Errorf("loss %.4f: want below the bigram entropy %.4f and 1.5 nats below the unigram entropy %.4f", tail, bigram, unigram)
	}
}
