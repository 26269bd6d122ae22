// Package engine is anetop's training loop: llama2.c's Llama trained with its
// layers' forward and backward as the four MIL kernels of package model on a
// device (the ANE or the ane/sim emulator), and everything else on the CPU in
// float32, overlapped with the device.
//
// # A step, top to bottom
//
// New compiles the four kernels once — one kernel serves every layer, since
// the weights travel in its input — and allocates every buffer: per layer an
// attention surface and an FFN surface (model.Layout.Attn and .FFN, each
// shared by its sublayer's forward and backward kernel), one output surface
// per kernel, the fp32 activations the backward needs, the flat gradient and
// Adam moments. It stages the initial weights. Step(x, y) is then one
// optimizer update over Config.Accum windows of Seq tokens, each window:
//
//  1. Embedding: column t of the residual stream x [Dim, Seq] (channel-first,
//     as the device) is row x[t] of the table.
//  2. Per layer: RMSNorm on the CPU → attention surface's X block; attn_fwd;
//     read o and attn (kept for dWo); copy the q, k, v taps into the same
//     surface in fp16 (model.CopyBlock, no conversion); x2 = x + o in fp32.
//     RMSNorm → FFN surface; ffn_fwd; read f and g (for dW2); copy the h1,
//     h3 taps; x = x2 + f. The residual stream never leaves fp32.
//  3. Final RMSNorm, logits [Seq, Vocab] = xfᵀ·clsᵀ (one sgemm, positions as
//     rows so the softmax runs along contiguous memory), cross-entropy over
//     the full vocabulary (max-subtracted, a float32 exponential accurate to
//     ~1 ulp, eight at a time with AVX2, float64 sums, parallel over
//     positions) turned in place into dlogits = (softmax − onehot)·scale/N,
//     N = Seq·Accum and scale the dynamic loss scale; dxf = clsᵀ·dlogits.
//     The classifier's dW is queued to the dW worker. With
//     Config.CompactVocab the classifier is the scored rows only, gathered
//     from the (just updated) weights each window, so logits, softmax and
//     dxf cost k/Vocab of the full ones and the loss is the cross-entropy
//     over those k ids; the dW job accumulates into a gathered copy of
//     their gradient rows and scatters it back, leaving the other rows'
//     gradient untouched (a tied embedding's lookup gradient still reaches
//     every input row). Validation (Evaluator) and Generate always use the
//     full vocabulary: the validation loss is the true loss.
//  4. Backward, layers in reverse, the stream gradient dx (× scale) in fp32:
//     df = dx → FFN surface; ffn_bwd; read dx, dh1, dh3; queue dW1, dW3, dW2;
//     RMSNorm backward adds into dx. do = dx → attention surface; attn_bwd
//     (RoPE's inverse is inside the kernel); read dx, dq, dk, dv; queue dWo,
//     dWq, dWk, dWv; RMSNorm backward adds into dx.
//  5. The embedding's lookup gradient is queued behind the dW jobs (with a
//     tied classifier both write the embedding's gradient; the worker's
//     order keeps that race-free).
//
// and after the windows, the update:
//
//  6. Wait for the dW worker — the first point where the gradients are
//     needed. One parallel pass computes Σg² per task; an inf or NaN (fp16
//     overflowed in a kernel) halves the loss scale, zeroes the gradient and
//     skips the update, keeping weights and moments; otherwise the global
//     norm (of the unscaled gradient) sets the clip factor, and the update
//     is decided: its learning rate, clip factor and bias corrections are
//     fixed, and Step returns.
//  7. The update itself — per element, unscale and clip the gradient, zero
//     it, AdamW (torch.optim.AdamW: β 0.9/0.95, ε 1e-8, decoupled weight
//     decay on matrices only — model.Kind.Matrix, the embedding included,
//     norm gains excluded), and per layer restage its two surfaces in fp16
//     — runs at the start of the next Step, overlapped with its forward
//     (see Overlap). Whatever reads the weights from outside (Params,
//     State, Generate) applies a pending update first, so callers never see
//     the difference. The learning rate warms up linearly over Warmup
//     updates, then follows a cosine to MinLR at Steps (Config.LRAt). After
//     ScaleWindow clean updates the loss scale doubles (up to MaxLossScale).
//
// # Overlap
//
// The dW sgemms (dW += dy·xᵀ, [out, in] as llama2.c stores weights) run on
// a serial worker goroutine while the main goroutine drives the device
// through the next backward kernels. Each layer keeps its own backward
// buffers, so the worker may lag without copies. The wait sits at the start
// of the next window (its forward overwrites the buffers the jobs read) and
// before the optimizer — never inside the backward. While both run, BLAS is
// limited to one thread (blas.SetThreads(1)): the emulator's matmuls are
// sgemms too, and on two cores two single-threaded callers beat two callers
// sharing one thread pool; the classifier, which runs while the worker is
// idle, switches back to all threads for its two sgemms. StepStats.DWTime
// is the worker's gradient time and DWHidden the part of it the main
// goroutine did not wait for.
//
// The forward has the opposite problem: the device uses one core and the
// worker is idle. So the previous update runs there, split in chunks: one
// per layer (AdamW on its tensors, then its surfaces restaged), in the
// order the forward needs them, then pieces of ~64k values of the other
// tensors (embedding, final norm, an untied classifier). Step marks the
// embedding rows its windows look up, hands the chunks to the worker,
// updates those rows itself and looks them up. Before layer l the forward
// needs chunk l done, and before the final norm all of them; a chunk the
// worker has not taken yet the main goroutine takes and runs itself
// rather than wait, so a slow worker costs no more than the old parallel
// pass. Each chunk is taken once (compare and swap) and every element goes
// through the same adamwRange whoever runs it, so the weights are bit for
// bit those of an update applied at once (TestOverlappedUpdateExact), and
// resuming from a checkpoint stays exact. The forward's sgemms stay on one
// BLAS thread even once the worker is idle: OpenBLAS's results depend on
// its thread count, and a count that followed the worker's timing would
// make runs irreproducible. The main goroutine's share (rows, chunks it
// took, waits) counts as Phases.Optimizer; StepStats.OptimizerOverlap is
// the worker's.
//
// # Timeline
//
// Config.Tracer receives every kernel evaluation, CPU phase segment, dW
// job, the worker's AdamW (a span per layer and one for the rest) and each
// step as a Span on a Track (step, cpu, device, dW worker);
// internal/trace writes them as a Chrome/Perfetto trace file. With no
// tracer, the only cost is a nil check per segment.
//
// # Events and commands
//
// Step returns StepStats: loss, lr, gradient norm, loss scale, tokens/s,
// per-kernel evaluations, time and FLOPs, CPU phases (staging, classifier,
// norms, dW wait, optimizer), dW time and the part hidden, device FLOP/s and
// utilisation = device FLOPs ÷ (device time × Device.PeakFLOPS()), labelled
// Emulated on the emulator (whose peak is this CPU's sgemm peak), and the
// compile budget. Runner.Run loops over Steps, publishing StepEvent,
// SampleEvent, CheckpointEvent, WarningEvent, ErrorEvent and StateEvent on a
// Bus, which never blocks: it keeps the latest step and a bounded history,
// and subscribers' channels drop events when full. Runner.Send queues pause,
// resume, sample, checkpoint, restart and stop.
//
// # Allocation
//
// The engine's own step code allocates nothing in steady state (buffers,
// job values over channels, persistent worker goroutines). What a step
// still allocates comes from below it: the emulator's kernel evaluation and
// the BLAS backends (purego's foreign calls, gonum's parallel sgemm).
package engine
