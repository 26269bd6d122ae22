package engine

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/model/ref"
)

// TestCompactVocabAllIsFull: scoring every id takes the compacted path
// (gather, row targets, the gather–accumulate–scatter dW job) and must give
// the full path's bits — loss, weights and moments — over several updates
// with accumulation, tied and untied.
func TestCompactVocabAllIsFull(t *testing.T) {
	for _, tied := range []bool{true, false} {
		c := model.Config{Dim: 32, Hidden: 64, Layers: 2, Heads: 2, Seq: 32, Vocab: 40, Tied: tied}
		all := make([]int32, c.Vocab)
		for i := range all {
			all[i] = int32(i)
		}
		x, y := make([]int32, 2*c.Seq), make([]int32, 2*c.Seq)
		for i := range x {
			x[i], y[i] = int32(i*7%c.Vocab), int32((i*11+3)%c.Vocab)
		}
		run := func(vocab []int32) (*Engine, []float64) {
			e, err := New(Config{Model: c, Device: openSim(t), Seed: 3, Accum: 2, Steps: 10, CompactVocab: vocab})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			var losses []float64
			for range 4 {
				st, err := e.Step(x, y)
				if err != nil {
					t.Fatal(err)
				}
				if st.ScoredVocab != c.Vocab {
					t.Errorf("ScoredVocab %d, want %d", st.ScoredVocab, c.Vocab)
				}
				losses = append(losses, st.Loss)
			}
			e.Params() // settle the last update
			return e, losses
		}
		full, lf := run(nil)
		comp, lc := run(all)
		if !slices.Equal(lf, lc) {
			t.Errorf("tied %v: losses %v, compacted to every id %v", tied, lf, lc)
		}
		for _, b := range [][2][]float32{{full.params.Data, comp.params.Data}, {full.m, comp.m}, {full.v, comp.v}} {
			if i := firstBitDiff(b[0], b[1]); i >= 0 {
				t.Errorf("tied %v: element %d differs: %v vs %v", tied, i, b[0][i], b[1][i])
			}
		}
		if full.CompactVocab() != nil || !slices.Equal(comp.CompactVocab(), all) {
			t.Errorf("CompactVocab() %v and %v", full.CompactVocab(), comp.CompactVocab())
		}
	}
}

func firstBitDiff(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestCompactVocabGradient is the gradient check with a compacted
// classifier: the reference restricts its softmax and classifier gradient
// to the same ids (ref.Model.Scored). Left out are ids that are no target
// but some of which are inputs, so a tied embedding's unscored rows carry
// the lookup gradient alone; an untied classifier's must be exactly zero.
func TestCompactVocabGradient(t *testing.T) {
	for _, tc := range gradCheckConfigs {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.Resolved()
			p, xi, yi, err := ref.GradCheckCase(c)
			if err != nil {
				t.Fatal(err)
			}
			m := ref.FromParams(p)
			m.Scored = make([]bool, c.Vocab)
			for j := range m.Scored {
				m.Scored[j] = j%3 == 0
			}
			x, y := make([]int32, c.Seq), make([]int32, c.Seq)
			for i := range x {
				x[i], y[i] = int32(xi[i]), int32(yi[i])
				m.Scored[yi[i]] = true
			}
			var vocab []int32
			unscoredInput := false
			for j, ok := range m.Scored {
				if ok {
					vocab = append(vocab, int32(j))
				} else if slices.Contains(xi, j) {
					unscoredInput = true
				}
			}
			if len(vocab) == c.Vocab || !unscoredInput {
				t.Fatalf("the case needs unscored ids among the inputs (%d of %d scored)", len(vocab), c.Vocab)
			}
			t.Logf("%d of %d ids scored", len(vocab), c.Vocab)
			wantLoss, wantGrad, err := m.LossAndGrad(xi, yi)
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(Config{Model: c, Device: openSim(t), Params: p, Clip: -1, CompactVocab: vocab})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			got := checkWindow(t, e, x, y, wantLoss, wantGrad)
			if !c.Tied {
				g := model.Slice(c, got, model.Classifier, -1)
				for j, ok := range m.Scored {
					if !ok && slices.ContainsFunc(g[j*c.Dim:(j+1)*c.Dim], func(v float64) bool { return v != 0 }) {
						t.Errorf("unscored classifier row %d has a gradient", j)
					}
				}
			}
		})
	}
}

// TestCompactVocabErrors: a target outside the subset fails the step
// before it changes anything, and New rejects a malformed subset.
func TestCompactVocabErrors(t *testing.T) {
	c := model.Config{Dim: 32, Hidden: 64, Layers: 1, Heads: 2, Seq: 32, Vocab: 40, Tied: true}
	e, err := New(Config{Model: c, Device: openSim(t), Seed: 1, CompactVocab: []int32{1, 2, 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x, y := make([]int32, c.Seq), make([]int32, c.Seq)
	for i := range y {
		x[i], y[i] = 30, 5 // inputs need not be scored
	}
	if _, err := e.Step(x, y); err != nil {
		t.Fatal(err)
	}
	y[7] = 3
	if _, err := e.Step(x, y); err == nil || !strings.Contains(err.Error(), "target 3 at 7 is not in the compacted vocabulary") {
		t.Errorf("target outside the subset: error %v", err)
	}
	if e.StepN() != 1 {
		t.Errorf("StepN %d after a rejected step, want 1", e.StepN())
	}
	for _, bad := range [][]int32{{}, {3, 3}, {4, 2}, {-1, 2}, {1, 40}} {
		if e, err := New(Config{Model: c, Device: openSim(t), CompactVocab: bad}); err == nil {
			e.Close()
			t.Errorf("CompactVocab %v accepted", bad)
		}
	}
}
