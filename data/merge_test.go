package data

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
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
			got := tc.tok.mergeStrings(append([]int(nil), init...))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: heap merge %v, run.c merge %v", s, got, want)
			}
			if tc.tok.fastIndex() == nil {
				t.Fatal("no pair index")
			}
			got = tc.tok.merge(append([]int(nil), init...))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: fast merge %v, run.c merge %v", s, got, want)
			}
		}
	}
}

// oddTokenizers are vocabularies the fast path must treat exactly as the
// string lookup does: duplicate pieces (the first wins), an empty piece,
// pieces longer than maxIndexedPair, too few pieces for the byte fallback
// (ids past the vocabulary, whose piece is ""), -0 beside +0, scores at
// run.c's -1e10 floor, NaN and infinities.
func oddTokenizers(t *testing.T) []*Tokenizer {
	t.Helper()
	tiny, err := LoadTokenizer(tinyFixture, 0)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("ab", 40)
	var toks []*Tokenizer
	add := func(pieces []string, scores []float32) {
		tk, err := NewTokenizer(pieces, scores)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tk)
	}
	p := append([]string(nil), tiny.Pieces...)
	s := append([]float32(nil), tiny.Scores...)
	add(append(p, "ab", "", "bc", long, long+"c", long[:64], long[:63]+"c", "aa", "aaa"),
		append(s, 5, 1, -0.5, 3, 4, 2, 2, float32(math.Copysign(0, -1)), 0))
	add(append(p, "ba", "cb", "bab", "abab"), append(s, -1e10, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))))
	add([]string{"<unk>", "a", "b", "ab", "", " ", " a", "abc", "c"}, []float32{0, 0, 0, -1, -2, 0, -1, -3, 0})
	add([]string{"a", "b", "ab", "ba", "a", "ab"}, []float32{0, 0, -1, -1, 0, 5})
	negZero := float32(math.Copysign(0, -1))
	add([]string{" ", "a", "b", "c", "ca", "ab", "bc"}, []float32{0, 0, 0, 0, negZero, 0, negZero})
	// Pieces doubling past maxIndexedPair: merging them needs the string path.
	p = append([]string(nil), tiny.Pieces...)
	s = append([]float32(nil), tiny.Scores...)
	for k := 2; k <= 128; k *= 2 {
		p = append(p, strings.Repeat("ab", k))
		s = append(s, float32(k))
	}
	add(append(p, strings.Repeat("ab", 32)+"c", "c"+strings.Repeat("ab", 64)), append(s, 1000, 2000))
	return toks
}

func randomText(r *rand.Rand, alphabet []string, n int) string {
	var sb strings.Builder
	for k := r.IntN(n); k > 0; k-- {
		sb.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return sb.String()
}

func TestFastEncodeMatchesStrings(t *testing.T) {
	c, err := Builtin(0)
	if err != nil {
		t.Fatal(err)
	}
	toks := append(oddTokenizers(t), c.Tokenizer)
	alphabet := []string{"a", "b", "c", " ", "é", "x", "\n", "ab", strings.Repeat("ab", 33), strings.Repeat("ab", 70), "\xff", "\x80", "a\x80\x80\x80\x80", "\xe2\x82", "€"}
	r := rand.New(rand.NewPCG(5, 6))
	for _, tk := range toks {
		if tk.fastIndex() == nil {
			t.Fatal("no pair index")
		}
		for n := 0; n < 300; n++ {
			s := randomText(r, alphabet, 30)
			for _, flags := range [][2]bool{{true, false}, {false, true}} {
				want := tk.encodeStrings(s, flags[0], flags[1])
				if got := tk.Encode(s, flags[0], flags[1]); !reflect.DeepEqual(got, want) {
					t.Fatalf("vocab %d, %q: fast %v, strings %v", tk.Vocab(), s, got, want)
				}
			}
			init := tk.appendCodePoints([]int{BOS}, s)
			if got, want := tk.merge(append([]int(nil), init...)), mergeRunC(tk, init); !reflect.DeepEqual(got, want) {
				t.Fatalf("vocab %d, %q: fast merge %v, run.c %v", tk.Vocab(), s, got, want)
			}
		}
	}
	// Builtin text through both paths.
	for _, s := range GenerateStories(7, 200) {
		if got, want := c.Tokenizer.Encode(s, true, false), c.Tokenizer.encodeStrings(s, true, false); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %v, strings %v", s, got, want)
		}
	}
}

// TestEncodeConcurrent: Encode only reads the tokenizer (run with -race).
func TestEncodeConcurrent(t *testing.T) {
	c, err := Builtin(0)
	if err != nil {
		t.Fatal(err)
	}
	stories := GenerateStories(11, 64)
	want := make([][]int, len(stories))
	for i, s := range stories {
		want[i] = c.Tokenizer.encodeStrings(s, true, false)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range stories {
				i := (k + 16*g) % len(stories)
				if got := c.Tokenizer.Encode(stories[i], true, false); !reflect.DeepEqual(got, want[i]) {
					t.Errorf("story %d differs when encoded concurrently", i)
					return
				}
			}
		})
	}
	wg.Wait()
}
