package main

// The headless outputs of a training run: the short human progress line on
// stderr and the --json event stream on stdout (docs/events.md).

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/anetop/anetop/data"
	"github.com/anetop/anetop/engine"
)

// humanLog prints the short progress line on stderr.
type humanLog struct {
	w     io.Writer
	every int
	total int
	vocab int // the model's, to label a loss over a compacted vocabulary
}

func (h *humanLog) event(ev engine.Event, tok *data.Tokenizer) {
	switch ev := ev.(type) {
	case engine.StepEvent:
		s := ev.StepStats
		n := s.Step + 1 // StepStats.Step is 0-based; people count steps done
		if h.every == 0 || (n%h.every != 0 && n != 1 && n != h.total) {
			return
		}
		label := "ANE"
		if s.Emulated {
			label = "emulator"
		}
		loss := fmt.Sprintf("loss %.4f", s.Loss)
		if s.ScoredVocab > 0 && s.ScoredVocab < h.vocab {
			loss += fmt.Sprintf(" (%d/%d vocab)", s.ScoredVocab, h.vocab)
		}
		fmt.Fprintf(h.w, "step %d/%d  %s  lr %.2e  %.0f tok/s  %.1f ms/step  util %.1f%% (%s)\n",
			n, h.total, loss, s.LR, s.TokensPerSec, msec(s.Time), 100*s.Utilisation, label)
	case engine.SampleEvent:
		if tok != nil {
			fmt.Fprintf(h.w, "sample at step %d: %q\n", ev.Step, sampleText(tok, ev.Prompt, ev.Tokens))
		}
	case engine.CheckpointEvent:
		if ev.Err != nil {
			fmt.Fprintf(h.w, "checkpoint at step %d failed: %v\n", ev.Step, ev.Err)
		} else {
			fmt.Fprintf(h.w, "checkpoint %s\n", ev.Path)
		}
	case engine.EvalEvent:
		fmt.Fprintf(h.w, "validation loss at step %d: %.4f (%d tokens, %.0f ms)\n", ev.Step, ev.Loss, ev.Tokens, msec(ev.Time))
	case engine.WarningEvent:
		fmt.Fprintf(h.w, "warning at step %d: %s\n", ev.Step, ev.Msg)
	case engine.ErrorEvent:
		fmt.Fprintf(h.w, "error at step %d: %v\n", ev.Step, ev.Err)
	}
}

func msec(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sampleText(tok *data.Tokenizer, prompt, toks []int32) string {
	all := make([]int, 0, len(prompt)+len(toks))
	for _, t := range prompt {
		all = append(all, int(t))
	}
	for _, t := range toks {
		all = append(all, int(t))
	}
	return tok.DecodeAll(all)
}

// jsonSchema is the version of the --json event schema (docs/events.md).
// Adding fields keeps it; renaming, removing or changing a field's meaning
// bumps it.
const jsonSchema = 1

// jfloat marshals non-finite values (a diverged loss) as null, which JSON
// can represent and encoding/json otherwise refuses.
type jfloat float64

func (f jfloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

type jsonHeader struct {
	Schema int    `json:"schema"`
	Type   string `json:"type"`
	Time   string `json:"time"`
	Step   int    `json:"step"`
}

func header(typ string, step int) jsonHeader {
	return jsonHeader{Schema: jsonSchema, Type: typ, Time: time.Now().UTC().Format(time.RFC3339Nano), Step: step}
}

type jsonKernel struct {
	Name  string `json:"name"`
	Evals int64  `json:"evals"`
	MS    jfloat `json:"ms"`
	FLOPs jfloat `json:"flops"`
}

type jsonStep struct {
	jsonHeader
	Steps        int               `json:"steps"`
	Loss         jfloat            `json:"loss"`
	LR           jfloat            `json:"lr"`
	GradNorm     jfloat            `json:"grad_norm"`
	LossScale    jfloat            `json:"loss_scale"`
	Skipped      bool              `json:"skipped"`
	Tokens       int               `json:"tokens"`
	MS           jfloat            `json:"ms"`
	TokensPerSec jfloat            `json:"tokens_per_sec"`
	DeviceMS     jfloat            `json:"device_ms"`
	DeviceFLOPS  jfloat            `json:"device_flops_per_sec"`
	Util         jfloat            `json:"util"`
	Emulated     bool              `json:"emulated"`
	DWMS         jfloat            `json:"dw_ms"`
	DWHiddenMS   jfloat            `json:"dw_hidden_ms"`
	Phases       map[string]jfloat `json:"phases_ms"`
	Kernels      []jsonKernel      `json:"kernels"`
	BudgetUsed   int               `json:"budget_used"`
	BudgetLimit  int               `json:"budget_limit"`
	ForeignCalls int64             `json:"foreign_calls"`
	ScoredVocab  int               `json:"scored_vocab"`
}

type jsonSample struct {
	jsonHeader
	Prompt      []int32 `json:"prompt"`
	Tokens      []int32 `json:"tokens"`
	Text        *string `json:"text"`
	Temperature jfloat  `json:"temperature"`
	TopP        jfloat  `json:"top_p"`
	Seed        uint64  `json:"seed"`
}

type jsonCheckpoint struct {
	jsonHeader
	Path   string `json:"path"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}

type jsonEval struct {
	jsonHeader
	Loss   jfloat `json:"loss"`
	Tokens int    `json:"tokens"`
	MS     jfloat `json:"ms"`
}

type jsonMessage struct {
	jsonHeader
	Message string `json:"message"`
}

type jsonState struct {
	jsonHeader
	State string `json:"state"`
}

func warningJSON(step int, msg string) any {
	return jsonMessage{jsonHeader: header("warning", step), Message: msg}
}

// eventWriter writes --json events, one object a line; it is a no-op without
// --json. Writes are serialised: events come from the printer goroutine and
// from setup code.
type eventWriter struct {
	mu      sync.Mutex
	w       io.Writer
	on      bool
	reasons map[int]string // step → why its checkpoint was written
}

func newEventWriter(w io.Writer, on bool) *eventWriter {
	return &eventWriter{w: w, on: on, reasons: map[int]string{}}
}

// noteReason records why the checkpoint of step is being written, for its
// event (published later, when the background save ends).
func (e *eventWriter) noteReason(step int, reason string) {
	e.mu.Lock()
	e.reasons[step] = reason
	e.mu.Unlock()
}

func (e *eventWriter) write(v any) {
	if !e.on {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(jsonMessage{jsonHeader: header("error", 0), Message: "encoding event: " + err.Error()})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w.Write(append(b, '\n'))
}

func (e *eventWriter) event(ev engine.Event, total int, tok *data.Tokenizer) {
	if !e.on {
		return
	}
	switch ev := ev.(type) {
	case engine.StepEvent:
		s := ev.StepStats
		// Step events count steps done (1-based), like every other event's
		// step and the checkpoint files; StepStats.Step is 0-based.
		js := jsonStep{jsonHeader: header("step", s.Step+1), Steps: total, Loss: jfloat(s.Loss), LR: jfloat(s.LR),
			GradNorm: jfloat(s.GradNorm), LossScale: jfloat(s.LossScale), Skipped: s.Skipped, Tokens: s.Tokens,
			MS: jfloat(msec(s.Time)), TokensPerSec: jfloat(s.TokensPerSec), DeviceMS: jfloat(msec(s.DeviceTime)),
			DeviceFLOPS: jfloat(s.DeviceFLOPS), Util: jfloat(s.Utilisation), Emulated: s.Emulated,
			DWMS: jfloat(msec(s.DWTime)), DWHiddenMS: jfloat(msec(s.DWHidden)),
			Phases: map[string]jfloat{
				"staging": jfloat(msec(s.Phases.Staging)), "classifier": jfloat(msec(s.Phases.Classifier)),
				"norms": jfloat(msec(s.Phases.Norms)), "dw_wait": jfloat(msec(s.Phases.DWWait)),
				"optimizer": jfloat(msec(s.Phases.Optimizer)),
			},
			BudgetUsed: s.BudgetUsed, BudgetLimit: s.BudgetLimit, ForeignCalls: s.ForeignCalls, ScoredVocab: s.ScoredVocab}
		for _, k := range s.Kernels {
			js.Kernels = append(js.Kernels, jsonKernel{Name: k.Name, Evals: k.Evals, MS: jfloat(msec(k.Time)), FLOPs: jfloat(k.FLOPs)})
		}
		e.write(js)
	case engine.SampleEvent:
		js := jsonSample{jsonHeader: header("sample", ev.Step), Prompt: ev.Prompt, Tokens: ev.Tokens,
			Temperature: jfloat(ev.Options.Temperature), TopP: jfloat(ev.Options.TopP), Seed: ev.Options.Seed}
		if tok != nil {
			s := sampleText(tok, ev.Prompt, ev.Tokens)
			js.Text = &s
		}
		e.write(js)
	case engine.CheckpointEvent:
		e.mu.Lock()
		reason := e.reasons[ev.Step]
		e.mu.Unlock()
		jc := jsonCheckpoint{jsonHeader: header("checkpoint", ev.Step), Path: ev.Path, OK: ev.Err == nil, Reason: reason}
		if ev.Err != nil {
			jc.Error = ev.Err.Error()
		}
		e.write(jc)
	case engine.EvalEvent:
		e.write(jsonEval{jsonHeader: header("eval", ev.Step), Loss: jfloat(ev.Loss), Tokens: ev.Tokens, MS: jfloat(msec(ev.Time))})
	case engine.WarningEvent:
		e.write(warningJSON(ev.Step, ev.Msg))
	case engine.ErrorEvent:
		e.write(jsonMessage{jsonHeader: header("error", ev.Step), Message: ev.Err.Error()})
	case engine.StateEvent:
		e.write(jsonState{jsonHeader: header("state", ev.Step), State: ev.State})
	}
}
