package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/anetop/anetop/model"
)

// markov is a random order-1 Markov chain over v tokens: each token has
// three successors with random probabilities, so the stream has structure a
// model can learn and an entropy rate we can compute exactly.
type markov struct {
	next [][3]int32
	prob [][3]float64
}

func newMarkov(v int, seed uint64) *markov {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := &markov{next: make([][3]int32, v), prob: make([][3]float64, v)}
	for i := range v {
		perm := rng.Perm(v)
		var sum float64
		for j := range 3 {
			m.next[i][j] = int32(perm[j])
			m.prob[i][j] = 0.2 + rng.Float64()
			sum += m.prob[i][j]
		}
		for j := range 3 {
			m.prob[i][j] /= sum
		}
	}
	return m
}

func (m *markov) stream(n int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]int32, n)
	for i := 1; i < n; i++ {
		u, p := rng.Float64(), m.prob[out[i-1]]
		j := 0
		for j < 2 && u > p[j] {
			u -= p[j]
			j++
		}
		out[i] = m.next[out[i-1]][j]
	}
	return out
}

// entropies returns the chain's entropy rate Σ π_i H(P_i) and the entropy of
// its stationary (unigram) distribution π, in nats, π by power iteration.
func (m *markov) entropies() (rate, unigram float64) {
	v := len(m.next)
	pi := make([]float64, v)
	for i := range pi {
		pi[i] = 1 / float64(v)
	}
	for range 2000 {
		nx := make([]float64, v)
		for i := range v {
			for j := range 3 {
				nx[m.next[i][j]] += pi[i] * m.prob[i][j]
			}
		}
		pi = nx
	}
	for i := range v {
		if pi[i] > 0 {
			unigram -= pi[i] * math.Log(pi[i])
		}
		for j := range 3 {
			rate -= pi[i] * m.prob[i][j] * math.Log(m.prob[i][j])
		}
	}
	return rate, unigram
}

// TestItLearns trains a small model on a Markov stream for 300 updates and
// requires the loss to approach the chain's entropy rate and fall far below
// its unigram entropy.
func TestItLearns(t *testing.T) {
	c := model.Config{Dim: 64, Hidden: 128, Layers: 2, Heads: 2, Seq: 32, Vocab: 32, Tied: true}
	mk := newMarkov(c.Vocab, 7)
	rate, unigram := mk.entropies()
	stream := mk.stream(100_000, 3)
	const steps = 300
	e, err := New(Config{Model: c, Device: openSim(t), Seed: 1, LR: 3e-3, MinLR: 3e-4, Warmup: 20, Steps: steps, Accum: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rng := rand.New(rand.NewPCG(9, 9))
	const tailN = 30
	tail := trainTail(t, e, steps, tailN, func(x, y []int32) {
		pos := rng.IntN(len(stream) - c.Seq - 1)
		copy(x, stream[pos:])
		copy(y, stream[pos+1:])
	})
	t.Logf("entropy rate %.4f nats, unigram entropy %.4f, uniform %.4f; mean loss of the last %d steps %.4f",
		rate, unigram, math.Log(float64(c.Vocab)), tailN, tail)
	if tail > rate+0.15 || tail > unigram-1 {
		t.Errorf("loss %.4f: want within 0.15 of the entropy rate %.4f and 1 nat below the unigram entropy %.4f", tail, rate, unigram)
	}
}

// trainTail runs steps updates of e, each window filled by fill, logging
// now and then, and returns the mean loss of the last tailN updates.
func trainTail(t *testing.T, e *Engine, steps, tailN int, fill func(x, y []int32)) float64 {
	t.Helper()
	s, accum := e.mc.Seq, e.cfg.Accum
	x, y := make([]int32, accum*s), make([]int32, accum*s)
	var tail float64
	for step := range steps {
		for w := range accum {
			fill(x[w*s:(w+1)*s], y[w*s:(w+1)*s])
		}
		st, err := e.Step(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if step%50 == 0 || step == steps-1 {
			t.Logf("step %3d loss %.4f lr %.2e grad norm %.3f scale %g (%v)", step, st.Loss, st.LR, st.GradNorm, st.LossScale, st.Time)
		}
		if step >= steps-tailN {
			tail += st.Loss / float64(tailN)
		}
	}
	return tail
}
