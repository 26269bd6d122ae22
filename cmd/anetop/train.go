package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/data"
	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/internal/trace"
	"github.com/anetop/anetop/model"
	"github.com/anetop/anetop/tui"
)

// Exit codes of an interrupted run, after its checkpoint is written: the
// shell's 128+signal convention, so scripts can tell an interruption from a
// failure.
const (
	exitInterrupted = 130 // SIGINT
	exitTerminated  = 143 // SIGTERM
)

// exitStatus is an error that carries its own exit code; run prints msg (if
// any) and exits with code.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }

const trainUsage = `Usage: anetop [flags]        train (the console when stdout is a terminal)

Examples:
  anetop                                   tiny model, built-in stories, best device
  anetop --no-tui --json --steps 200       headless, one JSON event per line on stdout
  anetop --resume                          continue the newest valid checkpoint in runs/tiny
  anetop --model stories15m --data tinystories --device sim
  anetop --init stories15M.bin --data tinystories --lr 1e-4

Console keys: p pause/resume, c checkpoint, s sample, q checkpoint and quit
(q twice: at once; ctrl+c the same, exiting 130), ? help, r restart:
checkpoint the current step, then exec anetop again with the same flags and
--resume=<that checkpoint>, continuing at the same step in a fresh process
(weights, optimizer, data cursor and step kept; a fresh ANE compile budget).
--pipeline static does the same on its own before the compile budget runs
out; a restart that made no progress since the last one is refused.

Flags:
`

// trainOpts are the training command's flags.
type trainOpts struct {
	model                                         string
	dim, layers, heads, kvHeads, hidden, seq, voc int
	data, tokenizer, device                       string
	steps, warmup, accum                          int
	lr, clip                                      float64
	seed                                          uint64
	runDir                                        string
	resume                                        resumeFlag
	init                                          string
	ckptEvery, sampleEvery, sampleLen, logEvery   int
	evalEvery, evalWindows                        int
	keep                                          int
	json, noTUI, compact                          bool
	budget                                        int
	trace, pipeline                               string

	set map[string]bool // flags given explicitly

	// tokUsed is the tokenizer openSource gave the data, for the
	// checkpoints: an absolute tokenizer.bin path, tokBuiltin for text
	// tokenized with the built-in stories' tokenizer, or "" when the data
	// is the built-in stories or pretokenized without a known tokenizer.
	tokUsed string
}

// tokBuiltin in a checkpoint's tokenizer field: the built-in stories'
// tokenizer of the model's vocabulary size.
const tokBuiltin = "builtin"

// resumeFlag is --resume with an optional path: as a boolean flag it may be
// given bare, and parseTrainFlags takes a following non-flag argument as its
// path (the flag package alone cannot express an optional value).
type resumeFlag struct {
	on   bool
	path string
}

func (r *resumeFlag) String() string {
	if r == nil || !r.on {
		return ""
	}
	return r.path
}

func (r *resumeFlag) Set(s string) error {
	r.on = true
	switch s {
	case "true":
		r.path = ""
	case "false":
		r.on, r.path = false, ""
	default:
		r.path = s
	}
	return nil
}

func (r *resumeFlag) IsBoolFlag() bool { return true }

// modelFlags are the flags that shape the model; on --resume and --init the
// shape comes from the file and these may only repeat it.
var modelFlags = []string{"model", "dim", "layers", "heads", "kv-heads", "hidden", "vocab"}

func parseTrainFlags(args []string, stderr io.Writer) (*trainOpts, error) {
	o := &trainOpts{}
	fs := flag.NewFlagSet("anetop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, trainUsage)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\nOther commands: anetop help\n")
	}
	fs.StringVar(&o.model, "model", model.DefaultPreset, "model preset: "+strings.Join(model.PresetNames(), ", "))
	fs.IntVar(&o.dim, "dim", 0, "override the preset's model width")
	fs.IntVar(&o.layers, "layers", 0, "override the preset's layer count")
	fs.IntVar(&o.heads, "heads", 0, "override the preset's query heads")
	fs.IntVar(&o.kvHeads, "kv-heads", 0, "override the preset's key/value heads")
	fs.IntVar(&o.hidden, "hidden", 0, "override the preset's FFN width")
	fs.IntVar(&o.seq, "seq", 0, "override the preset's sequence length (a multiple of 32)")
	fs.IntVar(&o.voc, "vocab", 0, "override the preset's vocabulary size")
	fs.StringVar(&o.data, "data", "builtin", "training data: builtin, tinystories, a .bin file or directory of shards, or a text file")
	fs.StringVar(&o.tokenizer, "tokenizer", "", "llama2.c tokenizer.bin for the data")
	fs.StringVar(&o.device, "device", "auto", "device: auto, ane or sim (the CPU emulator)")
	fs.IntVar(&o.steps, "steps", 1000, "optimizer steps in the run (the LR schedule's length)")
	fs.Float64Var(&o.lr, "lr", 5e-4, "peak learning rate")
	fs.IntVar(&o.warmup, "warmup", defaultWarmup, "linear warm-up steps, or a tenth of --steps if that is fewer")
	fs.IntVar(&o.accum, "accum", 1, "windows of --seq tokens per step")
	fs.Float64Var(&o.clip, "clip", 1, "gradient-norm clip (0 disables)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the initial weights and the data order")
	fs.StringVar(&o.runDir, "run-dir", "", "checkpoint directory (default runs/<model>)")
	fs.Var(&o.resume, "resume", "continue from `PATH` (a checkpoint or run directory; bare: the newest valid one in --run-dir)")
	fs.StringVar(&o.init, "init", "", "start from the weights at `PATH`: a llama2.c model.bin, a Hugging Face Llama directory, or an anetop checkpoint or run directory")
	fs.IntVar(&o.ckptEvery, "ckpt-every", 200, "checkpoint every N steps (0: only at the end and on interrupt)")
	fs.IntVar(&o.keep, "keep", checkpoint.DefaultKeep, "checkpoints to keep in the run directory (plus the best)")
	fs.IntVar(&o.sampleEvery, "sample-every", 100, "generate a sample every N steps (0: never)")
	fs.IntVar(&o.sampleLen, "sample-len", 64, "tokens per sample")
	fs.IntVar(&o.evalEvery, "eval-every", 100, "measure the validation loss every N steps and at the end (0: never)")
	fs.IntVar(&o.evalWindows, "eval-windows", 8, "held-out windows of --seq tokens per validation loss")
	fs.IntVar(&o.logEvery, "log-every", 10, "print a progress line on stderr every N steps (0: never)")
	fs.BoolVar(&o.json, "json", false, "write one JSON event per line on stdout, see docs/events.md (implies --no-tui)")
	fs.BoolVar(&o.noTUI, "no-tui", false, "run headless even when stdout is a terminal")
	fs.BoolVar(&o.compact, "compact-vocab", false, "score only the token ids that occur in the training data (faster classifier for large vocabularies; the training loss is then over those ids, the validation loss stays full)")
	fs.IntVar(&o.budget, "budget", 0, "kernel compile budget of the process (0: the device's default)")
	fs.StringVar(&o.pipeline, "pipeline", "dynamic", "kernels: dynamic (weights in the input, compiled once) or static (weights as constants, recompiled every step; restarts the process when the compile budget runs out)")
	fs.StringVar(&o.trace, "trace", "", "write the step timeline to `FILE` (Chrome/Perfetto trace-event JSON; open in ui.perfetto.dev)")

	rest := args
	for {
		if err := parseFlags(fs, rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		// A bare --resume followed by a path: flag stopped at the path, so
		// take it and parse what follows.
		if o.resume.on && o.resume.path == "" && !strings.HasPrefix(rest[0], "-") {
			o.resume.path = rest[0]
			rest = rest[1:]
			if len(rest) == 0 {
				break
			}
			continue
		}
		return nil, usageError{msg: fmt.Sprintf("unexpected argument %q: training takes flags only (commands go first, e.g. 'anetop doctor')", rest[0])}
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if err := o.check(); err != nil {
		return nil, err
	}
	return o, nil
}

// check validates the flags that do not need the model or the data.
func (o *trainOpts) check() error {
	bad := func(format string, a ...any) error { return usageError{msg: fmt.Sprintf(format, a...)} }
	for _, f := range []struct {
		name string
		v    int
	}{{"dim", o.dim}, {"layers", o.layers}, {"heads", o.heads}, {"kv-heads", o.kvHeads},
		{"hidden", o.hidden}, {"seq", o.seq}, {"vocab", o.voc}} {
		if o.set[f.name] && f.v <= 0 {
			return bad("--%s is %d; it must be positive (omit it to keep the preset's)", f.name, f.v)
		}
	}
	switch {
	case o.device != "auto" && o.device != "ane" && o.device != "sim":
		return bad("--device %q: choose auto, ane or sim", o.device)
	case o.pipeline != "dynamic" && o.pipeline != "static":
		return bad("--pipeline %q: choose dynamic or static", o.pipeline)
	case o.steps < 1:
		return bad("--steps is %d; it must be at least 1", o.steps)
	case !(o.lr > 0) || math.IsInf(o.lr, 0):
		return bad("--lr is %v; it must be a positive number such as 5e-4", o.lr)
	case o.warmup < 0:
		return bad("--warmup is %d; it must be 0 or more", o.warmup)
	case o.accum < 1:
		return bad("--accum is %d; it must be at least 1", o.accum)
	case o.clip < 0 || math.IsNaN(o.clip) || math.IsInf(o.clip, 0):
		return bad("--clip is %v; it must be a finite number ≥ 0 (0 disables clipping)", o.clip)
	case o.ckptEvery < 0 || o.sampleEvery < 0 || o.logEvery < 0 || o.evalEvery < 0:
		return bad("--ckpt-every, --sample-every, --eval-every and --log-every must be 0 or more")
	case o.evalWindows < 1:
		return bad("--eval-windows is %d; it must be at least 1", o.evalWindows)
	case o.sampleLen < 1:
		return bad("--sample-len is %d; it must be at least 1", o.sampleLen)
	case o.keep < 1:
		return bad("--keep is %d; it must be at least 1", o.keep)
	case o.budget < 0:
		return bad("--budget is %d; it must be 0 (the default) or more", o.budget)
	case o.resume.on && o.init != "":
		return bad("--resume and --init both given: --resume continues a run, --init starts a new one from weights; pick one")
	}
	if _, err := model.Preset(o.model); err != nil {
		return bad("--model: %v", err)
	}
	return nil
}

// defaultWarmup is --warmup's default for runs of 1000 steps or more;
// shorter runs warm up for a tenth of their steps, so that a 200-step run
// spends most of its time at the learning rate it asked for.
const defaultWarmup = 100

// schedule fills in the hyper-parameters the user did not give: on resume
// from the checkpoint's own (so a resumed run continues the same LR
// schedule), otherwise the defaults that depend on other flags. Explicit
// flags that change a resumed run's schedule are reported through note.
func (o *trainOpts) schedule(from *trainMeta, note func(string)) {
	if from == nil {
		if !o.set["warmup"] {
			o.warmup = min(defaultWarmup, o.steps/10)
		}
		return
	}
	for _, h := range []struct {
		name string
		dst  *int
		ckpt int
	}{{"steps", &o.steps, from.Steps}, {"warmup", &o.warmup, from.Warmup}, {"accum", &o.accum, from.Accum}} {
		if !o.set[h.name] {
			*h.dst = h.ckpt
		} else if *h.dst != h.ckpt {
			note(fmt.Sprintf("--%s %d replaces the checkpoint's %d", h.name, *h.dst, h.ckpt))
		}
	}
	for _, h := range []struct {
		name string
		dst  *float64
		ckpt float64
	}{{"lr", &o.lr, from.LR}, {"clip", &o.clip, from.Clip}} {
		if !o.set[h.name] {
			*h.dst = h.ckpt
		} else if *h.dst != h.ckpt {
			note(fmt.Sprintf("--%s %g replaces the checkpoint's %g", h.name, *h.dst, h.ckpt))
		}
	}
	if !o.set["compact-vocab"] {
		o.compact = from.CompactVocab
	}
}

// modelConfig is the preset with the overrides applied.
func (o *trainOpts) modelConfig() model.Config {
	c, _ := model.Preset(o.model) // checked by check
	o.override(&c)
	return c
}

// override applies the explicitly given size flags to c. KVHeads follows
// --heads unless given, as the presets all use full multi-head attention
// except where their own KVHeads says otherwise.
func (o *trainOpts) override(c *model.Config) {
	if o.set["heads"] && !o.set["kv-heads"] && c.KVHeads == c.Heads {
		c.KVHeads = o.heads
	}
	if o.set["dim"] && !o.set["heads"] {
		c.HeadDim = 0 // re-derive from the new width
	}
	for _, f := range []struct {
		name string
		dst  *int
		v    int
	}{{"dim", &c.Dim, o.dim}, {"layers", &c.Layers, o.layers}, {"heads", &c.Heads, o.heads},
		{"kv-heads", &c.KVHeads, o.kvHeads}, {"hidden", &c.Hidden, o.hidden}, {"seq", &c.Seq, o.seq},
		{"vocab", &c.Vocab, o.voc}} {
		if o.set[f.name] {
			*f.dst = f.v
		}
	}
	if o.set["heads"] {
		c.HeadDim = 0
	}
}

// checkFileShape refuses explicit model flags that disagree with the shape
// stored in a checkpoint or weights file (what, e.g. "checkpoint X").
func (o *trainOpts) checkFileShape(file model.Config, what string) error {
	want := o.modelConfig().Resolved()
	f := file.Resolved()
	var diff []string
	for _, d := range []struct {
		name       string
		flag, have int
	}{{"dim", want.Dim, f.Dim}, {"layers", want.Layers, f.Layers}, {"heads", want.Heads, f.Heads},
		{"kv-heads", want.KVHeads, f.KVHeads}, {"hidden", want.Hidden, f.Hidden}, {"vocab", want.Vocab, f.Vocab}} {
		if o.set[d.name] && d.flag != d.have {
			diff = append(diff, fmt.Sprintf("--%s %d but it has %d", d.name, d.flag, d.have))
		}
	}
	if o.set["model"] {
		// want is the preset with any size flags applied: the file must be
		// that model, or --model names another one.
		if want.Dim != f.Dim || want.Layers != f.Layers || want.Heads != f.Heads || want.KVHeads != f.KVHeads ||
			want.Hidden != f.Hidden || want.Vocab != f.Vocab {
			diff = append(diff, fmt.Sprintf("--model %s is %s but it is %s", o.model, shape(want), shape(f)))
		}
	}
	if len(diff) > 0 {
		return usageError{msg: fmt.Sprintf("%s: %s; the model's shape comes from the file, so drop those flags", what, strings.Join(diff, ", "))}
	}
	return nil
}

// shape is a config's sizes, for messages.
func shape(c model.Config) string {
	return fmt.Sprintf("dim %d, hidden %d, %d layers, %d heads (%d kv), vocab %d", c.Dim, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.Vocab)
}

// presetOf names the preset whose shape c has, or "custom": what a run from
// a file is called in the banner and the console.
func presetOf(c model.Config) string {
	c = c.Resolved()
	for _, name := range model.PresetNames() {
		p, err := model.Preset(name)
		if err != nil {
			continue
		}
		p = p.Resolved()
		p.Seq, p.RopeTheta, p.NormEps = c.Seq, c.RopeTheta, c.NormEps // training choices, not the shape
		if p == c {
			return name
		}
	}
	return "custom"
}

// Checkpoint metadata keys of the training command (the checkpoint package
// owns format, step, val_loss and crc32c.*). Values are strings; numbers are
// in Go's shortest round-trip format, so a resume restores them exactly.
const (
	metaVersion    = "anetop_version"
	metaConfig     = "config"      // model.Config as JSON
	metaTrain      = "train"       // trainMeta as JSON
	metaTokens     = "tokens_seen" // tokens trained on so far
	metaUpdates    = "optimizer_step"
	metaLossScale  = "loss_scale"
	metaClean      = "loss_scale_clean" // clean updates since the scale last changed
	metaLRStep     = "lr_step"          // the LR schedule's position (engine.State.Step)
	metaData       = "data"             // the data source's name
	metaDataCursor = "data_cursor"      // data.Sampler.State()
	metaSeed       = "seed"
	metaBestVal    = "best_val_loss" // the lowest validation loss of the run so far
)

// trainMeta is the run's hyper-parameters as stored in a checkpoint, for
// people and tools reading it (a resume takes them from the flags).
type trainMeta struct {
	LR, MinLR    float64
	Warmup       int
	Steps        int
	Accum        int
	Clip         float64
	Seed         uint64
	Device       string
	CompactVocab bool   `json:",omitempty"` // the classifier scored the training data's ids only
	Tokenizer    string `json:",omitempty"` // trainOpts.tokUsed: how anetop sample reads the ids
}

// Tensor names inside a checkpoint: Hugging Face Llama names for the weights
// (checkpoint/doc.go), and PyTorch AdamW's state names as prefixes for the
// moments.
const (
	momentPrefix1 = "exp_avg."
	momentPrefix2 = "exp_avg_sq."
)

// snapshotBuf holds one copy of the weights and Adam moments for the
// checkpoint being written. One is reused for every save, and saves never
// overlap (each waits for the last), so a long run holds at most one copy:
// for Stories110M that is 1.3 GB that would otherwise be allocated, and left
// to the garbage collector, at every checkpoint.
type snapshotBuf struct{ w, m, v []float32 }

// snapshot copies the engine's weights and optimizer state into buf, and
// returns them as checkpoint tensors with the metadata. It is the only part
// of a save that stalls training; buf must not be in use by a save.
func snapshot(e *engine.Engine, buf *snapshotBuf, sampler *data.Sampler, srcName string, tm trainMeta, tokens int64, val valState) ([]checkpoint.Tensor, map[string]string, error) {
	p := e.Params()
	if buf.w == nil {
		n := len(p.Data)
		buf.w, buf.m, buf.v = make([]float32, n), make([]float32, n), make([]float32, n)
	}
	st, err := e.SnapshotInto(buf.w, buf.m, buf.v)
	if err != nil {
		return nil, nil, err
	}
	w := buf.w
	ts := make([]checkpoint.Tensor, 0, 3*len(p.Tensors))
	for _, t := range p.Tensors {
		name := t.HFName()
		ts = append(ts,
			checkpoint.Tensor{Name: name, Shape: t.Shape, Data: w[t.Offset : t.Offset+t.Size]},
			checkpoint.Tensor{Name: momentPrefix1 + name, Shape: t.Shape, Data: st.M[t.Offset : t.Offset+t.Size]},
			checkpoint.Tensor{Name: momentPrefix2 + name, Shape: t.Shape, Data: st.V[t.Offset : t.Offset+t.Size]})
	}
	cfg, _ := json.Marshal(p.Config)
	tr, _ := json.Marshal(tm)
	md := map[string]string{
		metaVersion:    versionString(),
		metaConfig:     string(cfg),
		metaTrain:      string(tr),
		metaTokens:     strconv.FormatInt(tokens, 10),
		metaUpdates:    strconv.Itoa(st.Updates),
		metaLossScale:  strconv.FormatFloat(st.LossScale, 'g', -1, 64),
		metaClean:      strconv.Itoa(st.Clean),
		metaLRStep:     strconv.Itoa(st.Step),
		metaData:       srcName,
		metaDataCursor: sampler.State(),
		metaSeed:       strconv.FormatUint(tm.Seed, 10),
	}
	if val.step == st.Step && val.measured {
		md[checkpoint.MetaValLoss] = strconv.FormatFloat(val.loss, 'g', -1, 64)
	}
	if !math.IsInf(val.best, 1) {
		md[metaBestVal] = strconv.FormatFloat(val.best, 'g', -1, 64)
	}
	return ts, md, nil
}

// valState is the run's validation record: the last measurement and the
// best so far (carried across resumes in the checkpoint metadata).
type valState struct {
	measured bool
	step     int
	loss     float64
	best     float64 // +Inf before the first measurement
}

// resumePoint is what a checkpoint restores.
type resumePoint struct {
	path    string
	config  model.Config
	weights []float32
	state   engine.State
	tokens  int64
	data    string
	cursor  string
	train   *trainMeta // nil in checkpoints without it
	bestVal float64    // +Inf if never measured
	valLoss float64    // the validation loss at this step; NaN if not measured
}

// decodeCheckpoint reads a training checkpoint's config, weights, moments and
// counters, naming the file and the key or tensor at fault.
func decodeCheckpoint(ck *checkpoint.Checkpoint) (*resumePoint, error) {
	md := ck.Metadata
	fail := func(format string, a ...any) error {
		return fmt.Errorf("checkpoint %s: %s", ck.Path, fmt.Sprintf(format, a...))
	}
	var cfg model.Config
	if err := json.Unmarshal([]byte(md[metaConfig]), &cfg); err != nil {
		return nil, fail("metadata %q is not a model config (%v): was it written by anetop?", metaConfig, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fail("%v", err)
	}
	cfg = cfg.Resolved()
	rp := &resumePoint{path: ck.Path, config: cfg, data: md[metaData], cursor: md[metaDataCursor], bestVal: math.Inf(1), valLoss: math.NaN()}
	if v, err := strconv.ParseFloat(md[checkpoint.MetaValLoss], 64); err == nil {
		rp.valLoss = v
	}
	if b, ok := md[metaBestVal]; ok {
		v, err := strconv.ParseFloat(b, 64)
		if err != nil {
			return nil, fail("metadata %q is %q, not a number", metaBestVal, b)
		}
		rp.bestVal = v
	}
	if tm, ok := md[metaTrain]; ok {
		rp.train = &trainMeta{}
		if err := json.Unmarshal([]byte(tm), rp.train); err != nil || rp.train.Steps < 1 || rp.train.Accum < 1 || !(rp.train.LR > 0) {
			return nil, fail("metadata %q is %q, not the run's hyper-parameters", metaTrain, tm)
		}
	}
	ints := []struct {
		key string
		dst *int
	}{{metaUpdates, &rp.state.Updates}, {metaClean, &rp.state.Clean}, {metaLRStep, &rp.state.Step}}
	for _, k := range ints {
		v, err := strconv.Atoi(md[k.key])
		if err != nil || v < 0 {
			return nil, fail("metadata %q is %q, not a count", k.key, md[k.key])
		}
		*k.dst = v
	}
	if rp.state.Step != ck.Step {
		return nil, fail("metadata %q is %d but the checkpoint is of step %d", metaLRStep, rp.state.Step, ck.Step)
	}
	var err error
	if rp.tokens, err = strconv.ParseInt(md[metaTokens], 10, 64); err != nil {
		return nil, fail("metadata %q is %q, not a count", metaTokens, md[metaTokens])
	}
	if rp.state.LossScale, err = strconv.ParseFloat(md[metaLossScale], 64); err != nil {
		return nil, fail("metadata %q is %q, not a number", metaLossScale, md[metaLossScale])
	}
	// Tensors against the config (before anything sized by it is
	// allocated), memory, and finite values, moments included.
	if _, err := verifyCheckpoint(ck, true); err != nil {
		return nil, err
	}
	n := cfg.NumParams()
	rp.weights = make([]float32, n)
	rp.state.M, rp.state.V = make([]float32, n), make([]float32, n)
	for _, t := range cfg.Tensors() {
		for _, part := range []struct {
			prefix string
			dst    []float32
		}{{"", rp.weights}, {momentPrefix1, rp.state.M}, {momentPrefix2, rp.state.V}} {
			name := part.prefix + t.HFName()
			ct := ck.Tensor(name)
			if ct == nil {
				return nil, fail("tensor %s is missing", name)
			}
			if len(ct.Data) != t.Size || !slices.Equal(ct.Shape, t.Shape) {
				return nil, fail("tensor %s has shape %v, the config says %v", name, ct.Shape, t.Shape)
			}
			copy(part.dst[t.Offset:], ct.Data)
		}
	}
	return rp, nil
}

// findResume resolves --resume: a file, a run directory, or (bare) the newest
// valid checkpoint of runDir, telling the user which files it passed over.
func findResume(path, runDir string, warn func(string)) (*checkpoint.Checkpoint, error) {
	dir := runDir
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, usageError{msg: fmt.Sprintf("--resume %s: %v", path, err)}
		}
		ck, err := openCheckpoint(path, warn)
		if err != nil {
			return nil, err
		}
		if ck.Step < 0 {
			return nil, fmt.Errorf("checkpoint %s: no step in its metadata: was it written by anetop's training?", path)
		}
		return ck, nil
	}
	ck, skipped, err := checkpoint.Latest(dir)
	for _, s := range skipped {
		warn(s.String())
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, checkpoint.ErrNoCheckpoint) {
			return nil, usageError{msg: fmt.Sprintf("--resume: %v; start a new run without --resume, or pass --run-dir or --resume PATH", err)}
		}
		return nil, err
	}
	return ck, nil
}

// freeRunDir suggests a run directory beside dir without checkpoints:
// dir-2, dir-3, ….
func freeRunDir(dir string) string {
	for i := 2; ; i++ {
		if d := fmt.Sprintf("%s-%d", dir, i); checkpoint.NewestFile(d) == "" {
			return d
		}
	}
}

// tracePath is where --trace writes: FILE itself in the first process of a
// run, FILE with ".restart-N" before its extension in the N-th process an
// exec restart started (restarts counted in restartEnv), so a restart does
// not overwrite the timeline it follows.
func tracePath(file, restarts string) string {
	n, err := strconv.Atoi(restarts)
	if err != nil || n <= 0 {
		return file
	}
	ext := filepath.Ext(file)
	return fmt.Sprintf("%s.restart-%d%s", strings.TrimSuffix(file, ext), n, ext)
}

// validationWindows returns n windows of seq tokens (inputs and targets)
// spread evenly over the validation split: the same windows at every
// measurement, so the curve compares like with like.
func validationWindows(val *data.Split, seq, n int) (x, y []int32, err error) {
	if err := val.Check(seq); err != nil {
		return nil, nil, err
	}
	total := val.NumWindows(seq)
	n = int(min(int64(n), total))
	x, y = make([]int32, n*seq), make([]int32, n*seq)
	buf := make([]uint16, seq+1)
	for j := range n {
		if err := val.Window(seq, int64(j)*total/int64(n), buf); err != nil {
			return nil, nil, err
		}
		for t := range seq {
			x[j*seq+t], y[j*seq+t] = int32(buf[t]), int32(buf[t+1])
		}
	}
	return x, y, nil
}

// openSource resolves --data and --tokenizer for a model of vocabulary
// vocab, and checks that the two agree.
func openSource(o *trainOpts, vocab int, stderr io.Writer) (*data.Source, error) {
	path := o.data
	tok := o.tokenizer
	switch path {
	case "builtin", "":
		// The built-in tokenizer is trained to any size, but the default
		// (data.BuiltinVocab) is the one the tiny preset matches and is
		// built fastest; other sizes only when asked for with --vocab.
		v := data.BuiltinVocab
		if o.set["vocab"] {
			v = vocab
		}
		if tok != "" {
			return nil, usageError{msg: "--tokenizer was given for the built-in data, which has its own: drop --tokenizer or pass --data"}
		}
		src, err := data.Open("builtin", "", v)
		if err != nil {
			return nil, err
		}
		if src.Vocab != vocab {
			src.Close()
			return nil, usageError{msg: fmt.Sprintf("the model's vocabulary is %d tokens but the built-in data's is %d: pass --vocab %d (or --model tiny), or train on other --data such as tinystories", vocab, src.Vocab, src.Vocab)}
		}
		return src, nil
	case "tinystories":
		dir, err := data.TinyStoriesDir()
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(dir); err != nil {
			return nil, usageError{msg: fmt.Sprintf("--data tinystories: %s is missing: run 'anetop data get tinystories' first", dir)}
		}
		if tok == "" {
			tok = filepath.Join(dir, "tokenizer.bin")
		}
		// Pretokenized shards if the user put some there, else the text
		// (tokenized once and cached beside it).
		if shards, _ := filepath.Glob(filepath.Join(dir, "*.bin")); len(shards) > 1 || len(shards) == 1 && filepath.Base(shards[0]) != "tokenizer.bin" {
			path = dir
		} else {
			path = filepath.Join(dir, "TinyStories-train.txt")
		}
	}
	src, err := data.OpenWith(path, tok, vocab, data.Options{Progress: tokenizeProgress(path, stderr)})
	if err != nil {
		return nil, err
	}
	switch fi, serr := os.Stat(path); {
	case tok != "":
		if abs, err := filepath.Abs(tok); err == nil {
			o.tokUsed = abs
		}
	case serr == nil && !fi.IsDir() && !strings.EqualFold(filepath.Ext(path), ".bin"):
		o.tokUsed = tokBuiltin // data.Open tokenizes text with it
	}
	if src.Vocab != vocab {
		src.Close()
		return nil, usageError{msg: fmt.Sprintf("the model's vocabulary is %d tokens but the data's tokenizer has %d: pass --vocab %d or a --tokenizer of %d pieces", vocab, src.Vocab, src.Vocab, vocab)}
	}
	return src, nil
}

// tokenizeProgress reports the tokenization of a text file on w: a line
// when it starts (it can take minutes: TinyStories is 1.9 GB), one every
// few seconds with the rate and time left, and one when it is done.
func tokenizeProgress(path string, w io.Writer) func(done, total int64) {
	var start, last time.Time
	finished := false
	return func(done, total int64) {
		now := time.Now()
		mb := func(b int64) float64 { return float64(b) / 1e6 }
		switch {
		case start.IsZero():
			start, last = now, now
			fmt.Fprintf(w, "anetop: tokenizing %s (%.1f MB) once; the tokens are cached beside it\n", path, mb(total))
		case done >= total:
			if !finished {
				finished = true
				fmt.Fprintf(w, "anetop: tokenized %s in %s\n", path, now.Sub(start).Round(100*time.Millisecond))
			}
		case now.Sub(last) >= 5*time.Second && done > 0:
			last = now
			el := now.Sub(start)
			rate := mb(done) / el.Seconds()
			left := time.Duration(float64(el) * float64(total-done) / float64(done))
			fmt.Fprintf(w, "anetop: tokenizing: %.0f%% (%.0f of %.0f MB, %.1f MB/s, about %s left)\n",
				100*float64(done)/float64(total), mb(done), mb(total), rate, left.Round(time.Second))
		}
	}
}

func trainCmd(args []string, stdout, stderr io.Writer) error {
	err := trainRun(args, stdout, stderr)
	var rr restartRequest
	if errors.As(err, &rr) {
		// Everything trainRun opened is closed: exec the fresh process.
		return restartSelf(args, rr, stderr)
	}
	return err
}

// trainRun is the training command; it returns a restartRequest when the
// console's r stopped the run for trainCmd to exec.
func trainRun(args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseTrainFlags(args, stderr)
	if err != nil {
		return err
	}
	out := newEventWriter(stdout, o.json)
	// Once the run's events flow, its failures reach --json as error events;
	// before that (flags, data, checkpoint, device), this says why it ended.
	published := false
	defer func() {
		var rr restartRequest
		var es exitStatus
		if err != nil && !published && !errors.As(err, &rr) && !errors.As(err, &es) {
			out.write(jsonMessage{jsonHeader: header("error", 0), Message: err.Error()})
		}
	}()
	if o.runDir == "" {
		o.runDir = filepath.Join("runs", o.model)
	}
	if !o.resume.on {
		// A new run would overwrite, and --keep prune, another run's
		// checkpoints; and a later --resume would mix the two.
		if last := checkpoint.NewestFile(o.runDir); last != "" {
			return usageError{msg: fmt.Sprintf("run directory %s already holds checkpoints of a run (newest %s): continue it with --resume, or start a new run with --run-dir %s (or remove %s)",
				o.runDir, filepath.Base(last), freeRunDir(o.runDir), o.runDir)}
		}
	}
	info := func(format string, a ...any) { fmt.Fprintf(stderr, "anetop: "+format+"\n", a...) }
	warn := func(msg string) {
		info("warning: %s", msg)
		out.write(warningJSON(0, msg))
	}

	// The model: from a checkpoint, a weights file, or the preset.
	mc := o.modelConfig()
	var rp *resumePoint
	var initParams *model.Params
	switch {
	case o.resume.on:
		ck, err := findResume(o.resume.path, o.runDir, warn)
		if err != nil {
			return err
		}
		if rp, err = decodeCheckpoint(ck); err != nil {
			return err
		}
		if err := o.checkFileShape(rp.config, "checkpoint "+ck.Path); err != nil {
			return err
		}
		mc = rp.config
		if o.set["seq"] && o.seq != mc.Seq {
			return usageError{msg: fmt.Sprintf("--seq %d but checkpoint %s was trained with seq %d; the data cursor depends on it: drop --seq", o.seq, ck.Path, mc.Seq)}
		}
		if o.resume.path != "" && !o.set["run-dir"] {
			// Keep writing beside the checkpoint resumed from.
			if fi, err := os.Stat(o.resume.path); err == nil && fi.IsDir() {
				o.runDir = o.resume.path
			} else {
				o.runDir = filepath.Dir(o.resume.path)
			}
		}
		info("resuming from %s (step %d)", ck.Path, ck.Step)
		o.schedule(rp.train, func(msg string) { info("%s", msg) })
	case o.init != "":
		p, err := readInitWeights(o.init, warn)
		if err != nil {
			return err
		}
		if err := o.checkFileShape(p.Config, "--init "+o.init); err != nil {
			return err
		}
		mc = p.Config
		if o.set["seq"] {
			mc.Seq = o.seq // the sequence length does not shape the weights
		}
		p.Config = mc.Resolved()
		initParams = p
	}
	if rp == nil {
		o.schedule(nil, nil)
	}
	if o.warmup >= o.steps {
		warn(fmt.Sprintf("--warmup %d is not below --steps %d: the learning rate never reaches --lr %g", o.warmup, o.steps, o.lr))
	}
	if err := mc.Validate(); err != nil {
		return usageError{msg: fmt.Sprintf("%v\n(the sizes come from --model %s and --dim, --hidden, --layers, --heads, --kv-heads, --seq, --vocab)", err, o.model)}
	}
	mc = mc.Resolved()
	// Weights, gradients and Adam's two moments in fp32 at the least: a
	// config past that is a clear error, not an out-of-memory crash.
	if err := checkpoint.CheckMemory(mc, 4); err != nil {
		return usageError{msg: fmt.Sprintf("%v; training needs at least the weights, their gradients and Adam's two moments in memory: choose a smaller --model or sizes", err)}
	}
	name := o.model // what the banner and the console call the model
	if rp != nil || initParams != nil {
		name = presetOf(mc)
	}

	src, err := openSource(o, mc.Vocab, stderr)
	if err != nil {
		return err
	}
	defer src.Close()
	if rp != nil && rp.data != "" && rp.data != src.Name {
		warn(fmt.Sprintf("checkpoint was trained on %s, this run uses %s", rp.data, src.Name))
	}
	train, valSplit := src.Tokens.Split(0)
	sampler, err := data.NewSampler(train, mc.Seq, o.seed)
	if err != nil {
		return err
	}
	switch {
	case rp != nil && rp.cursor != "" && rp.data == src.Name:
		if err := sampler.Restore(rp.cursor); err != nil {
			return fmt.Errorf("checkpoint %s: %w", rp.path, err)
		}
	case rp != nil && rp.cursor == "":
		warn(fmt.Sprintf("checkpoint %s records no data cursor: the data order starts over, so this run will not match one that never stopped", rp.path))
	}

	val := valState{best: math.Inf(1)}
	if rp != nil {
		val.best = rp.bestVal
		if !math.IsNaN(rp.valLoss) && rp.data == src.Name {
			// Measured at this very step: a resume at a multiple of
			// --eval-every need not measure it again.
			val.measured, val.step, val.loss = true, rp.state.Step, rp.valLoss
		}
	}
	var valX, valY []int32
	if o.evalEvery > 0 {
		if valX, valY, err = validationWindows(valSplit, mc.Seq, o.evalWindows); err != nil {
			warn(fmt.Sprintf("no validation loss: %v", err))
		}
	}

	dev, err := ane.Open(o.device, ane.Options{Budget: o.budget})
	if err != nil {
		return err
	}
	defer dev.Close()

	clip := o.clip
	if clip == 0 {
		clip = -1 // engine: negative disables, zero means its default
	}
	ecfg := engine.Config{Model: mc, Device: dev, Params: initParams, Seed: o.seed, LR: o.lr,
		Warmup: o.warmup, Steps: o.steps, Accum: o.accum, Clip: clip, Static: o.pipeline == "static"}
	if o.compact {
		// Every target the sampler can draw comes from the training split,
		// so the subset covers them; the same data gives the same subset on
		// resume.
		ecfg.CompactVocab = train.Used(mc.Vocab)
		info("compacted vocabulary: the classifier scores the %d of %d token ids in the training data", len(ecfg.CompactVocab), mc.Vocab)
	}
	if o.trace != "" {
		path := tracePath(o.trace, os.Getenv(restartEnv))
		tw, err := trace.Create(path, trace.Options{})
		if err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		// Deferred before the engine's Close, so it runs after it: the
		// engine's last spans are in the file.
		defer func() {
			if err := tw.Close(); err != nil {
				warn(fmt.Sprintf("trace %s: %v", path, err))
			} else if rec, dropped := tw.Events(); dropped > 0 {
				info("trace %s: %d spans, the last %d dropped (the file's limit)", path, rec, dropped)
			} else {
				info("trace %s: %d spans; open it in https://ui.perfetto.dev", path, rec)
			}
		}()
		ecfg.Tracer = tw
	}
	eng, err := engine.New(ecfg)
	if err != nil {
		return err
	}
	defer eng.Close()
	var tokens int64
	if rp != nil {
		if err := eng.Restore(rp.weights, rp.state); err != nil {
			return fmt.Errorf("checkpoint %s: %w", rp.path, err)
		}
		tokens = rp.tokens
		if rp.state.Step >= o.steps {
			return usageError{msg: fmt.Sprintf("checkpoint %s is at step %d, and --steps is %d: pass a larger --steps to train further", rp.path, rp.state.Step, o.steps)}
		}
	}

	run, err := checkpoint.OpenRun(o.runDir, o.keep)
	if err != nil {
		return err
	}
	tm := trainMeta{LR: o.lr, MinLR: o.lr / 10, Warmup: o.warmup, Steps: o.steps, Accum: o.accum,
		Clip: o.clip, Seed: o.seed, Device: dev.Name(), CompactVocab: o.compact}
	tm.Tokenizer = o.tokUsed

	info("training %s (%s, %.2fM parameters) on %s, data %s (%d tokens), checkpoints in %s",
		name, mc, float64(mc.NumParams())/1e6, dev.Name(), src.Name, src.Tokens.Len(), o.runDir)

	bus := engine.NewBus(1024)
	r := &engine.Runner{Engine: eng, Bus: bus, SampleLen: o.sampleLen,
		SampleOptions: engine.SampleOptions{Temperature: 0.8, TopP: 0.9, Seed: o.seed}}
	r.Prompt = []int32{data.BOS}
	if src.Tokenizer != nil {
		r.Prompt = r.Prompt[:0]
		for _, t := range src.Tokenizer.Encode("Once upon a time", true, false) {
			r.Prompt = append(r.Prompt, int32(t))
		}
	}

	// Saving: the engine is only touched on the runner's goroutine (in Batch
	// and Save below, and after Run returns), so a snapshot needs no lock.
	var saveMu sync.Mutex // guards lastSaved and lastSync, read by the final save
	lastSaved := eng.StepN()
	// lastSync is the last checkpoint written by Save (the c key, and the
	// one a restart resumes from).
	var lastSync struct {
		step int
		path string
		err  error
		ok   bool
	}
	var saving sync.WaitGroup
	var snap snapshotBuf
	saveAsync := func(reason string) {
		step := eng.StepN()
		run.Wait() // the previous save is done with snap (its error went out as its event)
		ts, md, err := snapshot(eng, &snap, sampler, src.Name, tm, tokens, val)
		if err != nil {
			bus.Publish(engine.CheckpointEvent{Step: step, Path: run.Path(step), Err: err})
			return
		}
		saveMu.Lock()
		lastSaved = step
		saveMu.Unlock()
		path := run.Path(step)
		out.noteReason(step, reason)
		res := run.SaveAsync(step, ts, md)
		saving.Add(1)
		go func() {
			defer saving.Done()
			err := <-res
			bus.Publish(engine.CheckpointEvent{Step: step, Path: path, Err: err})
		}()
	}
	// Save serves the checkpoint command (the console's "c"): it waits, so
	// the event the runner publishes tells the truth about the file.
	r.Save = func(e *engine.Engine) (string, error) {
		step := e.StepN()
		run.Wait() // the previous save is done with snap
		ts, md, err := snapshot(e, &snap, sampler, src.Name, tm, tokens, val)
		if err == nil {
			err = run.Save(step, ts, md)
		}
		saveMu.Lock()
		lastSaved = step
		lastSync.step, lastSync.path, lastSync.err, lastSync.ok = step, run.Path(step), err, true
		saveMu.Unlock()
		return run.Path(step), err
	}
	var evaluator *engine.Evaluator
	if valX != nil {
		evaluator = engine.NewEvaluator(mc)
	}
	// evaluate measures the validation loss of the current weights, once per
	// step; it runs on the runner's goroutine, between steps.
	evaluate := func() {
		step := eng.StepN()
		if evaluator == nil || val.measured && val.step == step {
			return
		}
		t0 := time.Now()
		loss, err := evaluator.Loss(eng.Params(), valX, valY)
		if err != nil {
			bus.Publish(engine.WarningEvent{Step: step, Msg: "validation: " + err.Error()})
			return
		}
		val.measured, val.step, val.loss = true, step, loss
		if !math.IsNaN(loss) && !math.IsInf(loss, 0) {
			val.best = min(val.best, loss) // a diverged model is never the best
		}
		bus.Publish(engine.EvalEvent{Step: step, Loss: loss, Tokens: len(valX), Time: time.Since(t0)})
	}
	lastSampled := -1
	sample := func() { // the weights as they are after the last step
		step := eng.StepN()
		lastSampled = step
		toks, err := eng.Generate(r.Prompt, r.SampleLen, r.SampleOptions)
		if err != nil {
			bus.Publish(engine.WarningEvent{Step: step, Msg: "sample: " + err.Error()})
		} else {
			bus.Publish(engine.SampleEvent{Step: step, Prompt: r.Prompt, Tokens: toks, Options: r.SampleOptions})
		}
	}
	r.Batch = func(x, y []int32) error {
		// Called before each step with the previous one complete: the point
		// where a periodic checkpoint or sample sees a consistent state and
		// the data cursor of the next step.
		step := eng.StepN()
		if o.evalEvery > 0 && step > 0 && step%o.evalEvery == 0 {
			evaluate() // before the checkpoint, which records it
		}
		if o.ckptEvery > 0 && step > 0 && step%o.ckptEvery == 0 && step != lastSaved {
			saveAsync("periodic")
		}
		if o.sampleEvery > 0 && step > 0 && step%o.sampleEvery == 0 && step != lastSampled {
			// Generated here rather than by a Sample command, which the
			// runner would only see after the next step.
			sample()
		}
		if err := sampler.Batch(x, y); err != nil {
			return err
		}
		tokens += int64(len(x))
		return nil
	}

	// Signals: the first SIGINT/SIGTERM ends the run after the current step
	// and a checkpoint; a second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var gotSig os.Signal
	var sigMu sync.Mutex
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		sigMu.Lock()
		gotSig = s
		sigMu.Unlock()
		info("%v: stopping after this step and writing a checkpoint (again to quit at once)", s)
		cancel()
		if _, ok := <-sigs; ok {
			os.Exit(exitInterrupted)
		}
	}()

	// The console shows the run itself; the headless outputs would garble it.
	console := !o.noTUI && !o.json && stdoutIsConsole(stdout)
	events, unsubscribe := bus.Subscribe(1 << 14)
	published = true
	printed := make(chan struct{})
	hl := &humanLog{w: stderr, every: o.logEvery, total: o.steps, vocab: mc.Vocab}
	if console {
		hl.every = 0
	}
	go func() {
		defer close(printed)
		for ev := range events {
			if !console {
				hl.event(ev, src.Tokenizer)
			}
			out.event(ev, o.steps, src.Tokenizer)
		}
	}()

	// finish runs on the runner's goroutine as soon as the loop ends, so the
	// final checkpoint is written (and shown by the console) without waiting
	// for the user to leave the console.
	finish := func(runErr error) {
		saveMu.Lock()
		need := lastSaved != eng.StepN()
		saveMu.Unlock()
		reason := "final"
		if runErr != nil {
			reason = "interrupt"
		}
		if runErr == nil && eng.StepN() == o.steps {
			evaluate() // the run's last word on the weights, in its checkpoint
			if o.sampleEvery > 0 && lastSampled != eng.StepN() {
				sample() // and what the finished model writes
			}
		}
		switch {
		case errors.Is(runErr, engine.ErrCompileBudget):
			// The restart resumes from this one: written before the exec.
			out.noteReason(eng.StepN(), "restart")
			path, err := r.Save(eng)
			bus.Publish(engine.CheckpointEvent{Step: eng.StepN(), Path: path, Err: err})
		case need && (runErr == nil || errors.Is(runErr, context.Canceled)):
			saveAsync(reason)
		}
		saving.Wait()
	}
	var decode func([]int32) string
	if src.Tokenizer != nil {
		decode = func(t []int32) string { return sampleText(src.Tokenizer, nil, t) }
	}
	cinfo := tui.RunInfo{Model: name, Params: int64(mc.NumParams()), Device: dev.Name(), BLAS: blas.Backend(),
		Steps: o.steps, RunDir: o.runDir, Decode: decode, Vocab: mc.Vocab}
	if rp != nil {
		cinfo.Resumed, cinfo.ResumedStep = rp.path, rp.state.Step
	}
	cinfo.Started = runStart() // across exec restarts; zero: this process's start
	ctl := &restartCtl{r: r}
	end, runErr := startRun(ctx, cancel, r, ctl, console, cinfo, finish)
	werr := run.Wait()
	unsubscribe()
	<-printed
	if end.quitNow {
		return exitStatus{code: exitInterrupted, msg: fmt.Sprintf("quit at step %d without waiting for a checkpoint; the last one is in %s", eng.StepN(), o.runDir)}
	}

	sigMu.Lock()
	sig := gotSig
	sigMu.Unlock()
	switch {
	case sig == nil && errors.Is(runErr, engine.ErrCompileBudget):
		saveMu.Lock()
		ls := lastSync
		saveMu.Unlock()
		if ls.err != nil || !ls.ok || ls.step != eng.StepN() {
			return fmt.Errorf("%w; and its checkpoint failed: %v", runErr, ls.err)
		}
		return restartRequest{ckpt: ls.path, step: ls.step, budget: true}
	case errors.Is(runErr, engine.ErrDiverged):
		hint := fmt.Sprintf("lower --lr (this run's is %g)", o.lr)
		if last := checkpoint.NewestFile(o.runDir); last != "" {
			hint += fmt.Sprintf(", or resume from a checkpoint before the divergence with --resume PATH (the newest is %s)", last)
		}
		return fmt.Errorf("%w\n%s", runErr, hint)
	case runErr != nil && !errors.Is(runErr, context.Canceled):
		return runErr
	case werr != nil:
		return fmt.Errorf("checkpoint: %w", werr)
	case sig == nil && end.restart && eng.StepN() < o.steps:
		saveMu.Lock()
		ls := lastSync
		saveMu.Unlock()
		switch {
		case !ls.ok || ls.step != eng.StepN():
			return fmt.Errorf("restart: no checkpoint of step %d was written; continue with: anetop --resume --run-dir %s", eng.StepN(), o.runDir)
		case ls.err != nil:
			return fmt.Errorf("restart: checkpoint %s: %w; not restarting", ls.path, ls.err)
		}
		return restartRequest{ckpt: ls.path, step: ls.step}
	case sig != nil || end.interrupted:
		code := exitInterrupted
		if sig == syscall.SIGTERM {
			code = exitTerminated
		}
		return exitStatus{code: code, msg: fmt.Sprintf("interrupted at step %d; checkpoint %s; continue with: anetop --resume --run-dir %s", eng.StepN(), run.Path(eng.StepN()), o.runDir)}
	}
	if eng.StepN() < o.steps {
		info("stopped at step %d of %d, checkpoint %s; continue with: anetop --resume --run-dir %s", eng.StepN(), o.steps, run.Path(eng.StepN()), o.runDir)
	} else {
		info("done: %d steps, checkpoint %s", eng.StepN(), run.Path(eng.StepN()))
	}
	return nil
}

// runEnd is how a run under startRun ended, besides its error.
type runEnd struct {
	// quitNow: the user left the console without waiting for the exit
	// checkpoint (the run was cancelled and finish skipped).
	quitNow bool
	// restart: the run stopped for ctl's restart (its checkpoint written,
	// the console closed) and should be exec'd again.
	restart bool
	// interrupted: the user quit the console with ctrl+c, after the exit
	// checkpoint; the process exits as on SIGINT.
	interrupted bool
}

// startRun runs the training loop, under the console when console is set,
// and calls finish with the loop's result as soon as the loop ends. The
// console sends its commands through ctl.
func startRun(ctx context.Context, cancel context.CancelFunc, r *engine.Runner, ctl *restartCtl, console bool,
	info tui.RunInfo, finish func(error)) (end runEnd, err error) {
	var restarting sync.Mutex // guards restarted, set by the loop's goroutine
	restarted := false
	if !console {
		err = r.Run(ctx)
		finish(err)
		return runEnd{}, err
	}
	// ---- the console (package tui) ----
	// The loop runs beside the console, which reads r.Bus and sends
	// commands through ctl (to r.Send); q checkpoints and stops the loop, q twice
	// (tui.ErrQuitNow) leaves at once.
	// r (ctl's Restart) checkpoints and stops the loop; the console is
	// then closed here, restoring the terminal before the exec.
	done := make(chan error, 1)
	tuiCtx, tuiCancel := context.WithCancel(ctx)
	defer tuiCancel()
	go func() {
		err := r.Run(ctx)
		finish(err)
		if err == nil && ctl.Requested() || errors.Is(err, engine.ErrCompileBudget) {
			restarting.Lock()
			restarted = true
			restarting.Unlock()
			tuiCancel()
		}
		done <- err
	}()
	tuiErr := consoleRun(tuiCtx, r.Bus, ctl, info)
	if errors.Is(tuiErr, tui.ErrQuitNow) {
		cancel()
		<-done // at most one more step; the engine must be idle before Close
		return runEnd{quitNow: true}, nil
	}
	restarting.Lock()
	rs := restarted
	restarting.Unlock()
	if rs && ctx.Err() == nil {
		return runEnd{restart: true}, <-done
	}
	end.interrupted = errors.Is(tuiErr, tui.ErrInterrupted)
	if tuiErr != nil && !end.interrupted && ctx.Err() == nil {
		// The console failed (e.g. the terminal went away): stop cleanly,
		// with the checkpoint, and report the console's error.
		cancel()
		<-done
		return runEnd{}, tuiErr
	}
	if ctx.Err() == nil {
		// The user quit after the run ended, or after q's checkpoint+stop.
		r.Send(engine.Stop)
	}
	return end, <-done
}
