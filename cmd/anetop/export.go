package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/data"
	"github.com/anetop/anetop/model"
)

const exportUsage = `Usage: anetop export --format llama2c|hf [--version 0|1] [--force] --out PATH CHECKPOINT

Writes the weights of an anetop checkpoint (a step-*.safetensors file, or a
run directory: its newest checkpoint that verifies) for other tools. The
optimizer state is not exported.

  --format llama2c  a llama2.c model.bin. Version 0 (the default) is the
                    legacy format llama2.c's run.c reads:
                      ./run PATH -z tokenizer.bin
                    with the tokenizer the model was trained with, which
                    is written beside PATH when the checkpoint names it.
                    Version 1 is export.py --version 1's format (256-byte
                    header).
  --format hf       a Hugging Face transformers Llama directory (config.json
                    and model.safetensors, float32), loadable with
                    AutoModelForCausalLM.from_pretrained(PATH). wq and wk are
                    permuted for transformers' rotate_half RoPE.

An existing PATH is not overwritten unless --force is given. Files are
written atomically: PATH holds the old content or the complete new one.
See docs/export.md.

Flags:`

// exportFormats are the values of --format.
var exportFormats = []string{"llama2c", "hf"}

func exportCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", "", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, exportUsage)
		fs.PrintDefaults()
	}
	format := fs.String("format", "", "output format: llama2c or hf (required)")
	version := fs.Int("version", 0, "llama2.c model.bin version: 0 (run.c's) or 1")
	out := fs.String("out", "", "output `path`: a model.bin file (llama2c) or a directory (hf) (required)")
	force := fs.Bool("force", false, "replace an existing output")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	versionSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "version" {
			versionSet = true
		}
	})
	switch {
	case *format == "":
		return usageError{msg: "export needs --format llama2c or --format hf"}
	case *format != "llama2c" && *format != "hf":
		return usageError{msg: fmt.Sprintf("export: unknown --format %q; choose llama2c or hf", *format)}
	case *format == "hf" && versionSet:
		return usageError{msg: "export: --version applies to --format llama2c only"}
	case *version != 0 && *version != 1:
		return usageError{msg: fmt.Sprintf("export: --version %d; llama2.c's float formats are 0 (run.c reads it) and 1 "+
			"(version 2 is int8-quantized, which anetop does not write)", *version)}
	case *out == "":
		return usageError{msg: "export needs --out PATH"}
	case len(pos) == 0:
		return usageError{msg: "export needs a CHECKPOINT: a step-*.safetensors file or a run directory"}
	case len(pos) > 1:
		return usageError{msg: fmt.Sprintf("export takes one CHECKPOINT, got %d: %q", len(pos), pos)}
	}

	warn := func(s string) { fmt.Fprintf(stderr, "anetop: warning: %s\n", s) }
	ck, err := openCheckpoint(pos[0], warn)
	if err != nil {
		return err
	}
	p, err := checkpointParams(ck)
	if err != nil {
		return err
	}
	if err := checkExportOut(*out, *format, *force, ck.Path); err != nil {
		return err
	}

	var what, tokPath string
	switch *format {
	case "llama2c":
		if err := checkpoint.Llama2CCompatible(p.Config); err != nil {
			return fmt.Errorf("export %s: %v; export it with --format hf instead", ck.Path, err)
		}
		if err := checkpoint.WriteLlama2CVersion(*out, p, *version); err != nil {
			return err
		}
		what = fmt.Sprintf("llama2.c version-%d model.bin", *version)
		tokPath, err = exportTokenizer(ck, p.Config.Vocab, filepath.Join(filepath.Dir(*out), "tokenizer.bin"), *force, stderr)
		if err != nil {
			return err
		}
	case "hf":
		if err := checkpoint.WriteHF(*out, p); err != nil {
			return err
		}
		what = "Hugging Face Llama directory (" + checkpoint.HFConfigFile + ", " + checkpoint.HFWeightsFile + ")"
	}
	step := ""
	if ck.Step >= 0 {
		step = fmt.Sprintf("step %d, ", ck.Step)
	}
	fmt.Fprintf(stdout, "exported %s (%s%v) to %s: %s\n", ck.Path, step, p.Config, *out, what)
	data := ck.Metadata[metaData]
	if data == "" {
		data = "unknown"
	}
	switch {
	case *format == "hf":
		fmt.Fprintf(stdout, "load it with transformers: AutoModelForCausalLM.from_pretrained(%q); "+
			"no tokenizer is included (trained on data: %s)\n", *out, data)
	case *version == 0 && tokPath != "":
		fmt.Fprintf(stdout, "run it with llama2.c: ./run %s -z %s (the tokenizer it was trained with)\n", *out, tokPath)
	case *version == 0:
		fmt.Fprintf(stdout, "run it with llama2.c: ./run %s -z tokenizer.bin, with the %d-token tokenizer it was trained with (data: %s; anetop does not know it)\n",
			*out, p.Config.Vocab, data)
	default:
		fmt.Fprintln(stdout, "note: llama2.c's run.c reads version 0 only; export with --version 0 to run it there")
	}
	return nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (export CKPT --format hf works like export --format
// hf CKPT) and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// openCheckpoint resolves a CHECKPOINT argument: a checkpoint file, loaded
// and verified, or a run directory, whose newest checkpoint that verifies
// is used (warn is told of every newer file passed over, and why). A file's
// step comes from its metadata, -1 if it has none. Errors name the path and
// say what to pass instead. findResume (--resume) and readInitWeights
// (--init) use it too.
//
// A checkpoint whose metadata holds a model config is checked against it
// by verifyCheckpoint (tensors, size, finite values) before it is
// returned, so no caller allocates what a corrupt config claims.
func openCheckpoint(path string, warn func(string)) (*checkpoint.Checkpoint, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w; pass a step-*.safetensors file or a run directory", path, bareErr(err))
	}
	var ck *checkpoint.Checkpoint
	if !fi.IsDir() {
		f, err := checkpoint.Load(path)
		if err != nil {
			return nil, notCheckpoint(path, err)
		}
		step := -1
		if s, err := strconv.Atoi(f.Metadata[checkpoint.MetaStep]); err == nil {
			step = s
		}
		ck = &checkpoint.Checkpoint{Path: path, Step: step, File: f}
	} else {
		var skipped []checkpoint.Skipped
		ck, skipped, err = checkpoint.Latest(path)
		for _, s := range skipped {
			warn(s.String())
		}
		if err != nil {
			if errors.Is(err, checkpoint.ErrNoCheckpoint) {
				return nil, fmt.Errorf("%w; pass a checkpoint file or a run directory that holds one", err)
			}
			return nil, err
		}
	}
	if _, ok := ck.Metadata[metaConfig]; ok {
		if _, err := verifyCheckpoint(ck, false); err != nil {
			return nil, err
		}
	}
	return ck, nil
}

// notCheckpoint explains why checkpoint.Load refused path. A file that is
// not safetensors at all (and does not start like one) is perhaps another
// format: the error says which formats were tried and why each refused it.
func notCheckpoint(path string, err error) error {
	var fe *checkpoint.FormatError
	if !errors.As(err, &fe) || isSafetensors(path) {
		return err // a safetensors file, but a corrupt or foreign one: Load says why
	}
	l2 := checkpoint.SniffLlama2C(path)
	var l2fe *checkpoint.FormatError
	switch {
	case l2 == nil:
		return fmt.Errorf("checkpoint %s is a llama2.c model.bin, not an anetop checkpoint: pass a step-*.safetensors file "+
			"or a run directory (to train from the model.bin's weights, pass it to --init)", path)
	case !errors.As(l2, &l2fe):
		// llama2.c's magic, but a version or header anetop cannot read.
		return fmt.Errorf("checkpoint %s is a llama2.c model.bin, not an anetop checkpoint (%v): pass a step-*.safetensors file or a run directory", path, l2)
	}
	return fmt.Errorf("checkpoint %s: not a format anetop reads: %s; pass a step-*.safetensors file or a run directory",
		path, formatReasons(err, l2))
}

// checkpointConfig reads the model config of an anetop checkpoint (metadata
// key "config", as the training command writes it) and checks its shape.
func checkpointConfig(ck *checkpoint.Checkpoint) (model.Config, error) {
	raw, ok := ck.Metadata[metaConfig]
	if !ok {
		return model.Config{}, fmt.Errorf("checkpoint %s: no %q in its metadata: it was not written by anetop's training "+
			"(a Hugging Face or llama2.c model needs no export)", ck.Path, metaConfig)
	}
	var c model.Config
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return model.Config{}, fmt.Errorf("checkpoint %s: metadata %q is not a model config (%v)", ck.Path, metaConfig, err)
	}
	if err := c.CheckShape(); err != nil {
		return model.Config{}, fmt.Errorf("checkpoint %s: %w", ck.Path, err)
	}
	return c.Resolved(), nil
}

// verifyCheckpoint checks an anetop checkpoint against the model config in
// its metadata, allocating nothing that config sizes, and returns the
// config (resolved). The file must hold exactly the tensors the config
// implies: the weights, and the optimizer's two moments (exp_avg.,
// exp_avg_sq.), required when moments is set and otherwise complete if
// present at all; the parameters (with moments, three copies of them) must
// fit in the machine's memory; every value must be finite and every second
// moment non-negative. Errors name the file, the tensor and the fix.
//
// openCheckpoint runs it with moments false on every checkpoint it opens
// (sample, export, --init, --resume PATH); --resume's decodeCheckpoint runs
// it with moments true before allocating the weights and moments.
func verifyCheckpoint(ck *checkpoint.Checkpoint, moments bool) (model.Config, error) {
	c, err := checkpointConfig(ck)
	if err != nil {
		return model.Config{}, err
	}
	name := "checkpoint " + ck.Path
	groups := []checkpoint.TensorGroup{{}, {Prefix: momentPrefix1, Optional: !moments}, {Prefix: momentPrefix2, Optional: !moments}}
	if err := checkpoint.CheckTensors(ck.File, c, name, groups...); err != nil {
		return model.Config{}, err
	}
	copies := 1
	if moments {
		copies = 3
	}
	if err := checkpoint.CheckMemory(c, copies); err != nil {
		return model.Config{}, fmt.Errorf("%s: %w: its metadata is corrupt, or the model is too large for this machine", name, err)
	}
	if err := checkpoint.CheckFinite(ck.File, name); err != nil {
		return model.Config{}, fmt.Errorf("%w: use an earlier checkpoint of the run", err)
	}
	for _, t := range ck.Tensors {
		if !strings.HasPrefix(t.Name, momentPrefix2) {
			continue
		}
		for i, x := range t.Data {
			if x < 0 {
				return model.Config{}, fmt.Errorf("%s: tensor %s element %d is %v, but Adam's second moment is a mean of squares, "+
					"never negative: the file is corrupt: use an earlier checkpoint of the run", name, t.Name, i, x)
			}
		}
	}
	return c, nil
}

// checkpointParams reads the model config (metadata key "config", as the
// training command writes it) and the weights of an anetop checkpoint.
// checkpoint.Weights checks the tensors against the config before it
// allocates the parameters.
func checkpointParams(ck *checkpoint.Checkpoint) (*model.Params, error) {
	c, err := checkpointConfig(ck)
	if err != nil {
		return nil, err
	}
	return checkpoint.Weights(ck.File, c, ck.Path)
}

// exportTokenizer writes the tokenizer ck was trained with, when known, to
// path (beside a llama2.c model.bin, for run.c's -z), and returns path; ""
// when the tokenizer is unknown. An existing file is kept unless it is the
// same tokenizer or force is set (and the user is told).
func exportTokenizer(ck *checkpoint.Checkpoint, vocab int, path string, force bool, stderr io.Writer) (string, error) {
	tok, err := checkpointTokenizer(ck, "", vocab)
	if err != nil || tok == nil {
		return "", err
	}
	if old, err := data.LoadTokenizer(path, vocab); err == nil && slices.Equal(old.Pieces, tok.Pieces) && slices.Equal(old.Scores, tok.Scores) {
		return path, nil
	} else if _, serr := os.Stat(path); serr == nil && !force {
		fmt.Fprintf(stderr, "anetop: %s exists and is another tokenizer: not replaced (--force replaces it)\n", path)
		return "", nil
	}
	if err := data.WriteTokenizer(path, tok); err != nil {
		return "", fmt.Errorf("export the tokenizer: %w", err)
	}
	return path, nil
}

// checkExportOut refuses an output that exists (unless force), is of the
// wrong kind for the format, or is the checkpoint itself.
func checkExportOut(out, format string, force bool, ckPath string) error {
	fi, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		// The new file or directory goes into an existing directory.
		if parent := filepath.Dir(out); !isDir(parent) {
			return usageError{msg: fmt.Sprintf("export: --out %s: the directory %s does not exist; create it first", out, parent)}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: --out %s: %w", out, err)
	}
	if ci, err := os.Stat(ckPath); err == nil && os.SameFile(fi, ci) {
		return usageError{msg: fmt.Sprintf("export: --out %s is the checkpoint being exported; choose another path", out)}
	}
	switch {
	case format == "llama2c" && fi.IsDir():
		return usageError{msg: fmt.Sprintf("export: --out %s is a directory; --format llama2c writes one file, e.g. --out %s/model.bin", out, out)}
	case format == "hf" && !fi.IsDir():
		return usageError{msg: fmt.Sprintf("export: --out %s is a file; --format hf writes a directory (config.json, model.safetensors)", out)}
	case format == "hf" && isEmptyDir(out):
		return nil // nothing to replace: mkdir out && anetop export --out out
	case !force:
		return usageError{msg: fmt.Sprintf("export: --out %s already exists; pass --force to replace it, or choose another path", out)}
	}
	return nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// isEmptyDir reports whether dir is a directory with nothing in it.
func isEmptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return err == io.EOF && len(names) == 0
}
