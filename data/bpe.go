package data

import (
	"fmt"
	"sort"
	"unicode/utf8"
)

// splitChunks cuts text into the units BPE merges inside: an optional
// leading space plus a run of letters, or of digits; an optional leading
// space plus one other character; a run of newlines; a lone space.
// Pieces learned inside chunks never span a chunk boundary, and no
// concatenation of a chunk's tail with the next chunk's head is a piece, so
// llama2.c's whole-text greedy encoder gives the same tokens as encoding
// chunk by chunk, which is what lets the corpus be encoded quickly.
func splitChunks(s string, emit func(string)) {
	for i := 0; i < len(s); {
		j := i
		if s[j] == ' ' && j+1 < len(s) && s[j+1] != ' ' && s[j+1] != '\n' {
			j++
		}
		c := s[j]
		switch {
		case isLetter(c):
			for j < len(s) && isLetter(s[j]) {
				j++
			}
		case c >= '0' && c <= '9':
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
		case c == '\n':
			for j < len(s) && s[j] == '\n' {
				j++
			}
		default:
			_, n := utf8.DecodeRuneInString(s[j:])
			j += n
		}
		emit(s[i:j])
		i = j
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '\'' }

// TrainBPE learns a llama2.c-style tokenizer of exactly vocab pieces from
// texts (each encoded as run.c does, with a dummy-prefix space): <unk>, BOS,
// EOS, the 256 byte-fallback pieces, every character seen, then merges in the
// order byte-pair encoding learns them. A merge's score is minus its rank, so
// run.c's "merge the best-scoring pair first" replays the learned order.
func TrainBPE(texts []string, vocab int) (*Tokenizer, error) {
	counts := map[string]int{}
	for _, t := range texts {
		if t == "" {
			continue
		}
		splitChunks(" "+t, func(c string) { counts[c]++ })
	}
	type word struct {
		syms []string
		n    int
	}
	words := make([]word, 0, len(counts))
	charSet := map[string]bool{}
	for w, n := range counts {
		var syms []string
		for _, r := range w {
			syms = append(syms, string(r))
			charSet[string(r)] = true
		}
		words = append(words, word{syms, n})
	}
	// Map iteration is random: sort so training is deterministic.
	sort.Slice(words, func(i, j int) bool { return concat(words[i].syms) < concat(words[j].syms) })
	chars := make([]string, 0, len(charSet))
	for c := range charSet {
		chars = append(chars, c)
	}
	sort.Strings(chars)

	pieces := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	for b := 0; b < 256; b++ {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
	}
	scores := make([]float32, len(pieces))
	if vocab < len(pieces)+len(chars) {
		return nil, fmt.Errorf("vocabulary %d is too small: the corpus needs %d (special, byte and character pieces)", vocab, len(pieces)+len(chars))
	}
	if vocab > 1<<16 {
		return nil, fmt.Errorf("vocabulary %d does not fit uint16 token files", vocab)
	}
	have := map[string]bool{}
	for _, c := range chars {
		pieces = append(pieces, c)
		// Below every merge; the value only matters if a character were also
		// the concatenation of two pieces, which cannot happen.
		scores = append(scores, -1e6)
		have[c] = true
	}
	type pair struct{ a, b string }
	rank := 0
	for len(pieces) < vocab {
		pc := map[pair]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pc[pair{w.syms[i], w.syms[i+1]}] += w.n
			}
		}
		var best pair
		bestN := 0
		for p, n := range pc {
			// Ties go to the lexically smallest pair so the result does not
			// depend on map order.
			if n > bestN || n == bestN && (p.a+"\x00"+p.b) < (best.a+"\x00"+best.b) {
				best, bestN = p, n
			}
		}
		if bestN == 0 {
			break // every word is a single piece: nothing left to merge
		}
		m := best.a + best.b
		for wi := range words {
			s := words[wi].syms
			out := s[:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best.a && s[i+1] == best.b {
					out = append(out, m)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[wi].syms = out
		}
		if !have[m] {
			have[m] = true
			pieces = append(pieces, m)
			scores = append(scores, -float32(rank))
			rank++
		}
	}
	return NewTokenizer(pieces, scores)
}

func concat(s []string) string {
	n := ""
	for _, x := range s {
		n += x
	}
	return n
}
