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
