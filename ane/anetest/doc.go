// Package anetest is the device conformance suite: Run takes any ane.Device
// and proves, op by op, that it computes what the MIL says, refuses what it
// must refuse and counts its compile budget. CI runs it on the emulator; on a
// Mac it runs on the Neural Engine itself:
//
//	go test ./ane/anetest                # the emulator (ane/sim)
//	go test ./ane/anetest -device=ane    # the hardware, on macOS/arm64
//
// # What runs
//
// Every op the mil builder offers is compiled into small kernels on seeded
// random inputs, with shapes chosen for the edges of each op's definition
// (mil-spec §4): broadcasting, negative axes, interleaved concat, slice masks,
// every conv pad type, strides, dilations and groups, matmul transposes and
// batch broadcasting, quantisation ties and clipping, fp16 overflow to ±inf,
// and scaled_dot_product_attention, whose attn_mask the ANE ignores (the
// expected result is the unmasked attention). Every kernel has one fp16 input
// and one fp16 output, as the hardware requires: the operands travel side by
// side in a [1, 1, 1, S] input and are sliced apart inside the kernel, and the
// results are flattened and concatenated into a [1, 1, 1, M] output (S and M
// padded to 32 elements, the ANE's 64-byte rows). The suite also runs the
// dynamic-weight matmul of the training kernels, evaluates one kernel with
// many per-layer input surfaces, checks budget accounting, and checks the
// errors a device owes its users (errors.Is with ane's sentinels).
//
// # The reference and the tolerance rule
//
// The expected values come from a float64 interpreter in this package,
// written from mil-spec §4 independently of the emulator. Inputs are rounded
// to fp16, as they travel. Each op's result is rounded to its declared dtype,
// so overflow past 65504 becomes ±inf where the hardware's would, and each
// element carries an absolute error bound e, propagated through the chain:
//
//   - every fp16 result adds 2^-10·|v| + 2^-24: one ulp, half for the device's
//     rounding and half for the reference's rounding of a slightly different
//     exact value, plus the subnormal step;
//   - operand errors propagate through each op's slope: e_x + e_y for add and
//     sub, |x|·e_y + |y|·e_x + e_x·e_y for mul, the interval ends for unary
//     functions (exp, sigmoid, rsqrt, …), y_i·(e_i + Σ y_j·e_j) for softmax;
//   - sums (matmul, conv, reduce_sum/mean) of K products with absolute sum
//     Σ|a·b| add 2^-11·(2 + √K)·Σ|a·b| for rounding inside the accumulation;
//     softmax allows 2^-11·(4 + √n + |x_i − max|) relative for computing
//     exp(x − max) in fp16;
//   - shape ops, relu, clip, maximum/minimum and reduce_max are exact;
//   - a comparison whose operands are within their errors may go either way,
//     and select then allows either branch; quantize allows every integer
//     that rounding anywhere in x/scale ± error could give (none, when the
//     input is exact and the scale a power of two, so ties must round to
//     even).
//
// An output element passes when |got − ref| ≤ s·e with s the Tolerance
// option (default 1). NaN must meet NaN, ±inf must meet the same infinity
// exactly, and a device may overflow to inf only where ref + s·e reaches
// the fp16 maximum. The bound is first order; it is the same rule for every
// op and device, and it is tight enough that a wrong index, a missed pad or
// a skipped rounding fails by orders of magnitude.
//
// # Options and other devices
//
// Run's options are few: Tolerance widens every bound for a device with
// looser arithmetic, Skip names a subtest (or group) with a reason for a
// documented hardware difference, and WithOpen lets the suite open fresh
// devices of the same kind for the budget test (Options.Budget) and the
// multi-I/O test (Options.MultiIO). The suite makes about 80 compiles on the
// device it is given, inside the default per-process budget of 100
// (ane.DefaultBudget), which keeps a margin below the ~119 compiles after
// which the ANE compiler is observed to fail.
//
// The -device flag (default "sim") is registered by this package, so every
// test binary that links it accepts -device; OpenDevice opens the device the
// flag names.
package anetest
