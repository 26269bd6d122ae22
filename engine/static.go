package engine

import (
	"errors"
	"fmt"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/model"
)

// The static pipeline (Config.Static): every layer's four kernels carry
// that layer's weights as fp16 constants (model.BuildStatic) and are
// recompiled before the first step after the weights change — the
// reference project's original design, kept for kernel research. Each
// update costs 4·Layers compiles, which is what the ANE's per-process
// compile budget limits: Runner stops with ErrCompileBudget before a step
// whose recompile would not fit, so the process can checkpoint and exec a
// fresh one (anetop does). The dynamic kernels are still compiled once:
// they own the surfaces, which both pipelines stage the same way.

// ErrCompileBudget is returned by Runner.Run when the next step's compiles
// would exceed the device's compile budget: the run can only go on in a
// fresh process (checkpoint, exec, resume).
var ErrCompileBudget = errors.New("engine: the next step's kernel compiles would exceed this process's compile budget")

// staticState is the static pipeline's kernels.
type staticState struct {
	k       [][model.NumKernels]ane.Kernel // per layer; nil entries before the first compile
	stale   bool                           // the weights changed since k was compiled
	retired [model.NumKernels]ane.KernelStats
}

// CompilesNeeded is the number of kernel compiles the next Step will make:
// 4·Layers in the static pipeline after the weights changed, else 0.
func (e *Engine) CompilesNeeded() int {
	if !e.cfg.Static || !e.st.stale {
		return 0
	}
	return int(model.NumKernels) * e.mc.Layers
}

// staticCompiles is what a fresh process needs to take a static step: the
// four dynamic kernels and one set per layer.
func staticCompiles(c model.Config) int { return int(model.NumKernels) * (1 + c.Layers) }

// compileStatic brings the weights up to date and compiles every layer's
// kernels with them, closing the kernels they replace.
func (e *Engine) compileStatic() error {
	if err := e.settle(); err != nil {
		return err
	}
	if e.st.k == nil {
		e.st.k = make([][model.NumKernels]ane.Kernel, e.mc.Layers)
	}
	for l := range e.mc.Layers {
		w := e.params.Layer(l)
		for _, id := range model.Kernels {
			prog, wts, err := e.lay.BuildStatic(id, w)
			if err != nil {
				return fmt.Errorf("engine: static %v for layer %d: %w", id, l, err)
			}
			k, err := e.dev.Compile(fmt.Sprintf("%v_layer%d", id, l), prog, wts)
			if err != nil {
				return fmt.Errorf("engine: static pipeline: compile %v for layer %d: %w", id, l, err)
			}
			if old := e.st.k[l][id]; old != nil {
				addStats(&e.st.retired[id], old.Stats())
				if err := old.Close(); err != nil {
					k.Close()
					return fmt.Errorf("engine: static pipeline: close %v for layer %d: %w", id, l, err)
				}
			}
			e.st.k[l][id] = k
		}
	}
	e.st.stale = false
	return nil
}

// kernel is the kernel to evaluate for kernel id of layer l.
func (e *Engine) kernel(id model.KernelID, l int) ane.Kernel {
	if e.cfg.Static {
		return e.st.k[l][id]
	}
	return e.kern[id]
}

// kernelStats is kernel id's evaluations so far, over every layer's (and
// every retired) kernel in the static pipeline.
func (e *Engine) kernelStats(id model.KernelID) ane.KernelStats {
	if !e.cfg.Static {
		return e.kern[id].Stats()
	}
	s := e.st.retired[id]
	for l := range e.st.k {
		if k := e.st.k[l][id]; k != nil {
			addStats(&s, k.Stats())
		}
	}
	return s
}

// closeStatic closes the static kernels.
func (e *Engine) closeStatic() error {
	var errs []error
	for l := range e.st.k {
		for id, k := range e.st.k[l] {
			if k != nil {
				errs = append(errs, k.Close())
				e.st.k[l][id] = nil
			}
		}
	}
	return errors.Join(errs...)
}

func addStats(dst *ane.KernelStats, s ane.KernelStats) {
	dst.Evals, dst.Time, dst.FLOPs = dst.Evals+s.Evals, dst.Time+s.Time, dst.FLOPs+s.FLOPs
}
