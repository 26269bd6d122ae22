package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Special token ids fixed by llama2.c (and sentencepiece's Llama vocabulary).
const (
	UnkID = 0
	BOS   = 1
	EOS   = 2
	// ByteBase is the id of piece "<0x00>": byte b falls back to id b+3.
	ByteBase = 3
)

// Tokenizer is a llama2.c tokenizer.bin: pieces with sentencepiece scores.
// Encode and Decode reproduce run.c's behaviour, so token ids match what
// llama2.c produces for the same prompt. Encode and Decode only read the
// tokenizer, so they are safe for concurrent use; Pieces must not change
// once it is built (Scores may: they are read at each merge).
type Tokenizer struct {
	Pieces []string
	Scores []float32
	MaxLen int // max_token_length as stored in the file
	lookup map[string]int
	pairs  *pairIndex
}

// NewTokenizer builds a tokenizer from pieces and scores.
func NewTokenizer(pieces []string, scores []float32) (*Tokenizer, error) {
	if len(pieces) != len(scores) {
		return nil, fmt.Errorf("tokenizer: %d pieces but %d scores", len(pieces), len(scores))
	}
	t := &Tokenizer{Pieces: pieces, Scores: scores}
	for _, p := range pieces {
		t.MaxLen = max(t.MaxLen, len(p))
	}
	t.index()
	return t, nil
}

func (t *Tokenizer) index() {
	t.lookup = make(map[string]int, len(t.Pieces))
	for i, p := range t.Pieces {
		// run.c binary-searches a sorted copy, so with duplicate pieces the
		// winner is unspecified; keeping the first is at least deterministic.
		if _, ok := t.lookup[p]; !ok {
			t.lookup[p] = i
		}
	}
	t.pairs = t.buildPairIndex()
}

// Vocab is the number of pieces.
func (t *Tokenizer) Vocab() int { return len(t.Pieces) }

// LoadTokenizer reads a tokenizer.bin. The file does not store its vocabulary
// size (run.c takes it from model.bin): pass vocab to read exactly that many
// pieces and insist nothing follows, or vocab <= 0 to read to the end.
func LoadTokenizer(path string, vocab int) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer %s does not exist: pass a llama2.c tokenizer.bin (`anetop data get tinystories` downloads one)", path)
		}
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	t, err := ReadTokenizer(bufio.NewReader(f), vocab)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// ReadTokenizer parses tokenizer.bin bytes; see LoadTokenizer for vocab.
func ReadTokenizer(r io.Reader, vocab int) (*Tokenizer, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("missing max_token_length header (%v): not a llama2.c tokenizer.bin", err)
	}
	t := &Tokenizer{MaxLen: int(binary.LittleEndian.Uint32(hdr[:]))}
	if t.MaxLen <= 0 || t.MaxLen > 1<<16 {
		return nil, fmt.Errorf("max_token_length %d is implausible: not a llama2.c tokenizer.bin", t.MaxLen)
	}
	var rec [8]byte
	for i := 0; vocab <= 0 || i < vocab; i++ {
		n, err := io.ReadFull(r, rec[:])
		if vocab <= 0 && err == io.EOF && n == 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("truncated at piece %d (%v): the file is cut short, or the vocabulary size %d is larger than the tokenizer's", i, err, vocab)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(rec[0:]))
		l := int32(binary.LittleEndian.Uint32(rec[4:]))
		if l < 0 || int(l) > t.MaxLen {
			return nil, fmt.Errorf("piece %d has length %d outside [0, max_token_length %d]: the file is corrupt or not a tokenizer.bin", i, l, t.MaxLen)
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("truncated inside piece %d (%v)", i, err)
		}
		t.Pieces = append(t.Pieces, string(b))
		t.Scores = append(t.Scores, score)
	}
	if vocab > 0 {
		var one [1]byte
		if n, _ := r.Read(one[:]); n > 0 {
			return nil, fmt.Errorf("bytes follow piece %d: the tokenizer has more pieces than the vocabulary size %d; use the tokenizer made for this model", vocab-1, vocab)
		}
	}
	if len(t.Pieces) <= ByteBase+255 {
		return nil, fmt.Errorf("only %d pieces: a llama2.c tokenizer has <unk>, BOS, EOS and 256 byte pieces at least", len(t.Pieces))
	}
	t.index()
	return t, nil
}

// WriteTo writes the tokenizer.bin bytes run.c reads.
func (t *Tokenizer) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(t.MaxLen))
	bw.Write(b[:4])
	n += 4
	for i, p := range t.Pieces {
		binary.LittleEndian.PutUint32(b[0:], math.Float32bits(t.Scores[i]))
		binary.LittleEndian.PutUint32(b[4:], uint32(len(p)))
		bw.Write(b[:])
		bw.WriteString(p)
		n += 8 + int64(len(p))
	}
	return n, bw.Flush()
}

// WriteTokenizer writes t to path atomically (temp file, fsync, rename), so a
// crash never leaves a half-written tokenizer that later loads as garbage.
func WriteTokenizer(path string, t *Tokenizer) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := t.WriteTo(w)
		return err
	})
}

func writeAtomic(path string, fill func(io.Writer) error) error {
	f, err := createTemp(path)
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// createTemp creates a new file beside path under a hidden temporary name,
// with the permissions a plain create gives (0666 less the umask): unlike
// os.CreateTemp's 0600, for data and tokenizers are made to be shared.
func createTemp(path string) (*os.File, error) {
	var err error
	for range 100 {
		name := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.tmp%d", filepath.Base(path), rand.Uint32()))
		var f *os.File
		if f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666); err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	return nil, err
}

// Encode tokenizes text exactly as llama2.c's run.c encode() does: optional
// BOS, a dummy-prefix " " piece when text is non-empty, one piece per UTF-8
// code point (or its bytes' <0xXX> fallback pieces when the code point has
// no piece), then repeated merging of the adjacent pair whose concatenation
// is a piece with the highest score (leftmost on ties), and optional EOS.
func (t *Tokenizer) Encode(text string, bos, eos bool) []int {
	x := t.fastIndex()
	if x == nil || len(text) > maxFastSymbols {
		return t.encodeStrings(text, bos, eos)
	}
	e := encoderPool.Get().(*encoder)
	ids := t.encode32(e, x, text, bos)
	toks := make([]int, len(ids), len(ids)+1)
	for i, id := range ids {
		toks[i] = int(id)
	}
	if cap(e.toks) <= 1<<20 { // keep no giant buffers alive
		encoderPool.Put(e)
	}
	if eos {
		toks = append(toks, EOS)
	}
	return toks
}

// encodeStrings is Encode with the string-keyed merge: the reference the
// fast path is tested against, and the path for texts over 2 GB.
func (t *Tokenizer) encodeStrings(text string, bos, eos bool) []int {
	toks := make([]int, 0, len(text)+3)
	if bos {
		toks = append(toks, BOS)
	}
	if text != "" {
		// run.c appends whatever str_lookup(" ") returns, -1 included; a
		// vocabulary without " " gets the byte fallback here instead.
		if id, ok := t.lookup[" "]; ok {
			toks = append(toks, id)
		} else {
			toks = append(toks, ByteBase+' ')
		}
	}
	toks = t.appendCodePoints(toks, text)
	toks = t.mergeStrings(toks)
	if eos {
		toks = append(toks, EOS)
	}
	return toks
}

// appendCodePoints appends one piece per code point of s, or the byte
// fallback pieces of a code point with no piece. The split mirrors run.c: a
// run is a lead byte plus up to three continuation bytes, so even invalid
// UTF-8 is cut identically.
func (t *Tokenizer) appendCodePoints(toks []int, s string) []int {
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup[s[i:j]]; ok {
			toks = append(toks, id)
		} else {
			for k := i; k < j; k++ {
				toks = append(toks, ByteBase+int(s[k]))
			}
		}
		i = j
	}
	return toks
}

// merge merges toks as run.c does, with the fast path when it applies.
func (t *Tokenizer) merge(toks []int) []int {
	x := t.fastIndex()
	if x == nil || len(toks) > maxFastSymbols {
		return t.mergeStrings(toks)
	}
	e := &encoder{toks: make([]int32, len(toks))}
	for i, id := range toks {
		e.toks[i] = int32(id)
	}
	out := toks[:0]
	for _, id := range t.mergeFast(e, x) {
		out = append(out, int(id))
	}
	return out
}

// mergeStrings repeatedly replaces the adjacent pair whose concatenated
// pieces form the highest-scoring piece (the leftmost on ties), as run.c
// does. run.c rescans the whole sequence per merge, which is quadratic; this
// keeps the candidate pairs in a heap ordered by (score, position) and gives
// the same tokens in O(n log n), so whole text files can be encoded.
func (t *Tokenizer) mergeStrings(toks []int) []int {
	n := len(toks)
	if n < 2 {
		return toks
	}
	prev := make([]int, n)
	next := make([]int, n)
	for i := range toks {
		prev[i], next[i] = i-1, i+1
	}
	next[n-1] = -1
	h := &pairHeap{c: make([]pairCand, 0, n)}
	push := func(l int) {
		r := next[l]
		if l < 0 || r < 0 {
			return
		}
		id, ok := t.lookup[t.piece(toks[l])+t.piece(toks[r])]
		// run.c starts its search at -1e10 and compares with >, so pieces
		// scoring no higher (or NaN) never merge.
		if !ok || !(t.Scores[id] > -1e10) {
			return
		}
		h.push(pairCand{score: t.Scores[id], left: l, a: toks[l], b: toks[r], id: id})
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	dead := make([]bool, n)
	for h.len() > 0 {
		c := h.pop()
		l := c.left
		r := next[l]
		// Stale candidates: a side was merged away or changed since the push.
		if dead[l] || r < 0 || toks[l] != c.a || toks[r] != c.b {
			continue
		}
		toks[l] = c.id
		dead[r] = true
		next[l] = next[r]
		if next[r] >= 0 {
			prev[next[r]] = l
		}
		if prev[l] >= 0 {
			push(prev[l])
		}
		push(l)
	}
	out := toks[:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, toks[i])
	}
	return out
}

type pairCand struct {
	score    float32
	left     int
	a, b, id int
}

// pairHeap is a binary max-heap on score, then min on position: run.c takes
// the first (leftmost) of equally scored pairs. Positions are original
// indices, which keep their left-to-right order as nodes merge.
type pairHeap struct{ c []pairCand }

func (h *pairHeap) len() int { return len(h.c) }

func (h *pairHeap) less(i, j int) bool {
	a, b := h.c[i], h.c[j]
	if a.score != b.score {
		return a.score > b.score
	}
	return a.left < b.left
}

func (h *pairHeap) push(c pairCand) {
	h.c = append(h.c, c)
	for i := len(h.c) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.c[i], h.c[p] = h.c[p], h.c[i]
		i = p
	}
}

func (h *pairHeap) pop() pairCand {
	top := h.c[0]
	last := len(h.c) - 1
	h.c[0] = h.c[last]
	h.c = h.c[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h.c) && h.less(l, m) {
			m = l
		}
		if r < len(h.c) && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h.c[i], h.c[m] = h.c[m], h.c[i]
		i = m
	}
	return top
}

func (t *Tokenizer) piece(id int) string {
	if id < 0 || id >= len(t.Pieces) {
		return ""
	}
	return t.Pieces[id]
}

// Decode returns the text of token after prev, as run.c's decode(): a piece
// following BOS loses its leading space (the dummy prefix), and a "<0xXX>"
// piece stands for the raw byte XX. Out-of-range ids decode to "".
func (t *Tokenizer) Decode(prev, token int) string {
	p := t.piece(token)
	if prev == BOS && strings.HasPrefix(p, " ") {
		p = p[1:]
	}
	if b, ok := byteOfPiece(p); ok {
		return string([]byte{b})
	}
	return p
}

// byteOfPiece matches "<0xXX>" with two hex digits, like run.c's sscanf
// "<0x%02hhX>" does for every piece the llama2.c tokenizers contain.
func byteOfPiece(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	var v byte
	for _, c := range []byte(p[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// DecodeAll concatenates Decode over a token sequence, dropping BOS and EOS
// themselves (their pieces are "\n<s>\n" and "\n</s>\n", markup rather than text).
func (t *Tokenizer) DecodeAll(toks []int) string {
	var sb strings.Builder
	prev := -1
	for _, id := range toks {
		if id != BOS && id != EOS {
			sb.WriteString(t.Decode(prev, id))
		}
		prev = id
	}
	return sb.String()
}
