package engine

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
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
	cfg         Config
	mc          model.Config
	lay         *model.Layout
	dev         ane.Device
	kern        [model.NumKernels]ane.Kernel
	st          staticState // the static pipeline's kernels (Config.Static)
	prevForeign int64       // the device's foreign-call count at the end of the last step
	out         [model.NumKernels]*ane.Surface
	ain         []*ane.Surface // per layer: attention surface (attn_fwd and attn_bwd input)
	fin         []*ane.Surface // per layer: FFN surface

	params  *model.Params
	grad    []float32 // loss-scaled gradient, accumulated over the update's windows
	m, v    []float32 // Adam moments
	scratch [][]float32

	layers         []layerBuf
	xs, xf, rf, dx []float32 // residual stream, final norm output, its r, stream gradient [D, S]
	tmpD, dot      []float32
	logits         []float32 // [S, V], turned into dlogits in place
	ceLoss         []float64
	targets        []int32 // the window's targets as rows of logits

	// Vocabulary compaction (Config.CompactVocab); vocab, slot, clsK,
	// gclsK and ctargets are nil without it.
	scored   int       // rows of logits: Vocab, or len(vocab)
	vocab    []int32   // the scored token ids, ascending (a copy)
	slot     []int32   // per token id: its row in vocab, or -1
	clsK     []float32 // [k, D] the scored classifier rows, gathered each window
	gclsK    []float32 // [k, D] the worker's gather–accumulate–scatter buffer
	ctargets []int32   // [S] the window's targets as rows of vocab

	dw     *dwWorker
	dwTk   int64  // ticket of the last gradient job queued
	tr     Tracer // Config.Tracer; nil: no spans
	pool   *pool
	opt    []optTask
	part   []float64 // per optimizer task: Σg²
	optErr []error   // per optimizer task: a surface lock failure

	// The update in flight (update.go): decided but not applied, or
	// being applied in chunks while the next step's forward runs.
	pending  bool           // decided, not yet launched or applied
	async    bool           // launched: chunks may still be running
	chunks   []updChunk     // the update's pieces: the layers first, in order
	chunkSt  []atomic.Int32 // per chunk: chunkFree, chunkTaken, chunkDone
	marked   []bool         // per vocabulary row: updated by launch for the lookup
	markList []int32        // the rows set in marked
	wscratch []float32      // staging scratch of the worker's chunks
	mscratch []float32      // staging scratch of the main goroutine's chunks

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
	e := &Engine{cfg: cfg, mc: mc, lay: lay, dev: cfg.Device, params: p, lossScale: cfg.LossScale, tr: cfg.Tracer}
	// The four kernels compile at once: on the ANE each compile is ~0.1 s
	// of which the printing, hashing and model-directory writing run off the
	// device's worker (so they overlap), and on the emulator all of it.
	// All four or none: a budget that cannot pay for them would fail some
	// of the compiles, each with the same advice to restart, which cannot
	// help. (A device that serves a kernel from its program cache charges
	// nothing for it; this asks for all four anyway, which only matters to
	// a second engine in one process, which anetop never makes.)
	if used, limit := e.dev.Budget(); limit-used < len(model.Kernels) {
		return nil, fmt.Errorf("engine: %w: the training step's %d kernels compile at start-up, and this process has %d of %d compiles left: raise the budget (--budget %d or more)",
			ane.ErrBudgetExhausted, len(model.Kernels), max(0, limit-used), limit, used+len(model.Kernels))
	}
	var errs [model.NumKernels]error
	var wg sync.WaitGroup
	for _, id := range model.Kernels {
		wg.Go(func() {
			prog, w, err := lay.Build(id)
			if err != nil {
				errs[id] = fmt.Errorf("engine: build %v: %w", id, err)
				return
			}
			if e.kern[id], err = e.dev.Compile(id.String(), prog, w); err != nil {
				errs[id] = fmt.Errorf("engine: %w", err) // the device's error names the kernel
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		e.Close()
		return nil, err
	}
	for _, id := range model.Kernels {
		if e.out[id], err = e.kern[id].NewSurface(ane.Output, 0); err != nil {
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
	e.scored = v
	if ids := cfg.CompactVocab; ids != nil {
		k := len(ids)
		e.scored = k
		e.vocab = append([]int32(nil), ids...)
		e.cfg.CompactVocab = e.vocab // the caller's slice may change
		e.slot = make([]int32, v)
		for i := range e.slot {
			e.slot[i] = -1
		}
		for i, id := range e.vocab {
			e.slot[id] = int32(i)
		}
		e.clsK, e.gclsK, e.ctargets = f(k*d), f(k*d), make([]int32, s)
	}
	e.logits = f(s * e.scored)
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
	e.buildChunks()
	e.marked = make([]bool, v)
	e.markList = make([]int32, 0, min(v, cfg.Accum*s))
	e.wscratch, e.mscratch = f(lay.ScratchSize()), f(lay.ScratchSize())
	e.dw = newDWWorker(e.tr, e.updateJob)
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
	e.st.stale = cfg.Static // compiled by the first Step
	if fc, ok := e.dev.(foreignCounter); ok {
		e.prevForeign = fc.ForeignCalls()
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
	errs := []error{e.closeStatic()}
	for _, k := range e.kern {
		if k != nil {
			errs = append(errs, k.Close())
		}
	}
	blas.SetThreads(0)
	return errors.Join(errs...)
}

// Params returns the fp32 master weights (live: do not modify during a
// step), first applying the last step's update if it is still in flight.
func (e *Engine) Params() *model.Params {
	e.settle() // an error stays in optErr and fails the next Step
	return e.params
}

// CompactVocab returns the token ids the training loss is over
// (Config.CompactVocab), or nil for the full vocabulary. A caller labelling
// the loss reads len of it against Model().Vocab; StepStats.ScoredVocab
// carries the count too.
func (e *Engine) CompactVocab() []int32 { return e.vocab }

// Model returns the resolved model config.
func (e *Engine) Model() model.Config { return e.mc }

// LossScale is the current dynamic loss scale.
func (e *Engine) LossScale() float64 { return e.lossScale }

// StepN is the number of steps taken (applied or skipped).
func (e *Engine) StepN() int { return e.stepN }

// eval runs kernel id for layer l on input surface in.
func (e *Engine) eval(id model.KernelID, l int, in *ane.Surface) error {
	t0 := time.Now()
	if err := e.kernel(id, l).Eval(e.evalIn(in), e.out[id:id+1]); err != nil {
		return fmt.Errorf("engine: eval %v: %w", id, err)
	}
	if e.tr != nil {
		e.tr.Span(Span{Track: TrackDevice, Name: kernelNames[id], Step: e.stepN, Layer: l, Start: t0, End: time.Now()})
	}
	return nil
}

// kernelNames are the kernels' span names, made once so that a span does
// not format one.
var kernelNames = func() (n [model.NumKernels]string) {
	for id := range n {
		n[id] = model.KernelID(id).String()
	}
	return n
}()

// waitDW waits for the gradient jobs queued so far, as CPU phase "dW wait"
// (no span when they are already done).
func (e *Engine) waitDW() {
	if e.dw.finished(e.dwTk) {
		return
	}
	t := time.Now()
	e.dw.waitFor(e.dwTk)
	e.lap(phDWWait, t, -1)
}

// Step runs one optimizer update: forward and backward over Accum windows
// (x and y hold Accum·Seq tokens, y the targets), then, unless the gradient
// overflowed, clipping and AdamW with restaging. The AdamW pass itself is
// applied during the next Step's forward, or when Params, State or
// Generate first read the weights (see update.go), which callers cannot
// tell apart from an update applied before Step returned.
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
		if e.slot != nil && e.slot[y[i]] < 0 {
			return StepStats{}, fmt.Errorf("engine: target %d at %d is not in the compacted vocabulary (%d of %d ids; Config.CompactVocab)", y[i], i, e.scored, v)
		}
	}
	if err := e.optError(); err != nil {
		return StepStats{}, err
	}
	if e.st.stale {
		if err := e.compileStatic(); err != nil {
			return StepStats{}, err
		}
	}
	t0 := time.Now()
	e.stats = StepStats{Step: e.stepN, LossScale: e.lossScale, Tokens: len(x), ScoredVocab: e.scored}
	e.dw.busy, e.dw.optBusy = 0, 0
	e.launch(x)
	var loss float64
	for w := range e.cfg.Accum {
		l, err := e.window(x[w*s:(w+1)*s], y[w*s:(w+1)*s])
		if err != nil {
			e.drain()
			return StepStats{}, err
		}
		loss += l
	}
	e.waitDW()
	e.stats.Loss = loss / float64(e.cfg.Accum)
	e.decide()
	if e.cfg.Static && e.pending {
		e.st.stale = true
	}
	end := time.Now()
	if e.tr != nil {
		e.tr.Span(Span{Track: TrackStep, Name: "step", Step: e.stepN, Layer: -1, Start: t0, End: end})
	}
	e.stepN++
	e.finishStats(end.Sub(t0))
	return e.stats, nil
}

// window runs the forward and backward of one window, accumulating the
// loss-scaled gradient, and returns its mean loss. The dW jobs it queues
// may still be running when it returns.
func (e *Engine) window(x, y []int32) (float64, error) {
	c, lay := e.mc, e.lay
	d, s, h, q, kv, v := c.Dim, c.Seq, c.Hidden, c.QDim(), c.KVDim(), c.Vocab
	eps := c.NormEps
	// The previous window's dW jobs read the buffers this one overwrites.
	e.waitDW()

	// Embedding: column t of the stream is row x[t] of the table (rows
	// launch already brought up to date).
	emb := e.params.Embed()
	xs := e.xs
	for t, tok := range x {
		row := emb[int(tok)*d : int(tok)*d+d]
		for ch, val := range row {
			xs[ch*s+t] = val
		}
	}
	for l := range c.Layers {
		if e.async {
			e.waitLayer(l) // its weights, norm gains and surfaces
		}
		lb, w := &e.layers[l], e.params.Layer(l)
		ai, fi := e.ain[l], e.fin[l]
		t := time.Now()
		copy(lb.x, xs)
		rmsNorm(lb.xn, lb.rAttn, lb.x, w.AttnNorm, d, s, eps)
		t = e.lap(phNorms, t, l)
		if err := lock(false, ai); err != nil {
			return 0, err
		}
		lay.Attn.X.Write(ai, lb.xn)
		if err := unlock(false, ai); err != nil {
			return 0, err
		}
		t = e.lap(phStaging, t, l)
		if err := e.eval(model.AttnFwd, l, ai); err != nil {
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
		t = e.lap(phStaging, t, l)
		rmsNorm(lb.xn2, lb.rFFN, lb.x2, w.FFNNorm, d, s, eps)
		t = e.lap(phNorms, t, l)
		if err := lock(false, fi); err != nil {
			return 0, err
		}
		lay.FFN.X.Write(fi, lb.xn2)
		if err := unlock(false, fi); err != nil {
			return 0, err
		}
		e.lap(phStaging, t, l)
		if err := e.eval(model.FFNFwd, l, fi); err != nil {
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
		e.lap(phStaging, t, l)
	}

	// Final norm, classifier, cross-entropy: once the update's last job is
	// done the worker is idle, so the sgemms may use every BLAS thread.
	if e.async {
		e.finishUpdate()
	}
	t := time.Now()
	rmsNorm(e.xf, e.rf, xs, e.params.FinalNorm(), d, s, eps)
	t = e.lap(phNorms, t, -1)
	blas.SetThreads(0)
	// Compacted, the classifier is the scored rows, gathered now (the
	// update is finished, so they are current) and v the number of them;
	// the targets become row numbers. From here to the dW job, the two
	// paths run the same code on the same shapes when every id is scored,
	// which is what makes them bit-identical.
	cls, tg := e.params.Classifier(), y
	if e.vocab != nil {
		cls, tg, v = e.clsK, e.ctargets, e.scored
		all := e.params.Classifier()
		for i, id := range e.vocab {
			copy(cls[i*d:i*d+d], all[int(id)*d:int(id)*d+d])
		}
		for i, id := range y {
			tg[i] = e.slot[id]
		}
		t = e.lapAs(phClassifier, "gather", t, -1)
	}
	// logits [S, V] = xfᵀ·clsᵀ: rows per position, so the softmax is contiguous.
	blas.Sgemm(true, true, s, v, d, 1, e.xf, s, cls, d, 0, e.logits, v)
	t = e.lapAs(phClassifier, "logits", t, -1)
	// dlogits = (softmax − onehot)·scale/(S·Accum): the mean over the update's
	// tokens, times the loss scale so fp16 gradients stay above underflow.
	e.targets = tg
	e.dlossScale = float32(e.lossScale / float64(s*e.cfg.Accum))
	e.phase = phaseCE
	e.pool.run(len(e.ceLoss))
	var loss float64
	for _, l := range e.ceLoss {
		loss += l
	}
	loss /= float64(s)
	t = e.lapAs(phClassifier, "cross-entropy", t, -1)
	// dxf [D, S] = clsᵀ·dlogitsᵀ.
	blas.Sgemm(true, true, d, s, v, 1, cls, d, e.logits, v, 0, e.tmpD, s)
	blas.SetThreads(1)
	// dcls [V, D] += dlogitsᵀ·xfᵀ, on the worker.
	gcls := model.Slice(c, e.grad, model.Classifier, -1)
	if c.Tied {
		gcls = model.Slice(c, e.grad, model.Embed, -1)
	}
	job := dwJob{name: "dWcls", layer: -1, step: e.stepN, transA: true, transB: true, m: v, n: d, k: s, alpha: 1, a: e.logits, lda: v, b: e.xf, ldb: s, c: gcls, ldc: d}
	if e.vocab != nil {
		// Only the scored rows get a gradient: the sgemm accumulates into
		// a gathered copy of them, scattered back (see jobRows).
		job.kind, job.c, job.rows, job.dst = jobRows, e.gclsK, e.vocab, gcls
	}
	e.dwTk = e.dw.submit(job)
	t = e.lapAs(phClassifier, "classifier backward", t, -1)
	for i := range e.dx {
		e.dx[i] = 0
	}
	rmsNormBackward(e.dx, model.Slice(c, e.grad, model.FinalNorm, -1), e.dot, xs, e.params.FinalNorm(), e.rf, e.tmpD, d, s)
	e.lap(phNorms, t, -1)

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
		e.lap(phStaging, t, l)
		if err := e.eval(model.FFNBwd, l, fi); err != nil {
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
		t = e.lap(phStaging, t, l)
		e.dwTk = e.dw.outer("dW1", l, e.stepN, gw.W1, lb.dh1, h, lb.xn2, d, s)
		e.dwTk = e.dw.outer("dW3", l, e.stepN, gw.W3, lb.dh3, h, lb.xn2, d, s)
		e.dwTk = e.dw.outer("dW2", l, e.stepN, gw.W2, lb.df, d, lb.g, h, s)
		// dx2 = dx + RMSNormBackward(ffn dx): accumulated into e.dx.
		rmsNormBackward(e.dx, gw.FFNNorm, e.dot, lb.x2, w.FFNNorm, lb.rFFN, e.tmpD, d, s)
		t = e.lap(phNorms, t, l)
		copy(lb.do, e.dx)
		if err := lock(false, ai); err != nil {
			return 0, err
		}
		lay.Attn.DO.Write(ai, lb.do)
		if err := unlock(false, ai); err != nil {
			return 0, err
		}
		e.lap(phStaging, t, l)
		if err := e.eval(model.AttnBwd, l, ai); err != nil {
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
		t = e.lap(phStaging, t, l)
		e.dwTk = e.dw.outer("dWo", l, e.stepN, gw.Wo, lb.do, d, lb.attn, q, s)
		e.dwTk = e.dw.outer("dWq", l, e.stepN, gw.Wq, lb.dq, q, lb.xn, d, s)
		e.dwTk = e.dw.outer("dWk", l, e.stepN, gw.Wk, lb.dk, kv, lb.xn, d, s)
		e.dwTk = e.dw.outer("dWv", l, e.stepN, gw.Wv, lb.dv, kv, lb.xn, d, s)
		rmsNormBackward(e.dx, gw.AttnNorm, e.dot, lb.x, w.AttnNorm, lb.rAttn, e.tmpD, d, s)
		e.lap(phNorms, t, l)
	}
	// The embedding's lookup gradient goes through the worker too: with a
	// tied classifier it adds into the same rows as the classifier's dW, and
	// the worker's order makes that race-free.
	e.dwTk = e.dw.submit(dwJob{kind: jobLookup, name: "dEmbed", layer: -1, step: e.stepN, alpha: 1, a: e.dx, c: model.Slice(c, e.grad, model.Embed, -1), n: d, tokens: x})
	return loss, nil
}

// task is the pool's dispatch: cross-entropy rows, or one optimizer task of
// the current phase.
func (e *Engine) task(i, worker int) {
	switch e.phase {
	case phaseCE:
		s := e.mc.Seq
		lo, hi := i*ceChunk, min((i+1)*ceChunk, s)
		e.ceLoss[i] = crossEntropyRows(e.logits, e.targets, e.scored, lo, hi, e.dlossScale)
	case phaseNorm:
		var acc float64
		for _, r := range e.opt[i].ranges {
			acc += sumSquares(e.grad[r.lo:r.hi])
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
