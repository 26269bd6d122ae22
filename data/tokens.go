package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"unsafe"
)

// Shard is one file of little-endian uint16 token ids, or an in-memory
// token slice. Tokens aliases a read-only mapping when the file was mapped:
// writing to it crashes the process, so callers copy out (Split.Window does).
type Shard struct {
	Path   string
	Tokens []uint16
	unmap  func() error
}

// Tokens is an ordered set of shards: a single .bin file, or every *.bin in a
// directory sorted by name (llama2.c names them data00.bin, data01.bin, ...).
type Tokens struct {
	Shards []*Shard
	Vocab  int // 0 when ids were not checked against a vocabulary
}

// readWhole is the portable fallback for mapFile.
func readWhole(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}

var littleEndianHost = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// OpenTokens opens a .bin token file or a directory of *.bin shards and
// checks every id against vocab (skipped when vocab <= 0). Errors name the
// offending file and say how to fix it.
func OpenTokens(path string, vocab int) (*Tokens, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("token data %s does not exist: pass a llama2.c .bin file or a directory of .bin shards (`anetop data get tinystories` downloads some), or omit --data for the built-in corpus", path)
		}
		return nil, fmt.Errorf("token data: %w", err)
	}
	var files []string
	if fi.IsDir() {
		all, err := filepath.Glob(filepath.Join(path, "*.bin"))
		if err != nil {
			return nil, fmt.Errorf("token data %s: %w", path, err)
		}
		for _, f := range all {
			// Hidden files are our own temporaries mid-write; tokenizer.bin
			// often sits beside the shards but is not token data.
			if b := filepath.Base(f); b[0] != '.' && b != "tokenizer.bin" {
				files = append(files, f)
			}
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("token data directory %s holds no *.bin shards: point --data at a directory of llama2.c pretokenized .bin files (e.g. data00.bin ...) or at one such file", path)
		}
	} else {
		files = []string{path}
	}
	t := &Tokens{Vocab: vocab}
	for _, f := range files {
		s, err := openShard(f, vocab)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.Shards = append(t.Shards, s)
	}
	return t, nil
}

func openShard(path string, vocab int) (*Shard, error) {
	b, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	if len(b)%2 != 0 {
		unmap()
		return nil, fmt.Errorf("token file %s has an odd byte count (%d): it is not a llama2.c uint16 token file, or it was truncated mid-token; re-create or re-download it", path, len(b))
	}
	if len(b) == 0 {
		unmap()
		return nil, fmt.Errorf("token file %s is empty: re-create or re-download it, or remove it from the directory", path)
	}
	var toks []uint16
	if littleEndianHost {
		toks = unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
	} else {
		toks = make([]uint16, len(b)/2)
		for i := range toks {
			toks[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		unmap()
		unmap = func() error { return nil }
	}
	s := &Shard{Path: path, Tokens: toks, unmap: unmap}
	if err := checkVocab(path, toks, vocab); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func checkVocab(name string, toks []uint16, vocab int) error {
	if vocab <= 0 {
		return nil
	}
	for i, v := range toks {
		if int(v) >= vocab {
			return fmt.Errorf("token file %s: token %d at position %d is not below the vocabulary size %d: the file was made with a different tokenizer; use the matching tokenizer/model vocabulary (e.g. --vocab) or re-tokenize the data", name, v, i, vocab)
		}
	}
	return nil
}

func (s *Shard) close() error {
	if s.unmap == nil {
		return nil
	}
	err := s.unmap()
	s.unmap, s.Tokens = nil, nil
	return err
}

// Close unmaps every shard; the token slices must not be used afterwards.
func (t *Tokens) Close() error {
	var first error
	for _, s := range t.Shards {
		if err := s.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Len is the total number of tokens over all shards.
func (t *Tokens) Len() int64 {
	var n int64
	for _, s := range t.Shards {
		n += int64(len(s.Tokens))
	}
	return n
}

// FromTokens wraps an in-memory token slice (e.g. the built-in corpus) as a
// one-shard Tokens, checked against vocab.
func FromTokens(name string, toks []uint16, vocab int) (*Tokens, error) {
	if len(toks) == 0 {
		return nil, fmt.Errorf("token data %s is empty", name)
	}
	if err := checkVocab(name, toks, vocab); err != nil {
		return nil, err
	}
	return &Tokens{Vocab: vocab, Shards: []*Shard{{Path: name, Tokens: toks}}}, nil
}
