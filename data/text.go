package data

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
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

// Options tune TokenizeTextFileWith and OpenWith.
type Options struct {
	// Progress, when set, observes tokenization of a text file. It is
	// called only when the token cache is (re)built, never when a fresh
	// cache is reused: first with done 0 before any work (so its first call
	// says tokenization is happening), then at most five times a second as
	// the tokens of the first done bytes of the text are written, and last
	// with done == total once the cache is in place. total is the file's
	// size (or the bytes read, if the file grew meanwhile); done never
	// decreases. Calls come from the goroutine that called
	// TokenizeTextFileWith or OpenWith, one at a time.
	Progress func(done, total int64)
	// Workers is how many documents are encoded at once:
	// runtime.GOMAXPROCS(0) when <= 0.
	Workers int
}

// TokenizeTextFile is TokenizeTextFileWith with zero Options.
func TokenizeTextFile(textPath string, t *Tokenizer) (string, error) {
	return TokenizeTextFileWith(textPath, t, Options{})
}

// TokenizeTextFileWith tokenizes a UTF-8 text file and returns the path of a
// llama2.c-format .bin holding its tokens, written beside the text. The file
// is split into documents at DocSeparator lines; each is trimmed and encoded
// as llama2.c pretokenizes (BOS, dummy-prefix space, no EOS). An existing
// cache is reused when it is at least as new as the text; a new one is written
// under a temporary name and renamed, so an interrupted run leaves no half file.
//
// The text is streamed: documents are read one by one, encoded on
// opt.Workers goroutines in batches, and written in order, so memory holds a
// bounded queue of batches plus the document each worker encodes, whatever
// the file's size. The tokens are exactly those of EncodeDocuments on the
// whole text.
func TokenizeTextFileWith(textPath string, t *Tokenizer, opt Options) (string, error) {
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
	if t.Vocab() > 1<<16 {
		return "", fmt.Errorf("text file %s: vocabulary of %d does not fit uint16 token files", textPath, t.Vocab())
	}
	f, err := os.Open(textPath)
	if err != nil {
		return "", fmt.Errorf("text file: %w", err)
	}
	defer f.Close()
	if err := checkLooksLikeText(f, textPath); err != nil {
		return "", err
	}
	total := ti.Size()
	if fi, err := f.Stat(); err == nil {
		total = fi.Size()
	}
	progress := opt.Progress
	if progress == nil {
		progress = func(int64, int64) {}
	}
	progress(0, total)
	var read int64
	err = writeAtomic(out, func(w io.Writer) error {
		var err error
		read, err = tokenizeStream(f, w, t, opt.Workers, func(done int64) {
			// done == total is the last call's, once the cache is in place;
			// the stream's own last batch reaches it before the rename.
			if done < total {
				progress(done, total)
			}
		})
		return err
	})
	var rerr readError
	switch {
	case errors.As(err, &rerr):
		return "", fmt.Errorf("text file: %w", rerr.err)
	case errors.Is(err, errNoText):
		return "", fmt.Errorf("text file %s holds no text: give a file with some", textPath)
	case err != nil:
		return "", fmt.Errorf("caching tokens of %s (is its directory writable?): %w", textPath, err)
	}
	total = max(total, read)
	progress(total, total)
	return out, nil
}

var errNoText = errors.New("no text")

type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// Batching: a job is documents totalling about batchBytes of text (or one
// larger document); at most jobsPerWorker jobs per worker are in flight
// between the reader and the writer.
const (
	batchBytes      = 64 << 10
	jobsPerWorker   = 4
	progressEvery   = 200 * time.Millisecond
	textReadBufSize = 256 << 10
)

type tokJob struct {
	docs []string
	end  int64       // bytes of text read once the job's documents were
	done chan []byte // the tokens, little-endian uint16
}

// tokenizeStream reads documents from r, encodes them on workers goroutines
// and writes their tokens to w in document order, calling progress with the
// bytes of text whose tokens are written, at most every progressEvery. It
// returns the bytes read; errNoText when there are no tokens, a readError when
// reading fails.
func tokenizeStream(r io.Reader, w io.Writer, t *Tokenizer, workers int, progress func(done int64)) (int64, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	jobs := make(chan *tokJob, workers*jobsPerWorker)
	pending := make(chan *tokJob, workers*jobsPerWorker)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var e encoder
			for j := range jobs {
				select {
				case <-quit:
					j.done <- nil
					continue
				default:
				}
				var b []byte
				for _, d := range j.docs {
					b = t.appendDocTokens(b, &e, d)
				}
				j.done <- b
			}
		})
	}
	var read int64
	var rerr error
	wg.Go(func() {
		defer close(pending)
		defer close(jobs)
		send := func(j *tokJob) bool {
			select {
			case pending <- j:
			case <-quit:
				return false
			}
			select {
			case jobs <- j:
			case <-quit:
				j.done <- nil
				return false
			}
			return true
		}
		var batch []string
		size := 0
		read, rerr = readDocs(r, func(doc []byte, at int64) bool {
			if doc != nil {
				batch = append(batch, string(doc))
				size += len(doc)
				if size < batchBytes {
					return true
				}
			}
			j := &tokJob{docs: batch, end: at, done: make(chan []byte, 1)}
			batch, size = nil, 0
			return send(j)
		})
	})
	bw := bufio.NewWriterSize(w, 1<<20)
	var werr error
	var ntok int64
	last := time.Now()
	for j := range pending {
		b := <-j.done
		if werr != nil {
			continue
		}
		ntok += int64(len(b) / 2)
		if _, err := bw.Write(b); err != nil {
			werr = err
			close(quit)
			continue
		}
		if now := time.Now(); now.Sub(last) >= progressEvery {
			progress(j.end)
			last = now
		}
	}
	wg.Wait()
	switch {
	case werr != nil:
		return read, werr
	case rerr != nil:
		return read, readError{rerr}
	case ntok == 0:
		return read, errNoText
	}
	return read, bw.Flush()
}

// readDocs streams r's documents as splitDocs cuts them: lines with "\r\n"
// ends read as "\n", a line that trims to DocSeparator ends a document, and
// each document is trimmed, empty ones skipped. emit gets each document (a
// buffer reused after emit returns) and the bytes read so far; it is called
// with a nil document once at the end. emit returning false stops reading.
// Lines of any length are handled; memory is one document.
func readDocs(r io.Reader, emit func(doc []byte, read int64) bool) (int64, error) {
	br := bufio.NewReaderSize(r, textReadBufSize)
	sep := []byte(DocSeparator)
	var cur []byte // the document so far; its last line starts at line
	line := 0
	var read int64
	for {
		frag, err := br.ReadSlice('\n')
		read += int64(len(frag))
		cur = append(cur, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && err != io.EOF {
			return read, err
		}
		if n := len(cur); n-line >= 2 && cur[n-1] == '\n' && cur[n-2] == '\r' {
			cur[n-2] = '\n'
			cur = cur[:n-1]
		}
		if bytes.Equal(bytes.TrimSpace(cur[line:]), sep) {
			if d := bytes.TrimSpace(cur[:line]); len(d) > 0 && !emit(d, read) {
				return read, nil
			}
			cur, line = cur[:0], 0
		} else {
			line = len(cur)
		}
		if err == io.EOF {
			if d := bytes.TrimSpace(cur); len(d) > 0 && !emit(d, read) {
				return read, nil
			}
			emit(nil, read)
			return read, nil
		}
	}
}

// appendDocTokens appends the little-endian uint16 tokens of
// Encode(doc, true, false) to b, encoding with e's buffers.
func (t *Tokenizer) appendDocTokens(b []byte, e *encoder, doc string) []byte {
	if x := t.fastIndex(); x != nil && len(doc) <= maxFastSymbols {
		for _, id := range t.encode32(e, x, doc, true) {
			b = binary.LittleEndian.AppendUint16(b, uint16(id))
		}
		return b
	}
	for _, id := range t.Encode(doc, true, false) {
		b = binary.LittleEndian.AppendUint16(b, uint16(id))
	}
	return b
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

// checkLooksLikeText refuses a file whose first 64 KB hold a NUL byte: no
// text does, and token files (uint16 ids, most below 256 in the high byte)
// are full of them. Without the check, a token file not named .bin would be
// tokenized as text and trained on as noise. It leaves f at its start.
func checkLooksLikeText(f *os.File, path string) error {
	head := make([]byte, 64<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("text file: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("text file: %w", err)
	}
	if i := bytes.IndexByte(head[:n], 0); i >= 0 {
		return fmt.Errorf("%s does not look like text (a NUL byte at offset %d): --data takes UTF-8 text, or llama2.c token files, which must be named .bin", path, i)
	}
	return nil
}
