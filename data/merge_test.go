package data

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// mergeRunC is run.c's merge loop transcribed literally (rescan everything,
// take the strictly best score, leftmost on ties): the reference the heap
// version must match.
func mergeRunC(t *Tokenizer, toks []int) []int {
	toks = append([]int(nil), toks...)
	for {
		best, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(toks); i++ {
			if id, ok := t.lookup[t.piece(toks[i])+t.piece(toks[i+1])]; ok && t.Scores[id] > best {
				best, bestID, bestIdx = t.Scores[id], id, i
			}
		}
		if bestIdx < 0 {
			return toks
		}
		toks[bestIdx] = bestID
		toks = append(toks[:bestIdx+1], toks[bestIdx+2:]...)
	}
}

func TestMergeMatchesRunC(t *testing.T) {
	tiny, err := LoadTokenizer(tinyFixture, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Builtin(0)
	if err != nil {
		t.Fatal(err)
	}
	// Tied scores are where a heap could pick differently: give the tiny
	// vocabulary's merges equal scores too.
	tied, _ := NewTokenizer(append([]string(nil), tiny.Pieces...), append([]float32(nil), tiny.Scores...))
	for i := 263; i < len(tied.Scores); i++ {
		tied.Scores[i] = -1
	}
	r := rand.New(rand.NewPCG(3, 4))
	stories := GenerateStories(99, 50)
	for _, tc := range []struct {
		tok      *Tokenizer
		alphabet []string
	}{
		{tiny, []string{"a", "b", "c", " ", "é", "x"}},
		{tied, []string{"a", "b", "c", " ", "é"}},
		{c.Tokenizer, []string{"the", " ", "a", "e", "t", "h", "s", ".", "\n", "ing", "ü"}},
	} {
		for n := 0; n < 300; n++ {
			var s string
			for k := r.IntN(40); k > 0; k-- {
				s += tc.alphabet[r.IntN(len(tc.alphabet))]
			}
			if tc.tok == c.Tokenizer && n < len(stories) {
				s = stories[n]
			}
			init := tc.tok.appendCodePoints([]int{BOS, 259}, s)
			want := mergeRunC(tc.tok, init)
			got := tc.tok.merge(append([]int(nil), init...))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: heap merge %v, run.c merge %v", s, got, want)
			}
		}
	}
}
