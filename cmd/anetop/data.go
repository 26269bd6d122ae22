package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/anetop/anetop/data"
)

const dataUsage = `Usage: anetop data get tinystories [--dir DIR]

Downloads the TinyStories text and llama2.c's tokenizer.bin into DIR (default:
the user cache directory, anetop/tinystories). Partial downloads resume; each
file keeps a temporary name until it is complete and checked.`

// dataHint points at data's usage.
const dataHint = "run 'anetop data --help' for usage"

func dataCmd(args []string, stdout, stderr io.Writer) error {
	dir, err := parseDataArgs(args, stderr)
	if err != nil || dir == "" {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return download(ctx, http.DefaultClient, dir, data.TinyStories, stdout, stderr)
}

// parseDataArgs parses 'data get tinystories [--dir DIR]' (flags may come
// before or after the data set) and returns the destination directory: --dir,
// or the user cache's. It returns "" and no error after printing the help.
func parseDataArgs(args []string, stderr io.Writer) (string, error) {
	switch {
	case len(args) == 0:
		return "", usageError{msg: "data needs a subcommand: anetop data get tinystories [--dir DIR]", hint: dataHint}
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help":
		fmt.Fprintln(stderr, dataUsage)
		return "", nil
	case strings.HasPrefix(args[0], "-"):
		return "", usageError{msg: fmt.Sprintf("data: %s before the subcommand; flags go after it: anetop data get tinystories [--dir DIR]", args[0]), hint: dataHint}
	case args[0] != "get":
		return "", usageError{msg: fmt.Sprintf("data: unknown subcommand %q; data has one: get (anetop data get tinystories [--dir DIR])", args[0]), hint: dataHint}
	}
	fs := newFlagSet("data get", "anetop data get tinystories [--dir DIR]", stderr)
	dir := fs.String("dir", "", "destination directory (default: <user cache>/anetop/tinystories)")
	// Flags may follow the data set: data get tinystories --dir X.
	sets, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return "", err
	}
	switch {
	case len(sets) == 0:
		return "", usageError{msg: "data get needs a data set: anetop data get tinystories [--dir DIR]", hint: dataHint}
	case len(sets) > 1:
		return "", usageError{msg: fmt.Sprintf("data get takes one data set, got %q", sets), hint: dataHint}
	case sets[0] != "tinystories":
		return "", usageError{msg: fmt.Sprintf("data get: unknown data set %q; the one it knows is tinystories", sets[0]), hint: dataHint}
	}
	if *dir == "" {
		d, err := data.TinyStoriesDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory to download into (%v); pass --dir", err)
		}
		*dir = d
	}
	return *dir, nil
}

// download fetches files into dir, reporting progress on stderr: a line
// rewritten in place on a terminal, a line every few seconds otherwise.
func download(ctx context.Context, client *http.Client, dir string, files []data.RemoteFile, stdout, stderr io.Writer) error {
	p := &progressLine{w: stderr, tty: isTerminal(stderr), every: 3 * time.Second}
	if p.tty {
		p.every = 200 * time.Millisecond
	}
	err := data.Download(ctx, client, dir, files, p.update)
	p.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "downloaded to %s\n", dir)
	return nil
}

type progressLine struct {
	w     io.Writer
	tty   bool
	every time.Duration
	last  time.Time
	shown bool
}

func (p *progressLine) update(done, total int64) {
	if now := time.Now(); now.Sub(p.last) >= p.every || done == total {
		p.last = now
		p.shown = true
		msg := fmt.Sprintf("downloading: %s", formatBytes(done))
		if total > 0 {
			msg = fmt.Sprintf("downloading: %s of %s (%.0f%%)", formatBytes(done), formatBytes(total), 100*float64(done)/float64(total))
		}
		if p.tty {
			fmt.Fprintf(p.w, "\r%s\x1b[K", msg)
		} else {
			fmt.Fprintln(p.w, msg)
		}
	}
}

func (p *progressLine) finish() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
