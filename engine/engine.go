package engine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/model"
)

// layerBuf is one layer's fp32 activations, kept from the forward for the
// backward and, for the backward's own outputs, kept until the dW worker
// has consumed them (one set per layer, so the worker may lag a layer).
type layerBuf struct {
	x, xn, rAttn, attn, x2, xn2, rFFN, g []float32 // forward
	df, dh1, dh3, do, dq, dk, dv         []float32 // backward, read by the dW worker
}

// optTask is one task of the fused optimizer pass: parameter ranges of the
// flat buffers, and the layer whose surfaces are restaged after them (-1:
// none, the embedding and final norm live on the CPU).
type optTask struct {
	ranges []optRange
	layer  int
}

type optRange struct {
	lo, hi int
	decay  bool
}

// Engine trains one model on one device. It is not safe for concurrent use
// (Run serialises the commands it receives).
type Engine struct {
	cfg  Config
	mc   model.Config
	lay  *model.Layout
	dev  ane.Device
	kern [model.NumKernels]ane.Kernel
	out  [model.NumKernels]*ane.Surface
	ain  []*ane.Surface // per layer: attention surface (attn_fwd and attn_bwd input)
	fin  []*ane.Surface // per layer: FFN surface

	params  *model.Params
	grad    []float32 // loss-scaled gradient, accumulated over the update's windows
	m, v    []float32 // Adam moments
	scratch [][]float32

	layers         []layerBuf
	xs, xf, rf, dx []float32 // residual stream, final norm output, its r, stream gradient [D, S]
	tmpD, dot      []float32
	logits         []float32 // [S, V], turned into dlogits in place
	ceLoss         []float64
	targets        []int32

	dw     *dwWorker
	pool   *pool
	opt    []optTask
	part   []float64 // per optimizer task: Σg²
	optErr []error   // per optimizer task: a surface lock failure

	// State of the pool's current phase.
	phase       int
	lr, gscale  float32
	bc1, bc2    float32
	dlossScale  float32
	closed      bool
	stepN, adam int
	lossScale   float64
	clean       int
	stats       StepStats
	lastStats   StepStats
	prevKern    [model.NumKernels]ane.KernelStats
	inArg       [1]*ane.Surface
	peak        float64 // device peak FLOP/s, read once (the emulator measures it on first use)
}

const (
	phaseCE = iota
	phaseNorm
	phaseUpdate
	phaseZero
)

const ceChunk = 16 // rows of the logits per cross-entropy task

// New compiles the four kernels (once: each serves every layer), allocates
// every buffer the step needs, and stages the initial weights.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.Model = cfg.Model.Resolved()
	mc := cfg.Model
	lay, err := model.NewLayout(mc)
	if err != nil {
		return nil, err
	}
	p, err := model.NewParams(mc)
	if err != nil {
		return nil, err
	}
	if cfg.Params != nil {
		copy(p.Data, cfg.Params.Data)
	} else {
		p.Init(cfg.Seed)
	}
	e := &Engine{cfg: cfg, mc: mc, lay: lay, dev: cfg.Device, params: p, lossScale: cfg.LossScale}
	for _, id := range model.Kernels {
		prog, w, err := lay.Build(id)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("engine: build %v: %w", id, err)
		}
		k, err := e.dev.Compile(id.String(), prog, w)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("engine: compile %v: %w", id, err)
		}
		e.kern[id] = k
		if e.out[id], err = k.NewSurface(ane.Output, 0); err != nil {
			e.Close()
			return nil, fmt.Errorf("engine: %v output surface: %w", id, err)
		}
	}
	n := p.Config.NumParams()
	e.grad, e.m, e.v = make([]float32, n), make([]float32, n), make([]float32, n)
	d, s, h, q, kv, v := mc.Dim, mc.Seq, mc.Hidden, mc.QDim(), mc.KVDim(), mc.Vocab
	f := func(k int) []float32 { return make([]float32, k) }
	for range mc.Layers {
		ai, err := e.kern[model.AttnFwd].NewSurface(ane.Input, 0)
		if err != nil {
			e.Close()
			return nil, err
		}
		fi, err := e.kern[model.FFNFwd].NewSurface(ane.Input, 0)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.ain, e.fin = append(e.ain, ai), append(e.fin, fi)
		e.layers = append(e.layers, layerBuf{
			x: f(d * s), xn: f(d * s), rAttn: f(s), attn: f(q * s), x2: f(d * s), xn2: f(d * s), rFFN: f(s), g: f(h * s),
			df: f(d * s), dh1: f(h * s), dh3: f(h * s), do: f(d * s), dq: f(q * s), dk: f(kv * s), dv: f(kv * s),
		})
	}
	e.xs, e.xf, e.rf, e.dx, e.tmpD, e.dot = f(d*s), f(d*s), f(s), f(d*s), f(d*s), f(s)
	e.logits = f(s * v)
	e.ceLoss = make([]float64, (s+ceChunk-1)/ceChunk)
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	for range workers {
		e.scratch = append(e.scratch, f(lay.ScratchSize()))
	}
	e.buildOptTasks()
	e.part = make([]float64, len(e.opt))
	e.optErr = make([]error, len(e.opt))
	e.dw = newDWWorker()
	e.pool = newPool(workers, e.task)
	// The dW worker and the device (the emulator's matmuls are sgemms too)
	// run at the same time; on two cores one BLAS thread each beats two
	// callers fighting over a shared pool. The classifier, which runs while
	// the worker is idle, switches back to all threads (see window).
	blas.SetThreads(1)
	if err := e.restage(); err != nil {
		e.Close()
		return nil, err
	}
	for id := range model.NumKernels {
		e.prevKern[id] = e.kern[id].Stats()
	}
	e.peak = e.dev.PeakFLOPS()
	return e, nil
}

// buildOptTasks partitions the parameters: one task per layer (its nine
// tensors, then its two surfaces restaged) and the embedding, final norm and
// classifier in chunks of about 64k values.
func (e *Engine) buildOptTasks() {
	c := e.mc
	for l := range c.Layers {
		t := optTask{layer: l}
		for k := model.AttnNorm; k <= model.W3; k++ {
			off := c.Offset(k, l)
			t.ranges = append(t.ranges, optRange{off, off + c.Size(k), k.Matrix()})
		}
		e.opt = append(e.opt, t)
	}
	const chunk = 1 << 16
	for _, tn := range e.params.Tensors {
		if tn.Kind.PerLayer() {
			continue
		}
		for lo := tn.Offset; lo < tn.Offset+tn.Size; lo += chunk {
			hi := min(lo+chunk, tn.Offset+tn.Size)
			e.opt = append(e.opt, optTask{ranges: []optRange{{lo, hi, tn.Kind.Matrix()}}, layer: -1})
		}
	}
}

// Close stops the workers and frees the kernels.
func (e *Engine) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if e.dw != nil {
		e.dw.close()
	}
	if e.pool != nil {
		e.pool.close()
	}
	var errs []error
	for _, k := range e.kern {
		if k != nil {
			errs = append(errs, k.Close())
		}
	}
	blas.SetThreads(0)
	return errors.Join(errs...)
}

// Params returns the fp32 master weights (live: do not modify during a step).
func (e *Engine) Params() *model.Params { return e.params }

// Model returns the resolved model config.
func (e *Engine) Model() model.Config { return e.mc }

// LossScale is the current dynamic loss scale.
func (e *Engine) LossScale() float64 { return e.lossScale }

// StepN is the number of steps taken (applied or skipped).
func (e *Engine) StepN() int { return e.stepN }

func (e *Engine) eval(id model.KernelID, in *ane.Surface) error {
	if err := e.kern[id].Eval(e.evalIn(in), e.out[id:id+1]); err != nil {
		return fmt.Errorf("engine: eval %v: %w", id, err)
	}
	return nil
}

// Step runs one optimizer update: forward and backward over Accum windows
// (x and y hold Accum·Seq tokens, y the targets), then, unless the gradient
// overflowed, clipping, AdamW and restaging.
func (e *Engine) Step(x, y []int32) (StepStats, error) {
	if e.closed {
		return StepStats{}, errors.New("engine: closed")
	}
	s, v := e.mc.Seq, e.mc.Vocab
	if len(x) != e.cfg.Accum*s || len(y) != len(x) {
		return StepStats{}, fmt.Errorf("engine: step needs %d inputs and targets (Accum %d × Seq %d), got %d and %d",
			e.cfg.Accum*s, e.cfg.Accum, s, len(x), len(y))
	}
	for i := range x {
		if x[i] < 0 || int(x[i]) >= v || y[i] < 0 || int(y[i]) >= v {
			return StepStats{}, fmt.Errorf("engine: token %d or target %d at %d is outside the vocabulary of %d", x[i], y[i], i, v)
		}
	}
	t0 := time.Now()
	e.stats = StepStats{Step: e.stepN, LossScale: e.lossScale, Tokens: len(x)}
	e.dw.busy = 0
	var loss float64
	for w := range e.cfg.Accum {
		l, err := e.window(x[w*s:(w+1)*s], y[w*s:(w+1)*s])
		if err != nil {
			e.dw.wait()
			return StepStats{}, err
		}
		loss += l
	}
	e.stats.Phases.DWWait += e.dw.wait()
	e.stats.Loss = loss / float64(e.cfg.Accum)
	if err := e.update(); err != nil {
		return StepStats{}, err
	}
	e.stepN++
	e.finishStats(time.Since(t0))
	return e.stats, nil
}

// window runs the forward and backward of one window, accumulating the
// loss-scaled gradient, and returns its mean loss. The dW jobs it queues
// may still be running when it returns.
func (e *Engine) window(x, y []int32) (float64, error) {
	c, lay := e.mc, e.lay
	d, s, h, q, kv, v := c.Dim, c.Seq, c.Hidden, c.QDim(), c.KVDim(), c.Vocab
	eps := c.NormEps
	st := &e.stats.Phases
	// The previous window's dW jobs read the buffers this one overwrites.
	st.DWWait += e.dw.wait()

	// Embedding: column t of the stream is row x[t] of the table.
	emb := e.params.Embed()
	xs := e.xs
	for t, tok := range x {
		row := emb[int(tok)*d : int(tok)*d+d]
		for ch, val := range row {
			xs[ch*s+t] = val
		}
	}
	for l := range c.Layers {
		lb, w := &e.layers[l], e.params.Layer(l)
		ai, fi := e.ain[l], e.fin[l]
		t := time.Now()
		copy(lb.x, xs)
		rmsNorm(lb.xn, lb.rAttn, lb.x, w.AttnNorm, d, s, eps)
		t = lap(&st.Norms, t)
		if err := lock(false, ai); err != nil {
			return 0, err
		}
		lay.Attn.X.Write(ai, lb.xn)
		if err := unlock(false, ai); err != nil {
			return 0, err
		}
		t = lap(&st.Staging, t)
		if err := e.eval(model.AttnFwd, ai); err != nil {
			return 0, err
		}
		t = time.Now()
		o := e.out[model.AttnFwd]
		if err := lock(true, o, ai); err != nil {
			return 0, err
		}
		lay.AttnFwdOut.O.Read(o, e.tmpD)
		lay.AttnFwdOut.Attn.Read(o, lb.attn)
		model.CopyBlock(ai, lay.Attn.Q, o, lay.AttnFwdOut.Q)
		model.CopyBlock(ai, lay.Attn.K, o, lay.AttnFwdOut.K)
		model.CopyBlock(ai, lay.Attn.V, o, lay.AttnFwdOut.V)
		if err := unlock(true, o, ai); err != nil {
			return 0, err
		}
		for i := range lb.x2 {
			lb.x2[i] = lb.x[i] + e.tmpD[i]
		}
		t = lap(&st.Staging, t)
		rmsNorm(lb.xn2, lb.rFFN, lb.x2, w.FFNNorm, d, s, eps)
		t = lap(&st.Norms, t)
		if err := lock(false, fi); err != nil {
			return 0, err
		}
		lay.FFN.X.Write(fi, lb.xn2)
		if err := unlock(false, fi); err != nil {
			return 0, err
		}
		lap(&st.Staging, t)
		if err := e.eval(model.FFNFwd, fi); err != nil {
			return 0, err
		}
		t = time.Now()
		o = e.out[model.FFNFwd]
		if err := lock(true, o, fi); err != nil {
			return 0, err
		}
		lay.FFNFwdOut.F.Read(o, e.tmpD)
		lay.FFNFwdOut.G.Read(o, lb.g)
		model.CopyBlock(fi, lay.FFN.H1, o, lay.FFNFwdOut.H1)
		model.CopyBlock(fi, lay.FFN.H3, o, lay.FFNFwdOut.H3)
		if err := unlock(true, o, fi); err != nil {
			return 0, err
		}
		for i := range xs {
			xs[i] = lb.x2[i] + e.tmpD[i]
		}
		lap(&st.Staging, t)
	}

	// Final norm, classifier, cross-entropy: the worker is idle here, so the
	// sgemms may use every BLAS thread.
	t := time.Now()
	rmsNorm(e.xf, e.rf, xs, e.params.FinalNorm(), d, s, eps)
	t = lap(&st.Norms, t)
	blas.SetThreads(0)
	cls := e.params.Classifier()
	// logits [S, V] = xfᵀ·clsᵀ: rows per position, so the softmax is contiguous.
	blas.Sgemm(true, true, s, v, d, 1, e.xf, s, cls, d, 0, e.logits, v)
	// dlogits = (softmax − onehot)·scale/(S·Accum): the mean over the update's
	// tokens, times the loss scale so fp16 gradients stay above underflow.
	e.targets = y
	e.dlossScale = float32(e.lossScale / float64(s*e.cfg.Accum))
	e.phase = phaseCE
	e.pool.run(len(e.ceLoss))
	var loss float64
	for _, l := range e.ceLoss {
		loss += l
	}
	loss /= float64(s)
	// dxf [D, S] = clsᵀ·dlogitsᵀ.
	blas.Sgemm(true, true, d, s, v, 1, cls, d, e.logits, v, 0, e.tmpD, s)
	blas.SetThreads(1)
	// dcls [V, D] += dlogitsᵀ·xfᵀ, on the worker.
	gcls := model.Slice(c, e.grad, model.Classifier, -1)
	if c.Tied {
		gcls = model.Slice(c, e.grad, model.Embed, -1)
	}
	e.dw.submit(dwJob{transA: true, transB: true, m: v, n: d, k: s, alpha: 1, a: e.logits, lda: v, b: e.xf, ldb: s, c: gcls, ldc: d})
	t = lap(&st.Classifier, t)
	for i := range e.dx {
		e.dx[i] = 0
	}
	rmsNormBackward(e.dx, model.Slice(c, e.grad, model.FinalNorm, -1), e.dot, xs, e.params.FinalNorm(), e.rf, e.tmpD, d, s)
	lap(&st.Norms, t)

	// Backward, layer by layer in reverse. e.dx is ∂L/∂(stream) × scale.
	for l := c.Layers - 1; l >= 0; l-- {
		lb, w, gw := &e.layers[l], e.params.Layer(l), model.Layer(c, e.grad, l)
		ai, fi := e.ain[l], e.fin[l]
		t := time.Now()
		copy(lb.df, e.dx)
		if err := lock(false, fi); err != nil {
			return 0, err
		}
		lay.FFN.DF.Write(fi, lb.df)
		if err := unlock(false, fi); err != nil {
			return 0, err
		}
		lap(&st.Staging, t)
		if err := e.eval(model.FFNBwd, fi); err != nil {
			return 0, err
		}
		t = time.Now()
		o := e.out[model.FFNBwd]
		if err := lock(true, o); err != nil {
			return 0, err
		}
		lay.FFNBwdOut.DX.Read(o, e.tmpD)
		lay.FFNBwdOut.DH1.Read(o, lb.dh1)
		lay.FFNBwdOut.DH3.Read(o, lb.dh3)
		if err := unlock(true, o); err != nil {
			return 0, err
		}
		t = lap(&st.Staging, t)
		e.dw.outer(gw.W1, lb.dh1, h, lb.xn2, d, s)
		e.dw.outer(gw.W3, lb.dh3, h, lb.xn2, d, s)
		e.dw.outer(gw.W2, lb.df, d, lb.g, h, s)
		// dx2 = dx + RMSNormBackward(ffn dx): accumulated into e.dx.
		rmsNormBackward(e.dx, gw.FFNNorm, e.dot, lb.x2, w.FFNNorm, lb.rFFN, e.tmpD, d, s)
		t = lap(&st.Norms, t)
		copy(lb.do, e.dx)
		if err := lock(false, ai); err != nil {
			return 0, err
		}
		lay.Attn.DO.Write(ai, lb.do)
		if err := unlock(false, ai); err != nil {
			return 0, err
		}
		lap(&st.Staging, t)
		if err := e.eval(model.AttnBwd, ai); err != nil {
			return 0, err
		}
		t = time.Now()
		o = e.out[model.AttnBwd]
		if err := lock(true, o); err != nil {
			return 0, err
		}
		lay.AttnBwdOut.DX.Read(o, e.tmpD)
		lay.AttnBwdOut.DQ.Read(o, lb.dq)
		lay.AttnBwdOut.DK.Read(o, lb.dk)
		lay.AttnBwdOut.DV.Read(o, lb.dv)
		if err := unlock(true, o); err != nil {
			return 0, err
		}
		t = lap(&st.Staging, t)
		e.dw.outer(gw.Wo, lb.do, d, lb.attn, q, s)
		e.dw.outer(gw.Wq, lb.dq, q, lb.xn, d, s)
		e.dw.outer(gw.Wk, lb.dk, kv, lb.xn, d, s)
		e.dw.outer(gw.Wv, lb.dv, kv, lb.xn, d, s)
		rmsNormBackward(e.dx, gw.AttnNorm, e.dot, lb.x, w.AttnNorm, lb.rAttn, e.tmpD, d, s)
		lap(&st.Norms, t)
	}
	// The embedding's lookup gradient goes through the worker too: with a
	// tied classifier it adds into the same rows as the classifier's dW, and
	// the worker's order makes that race-free.
	e.dw.submit(dwJob{alpha: 1, a: e.dx, c: model.Slice(c, e.grad, model.Embed, -1), n: d, tokens: x})
	return loss, nil
}

func lap(acc *time.Duration, t time.Time) time.Time {
	now := time.Now()
	*acc += now.Sub(t)
	return now
}

// update unscales, checks, clips and applies AdamW, fused with restaging
// each layer's surfaces, or skips the update on an overflowed gradient.
func (e *Engine) update() error {
	t0 := time.Now()
	defer func() { e.stats.Phases.Optimizer += time.Since(t0) }()
	e.phase = phaseNorm
	e.pool.run(len(e.opt))
	var ss float64
	for _, p := range e.part {
		ss += p
	}
	norm := math.Sqrt(ss) / e.lossScale
	e.stats.LR = e.cfg.LRAt(e.stepN)
	e.stats.GradNorm = norm
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		// fp16 overflowed somewhere below the classifier: this update's
		// gradient is garbage. Halve the scale, drop it, keep the weights.
		e.stats.Skipped = true
		e.lossScale = max(1, e.lossScale/2)
		e.clean = 0
		e.phase = phaseZero
		e.pool.run(len(e.opt))
		return nil
	}
	gs := 1 / e.lossScale
	if e.cfg.Clip > 0 && norm > e.cfg.Clip {
		gs *= e.cfg.Clip / norm
	}
	e.adam++
	e.lr, e.gscale = float32(e.stats.LR), float32(gs)
	e.bc1 = float32(1 - math.Pow(e.cfg.Beta1, float64(e.adam)))
	e.bc2 = float32(1 - math.Pow(e.cfg.Beta2, float64(e.adam)))
	e.phase = phaseUpdate
	e.pool.run(len(e.opt))
	for _, err := range e.optErr {
		if err != nil {
			return err
		}
	}
	e.clean++
	if e.clean >= e.cfg.ScaleWindow && e.lossScale < MaxLossScale {
		e.lossScale *= 2
		e.clean = 0
	}
	return nil
}

// task is the pool's dispatch: cross-entropy rows, or one optimizer task of
// the current phase.
func (e *Engine) task(i, worker int) {
	switch e.phase {
	case phaseCE:
		s := e.mc.Seq
		lo, hi := i*ceChunk, min((i+1)*ceChunk, s)
		e.ceLoss[i] = crossEntropyRows(e.logits, e.targets, e.mc.Vocab, lo, hi, e.dlossScale)
	case phaseNorm:
		var acc float64
		for _, r := range e.opt[i].ranges {
			var a32 float32
			for j, g := range e.grad[r.lo:r.hi] {
				a32 += g * g
				if j&1023 == 1023 { // flush to float64 so long sums keep precision
					acc += float64(a32)
					a32 = 0
				}
			}
			acc += float64(a32)
		}
		e.part[i] = acc
	case phaseZero:
		for _, r := range e.opt[i].ranges {
			clear(e.grad[r.lo:r.hi])
		}
	case phaseUpdate:
		e.adamw(&e.opt[i])
		if l := e.opt[i].layer; l >= 0 {
			e.optErr[i] = e.stageLayer(l, e.scratch[worker])
		}
	}
}

// adamw is torch.optim.AdamW on one task's ranges: decoupled decay
// w ← w·(1 − lr·wd) on matrices, then w ← w − lr·m̂/(√v̂ + ε); the gradient
// is unscaled and clipped on the fly and zeroed for the next update.
func (e *Engine) adamw(t *optTask) {
	b1, b2 := float32(e.cfg.Beta1), float32(e.cfg.Beta2)
	lr, gs, eps := e.lr, e.gscale, float32(e.cfg.Eps)
	ib1, ib2 := 1/e.bc1, 1/e.bc2
	decay := 1 - lr*float32(e.cfg.WeightDecay)
	w, gr, m, v := e.params.Data, e.grad, e.m, e.v
	for _, r := range t.ranges {
		dk := float32(1)
		if r.decay {
			dk = decay
		}
		for i := r.lo; i < r.hi; i++ {
			g := gr[i] * gs
			gr[i] = 0
			mi := b1*m[i] + (1-b1)*g
			vi := b2*v[i] + (1-b2)*g*g
			m[i], v[i] = mi, vi
			w[i] = w[i]*dk - lr*(mi*ib1)/(float32(math.Sqrt(float64(vi*ib2)))+eps)
		}
	}
}

// evalIn wraps the input surface in a slice without allocating.
func (e *Engine) evalIn(in *ane.Surface) []*ane.Surface {
	e.inArg[0] = in
	return e.inArg[:]
}

// lock makes surfaces accessible to the CPU (device memory on the ANE; a
// no-op for the emulator's Go memory). Outputs are locked read-only, inputs
// for writing; ro applies to the first surface only.
func lock(ro bool, out *ane.Surface, more ...*ane.Surface) error {
	if err := out.Lock(ro); err != nil {
		return fmt.Errorf("engine: lock surface: %w", err)
	}
	for _, s := range more {
		if err := s.Lock(false); err != nil {
			return fmt.Errorf("engine: lock surface: %w", err)
		}
	}
	return nil
}

func unlock(ro bool, out *ane.Surface, more ...*ane.Surface) error {
	err := out.Unlock(ro)
	for _, s := range more {
		err = errors.Join(err, s.Unlock(false))
	}
	if err != nil {
		return fmt.Errorf("engine: unlock surface: %w", err)
	}
	return nil
}

// stageLayer writes layer l's updated weights into its two surfaces.
func (e *Engine) stageLayer(l int, scratch []float32) error {
	if err := lock(false, e.ain[l], e.fin[l]); err != nil {
		return err
	}
	e.lay.StageAttnWeights(e.ain[l], e.params.Layer(l), scratch)
	e.lay.StageFFNWeights(e.fin[l], e.params.Layer(l), scratch)
	return unlock(false, e.ain[l], e.fin[l])
}

// restage writes every layer's weights into its surfaces.
func (e *Engine) restage() error {
	for l := range e.mc.Layers {
		if err := e.stageLayer(l, e.scratch[0]); err != nil {
			return err
		}
	}
	return nil
}
