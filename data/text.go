package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// DocSeparator splits a text file into documents, as in the TinyStories
// text release: a line holding only this marker ends a story.
const DocSeparator = "<|endoftext|>"

// Fingerprint identifies a tokenizer's exact contents (pieces and scores):
// the first 8 bytes of the SHA-256 of its tokenizer.bin encoding, in hex.
func (t *Tokenizer) Fingerprint() string {
	h := sha256.New()
	t.WriteTo(h)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// CachePath is where TokenizeTextFile keeps the tokens of textPath for t.
// The tokenizer's fingerprint is in the name, so switching tokenizers never
// reuses tokens made by another one.
func CachePath(textPath string, t *Tokenizer) string {
	return textPath + ".tok-" + t.Fingerprint() + ".bin"
}

// TokenizeTextFile tokenizes a UTF-8 text file and returns the path of a
// llama2.c-format .bin holding its tokens, written beside the text. The file
// is split into documents at DocSeparator lines; each is trimmed and encoded
// as llama2.c pretokenizes (BOS, dummy-prefix space, no EOS). An existing
// cache is reused when it is at least as new as the text; a new one is written
// under a temporary name and renamed, so an interrupted run leaves no half file.
func TokenizeTextFile(textPath string, t *Tokenizer) (string, error) {
	ti, err := os.Stat(textPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("text file %s does not exist: check the --data path", textPath)
		}
		return "", fmt.Errorf("text file: %w", err)
	}
	out := CachePath(textPath, t)
	if ci, err := os.Stat(out); err == nil && !ci.ModTime().Before(ti.ModTime()) && ci.Size()%2 == 0 && ci.Size() > 0 {
		return out, nil
	}
	text, err := os.ReadFile(textPath)
	if err != nil {
		return "", fmt.Errorf("text file: %w", err)
	}
	toks, err := t.EncodeDocuments(string(text))
	if err != nil {
		return "", fmt.Errorf("text file %s: %w", textPath, err)
	}
	if len(toks) == 0 {
		return "", fmt.Errorf("text file %s holds no text: give a file with some", textPath)
	}
	err = writeAtomic(out, func(w io.Writer) error {
		b := make([]byte, 2*len(toks))
		for i, v := range toks {
			binary.LittleEndian.PutUint16(b[2*i:], v)
		}
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("caching tokens of %s (is its directory writable?): %w", textPath, err)
	}
	return out, nil
}

// EncodeDocuments splits text at DocSeparator lines and encodes each
// non-empty, trimmed document with BOS, as uint16 ids.
func (t *Tokenizer) EncodeDocuments(text string) ([]uint16, error) {
	if t.Vocab() > 1<<16 {
		return nil, fmt.Errorf("vocabulary of %d does not fit uint16 token files", t.Vocab())
	}
	var toks []uint16
	for _, doc := range splitDocs(text) {
		for _, id := range t.Encode(doc, true, false) {
			toks = append(toks, uint16(id))
		}
	}
	return toks, nil
}

func splitDocs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var docs []string
	var cur bytes.Buffer
	flush := func() {
		if d := strings.TrimSpace(cur.String()); d != "" {
			docs = append(docs, d)
		}
		cur.Reset()
	}
	for line := range strings.Lines(text) {
		if strings.TrimSpace(line) == DocSeparator {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}
