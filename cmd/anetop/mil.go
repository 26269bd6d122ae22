package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"
	"github.com/anetop/anetop/mil"
)

const milUsage = `Usage: anetop mil check [--multi-io] FILE...

Parses and type-checks MIL kernel files with the emulator's compiler, which
applies the Neural Engine's rules too. Weight files named by BLOBFILE paths
("@model_path/weights/weight.bin") are read from beside each file
(weights/weight.bin in the file's directory). Prints file:line:col errors, or
one summary line per good file. Exits 1 if any file has an error.`

// milHint points at mil's usage.
const milHint = "run 'anetop mil --help' for usage"

func milCmd(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		return usageError{msg: "mil needs a subcommand: anetop mil check [--multi-io] FILE...", hint: milHint}
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help":
		fmt.Fprintln(stderr, milUsage)
		return nil
	case strings.HasPrefix(args[0], "-"):
		return usageError{msg: fmt.Sprintf("mil: %s before the subcommand; flags go after it: anetop mil check [--multi-io] FILE...", args[0]), hint: milHint}
	case args[0] != "check":
		return usageError{msg: fmt.Sprintf("mil: unknown subcommand %q; mil has one: check (anetop mil check [--multi-io] FILE...)", args[0]), hint: milHint}
	}
	fs := newFlagSet("mil check", "anetop mil check [--multi-io] FILE...", stderr)
	multi := fs.Bool("multi-io", false, "allow kernels with several inputs or outputs (the hardware's support is disputed)")
	// Flags may follow the files: mil check k.mil --multi-io.
	files, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError{msg: "mil check needs at least one MIL file", hint: "run 'anetop mil check --help' for usage"}
	}
	failed := 0
	for _, path := range files {
		summary, err := checkMILFile(path, ane.Options{MultiIO: *multi})
		if err != nil {
			failed++
			fmt.Fprintln(stdout, err)
			continue
		}
		fmt.Fprintln(stdout, summary)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d MIL files have errors", failed, len(files))
	}
	return nil
}

// checkMILFile compiles one file on the emulator and describes it in a line.
func checkMILFile(path string, opts ane.Options) (string, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	w, err := weightsBeside(path, text)
	if err != nil {
		return "", err
	}
	k, err := sim.CompileTextOptions(path, text, w, opts)
	if err != nil {
		return "", err
	}
	defer k.Close()
	fn := sim.Function(k)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ok · %s<%s> · in %s · out %s · %d ops · %s", path, fn.Name, fn.Opset,
		typeList(k.Inputs()), typeList(k.Outputs()), len(fn.Ops), formatFLOPs(k.FLOPs()))
	return b.String(), nil
}

// weightsBeside loads the weight files a program's BLOBFILE values name.
// "@model_path/" is the compiled model's directory, which for a loose file is
// the directory the file is in. A file that is not a regular file, or is far
// larger than the blobs the program reads, is refused (mil.ReadWeightFile).
// A text that does not parse gets no weights: the compiler then reports the
// syntax error itself.
func weightsBeside(path string, text []byte) (mil.Weights, error) {
	prog, err := mil.Parse(path, text)
	if err != nil {
		return nil, nil
	}
	w := mil.Weights{}
	dir := filepath.Dir(path)
	var refs []string
	for _, f := range prog.Functions {
		refs = append(refs, f.BlobPaths()...)
	}
	// Each file is read only as far as the program's blobs reach (plus
	// mil.WeightFileSlack), and only if it is a regular file: a weights
	// path linked to /dev/zero must not be read without end.
	need := prog.BlobFileSizes()
	for _, ref := range refs {
		if _, done := w[ref]; done {
			continue
		}
		rel := filepath.FromSlash(strings.TrimPrefix(ref, "@model_path/"))
		file := filepath.Join(dir, rel)
		data, err := mil.ReadWeightFile(file, need[ref])
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s: weight file %s (BLOBFILE path %q) is missing; put it beside the kernel", path, file, ref)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		w[ref] = data
	}
	return w, nil
}

func typeList(ts []mil.Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}

// formatFLOPs prints a FLOP count with an SI prefix: "805.3 MFLOP".
func formatFLOPs(f float64) string {
	for _, u := range []struct {
		scale float64
		name  string
	}{{1e12, "TFLOP"}, {1e9, "GFLOP"}, {1e6, "MFLOP"}, {1e3, "kFLOP"}} {
		if f >= u.scale {
			return fmt.Sprintf("%.1f %s", f/u.scale, u.name)
		}
	}
	return fmt.Sprintf("%.0f FLOP", f)
}
