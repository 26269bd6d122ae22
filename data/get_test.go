package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fakeServer struct {
	files   map[string][]byte
	served  atomic.Int64 // body bytes sent
	cutAt   atomic.Int64 // >0: drop the connection after this many body bytes
	noRange bool
}

func (s *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, ok := s.files[strings.TrimPrefix(r.URL.Path, "/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if s.noRange {
		r.Header.Del("Range")
	}
	if cut := s.cutAt.Load(); cut > 0 && r.Method == http.MethodGet {
		w.Header().Set("Content-Length", "999999")
		w.WriteHeader(http.StatusOK)
		w.Write(b[:cut])
		s.served.Add(cut)
		panic(http.ErrAbortHandler) // the client sees an unexpected EOF
	}
	cw := &countWriter{ResponseWriter: w, n: &s.served, get: r.Method == http.MethodGet}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(b))
}

type countWriter struct {
	http.ResponseWriter
	n   *atomic.Int64
	get bool
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.get {
		c.n.Add(int64(len(b)))
	}
	return c.ResponseWriter.Write(b)
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestDownload(t *testing.T) {
	a := bytes.Repeat([]byte("tokenizer!"), 5000)
	b := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 30000)
	fs := &fakeServer{files: map[string][]byte{"a": a, "b": b}}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "cache")
	files := []RemoteFile{
		{Name: "tokenizer.bin", URL: srv.URL + "/a", Size: int64(len(a)), SHA256: sum(a)},
		{Name: "data.bin", URL: srv.URL + "/b"}, // size from Content-Length, no hash
	}
	var last, lastTotal int64
	mono := true
	err := Download(context.Background(), srv.Client(), dir, files, func(done, total int64) {
		if done < last {
			mono = false
		}
		last, lastTotal = done, total
	})
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(a) + len(b))
	if !mono || last != want || lastTotal != want {
		t.Fatalf("progress ended at %d/%d (monotone %v), want %d", last, lastTotal, mono, want)
	}
	for name, content := range map[string][]byte{"tokenizer.bin": a, "data.bin": b} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s wrong (%v)", name, err)
		}
	}
	// Complete files are not fetched again.
	fs.served.Store(0)
	if err := Download(context.Background(), srv.Client(), dir, files, nil); err != nil {
		t.Fatal(err)
	}
	if fs.served.Load() != 0 {
		t.Fatalf("re-download sent %d bytes", fs.served.Load())
	}
}

func TestDownloadResume(t *testing.T) {
	b := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	fs := &fakeServer{files: map[string][]byte{"b": b}}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	dir := t.TempDir()
	files := []RemoteFile{{Name: "data.bin", URL: srv.URL + "/b", Size: int64(len(b)), SHA256: sum(b)}}

	// The connection drops mid-way: an error, no final file, a partial kept.
	fs.cutAt.Store(60000)
	err := Download(context.Background(), srv.Client(), dir, files, nil)
	if err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted download: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data.bin")); err == nil {
		t.Fatal("final name exists after an interrupted download")
	}
	if fi, err := os.Stat(filepath.Join(dir, "data.bin.part")); err != nil || fi.Size() != 60000 {
		t.Fatalf("partial file: %v", err)
	}
	// The rerun fetches only the rest.
	fs.cutAt.Store(0)
	fs.served.Store(0)
	if err := Download(context.Background(), srv.Client(), dir, files, nil); err != nil {
		t.Fatal(err)
	}
	if got := fs.served.Load(); got != int64(len(b))-60000 {
		t.Fatalf("resume transferred %d bytes, want %d", got, len(b)-60000)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "data.bin")); !bytes.Equal(got, b) {
		t.Fatal("resumed file differs")
	}
	if _, err := os.Stat(filepath.Join(dir, "data.bin.part")); err == nil {
		t.Fatal("partial file left behind")
	}

	// A server that ignores Range: the partial is discarded, result still right.
	os.Remove(filepath.Join(dir, "data.bin"))
	os.WriteFile(filepath.Join(dir, "data.bin.part"), []byte("garbage"), 0o644)
	fs.noRange = true
	if err := Download(context.Background(), srv.Client(), dir, files, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "data.bin")); !bytes.Equal(got, b) {
		t.Fatal("file differs after a range-less restart")
	}
}

func TestDownloadBadHashAndStatus(t *testing.T) {
	b := []byte("hello world")
	srv := httptest.NewServer(&fakeServer{files: map[string][]byte{"b": b}})
	defer srv.Close()
	dir := t.TempDir()
	bad := []RemoteFile{{Name: "x.bin", URL: srv.URL + "/b", SHA256: strings.Repeat("0", 64)}}
	err := Download(context.Background(), srv.Client(), dir, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("bad hash: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after a bad hash: %v", ents)
	}
	missing := []RemoteFile{{Name: "y.bin", URL: srv.URL + "/nope"}}
	if err := Download(context.Background(), srv.Client(), dir, missing, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
	wrongSize := []RemoteFile{{Name: "z.bin", URL: srv.URL + "/b", Size: 5}}
	if err := Download(context.Background(), srv.Client(), dir, wrongSize, nil); err == nil {
		t.Fatal("size mismatch accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Download(ctx, srv.Client(), dir, []RemoteFile{{Name: "c.bin", URL: srv.URL + "/b"}}, nil); err == nil {
		t.Fatal("cancelled context ignored")
	}
}
