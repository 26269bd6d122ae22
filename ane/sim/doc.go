// Package sim is anetop's CPU emulator of the Apple Neural Engine: the default
// device wherever there is no ANE, and the ground truth of every test. It
// compiles the very MIL text the ANE compiler would get, refuses what the
// hardware is known to refuse, and computes what the hardware computes, fp16
// storage and quirks included. Importing it registers the device "sim".
//
// # Compiling
//
// Device.Compile prints the program with mil.Print and parses that text back
// with mil.Parse, so what runs is byte for byte what the ANE would be given;
// CompileText takes text directly (the linter, anetop mil check). The parsed
// program is checked against the hardware rules below, type-checked with
// (*mil.Program).Check, and planned: every op becomes a closure with its
// shapes, strides, broadcast maps and buffers fixed, over an arena allocated
// once per kernel in which buffers whose lifetimes do not overlap share
// memory. Reshape, transpose, slices, split, expand_dims and squeeze are
// views (no copy) whenever the layout allows, and a matmul reads strided
// operands directly through sgemm's transpose flags; a matmul whose result is
// only transposed writes it transposed, so the dynamic-weight linear layer
// (slice, reshape, transpose, matmul, transpose, reshape) runs as one sgemm
// between the fp16 conversions. Compile errors are *CompileError values that
// wrap ane.ErrInvalidProgram or ane.ErrUnsupported and name the kernel, the
// op and its line:col.
//
// # Hardware rules
//
// Each rule cites the research notes (ane-anchor.md, mil-spec.md in the
// project's shared research):
//
//   - One input and one output per kernel, unless ane.Options.MultiIO: the
//     reference reports error 0x1d for multi-input requests and silently zero
//     results unless input sizes ascend and output sizes descend (ane-anchor
//     §8.5), so anetop packs tensors into one input and one output.
//   - fp16 inputs and outputs only: fp32 I/O is reported to produce zeros and
//     cast is unsupported on M1/M2 (mil-spec §6.4, ane-anchor §8.10); cast
//     inside the kernel instead.
//   - Static shapes only: "?" dimensions are refused (mil-spec §6.2).
//   - MaxAxis = 16384 elements per tensor axis, a cap other projects report
//     (ane-anchor §8.20). The channel axis (axis 1) of rank-4 tensors and the
//     output-channel axis of conv weights are exempt: a classifier conv with
//     32000 output channels and a softmax over 32000 channels are known to run
//     (§8.7, §8.20), so the blanket cap would refuse working kernels.
//   - Conv input channels at most MaxConvInputChannels (= MaxAxis): 32000
//     input channels are rejected by the hardware while 32000 output channels
//     work (§8.7); the true threshold is unknown, the axis cap is the
//     documented guess.
//   - The function must be main and the only function (ane-anchor §3.1);
//     control flow (cond, while_loop) is refused (mil-spec §4.15); ops the
//     emulator does not implement are refused as unsupported.
//   - The compile budget: ane.DefaultBudget (100) compiles per process unless
//     ane.Options.Budget says otherwise (ane-anchor §1.7, §8.2); a compile past
//     it fails with ane.ErrBudgetExhausted. Failed compiles do not count.
//   - scaled_dot_product_attention IGNORES attn_mask, as the ANE does
//     (ane-anchor §8.1: no mask, inline, BLOBFILE and runtime masks were all
//     ignored). The mask is type-checked, then the op computes
//     softmax(Q·Kᵀ/√E)·V unmasked. Causal attention must be written as matmul,
//     add of a −65504 mask, softmax and matmul.
//   - The emulator's own bound: a kernel's arena (run-time buffers after
//     reuse plus constants, as float32) may not exceed MaxArenaBytes (1 GiB).
//
// # Numerics
//
//   - Every tensor between ops holds fp16 values: each op computes in float32
//     (or float64 for transcendental functions) and rounds its result once to
//     fp16, round to nearest even, with overflow to ±inf. Values are stored in
//     float32 slices holding fp16-representable numbers, which is bit-for-bit
//     fp16 storage and lets matmul and conv hand buffers straight to sgemm.
//     For +, −, ×, ÷ and sqrt this gives the correctly rounded fp16 result
//     (float32's 24 bits are ≥ 2·11+2, so double rounding is innocuous);
//     exp (also inside sigmoid, silu and softmax) uses a range-reduced series
//     accurate to 1e-9, far below the fp16 rounding.
//   - fp16 subnormals are kept (IEEE binary16), not flushed to zero; some
//     ANE kernels reportedly flush them (mil-spec §5), which is unconfirmed.
//   - fp32-declared intermediates are also rounded to fp16: the ANE computes in
//     fp16 whatever the declared dtype (mil-spec §5, §6.2, §6.3), so an fp32
//     tensor carries no more precision than an fp16 one.
//   - matmul, conv, reductions and softmax accumulate in fp32 (sgemm does) and
//     round once at the end. conv adds its bias before that rounding.
//     softmax keeps its exponentials and sum in fp32. The hardware's
//     accumulation width is undocumented; compare with tolerances.
//   - scaled_dot_product_attention rounds the scaled scores and the
//     probabilities to fp16 (tensors the device must hold) before the second
//     matmul.
//   - Constants are rounded to their declared dtype, then to fp16 when used
//     as data: rsqrt's default epsilon 1e-12 becomes 0, so rsqrt(0) = +inf.
//     Epsilons are added before the function, in float32.
//   - Integer and bool tensors (shapes, masks from greater and less, select
//     conditions, quantised data) are kept exact in float32 (bools as 0/1);
//     integer data beyond 2^24 is refused. cast to an integer truncates toward
//     zero and saturates (NaN becomes 0); quantize rounds half to even and
//     clips to the int8/uint8 range; real_div and pow on integers are refused.
//   - constexpr_affine_dequantize is evaluated at compile time in float64 and
//     rounded to the scale's dtype, then to fp16.
//
// # Evaluation
//
// Each Device runs its kernels on one worker goroutine, as the ANE serialises
// evaluations: Eval hands the job over and waits, so a caller's other
// goroutines (the dW sgemm worker) overlap with it as they do with the
// hardware. Surfaces are checked (count, shape, owner) and read and written
// through their row stride. A kernel's arena is allocated on its first
// evaluation and released by Close. Stats' Time is device time: the time the
// worker spends on the kernel, conversions included, not time queued behind
// other kernels. The emulator's PeakFLOPS is this CPU's sgemm peak, measured
// once per process on first use. Large elementwise ops and softmax are split
// across GOMAXPROCS goroutines (the caller and a persistent pool of helpers);
// matmul and conv use the BLAS's own threads. A steady-state evaluation
// allocates nothing in the emulator (scratch and reply channels are reused);
// only the BLAS may.
//
// The hardware rules are applied before mil's type checker, so an op the
// device cannot run is reported as unsupported (ane.ErrUnsupported) rather
// than as an unknown op of an invalid program.
//
// FLOPs are counted at compile time: matmul and conv 2·M·N·K (conv:
// 2·N·C_out·H_out·W_out·C_in/groups·k_h·k_w); scaled_dot_product_attention its
// two matmuls plus 5 per score; softmax 5 per element; reductions 1 per input
// element; elementwise ops (binary, unary, select, clip, quantize,
// dequantize) 1 per output element; data movement (reshape, transpose,
// slices, concat, split, cast) and constants 0.
package sim
