package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/data"
	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/model"
)

const sampleSynopsis = `anetop sample [--ckpt PATH|RUN_DIR] [--prompt TEXT] [--n TOKENS] [--temp T] [--top-p P] [--seed S] [--tokenizer PATH]

Generates text from a training checkpoint on the CPU and prints it as it
comes. --ckpt is a checkpoint file or a run directory (its newest valid
checkpoint). Generation stops after --n tokens or at the end of a story
(BOS or EOS), as llama2.c's run does. --temp 0 is greedy: the same
checkpoint and prompt always give the same text. With --temp > 0 the same
--seed gives the same text.

The tokenizer is the one the checkpoint was trained with when anetop can
tell (the built-in stories' own, or a tokenizer.bin beside the data);
otherwise pass --tokenizer, or the output is token ids.`

type sampleOpts struct {
	ckpt, prompt, tokenizer string
	n                       int
	temp, topP              float64
	seed                    uint64
	set                     map[string]bool
}

func parseSampleFlags(args []string, stderr io.Writer) (*sampleOpts, error) {
	o := &sampleOpts{}
	fs := newFlagSet("sample", sampleSynopsis, stderr)
	fs.StringVar(&o.ckpt, "ckpt", filepath.Join("runs", model.DefaultPreset), "checkpoint file, or run directory (its newest valid checkpoint)")
	fs.StringVar(&o.prompt, "prompt", "Once upon a time", "text to continue")
	fs.IntVar(&o.n, "n", 256, "tokens to generate at most")
	fs.Float64Var(&o.temp, "temp", 0.8, "sampling temperature (0: greedy)")
	fs.Float64Var(&o.topP, "top-p", 0.9, "nucleus sampling threshold (0 or 1: all tokens)")
	fs.Uint64Var(&o.seed, "seed", 1, "sampling seed")
	fs.StringVar(&o.tokenizer, "tokenizer", "", "llama2.c tokenizer.bin (default: the checkpoint's data's)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{msg: fmt.Sprintf("unexpected argument %q: pass the checkpoint with --ckpt", fs.Arg(0))}
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	bad := func(format string, a ...any) error { return usageError{msg: fmt.Sprintf(format, a...)} }
	switch {
	case o.n < 1:
		return nil, bad("--n is %d; it must be at least 1", o.n)
	case !(o.temp >= 0) || math.IsInf(o.temp, 0):
		return nil, bad("--temp is %v; it must be a finite number ≥ 0 (0 is greedy)", o.temp)
	case !(o.topP >= 0 && o.topP <= 1):
		return nil, bad("--top-p is %v; it must be between 0 and 1", o.topP)
	case o.ckpt == "":
		return nil, bad("--ckpt is empty: pass a checkpoint file or run directory")
	}
	return o, nil
}

func sampleCmd(args []string, stdout, stderr io.Writer) error {
	o, err := parseSampleFlags(args, stderr)
	if err != nil {
		return err
	}
	warn := func(msg string) { fmt.Fprintf(stderr, "anetop: warning: %s\n", msg) }
	ck, err := findCheckpoint(o.ckpt, warn)
	if err != nil {
		return err
	}
	// The weights alone: an exported or weights-only checkpoint samples too.
	p, err := checkpointParams(ck)
	if err != nil {
		return err
	}
	srcName := ck.Metadata[metaData]
	tok, err := checkpointTokenizer(ck, o.tokenizer, p.Config.Vocab)
	if err != nil {
		return err
	}
	var prompt []int32
	switch {
	case tok != nil:
		for _, t := range tok.Encode(o.prompt, true, false) {
			prompt = append(prompt, int32(t))
		}
	case o.set["prompt"]:
		return usageError{msg: fmt.Sprintf("--prompt needs a tokenizer, and none is known for the data of %s (%q): pass --tokenizer", ck.Path, srcName)}
	default:
		warn(fmt.Sprintf("no tokenizer for the data of %s (%q): printing token ids; pass --tokenizer for text", ck.Path, srcName))
		prompt = []int32{data.BOS}
	}
	fmt.Fprintf(stderr, "anetop: sampling %s (step %d, %s)\n", ck.Path, ck.Step, p.Config)
	if len(prompt)+o.n > p.Config.Seq {
		fmt.Fprintf(stderr, "anetop: the model saw %d tokens at a time in training; past that the window slides (the first tokens drop out of the context) and each token runs the whole window\n", p.Config.Seq)
	}

	w := bufio.NewWriter(stdout)
	out := &sampleWriter{w: w, tok: tok}
	out.prompt(prompt)
	opt := engine.SampleOptions{Temperature: o.temp, TopP: o.topP, Seed: o.seed}
	err = generate(p, prompt, o.n, opt, func(t int32) error { return out.token(t) })
	out.end()
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// findCheckpoint resolves --ckpt: a checkpoint file, or a run directory's
// newest valid checkpoint (telling the user about newer ones it passed
// over). A path that does not exist or holds no checkpoint is a usage error.
func findCheckpoint(path string, warn func(string)) (*checkpoint.Checkpoint, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, usageError{msg: fmt.Sprintf("--ckpt %s: no such file or directory; pass a checkpoint file or a run directory such as runs/%s", path, model.DefaultPreset)}
	}
	ck, err := openCheckpoint(path, warn)
	if errors.Is(err, checkpoint.ErrNoCheckpoint) {
		return nil, usageError{msg: fmt.Sprintf("--ckpt: %v; or train one there first (anetop --run-dir %s)", err, path)}
	}
	return ck, err
}

// checkpointTokenizer finds the tokenizer ck was trained with: override
// (a --tokenizer) if given, else the built-in stories' own (for the built-in
// data, or text data.Open tokenized with it: the metadata's data source and
// the tokenizer training recorded), the tokenizer.bin training used, or one
// beside the data. It returns nil when none is known.
func checkpointTokenizer(ck *checkpoint.Checkpoint, override string, vocab int) (*data.Tokenizer, error) {
	if override != "" {
		t, err := data.LoadTokenizer(override, vocab)
		if err != nil {
			return nil, err
		}
		if t.Vocab() != vocab {
			return nil, usageError{msg: fmt.Sprintf("--tokenizer %s has %d pieces but the model's vocabulary is %d", override, t.Vocab(), vocab)}
		}
		return t, nil
	}
	srcName := ck.Metadata[metaData]
	var tm trainMeta
	json.Unmarshal([]byte(ck.Metadata[metaTrain]), &tm) // absent or odd: no recorded tokenizer
	recorded := tm.Tokenizer
	if srcName == data.BuiltinName || recorded == tokBuiltin {
		c, err := data.Builtin(vocab)
		if err != nil {
			return nil, err
		}
		return c.Tokenizer, nil
	}
	if recorded != "" {
		// The run's --tokenizer, if it is still there and still fits.
		if t, err := data.LoadTokenizer(recorded, vocab); err == nil && t.Vocab() == vocab {
			return t, nil
		}
	}
	if srcName == "" {
		return nil, nil
	}
	dir := srcName
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	if t, err := data.LoadTokenizer(filepath.Join(dir, "tokenizer.bin"), vocab); err == nil && t.Vocab() == vocab {
		return t, nil
	}
	return nil, nil
}

// generate streams up to n tokens of engine.Tokens to emit, stopping
// after the end of a story (BOS or EOS) as llama2.c's run does. The tokens
// are those of engine.Generate with the same options: the training panel's
// sample for the same weights, prompt and seed.
func generate(p *model.Params, prompt []int32, n int, opt engine.SampleOptions, emit func(int32) error) error {
	if n <= 0 {
		return nil
	}
	i := 0
	for t, err := range engine.Tokens(p, prompt, opt) {
		if err != nil {
			return err
		}
		if err := emit(t); err != nil {
			return err
		}
		if i++; i == n || t == data.BOS || t == data.EOS {
			break
		}
	}
	return nil
}

// sampleWriter prints the prompt and the tokens as text (with a tokenizer)
// or as token ids, flushing after every token so the text streams.
type sampleWriter struct {
	w    *bufio.Writer
	tok  *data.Tokenizer
	prev int
	n    int // ids written
}

func (s *sampleWriter) prompt(p []int32) {
	s.prev = -1
	for _, t := range p {
		s.write(t)
	}
	s.w.Flush()
}

func (s *sampleWriter) token(t int32) error {
	s.write(t)
	return s.w.Flush()
}

func (s *sampleWriter) write(t int32) {
	if s.tok == nil {
		if s.n > 0 {
			s.w.WriteByte(' ')
		}
		s.w.WriteString(strconv.Itoa(int(t)))
		s.n++
		return
	}
	// As Tokenizer.DecodeAll: BOS and EOS are markup, not text.
	if t != data.BOS && t != data.EOS {
		s.w.WriteString(s.tok.Decode(s.prev, int(t)))
	}
	s.prev = int(t)
}

func (s *sampleWriter) end() {
	s.w.WriteString("\n")
}
