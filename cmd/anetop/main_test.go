package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/anetop/anetop/blas"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string // expected in stdout+stderr
	}{
		{[]string{"--steps", "0"}, exitUsage, "--steps is 0"},
		{[]string{"help"}, exitOK, "Commands available"},
		{[]string{"version"}, exitOK, "anetop "},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"bench", "--time=-1s"}, exitUsage, "--time must be positive"},
		{[]string{"bench", "--nope"}, exitUsage, "flag provided but not defined: -nope"},
		{[]string{"bench", "extra"}, exitUsage, "bench takes no arguments"},
		{[]string{"bench", "-h"}, exitOK, "Usage: anetop bench"},
		{[]string{"version", "extra"}, exitUsage, `version takes no arguments, got ["extra"]`},
		{[]string{"version", "--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{[]string{"--version", "extra"}, exitUsage, "--version takes no arguments"},
		{[]string{"help", "nope"}, exitUsage, `unknown command "nope"`},
		{[]string{"help", "mil", "data"}, exitUsage, "help takes one command"},
		{[]string{"help", "mil"}, exitOK, "Usage: anetop mil check"},
		{[]string{"help", "data"}, exitOK, "Usage: anetop data get tinystories"},
		{[]string{"help", "version"}, exitOK, "Usage: anetop version"},
		{[]string{"help", "bench"}, exitOK, "Usage: anetop bench"},
		{[]string{"help", "help"}, exitOK, "Commands available"},
	}
	for _, c := range cases {
		code, out, errs := runCLI(c.args...)
		if code != c.code || !strings.Contains(out+errs, c.want) {
			t.Errorf("anetop %q: exit %d, output %q; want exit %d containing %q", c.args, code, out+errs, c.code, c.want)
		}
	}
}

func TestBenchReportsEveryBackend(t *testing.T) {
	code, out, errs := runCLI("bench", "--time=1ms")
	if code != exitOK {
		t.Fatalf("bench exit %d: %s", code, errs)
	}
	for _, impl := range blas.Backends() {
		if strings.Count(out, impl.Name()) != 2 {
			t.Errorf("bench output should have two sgemm rows for %s:\n%s", impl.Name(), out)
		}
	}
	for _, want := range []string{"GFLOP/s", "fp32→fp16", "fp16→fp32", "G elem/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
}

// TestFlagErrorsAreShort: a bad flag prints the error and a one-line hint,
// not the whole usage; --help still prints the whole help and exits 0.
func TestFlagErrorsAreShort(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "anetop: flag provided but not defined: -bogus\nrun 'anetop --help' for the flags\n"},
		{[]string{"--steps", "abc"}, "anetop: invalid value \"abc\" for flag -steps: parse error\nrun 'anetop --help' for the flags\n"},
		{[]string{"--steps=10", "--lr", "x"}, "anetop: invalid value \"x\" for flag -lr: parse error\nrun 'anetop --help' for the flags\n"},
		{[]string{"bench", "--nope"}, "anetop: flag provided but not defined: -nope\nrun 'anetop bench --help' for the flags\n"},
		{[]string{"mil", "check", "--bogus"}, "anetop: flag provided but not defined: -bogus\nrun 'anetop mil check --help' for the flags\n"},
		{[]string{"sample", "--n", "x"}, "anetop: invalid value \"x\" for flag -n: parse error\nrun 'anetop sample --help' for the flags\n"},
		{[]string{"export", "--bogus"}, "anetop: flag provided but not defined: -bogus\nrun 'anetop export --help' for the flags\n"},
		{[]string{"doctor", "--bogus"}, "anetop: flag provided but not defined: -bogus\nrun 'anetop doctor --help' for the flags\n"},
	}
	for _, c := range cases {
		code, out, errs := runCLI(c.args...)
		if code != exitUsage || out != "" || errs != c.want {
			t.Errorf("anetop %q: exit %d, stdout %q, stderr\n%s\nwant exit %d, stderr\n%s", c.args, code, out, errs, exitUsage, c.want)
		}
	}

	code, out, errs := runCLI("--help")
	if code != exitOK || !strings.Contains(out, "-steps") || !strings.Contains(out, "Other commands: anetop help") || errs != "" {
		t.Errorf("--help: exit %d, stdout %d lines, stderr %q; want the training help on stdout", code, strings.Count(out, "\n"), errs)
	}
	if code, _, errs := runCLI("bench", "--help"); code != exitOK || !strings.Contains(errs, "Usage: anetop bench") || !strings.Contains(errs, "-time") {
		t.Errorf("bench --help: exit %d, stderr %q", code, errs)
	}
}

// TestWarmupHelp: --warmup's help gives its default once.
func TestWarmupHelp(t *testing.T) {
	_, out, _ := runCLI("--help")
	i := strings.Index(out, "-warmup")
	if i < 0 {
		t.Fatalf("--help lacks -warmup:\n%s", out)
	}
	line := out[i:]
	if j := strings.Index(line, "\n  -"); j >= 0 {
		line = line[:j]
	}
	if n := strings.Count(line, "default"); n != 1 {
		t.Errorf("--warmup's help mentions its default %d times, want once:\n%s", n, line)
	}
}
