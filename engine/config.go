package engine

import (
	"errors"
	"fmt"
	"math"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/model"
)

// Config is a training run: the model, the device, the data-independent
// hyper-parameters. Zero fields take the defaults in Defaults.
type Config struct {
	Model  model.Config
	Device ane.Device
	Params *model.Params // initial weights (copied); nil means model.Params.Init(Seed)
	Seed   uint64

	LR, MinLR   float64 // peak and final learning rate of the cosine schedule
	Warmup      int     // linear warm-up updates
	Steps       int     // updates in the run (the cosine's length)
	Accum       int     // windows of Model.Seq tokens per update
	Clip        float64 // global gradient-norm clip; negative disables
	WeightDecay float64 // AdamW decoupled decay, matrices only; negative means 0
	Beta1       float64
	Beta2       float64
	Eps         float64

	// LossScale is the initial dynamic loss scale: the gradient entering
	// the device is multiplied by it so that fp16 does not flush it to zero.
	LossScale float64
	// ScaleWindow is the number of clean updates after which the scale
	// doubles; an inf/NaN gradient halves it and skips the update.
	ScaleWindow int
	// Workers is the parallelism of the optimizer and cross-entropy
	// passes; 0 means GOMAXPROCS.
	Workers int
	// Tracer, if set, receives the step timeline: every kernel evaluation,
	// CPU phase segment and dW job, and each step (see Span). Nil costs
	// nothing.
	Tracer Tracer
	// Static selects the static pipeline: per-layer kernels with the
	// weights as constants, recompiled after every update (static.go).
	// It spends 4·Layers compiles of the device's budget per update.
	Static bool
	// CompactVocab, if set, compacts the classifier to these token ids
	// (ascending, distinct, within the vocabulary): the training step
	// computes logits for those rows only, its softmax and cross-entropy
	// run over them, and only their classifier rows get a gradient. It is
	// a speed-up for data that uses a fraction of the vocabulary (the
	// classifier is a third of a small model's FLOPs), at a price: the
	// training loss is the cross-entropy restricted to the subset, lower
	// than the true loss, and the weights of unscored rows never learn to
	// be unlikely. Every target must be in it (Step fails otherwise);
	// inputs need not be. Evaluator and Generate stay full-vocabulary, so
	// validation is the true loss. Nil means the full vocabulary.
	CompactVocab []int32
}

// MaxLossScale caps the dynamic loss scale (fp32 gradients stay far from
// overflow below it).
const MaxLossScale = 1 << 24

// withDefaults fills in zero fields: llama2.c's train.py hyper-parameters
// (lr 5e-4, β 0.9/0.95, wd 0.1, clip 1), min lr lr/10, 1000 steps.
func (c Config) withDefaults() Config {
	if c.LR == 0 {
		c.LR = 5e-4
	}
	if c.MinLR == 0 {
		c.MinLR = c.LR / 10
	}
	if c.Steps == 0 {
		c.Steps = 1000
	}
	if c.Accum == 0 {
		c.Accum = 1
	}
	if c.Clip == 0 {
		c.Clip = 1
	}
	if c.WeightDecay == 0 {
		c.WeightDecay = 0.1
	} else if c.WeightDecay < 0 {
		c.WeightDecay = 0
	}
	if c.Beta1 == 0 {
		c.Beta1 = 0.9
	}
	if c.Beta2 == 0 {
		c.Beta2 = 0.95
	}
	if c.Eps == 0 {
		c.Eps = 1e-8
	}
	if c.LossScale == 0 {
		c.LossScale = 1024
	}
	if c.ScaleWindow == 0 {
		c.ScaleWindow = 200
	}
	return c
}

func (c Config) check() error {
	if c.Device == nil {
		return errors.New("engine: no device (open one with ane.Open)")
	}
	// Validate before resolving: resolution fills HeadDim in as Dim/Heads,
	// which would hide a Heads that does not divide Dim.
	if err := c.Model.Validate(); err != nil {
		return err
	}
	switch {
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("engine: LR is %v; it must be positive", c.LR)
	case c.MinLR < 0 || c.MinLR > c.LR:
		return fmt.Errorf("engine: MinLR is %v; it must be in [0, LR]", c.MinLR)
	case c.Warmup < 0 || c.Steps < 1 || c.Accum < 1:
		return fmt.Errorf("engine: Warmup %d, Steps %d, Accum %d: warm-up must be ≥ 0, steps and accum ≥ 1", c.Warmup, c.Steps, c.Accum)
	case c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("engine: betas %v, %v must be in [0, 1)", c.Beta1, c.Beta2)
	case !(c.LossScale >= 1) || c.LossScale > MaxLossScale:
		return fmt.Errorf("engine: LossScale is %v; it must be in [1, %d]", c.LossScale, MaxLossScale)
	}
	if c.Static {
		if used, limit := c.Device.Budget(); used+staticCompiles(c.Model.Resolved()) > limit {
			return fmt.Errorf("engine: the static pipeline needs %d kernel compiles before its first step (4 per layer and 4 shared) and the device's budget has %d of %d left: use the dynamic pipeline, fewer layers, or a larger budget",
				staticCompiles(c.Model.Resolved()), limit-used, limit)
		}
	}
	if c.CompactVocab != nil {
		if len(c.CompactVocab) == 0 {
			return errors.New("engine: CompactVocab is empty; nil means the full vocabulary")
		}
		v := c.Model.Resolved().Vocab
		for i, id := range c.CompactVocab {
			if id < 0 || int(id) >= v {
				return fmt.Errorf("engine: CompactVocab[%d] is %d, outside the vocabulary of %d", i, id, v)
			}
			if i > 0 && id <= c.CompactVocab[i-1] {
				return fmt.Errorf("engine: CompactVocab must be ascending and distinct: %d follows %d at %d", id, c.CompactVocab[i-1], i)
			}
		}
	}
	if c.Params != nil && len(c.Params.Data) != c.Model.NumParams() {
		return fmt.Errorf("engine: initial parameters have %d values, the model needs %d", len(c.Params.Data), c.Model.NumParams())
	}
	return nil
}

// LRAt is the learning rate of update t (0-based): linear warm-up to LR over
// Warmup updates, then a cosine from LR down to MinLR at Steps.
func (c Config) LRAt(t int) float64 {
	c = c.withDefaults()
	if t < c.Warmup {
		return c.LR * float64(t+1) / float64(c.Warmup)
	}
	p := float64(t-c.Warmup) / float64(max(1, c.Steps-c.Warmup))
	p = min(p, 1)
	return c.MinLR + 0.5*(c.LR-c.MinLR)*(1+math.Cos(math.Pi*p))
}
