package data

import (
	"fmt"
	"math/rand/v2"
)

// DefaultValFraction is the share of tokens held out for validation when the
// data is a single file (or the built-in corpus).
const DefaultValFraction = 0.1

// Split is a train or validation view: an ordered list of token segments.
// Training windows never cross a segment (shard) boundary, as in llama2.c.
type Split struct {
	Name string
	segs []segment
}

type segment struct {
	name string
	toks []uint16
}

// Split divides the tokens into train and validation parts.
//
// With two or more shards the first shard is validation and the rest train:
// this is llama2.c's own convention (tinystories.py PretokDataset), so losses
// are comparable with runs made there. With a single shard the last
// valFraction of its tokens is validation (DefaultValFraction when
// valFraction <= 0); the tail is used, not a random sample, so that the two
// parts never share a window.
func (t *Tokens) Split(valFraction float64) (train, val *Split) {
	if valFraction <= 0 || valFraction >= 1 {
		valFraction = DefaultValFraction
	}
	train, val = &Split{Name: "train"}, &Split{Name: "validation"}
	if len(t.Shards) >= 2 {
		val.segs = append(val.segs, segment{t.Shards[0].Path, t.Shards[0].Tokens})
		for _, s := range t.Shards[1:] {
			train.segs = append(train.segs, segment{s.Path, s.Tokens})
		}
		return train, val
	}
	s := t.Shards[0]
	cut := len(s.Tokens) - int(float64(len(s.Tokens))*valFraction)
	train.segs = []segment{{s.Path, s.Tokens[:cut]}}
	val.segs = []segment{{s.Path + " (validation tail)", s.Tokens[cut:]}}
	return train, val
}

// Len is the number of tokens in the split.
func (s *Split) Len() int64 {
	var n int64
	for _, g := range s.segs {
		n += int64(len(g.toks))
	}
	return n
}

// Used returns the distinct token ids that occur in the split, ascending:
// the vocabulary a compacted classifier needs to score (every target the
// split can produce is among them).
func (s *Split) Used(vocab int) []int32 {
	seen := make([]bool, vocab)
	for _, g := range s.segs {
		for _, t := range g.toks {
			if int(t) < vocab {
				seen[t] = true
			}
		}
	}
	var ids []int32
	for id, ok := range seen {
		if ok {
			ids = append(ids, int32(id))
		}
	}
	return ids
}

// Check reports an error naming the segment when one is too short to hold a
// single window of seq+1 tokens (an input of seq tokens plus the shifted target).
func (s *Split) Check(seq int) error {
	if seq < 1 {
		return fmt.Errorf("sequence length %d: must be at least 1", seq)
	}
	if len(s.segs) == 0 {
		return fmt.Errorf("%s split is empty: provide more token data", s.Name)
	}
	for _, g := range s.segs {
		if len(g.toks) < seq+1 {
			return fmt.Errorf("%s data %s has %d tokens, fewer than seq+1 = %d: use a shorter --seq, more data, or remove this shard", s.Name, g.name, len(g.toks), seq+1)
		}
	}
	return nil
}

// NumWindows is the number of non-overlapping windows of seq+1 tokens
// (consecutive windows share one token: the last target is the next input).
func (s *Split) NumWindows(seq int) int64 {
	var n int64
	for _, g := range s.segs {
		n += int64(windowsIn(len(g.toks), seq))
	}
	return n
}

func windowsIn(n, seq int) int {
	if n < seq+1 {
		return 0
	}
	return (n - 1) / seq
}

// Window copies window i (0 <= i < NumWindows(seq)) into dst[:seq+1].
// Windows are numbered segment by segment, so reading 0, 1, 2, ... is a
// sequential pass, which is what a validation loss wants.
func (s *Split) Window(seq int, i int64, dst []uint16) error {
	if len(dst) < seq+1 {
		return fmt.Errorf("window buffer holds %d tokens, need seq+1 = %d", len(dst), seq+1)
	}
	for _, g := range s.segs {
		w := int64(windowsIn(len(g.toks), seq))
		if i < w {
			off := int(i) * seq
			copy(dst[:seq+1], g.toks[off:off+seq+1])
			return nil
		}
		i -= w
	}
	return fmt.Errorf("window index out of range for %s split", s.Name)
}

// Cursor is the sampler's whole state: which epoch, and how far into that
// epoch's permutation. Together with the seed it reproduces the stream exactly.
type Cursor struct {
	Seed  uint64
	Epoch uint64
	Index int64
}

// Sampler draws training windows in a seeded random order: every window is
// seen once per epoch, each epoch in a fresh permutation derived from
// (seed, epoch) with PCG, so a restored cursor continues bit-exactly.
type Sampler struct {
	split    *Split
	seq      int
	n        int64
	cur      Cursor
	perm     []uint32 // window order for cur.Epoch; rebuilt lazily
	permFor  uint64
	havePerm bool
}

// NewSampler checks the split for seq and starts at epoch 0, index 0.
func NewSampler(s *Split, seq int, seed uint64) (*Sampler, error) {
	if err := s.Check(seq); err != nil {
		return nil, err
	}
	n := s.NumWindows(seq)
	if n > 1<<32-1 {
		return nil, fmt.Errorf("%s split has %d windows, more than the sampler supports; use a longer --seq", s.Name, n)
	}
	return &Sampler{split: s, seq: seq, n: n, cur: Cursor{Seed: seed}}, nil
}

// Windows is the number of windows per epoch.
func (s *Sampler) Windows() int64 { return s.n }

// Cursor returns the position of the next window.
func (s *Sampler) Cursor() Cursor { return s.cur }

func (s *Sampler) permutation() []uint32 {
	if s.havePerm && s.permFor == s.cur.Epoch {
		return s.perm
	}
	if s.perm == nil {
		s.perm = make([]uint32, s.n)
	}
	for i := range s.perm {
		s.perm[i] = uint32(i)
	}
	// Mixing a constant into the second PCG word keeps epoch 0 of seed k from
	// equalling some other stream's choice of (k, 0).
	r := rand.New(rand.NewPCG(s.cur.Seed, s.cur.Epoch^0x9e3779b97f4a7c15))
	r.Shuffle(len(s.perm), func(i, j int) { s.perm[i], s.perm[j] = s.perm[j], s.perm[i] })
	s.permFor, s.havePerm = s.cur.Epoch, true
	return s.perm
}

// Next copies the next window of seq+1 tokens into dst and advances.
func (s *Sampler) Next(dst []uint16) error {
	p := s.permutation()
	if err := s.split.Window(s.seq, int64(p[s.cur.Index]), dst); err != nil {
		return err
	}
	s.cur.Index++
	if s.cur.Index >= s.n {
		s.cur.Epoch++
		s.cur.Index = 0
	}
	return nil
}

// Batch fills inputs and targets (each batch*seq long, row-major) with
// len(x)/seq windows: y is x shifted by one token.
func (s *Sampler) Batch(x, y []int32) error {
	if len(x) != len(y) || len(x)%s.seq != 0 {
		return fmt.Errorf("batch buffers of %d and %d tokens: need equal multiples of seq %d", len(x), len(y), s.seq)
	}
	buf := make([]uint16, s.seq+1)
	for b := 0; b < len(x)/s.seq; b++ {
		if err := s.Next(buf); err != nil {
			return err
		}
		for i := 0; i < s.seq; i++ {
			x[b*s.seq+i] = int32(buf[i])
			y[b*s.seq+i] = int32(buf[i+1])
		}
	}
	return nil
}

const stateVersion = "anetop-data/v1"

// State encodes the cursor as one line of text for checkpoint metadata. It
// also records seq and the window count so a resume against different data
// is refused instead of silently sampling something else.
func (s *Sampler) State() string {
	return fmt.Sprintf("%s seed=%d epoch=%d index=%d seq=%d windows=%d",
		stateVersion, s.cur.Seed, s.cur.Epoch, s.cur.Index, s.seq, s.n)
}

// Restore sets the cursor from a State string.
func (s *Sampler) Restore(state string) error {
	var c Cursor
	var seq int
	var n int64
	var ver string
	_, err := fmt.Sscanf(state, "%s seed=%d epoch=%d index=%d seq=%d windows=%d",
		&ver, &c.Seed, &c.Epoch, &c.Index, &seq, &n)
	if err != nil || ver != stateVersion {
		return fmt.Errorf("data cursor %q is not an %s state", state, stateVersion)
	}
	if seq != s.seq || n != s.n {
		return fmt.Errorf("data cursor was saved for seq %d with %d windows, but this run has seq %d with %d windows: resume with the same --data and --seq", seq, n, s.seq, s.n)
	}
	if c.Index < 0 || c.Index >= n {
		return fmt.Errorf("data cursor index %d out of range [0, %d)", c.Index, n)
	}
	s.cur = c
	return nil
}
