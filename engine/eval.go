package engine

import (
	"fmt"

	"github.com/anetop/anetop/model"
)

// Evaluator computes the mean cross-entropy of a model on held-out
// windows: the validation loss. It runs on the CPU in float32 from the fp32
// master weights (the device's fp16 forward is the training loss's), so it
// measures the model being trained, not the device, and never touches the
// device's surfaces or the engine's step state. Its buffers are allocated
// once; an Evaluator is not safe for concurrent use.
type Evaluator struct {
	f      *cpuForward
	logits []float32 // [Seq, Vocab]
}

// NewEvaluator returns an Evaluator for models of config c.
func NewEvaluator(c model.Config) *Evaluator {
	c = c.Resolved()
	return &Evaluator{f: newCPUForward(c), logits: make([]float32, c.Seq*c.Vocab)}
}

// Loss returns the mean cross-entropy in nats of predicting y from x over
// windows of Seq tokens (len(x) = len(y) = a multiple of Seq).
func (ev *Evaluator) Loss(p *model.Params, x, y []int32) (float64, error) {
	c := ev.f.c
	s, d, v := c.Seq, c.Dim, c.Vocab
	if p.Config.Resolved() != c {
		return 0, fmt.Errorf("engine: evaluating a %v model with an evaluator for %v", p.Config, c)
	}
	if len(x) == 0 || len(x)%s != 0 || len(y) != len(x) {
		return 0, fmt.Errorf("engine: evaluation needs whole windows of %d inputs and targets, got %d and %d", s, len(x), len(y))
	}
	for i := range x {
		if x[i] < 0 || int(x[i]) >= v || y[i] < 0 || int(y[i]) >= v {
			return 0, fmt.Errorf("engine: token %d or target %d at %d is outside the vocabulary of %d", x[i], y[i], i, v)
		}
	}
	var total float64
	for w := 0; w < len(x); w += s {
		ev.f.forward(p, x[w:w+s])
		normRows(ev.f.xn, ev.f.x, p.FinalNorm(), s, d, c.NormEps)
		linearRows(ev.logits, ev.f.xn, p.Classifier(), s, v, d, 0)
		// The training step's own cross-entropy; scale 0 leaves the
		// logits' gradient zero, which nothing reads.
		total += crossEntropyRows(ev.logits, y[w:w+s], v, 0, s, 0)
	}
	return total / float64(len(x)), nil
}
