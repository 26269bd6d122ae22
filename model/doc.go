// Package model is what anetop trains: llama2.c's Llama (RMSNorm ε 1e-5, RoPE
// θ 10000 on adjacent pairs, SwiGLU, no biases, plain residuals, classifier
// tied to the embedding by default), its configs and presets, its fp32
// parameter layout and initialisation, FLOP accounting, and the four MIL
// kernels that run its layers forward and backward on the device. The
// float64 reference the kernels are checked against is model/ref.
//
// # Parameters
//
// The fp32 master weights are one flat buffer in llama2.c's legacy file order
// (Config.Tensors: the embedding, all layers' attention norms, all wq, …, all
// w3, the final norm, the untied classifier), every matrix [out, in]
// row-major as PyTorch's nn.Linear, named as llama2.c's model.py names them
// (Tensor.HFName gives Hugging Face's). A model.bin is therefore read and
// written with one copy (package checkpoint). Gradients and Adam moments use
// the same layout, so the optimizer is one pass over flat slices.
// Params.Init draws every matrix from N(0, 0.02²) and wo, w2 from
// N(0, (0.02/√(2L))²), norm gains 1, from a seeded PCG.
//
// # The dynamic pipeline
//
// Weights travel in each kernel's single fp16 input, next to the activations
// along the spatial axis (ane-anchor §4), so the four kernels compile once and
// serve every layer and every step. A layer owns two input surfaces, the
// attention surface and the FFN surface (Layout.Attn, Layout.FFN), each
// shared by that sublayer's forward and backward kernel: the weights are
// staged once per optimizer update, and one fp16 copy serves both
// directions. A weight W [out, in] is one block read two ways: W·x for the
// forward and Wᵀ·dy for the backward are the same matmul with transpose_x
// flipped. Each block is stored with its longer side along the channels (raw
// when out ≥ in, else transposed; Block.Transposed), so a surface's width
// grows with min(Dim, Hidden) and min(Dim, QDim), never with Hidden; blocks
// shorter than the surface share column strips (k above v, wk above wv under
// Qwen3's GQA; the Dim-row activations of the Hidden-row FFN surface), which
// keeps the surfaces 94–100% dense.
//
// Surfaces are [1, C, 1, W] fp16; rows are channels, columns the sequence
// (or a weight's second axis). For stories110m (D 768, F 2048, S 256, MHA):
//
//	attention surface [1, 768, 1, 4352]  (C = max(D, Q, K))
//	  cols    0– 256  x = RMSNorm(x)      attn_fwd   cols 1280–2048  wq [Q,D]
//	  cols  256– 512  do = ∂L/∂o          attn_bwd   cols 2048–2816  wk [K,D]
//	  cols  512– 768  q  (RoPE'd tap)     attn_bwd   cols 2816–3584  wv [K,D]
//	  cols  768–1024  k  (RoPE'd tap)     attn_bwd   cols 3584–4352  wo [D,Q]
//	  cols 1024–1280  v  (tap)            attn_bwd
//	FFN surface [1, 2048, 1, 3072]  (C = max(D, F))
//	  cols 0–256, rows    0– 768  x = RMSNorm(x2)  ffn_fwd   cols  768–1536  w1 [F,D]
//	  cols 0–256, rows  768–1536  df = ∂L/∂f       ffn_bwd   cols 1536–2304  w2ᵀ [F,D]
//	  cols 256–512                h1 (tap)         ffn_bwd   cols 2304–3072  w3 [F,D]
//	  cols 512–768                h3 (tap)         ffn_bwd
//
// and for qwen3-0.6b-shape (D 1024, Q 2048, K 1024) the attention surface is
// [1, 2048, 1, 3840] with x over do, k over v and wk over wv stacked, wq raw
// [2048, 1024] and woᵀ [2048, 1024]. Layout exposes every block (row, column,
// size, orientation); nothing outside this package needs an offset of its
// own.
//
// The kernels (D = Dim, F = Hidden, Q = QDim, K = KVDim, S = Seq, h = Heads,
// d = HeadDim; outputs are channel-concatenated [1, rows, 1, S]):
//
//	kernel    reads (its layer's surface)  computes                                     output taps (rows)
//	attn_fwd  x, wq, wk, wv, wo            q,k,v = W·x; RoPE(q), RoPE(k); per head      o [D] | attn [Q] | q [Q] | k [K] | v [K]
//	                                       P = softmax(q·kᵀ/√d + mask); attn = P·v;
//	                                       o = wo·attn
//	ffn_fwd   x, w1, w2, w3                h1 = w1·x, h3 = w3·x; g = silu(h1)·h3;      f [D] | h1 [F] | h3 [F] | g [F]
//	                                       f = w2·g
//	ffn_bwd   df, h1, h3, w1, w2, w3       dg = w2ᵀ·df; dh3 = dg·silu(h1);             dx [D] | dh1 [F] | dh3 [F]
//	                                       dh1 = dg·h3·σ(h1)(1 + h1(1 − σ(h1)));
//	                                       dx = w1ᵀ·dh1 + w3ᵀ·dh3
//	attn_bwd  do, q, k, v, wq, wk, wv, wo  dattn = woᵀ·do; P recomputed from q, k;     dx [D] | dq [Q] | dk [K] | dv [K]
//	                                       dv = Pᵀ·dA; dP = dA·vᵀ;
//	                                       dS = P⊙(dP − rowsum(P⊙dP)); dq = dS·k/√d;
//	                                       dk = dSᵀ·q/√d; inverse RoPE on dq, dk;
//	                                       dx = wqᵀ·dq + wkᵀ·dk + wvᵀ·dv
//
// Shapes, input → output:
//
//	          stories15m                 stories110m                 qwen3-0.6b-shape
//	attn_fwd  [288, 2432] → [1440, 256]  [768, 4352] → [3840, 256]   [2048, 3840] → [7168, 256]
//	ffn_fwd   [768, 1632] → [2592, 256]  [2048, 3072] → [6912, 256]  [3072, 3840] → [10240, 256]
//	ffn_bwd   [768, 1632] → [1824, 256]  [2048, 3072] → [4864, 256]  [3072, 3840] → [7168, 256]
//	attn_bwd  [288, 2432] → [1152, 256]  [768, 4352] → [3072, 256]   [2048, 3840] → [5120, 256]
//
// (each [C, W] is the tensor [1, C, 1, W]).
//
// Per layer and step the engine: writes x into the attention surface, runs
// attn_fwd, reads o (x2 = x + o on the CPU) and attn (for dWo), copies the
// q, k, v taps into the same surface (CopyBlock: fp16 rows, no conversion);
// writes RMSNorm(x2) into the FFN surface, runs ffn_fwd, reads f and g,
// copies h1, h3 in. Backward, layer by layer in reverse: writes df into the
// FFN surface, runs ffn_bwd, reads dx, dh1, dh3 (dW1 = dh1·xᵀ, dW3 = dh3·xᵀ,
// dW2 = df·gᵀ on the CPU); RMSNorm backward gives do, written into the
// attention surface; attn_bwd gives dx, dq, dk, dv (dWq = dq·xᵀ, …,
// dWo = do·attnᵀ).
//
// # Decisions
//
//   - RMSNorm stays on the CPU: the reference found RMSNorm plus matmuls in
//     one dynamic kernel fell off the ANE (ane-anchor §8.8), and its cost is
//     O(D·S) against the kernels' O(D²·S).
//   - The residual adds stay on the CPU too: the residual stream keeps fp32
//     precision (a fused x + f would round the stream to fp16 every
//     sublayer), and a fused residual would need x staged into the input
//     (D·S conversions) to save one D·S read — no saving at all.
//   - The attention is explicit (matmul, + mask, softmax, matmul; the mask a
//     [1, 1, S, S] fp16 constant of 0 and −65504, MaskValue), never SDPA,
//     whose mask the hardware ignores (§8.1). The 1/√d scale is applied to
//     the queries (Q·S products, before the scores can overflow) rather than
//     to the scores (h·S²).
//   - GQA without tiling: the queries of a key/value group are stacked along
//     the rows ([1, K/d, Group·S, d]), so one batched matmul against the
//     group's keys gives every head its scores, query head h reading
//     key/value head h/Group as llama2.c and Hugging Face do. The backward's
//     dk and dv contract over the stacked rows, which sums the group's heads.
//     (The reference tiles k and v with concat, mapping head h to h mod
//     KVHeads in MIL but h/Group on the CPU — §4.8; not copied.)
//   - RoPE runs on the channel-first projections: viewed as
//     [1, heads, d/2, 2·S], row (head, j) holds the pair's even channel then
//     its odd one, so the rotation is four multiplies, an add and a subtract
//     against [1, 1, d/2, S] cos and sin tables (computed in float64, rounded
//     to fp16 once), and the inverse rotation in attn_bwd hands the CPU
//     gradients of the unrotated projections.
//   - attn_bwd recomputes P (2·h·S²·d matmul FLOPs and a softmax) instead of
//     tapping it from attn_fwd: an h·S² tap per layer would cost more host
//     traffic and memory than the device time it saves.
//   - Every intermediate the CPU needs comes out of a kernel; the CPU
//     recomputes nothing.
//   - Limits: Seq a multiple of SeqAlign (32); every non-channel axis of
//     every kernel tensor at most MaxAxis (16384), checked by Validate: the
//     surfaces' widths (about 5·S + 2·min(D, Q) + 2·min(D, K) and
//     4·S + 3·min(D, F)), D, F, Q, K and Group·S. Long dimensions sit on
//     the channel axis, which the cap exempts, so stories110m's widest input
//     is 4352 and Qwen3-0.6B's 3840; a width past the cap (Dim above ~3800)
//     is refused rather than tiled.
//
// # FLOPs
//
// Layout.KernelFLOPs counts a kernel as the emulator counts it from the
// program (a test checks they are equal): matmul 2·M·N·K, softmax 5 per
// element, reductions 1 per input element, other elementwise ops 1 per
// output element. Per evaluation:
//
//	attn_fwd  2·S·D·(2Q + 2K) + 4·h·S²·d   + 4·Q·S + 3·K·S + 6·h·S²
//	ffn_fwd   6·D·F·S                      + 3·F·S
//	ffn_bwd   6·D·F·S                      + 9·F·S + D·S
//	attn_bwd  2·S·D·(2Q + 2K) + 10·h·S²·d  + 5·Q·S + 3·K·S + 10·h·S² + 2·D·S
//
// Layout.FLOPs adds up a step (L layers, V vocabulary):
//
//	device        L · Σ kernels
//	classifier    3 · 2·V·D·S      logits, ∂/∂x_final, ∂/∂classifier (CPU)
//	cross-entropy 6·V·S            (CPU)
//	weight grads  L · 2·S·(2·D·Q + 2·D·K + 3·D·F)   the dW sgemms (CPU)
//	norms         (2L+1) · (14·D·S + 6·S)           forward and backward (CPU)
//	residual      4·L·D·S + D·S                     stream adds, embedding gradient (CPU)
//	optimizer     13 per parameter per update       AdamW (CPU)
//	model         3 · (L · (2·S·(2·D·Q + 2·D·K + 3·D·F) + 4·h·S²·d) + 2·V·D·S)
//
// "model" is the conventional training cost (three times the forward
// matmuls), the numerator of model-FLOPs utilisation; it excludes the
// recomputed probabilities and elementwise work. For stories110m a step is
// 95.7 GFLOP on the device, 81.4 on the CPU (classifier 37.8, dW 43.5),
// model 175.5; for stories15m 7.8, 17.3 and 24.7.
package model
