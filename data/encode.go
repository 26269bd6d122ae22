package data

import (
	"math"
	"sync"
)

// The fast encoder. It gives exactly the tokens of the string-based merge
// (mergeStrings, itself checked against run.c's loop) but finds a pair's
// merged piece by the two ids in a precomputed map instead of concatenating
// and hashing their strings, keeps positions and ids in int32, orders
// candidates by one integer key, and reuses its buffers between calls.

// maxIndexedPair bounds the concatenations pairIndex records: a pair whose
// pieces are longer together is looked up by its strings. Real tokenizers'
// pieces are far shorter (Llama 2's longest is 27 bytes); the bound keeps
// building the index linear for hostile files with huge pieces.
const maxIndexedPair = 64

// maxFastSymbols bounds the symbols of one text encoded with int32 positions;
// longer texts (over 2 GB in one document) take the string-based path.
const maxFastSymbols = math.MaxInt32 - 8

// pairIndex maps pairs of ids to the id of their concatenated piece. It is
// built by index() and only read afterwards, so Encode is safe for
// concurrent use.
type pairIndex struct {
	n int // len(Pieces) when built: a stale index is not used
	// canon maps an id to the id the string lookup gives for its piece: the
	// first of duplicate pieces. Out-of-range ids have piece "", whose
	// canonical id is empty (lookup[""], or -1 when "" is not a piece).
	canon []int32
	empty int32
	plen  []uint8 // piece lengths, saturated at 255
	pairs map[uint64]int32
	// barrier marks ids that merge with nothing, on either side: the
	// sequence splits there into parts that merge independently. Only
	// pieces "" (and out-of-range ids) join with everything, merging into
	// their neighbour; so barrier is nil when a piece is "", and texts
	// holding out-of-range ids are not split.
	barrier []bool
	// single is the lookup of each one-byte string, or -1.
	single [256]int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (t *Tokenizer) buildPairIndex() *pairIndex {
	x := &pairIndex{
		n:     len(t.Pieces),
		canon: make([]int32, len(t.Pieces)),
		plen:  make([]uint8, len(t.Pieces)),
		empty: -1,
		pairs: make(map[uint64]int32, 4*len(t.Pieces)),
	}
	if id, ok := t.lookup[""]; ok {
		x.empty = int32(id)
	}
	for i, p := range t.Pieces {
		x.canon[i] = int32(t.lookup[p])
		x.plen[i] = uint8(min(len(p), 255))
	}
	for c := range x.single {
		x.single[c] = -1
		if id, ok := t.lookup[string([]byte{byte(c)})]; ok {
			x.single[c] = int32(id)
		}
	}
	canonOf := func(s string) (int32, bool) {
		if s == "" {
			return x.empty, true
		}
		id, ok := t.lookup[s]
		return int32(id), ok
	}
	// Every split of every piece into two pieces (either may be "") is a
	// pair that merges into it.
	for p, v := range t.lookup {
		if len(p) > maxIndexedPair {
			continue
		}
		for k := 0; k <= len(p); k++ {
			a, ok := canonOf(p[:k])
			if !ok {
				continue
			}
			if b, ok := canonOf(p[k:]); ok {
				x.pairs[pairKey(a, b)] = int32(v)
			}
		}
	}
	// An id is a barrier when no indexed pair holds it and no pair with it
	// can be long enough to need the string lookup.
	if x.empty >= 0 {
		return x
	}
	joins := make(map[int32]bool)
	for k := range x.pairs {
		if a, b := int32(uint32(k>>32)), int32(uint32(k)); a != x.empty && b != x.empty {
			joins[a], joins[b] = true, true
		}
	}
	longest := 0
	for _, p := range t.Pieces {
		longest = max(longest, len(p))
	}
	x.barrier = make([]bool, len(t.Pieces))
	for i, p := range t.Pieces {
		x.barrier[i] = !joins[x.canon[i]] && len(p)+longest <= maxIndexedPair
	}
	return x
}

// fastIndex returns the pair index when it matches the vocabulary.
func (t *Tokenizer) fastIndex() *pairIndex {
	if x := t.pairs; x != nil && x.n == len(t.Pieces) {
		return x
	}
	return nil
}

// pairID is lookup[piece(a)+piece(b)].
func (t *Tokenizer) pairID(x *pairIndex, a, b int32) (int32, bool) {
	ca, cb := x.empty, x.empty
	var la, lb int
	if uint(a) < uint(len(x.canon)) {
		ca, la = x.canon[a], int(x.plen[a])
	}
	if uint(b) < uint(len(x.canon)) {
		cb, lb = x.canon[b], int(x.plen[b])
	}
	if la+lb > maxIndexedPair {
		id, ok := t.lookup[t.piece(int(a))+t.piece(int(b))]
		return int32(id), ok
	}
	id, ok := x.pairs[pairKey(ca, cb)]
	return id, ok
}

// encoder holds one encoding's buffers, reused from call to call.
type encoder struct {
	toks []int32
	next []int32 // -1 past the end; -2 once merged into its left neighbour
	prev []int32
	heap []fastCand
}

// fastCand is a candidate merge. key orders candidates: the score's bits
// mapped so that unsigned order is float order, then the bitwise complement
// of the left position, so the largest key is the best-scoring pair and the
// leftmost among equals, as run.c picks.
type fastCand struct {
	key      uint64
	a, b, id int32
}

func scoreBits(s float32) uint32 {
	if s == 0 {
		s = 0 // -0 and +0 are equal scores
	}
	b := math.Float32bits(s)
	if b&(1<<31) != 0 {
		return ^b
	}
	return b | 1<<31
}

var encoderPool = sync.Pool{New: func() any { return new(encoder) }}

// encode32 is Encode without EOS into e's buffers: the result is valid until
// e's next use.
func (t *Tokenizer) encode32(e *encoder, x *pairIndex, text string, bos bool) []int32 {
	toks := e.toks[:0]
	if bos {
		toks = append(toks, BOS)
	}
	if text != "" {
		if id, ok := t.lookup[" "]; ok {
			toks = append(toks, int32(id))
		} else {
			toks = append(toks, ByteBase+' ')
		}
	}
	for i := 0; i < len(text); {
		if c := text[i]; c < 0x80 && (i+1 == len(text) || text[i+1]&0xC0 != 0x80) {
			// A one-byte run: an ASCII character with no stray
			// continuation bytes after it.
			if id := x.single[c]; id >= 0 {
				toks = append(toks, id)
			} else {
				toks = append(toks, ByteBase+int32(c))
			}
			i++
			continue
		}
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup[text[i:j]]; ok {
			toks = append(toks, int32(id))
		} else {
			for k := i; k < j; k++ {
				toks = append(toks, ByteBase+int32(text[k]))
			}
		}
		i = j
	}
	e.toks = toks
	return t.mergeFast(e, x)
}

// cand returns the candidate merging the pair at l (left) and r, if its
// piece exists and scores above run.c's -1e10 floor (NaN never merges).
func (t *Tokenizer) cand(x *pairIndex, toks []int32, l, r int32) (fastCand, bool) {
	a, b := toks[l], toks[r]
	id, ok := t.pairID(x, a, b)
	if !ok {
		return fastCand{}, false
	}
	s := t.Scores[id]
	if !(s > -1e10) {
		return fastCand{}, false
	}
	return fastCand{key: uint64(scoreBits(s))<<32 | uint64(^uint32(l)), a: a, b: b, id: id}, true
}

// mergeFast is mergeStrings on e.toks, in place; it returns the merged toks.
// Barrier ids never merge, so the parts between them are merged one by one:
// their merges never interact, and run.c's global order (best score, then
// leftmost) restricted to one part is that part's own order. Small parts keep
// the heap and the lists in cache for long texts.
func (t *Tokenizer) mergeFast(e *encoder, x *pairIndex) []int32 {
	toks := e.toks
	split := x.barrier != nil
	for _, id := range toks {
		if uint(id) >= uint(len(x.canon)) {
			split = false
			break
		}
	}
	if !split {
		if len(toks) < 2 {
			return toks
		}
		return t.mergeRun(e, x, toks)
	}
	out, start := 0, 0
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) {
			if id := toks[i]; uint(id) >= uint(len(x.barrier)) || !x.barrier[id] {
				continue
			}
		}
		if i-start >= 2 {
			out += copy(toks[out:], t.mergeRun(e, x, toks[start:i]))
		} else {
			out += copy(toks[out:], toks[start:i])
		}
		if i < len(toks) {
			toks[out] = toks[i]
			out++
		}
		start = i + 1
	}
	return toks[:out]
}

// mergeRun merges toks (at least two) in place, as mergeStrings does, and
// returns the merged prefix of toks.
func (t *Tokenizer) mergeRun(e *encoder, x *pairIndex, toks []int32) []int32 {
	n := int32(len(toks))
	if int(n) > cap(e.next) {
		e.next = make([]int32, n)
		e.prev = make([]int32, n)
	}
	next, prev := e.next[:n], e.prev[:n]
	for i := range n {
		prev[i], next[i] = i-1, i+1
	}
	next[n-1] = -1
	h := e.heap[:0]
	if cap(h) < int(n) {
		h = make([]fastCand, 0, n)
	}
	for i := int32(0); i+1 < n; i++ {
		if c, ok := t.cand(x, toks, i, i+1); ok {
			h = append(h, c)
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i, h[i])
	}
	for len(h) > 0 {
		c := h[0]
		last := len(h) - 1
		if last > 0 {
			siftDown(h[:last], 0, h[last])
		}
		h = h[:last]
		l := int32(^uint32(c.key))
		r := next[l]
		// Stale candidates: l was merged away (-2), or a side changed.
		if r < 0 || toks[l] != c.a || toks[r] != c.b {
			continue
		}
		toks[l] = c.id
		nr := next[r]
		next[l], next[r] = nr, -2
		if nr >= 0 {
			prev[nr] = l
		}
		if p := prev[l]; p >= 0 {
			if c, ok := t.cand(x, toks, p, l); ok {
				h = siftUp(append(h, c))
			}
		}
		if nr >= 0 {
			if c, ok := t.cand(x, toks, l, nr); ok {
				h = siftUp(append(h, c))
			}
		}
	}
	e.heap = h
	out := toks[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, toks[i])
	}
	return out
}

// siftDown places c at hole i of max-heap h, moving larger children up.
func siftDown(h []fastCand, i int, c fastCand) {
	for {
		k := 2*i + 1
		if k >= len(h) {
			break
		}
		if k+1 < len(h) && h[k+1].key > h[k].key {
			k++
		}
		if h[k].key <= c.key {
			break
		}
		h[i] = h[k]
		i = k
	}
	h[i] = c
}

// siftUp restores the heap after an append.
func siftUp(h []fastCand) []fastCand {
	i := len(h) - 1
	c := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if h[p].key >= c.key {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = c
	return h
}
