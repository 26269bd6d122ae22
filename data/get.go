package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

// RemoteFile is one file of a downloadable data set. Size and SHA256 are
// checked when set; when Size is 0 the server's Content-Length is used.
type RemoteFile struct {
	Name   string // file name under the destination directory
	URL    string
	Size   int64
	SHA256 string // lowercase hex; "" skips the hash check
}

// TinyStories is what `anetop data get tinystories` fetches.
//
// UNVERIFIED: these URLs were written from memory of the llama2.c repository
// and the roneneldan/TinyStories Hugging Face data set and could not be
// fetched from the sandbox this was written in; no published sizes or
// SHA-256 sums are known, so only the server's Content-Length is checked.
// Fill in Size/SHA256 once the files have been fetched once for real.
// llama2.c publishes no pretokenized shards: the text is downloaded and
// tokenized locally (TokenizeTextFile with tokenizer.bin, vocab 32000),
// which yields exactly what llama2.c's pretokenize step makes.
var TinyStories = []RemoteFile{
	{Name: "tokenizer.bin", URL: "https://raw.githubusercontent.com/karpathy/llama2.c/master/tokenizer.bin"},
	{Name: "TinyStories-valid.txt", URL: "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt"},
	{Name: "TinyStories-train.txt", URL: "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-train.txt"},
}

// TinyStoriesDir is the default destination: <user cache dir>/anetop/tinystories.
func TinyStoriesDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory (%v): pass a destination directory", err)
	}
	return filepath.Join(d, "anetop", "tinystories"), nil
}

// Get downloads the TinyStories files into dst (TinyStoriesDir() when dst is
// ""), reporting progress over all files.
func Get(ctx context.Context, dst string, progress func(done, total int64)) error {
	if dst == "" {
		d, err := TinyStoriesDir()
		if err != nil {
			return err
		}
		dst = d
	}
	return Download(ctx, http.DefaultClient, dst, TinyStories, progress)
}

// Download fetches files into dir. A file that is already complete is kept;
// a partial download lives in "<name>.part" and is resumed with an HTTP Range
// request (restarted if the server ignores the range); the final name appears
// only after the size and hash checks pass and the data is synced, so a
// visible file is always a whole one. progress (may be nil) gets the bytes
// done and expected over all files; total is -1 while some size is unknown.
func Download(ctx context.Context, client *http.Client, dir string, files []RemoteFile, progress func(done, total int64)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	sizes := make([]int64, len(files))
	var total int64
	for i, f := range files {
		sizes[i] = f.Size
		if sizes[i] <= 0 {
			sizes[i] = headSize(ctx, client, f.URL)
		}
		if sizes[i] <= 0 || total < 0 {
			total = -1
		} else {
			total += sizes[i]
		}
	}
	var done int64
	report := func(d int64) {
		if progress != nil {
			progress(done+d, total)
		}
	}
	for i, f := range files {
		n, err := fetch(ctx, client, dir, f, sizes[i], report)
		if err != nil {
			return err
		}
		done += n
		report(0)
	}
	return nil
}

// headSize asks for Content-Length; 0 when the server will not say.
func headSize(ctx context.Context, client *http.Client, url string) int64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return 0
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0
	}
	return max(resp.ContentLength, 0)
}

func fetch(ctx context.Context, client *http.Client, dir string, f RemoteFile, size int64, report func(int64)) (int64, error) {
	final := filepath.Join(dir, f.Name)
	part := final + ".part"
	if fi, err := os.Stat(final); err == nil && (size <= 0 || fi.Size() == size) {
		if err := checkHash(final, f); err == nil {
			return fi.Size(), nil
		}
		// A complete-looking file with a bad hash is fetched again.
	}
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", f.Name, err)
	}
	defer out.Close()
	have, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", f.Name, err)
	}
	if size > 0 && have > size {
		// Longer than the real file: not a prefix of it, start over.
		if err := out.Truncate(0); err != nil {
			return 0, err
		}
		have, _ = out.Seek(0, io.SeekStart)
	}
	if size <= 0 || have < size {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
		if err != nil {
			return 0, fmt.Errorf("download %s: %w", f.Name, err)
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("download %s: %w (the partial file is kept; run the command again to resume)", f.Name, err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent && have > 0:
		case resp.StatusCode == http.StatusOK:
			// The server sent the whole file: drop what we had.
			if err := out.Truncate(0); err != nil {
				return 0, err
			}
			if _, err := out.Seek(0, io.SeekStart); err != nil {
				return 0, err
			}
			have = 0
			if size <= 0 && resp.ContentLength > 0 {
				size = resp.ContentLength
			}
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
			// We already hold at least the whole file; the checks below decide.
		default:
			return 0, fmt.Errorf("download %s from %s: server answered %s", f.Name, f.URL, resp.Status)
		}
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			pw := &progressWriter{w: out, n: have, report: report}
			if _, err := io.Copy(pw, resp.Body); err != nil {
				return 0, fmt.Errorf("download %s: %w after %d bytes (the partial file %s is kept; run the command again to resume)", f.Name, err, pw.n, part)
			}
			have = pw.n
		}
	}
	if size > 0 && have != size {
		if have > size {
			os.Remove(part)
		}
		return 0, fmt.Errorf("download %s: got %d bytes, expected %d (run the command again to resume)", f.Name, have, size)
	}
	if err := out.Sync(); err != nil {
		return 0, fmt.Errorf("download %s: %w", f.Name, err)
	}
	if err := checkHash(part, f); err != nil {
		out.Close()
		os.Remove(part)
		return 0, fmt.Errorf("download %s: %w; the bad file was deleted, run the command again", f.Name, err)
	}
	out.Close()
	if err := os.Rename(part, final); err != nil {
		return 0, fmt.Errorf("download %s: %w", f.Name, err)
	}
	syncDir(dir)
	return have, nil
}

func checkHash(path string, f RemoteFile) error {
	if f.SHA256 == "" {
		return nil
	}
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return errors.New("sha256 " + got + " does not match the expected " + f.SHA256)
	}
	return nil
}

// syncDir makes the rename durable; failures are ignored because some
// systems cannot sync directories and the file itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

type progressWriter struct {
	w      io.Writer
	n      int64
	report func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	k, err := p.w.Write(b)
	p.n += int64(k)
	p.report(p.n)
	return k, err
}
