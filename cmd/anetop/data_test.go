package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anetop/anetop/data"
)

func TestDataGetDownloads(t *testing.T) {
	body := strings.Repeat("Once upon a time there was a robot.\n", 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "x.txt", testTime, strings.NewReader(body))
	}))
	defer srv.Close()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	files := []data.RemoteFile{{Name: "stories.txt", URL: srv.URL + "/stories.txt"}}
	if err := download(context.Background(), srv.Client(), dir, files, &out, &errb); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "stories.txt"))
	if err != nil || string(got) != body {
		t.Fatalf("downloaded %d bytes (err %v), want %d", len(got), err, len(body))
	}
	if !strings.Contains(errb.String(), "(100%)") || !strings.Contains(out.String(), "downloaded to "+dir) {
		t.Errorf("progress %q, output %q", errb.String(), out.String())
	}
}

func TestDataUsage(t *testing.T) {
	for _, args := range [][]string{{"data"}, {"data", "fetch"}, {"data", "get"}, {"data", "get", "wikipedia"}} {
		if code, _, _ := runCLI(args...); code != exitUsage {
			t.Errorf("anetop %q: exit %d, want %d", args, code, exitUsage)
		}
	}
}

var testTime = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
