package engine

import (
	"time"

	"github.com/anetop/anetop/model"
)

// KernelTiming is one kernel's share of a step.
type KernelTiming struct {
	Name  string
	Evals int64
	Time  time.Duration
	FLOPs float64
}

// Phases is the CPU's share of a step, by phase.
type Phases struct {
	Staging    time.Duration // fp32↔fp16 activation writes, reads, tap copies, residual adds
	Classifier time.Duration // logits, cross-entropy, classifier backward (sync part)
	Norms      time.Duration // RMSNorm forward and backward
	DWWait     time.Duration // waiting for the dW worker's gradient jobs
	// Optimizer is the update's time on the critical path: the gradient
	// norm and the decision at the end of the step, the looked-up
	// embedding rows and the waits for the worker's AdamW jobs at the
	// start of the next (see OptimizerOverlap).
	Optimizer time.Duration
}

// StepStats describes one step. Device figures are the emulator's when
// Emulated is set.
type StepStats struct {
	Step         int
	Loss         float64 // mean cross-entropy over the step's tokens (nats); over ScoredVocab ids only
	LR           float64
	GradNorm     float64 // global L2 norm of the unscaled gradient, before clipping
	LossScale    float64 // the scale this step used
	Skipped      bool    // inf/NaN gradient: no update, scale halved
	Tokens       int
	Time         time.Duration
	TokensPerSec float64
	// ScoredVocab is the number of token ids the loss's softmax ran over:
	// the model's vocabulary, or fewer with Config.CompactVocab, whose loss
	// is the cross-entropy restricted to them (lower than the true loss:
	// label it so).
	ScoredVocab int
	Kernels     [model.NumKernels]KernelTiming
	Phases      Phases
	DWTime      time.Duration // dW worker's time on gradient jobs
	DWHidden    time.Duration // of DWTime, the part that ran behind other work
	// OptimizerOverlap is the dW worker's time on the previous update's
	// AdamW and restaging during this step's forward.
	OptimizerOverlap time.Duration
	DeviceTime       time.Duration
	DeviceFLOPs      float64
	DeviceFLOPS      float64 // DeviceFLOPs / DeviceTime
	Utilisation      float64 // DeviceFLOPS / Device.PeakFLOPS()
	Emulated         bool
	BudgetUsed       int
	BudgetLimit      int
	// ForeignCalls is the step's crossings from Go into the OS frameworks
	// (the Neural Engine backend counts them; 0 on the emulator). The
	// counter is process-wide, so a checkpoint or sample between steps
	// shows up in the next step.
	ForeignCalls int64
}

func (e *Engine) finishStats(dt time.Duration) {
	st := &e.stats
	st.Time = dt
	st.TokensPerSec = float64(st.Tokens) / dt.Seconds()
	for id := range model.NumKernels {
		ks := e.kernelStats(model.KernelID(id))
		p := e.prevKern[id]
		st.Kernels[id] = KernelTiming{Name: model.KernelID(id).String(), Evals: ks.Evals - p.Evals, Time: ks.Time - p.Time, FLOPs: ks.FLOPs - p.FLOPs}
		e.prevKern[id] = ks
		st.DeviceTime += ks.Time - p.Time
		st.DeviceFLOPs += ks.FLOPs - p.FLOPs
	}
	st.DWTime = e.dw.busy
	st.OptimizerOverlap = e.dw.optBusy
	st.DWHidden = max(0, st.DWTime-st.Phases.DWWait)
	if st.DeviceTime > 0 {
		st.DeviceFLOPS = st.DeviceFLOPs / st.DeviceTime.Seconds()
		if pk := e.peak; pk > 0 {
			st.Utilisation = st.DeviceFLOPS / pk
		}
	}
	st.Emulated = e.dev.Emulated()
	st.BudgetUsed, st.BudgetLimit = e.dev.Budget()
	if fc, ok := e.dev.(foreignCounter); ok {
		n := fc.ForeignCalls()
		st.ForeignCalls, e.prevForeign = n-e.prevForeign, n
	}
	e.lastStats = *st
}

// foreignCounter is a device that counts its foreign calls (the Neural
// Engine backend, ane.NeuralEngine).
type foreignCounter interface{ ForeignCalls() int64 }
