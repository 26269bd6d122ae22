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
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"data"}, "data needs a subcommand"},
		{[]string{"data", "fetch"}, `unknown subcommand "fetch"`},
		{[]string{"data", "--dir", "x"}, "flags go after it"},
		{[]string{"data", "get"}, "data get needs a data set"},
		{[]string{"data", "get", "wikipedia"}, `unknown data set "wikipedia"`},
		{[]string{"data", "get", "tinystories", "wikipedia"}, "takes one data set"},
		{[]string{"data", "get", "tinystories", "--bogus"}, "flag provided but not defined: -bogus"},
	}
	for _, c := range cases {
		code, _, errs := runCLI(c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) || strings.Contains(errs, "Downloads the TinyStories") {
			t.Errorf("anetop %q: exit %d, stderr %q; want %d, %q and no whole usage", c.args, code, errs, exitUsage, c.want)
		}
	}
	if code, _, errs := runCLI("data", "--help"); code != exitOK || !strings.Contains(errs, "Usage: anetop data get") {
		t.Errorf("data --help: exit %d, stderr %q", code, errs)
	}
}

// TestDataGetFlagsAfterDataSet: --dir works before and after the data set.
func TestDataGetFlagsAfterDataSet(t *testing.T) {
	for _, args := range [][]string{{"get", "tinystories", "--dir", "X"}, {"get", "--dir", "X", "tinystories"}, {"get", "--dir=X", "tinystories"}} {
		var errb bytes.Buffer
		dir, err := parseDataArgs(args, &errb)
		if err != nil || dir != "X" {
			t.Errorf("data %q: dir %q, err %v; want X", args, dir, err)
		}
	}
}

var testTime = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
