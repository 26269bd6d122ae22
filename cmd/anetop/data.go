package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/anetop/anetop/data"
)

const dataUsage = `Usage: anetop data get tinystories [--dir DIR]

Downloads the TinyStories text and llama2.c's tokenizer.bin into DIR (default:
the user cache directory, anetop/tinystories). Partial downloads resume; each
file keeps a temporary name until it is complete and checked.`

func dataCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "get" {
		fmt.Fprintln(stderr, dataUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return usageError{msg: "data needs a subcommand: get", reported: true}
	}
	fs := newFlagSet("data get", "anetop data get tinystories [--dir DIR]", stderr)
	dir := fs.String("dir", "", "destination directory (default: <user cache>/anetop/tinystories)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "tinystories" {
		return usageError{msg: "data get knows one data set: tinystories"}
	}
	if *dir == "" {
		d, err := data.TinyStoriesDir()
		if err != nil {
			return fmt.Errorf("no cache directory to download into (%v); pass --dir", err)
		}
		*dir = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return download(ctx, http.DefaultClient, *dir, data.TinyStories, stdout, stderr)
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
