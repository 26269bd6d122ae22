package anetest

import (
	"math"

	"github.com/anetop/anetop/mil"
)

// vars is shorthand for a case's result list.
func vars(v ...*mil.Var) []*mil.Var { return v }

// causalMask is an additive [1, 1, n, n] fp16 mask: 0 on and below the
// diagonal, −65504 above, the finite stand-in for −∞ the ANE needs.
func causalMask(n int) []float32 {
	m := make([]float32, n*n)
	for i := range n {
		for j := i + 1; j < n; j++ {
			m[i*n+j] = -65504
		}
	}
	return m
}

// selectComparisons selects 1 or 0 by x[0] > x[1] and by x[0] < x[1].
func selectComparisons(k *kb, x []*mil.Var) []*mil.Var {
	one, zero := k.scalar(1), k.scalar(0)
	return vars(k.Select(k.id(), k.Greater(k.id(), x[0], x[1]), one, zero),
		k.Select(k.id(), k.Less(k.id(), x[0], x[1]), one, zero))
}

// opCases lists the op kernels. Each is small, seeded by its name, and
// shaped to exercise an edge of the op's definition (mil-spec §4).
func opCases() []opCase {
	return []opCase{
		// Elementwise binary ops with numpy broadcasting.
		{name: "binary/add_rank_broadcast", ins: []operand{uniform(-4, 4, 2, 3, 4), uniform(-4, 4, 3, 1)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Add(k.id(), x[0], x[1])) }},
		{name: "binary/sub_two_sided_broadcast", ins: []operand{uniform(-4, 4, 1, 4), uniform(-4, 4, 3, 1)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Sub(k.id(), x[0], x[1])) }},
		{name: "binary/mul_scalar_const", ins: []operand{uniform(-8, 8, 2, 5)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Mul(k.id(), x[0], k.scalar(1.7)), k.Mul(k.id(), k.scalar(-0.3), x[0]))
			}},
		{name: "binary/mul_cancellation", ins: []operand{uniform(-2, 2, 4, 8), uniform(-2, 2, 4, 8)},
			// (x − y)·(x + y) − x² + y², zero up to rounding: the bounds
			// must survive catastrophic cancellation.
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				d := k.Mul(k.id(), k.Sub(k.id(), x[0], x[1]), k.Add(k.id(), x[0], x[1]))
				return vars(k.Add(k.id(), k.Sub(k.id(), d, k.Mul(k.id(), x[0], x[0])), k.Mul(k.id(), x[1], x[1])))
			}},
		{name: "binary/real_div", ins: []operand{uniform(-3, 3, 3, 8), uniform(0.25, 2, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.RealDiv(k.id(), x[0], x[1]), k.RealDiv(k.id(), x[0], k.Mul(k.id(), x[1], k.scalar(-1))))
			}},
		{name: "binary/pow", ins: []operand{uniform(0.1, 3, 2, 8), uniform(-2, 2, 2, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				// pow(·, −0.5) is the reference kernels' RMSNorm idiom.
				return vars(k.Pow(k.id(), x[0], x[1]), k.Pow(k.id(), x[0], k.scalar(-0.5)), k.Pow(k.id(), x[0], k.scalar(2)))
			}},
		{name: "binary/pow_negative_base_integer_exponent", ins: []operand{uniform(-3, 3, 16)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Pow(k.id(), x[0], k.scalar(2)), k.Pow(k.id(), x[0], k.scalar(3)))
			}},
		{name: "binary/maximum_minimum", ins: []operand{uniform(-2, 2, 2, 1, 6), uniform(-2, 2, 3, 1)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Maximum(k.id(), x[0], x[1]), k.Minimum(k.id(), x[0], x[1]))
			}},

		// Comparisons and select, with the three-way broadcast real models use.
		{name: "select/greater_less", ins: []operand{uniform(-2, 2, 3, 8), uniform(-2, 2, 8)},
			build: selectComparisons},
		{name: "select/three_way_broadcast", ins: []operand{uniform(-1, 1, 2, 1, 4), uniform(-1, 1, 1), uniform(-5, 5, 3, 1), uniform(-5, 5, 1, 4)},
			// cond [2,1,4], a [3,1], b [1,4] → [2,3,4].
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Select(k.id(), k.Greater(k.id(), x[0], x[1]), x[2], x[3]))
			}},
		{name: "select/scalar_into_tensor", ins: []operand{uniform(-1, 1, 1, 1, 4, 4), uniform(-3, 3, 1, 2, 4, 4)},
			// The attention-mask pattern: a scalar selected into b under a
			// cond of a third shape.
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Select(k.id(), k.Less(k.id(), x[0], k.scalar(0)), k.scalar(-65504), x[1]))
			}},
		{name: "select/equal_operands", ins: []operand{fixed([]float64{1, 2, 3, 4, -1, -2, 0, 0.5}, 8), fixed([]float64{1, 3, 3, 2, -1, -1, 0, -0.5}, 8)},
			// Ties: greater and less are both false where x == y.
			build: selectComparisons},

		// Unary ops.
		{name: "unary/exp", ins: []operand{uniform(-6, 6, 4, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Exp(k.id(), x[0])) }},
		{name: "unary/sigmoid_silu_tanh", ins: []operand{uniform(-8, 8, 4, 16)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Sigmoid(k.id(), x[0]), k.Silu(k.id(), x[0]), k.Tanh(k.id(), x[0]))
			}},
		{name: "unary/relu", ins: []operand{fixed([]float64{-3, -0.5, 0, 0.25, 7, -1e-3, 1e-3, -65504}, 8), uniform(-4, 4, 2, 16)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Relu(k.id(), x[0]), k.Relu(k.id(), x[1])) }},
		{name: "unary/sqrt", ins: []operand{uniform(0.01, 100, 2, 16), fixed([]float64{0, 1, 4, 65504}, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Sqrt(k.id(), x[0]), k.Sqrt(k.id(), x[1])) }},
		{name: "unary/rsqrt_epsilon", ins: []operand{uniform(0.01, 10, 2, 16), fixed([]float64{0, 0.5, 1, 4}, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Rsqrt(k.id(), x[0], 1e-3), k.Rsqrt(k.id(), x[1], 0.25))
			}},
		{name: "unary/rsqrt_tiny_epsilon_vanishes", ins: []operand{fixed([]float64{0, 0.25, 1, 16}, 4)},
			// 1e-12 rounds to 0 in fp16, so rsqrt(0) is +inf: what ships.
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Rsqrt(k.id(), x[0], 1e-12)) }},
		{name: "unary/log_epsilon", ins: []operand{uniform(0.01, 50, 2, 16), fixed([]float64{0, 1, 2, 1000}, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Log(k.id(), x[0], 1e-3), k.Log(k.id(), x[1], 1), k.Log(k.id(), x[1], 1e-45))
			}},
		{name: "unary/clip", ins: []operand{uniform(-3, 3, 3, 16), fixed([]float64{-0.5, 0.75, -0.50048828125, 0.75048828125}, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Clip(k.id(), x[0], -0.5, 0.75), k.Clip(k.id(), x[1], -0.5, 0.75))
			}},

		// Casts: through fp32 (which the ANE still computes in fp16), to
		// int32 (truncation toward zero) and from bool.
		{name: "cast/fp32_round_trip", ins: []operand{uniform(-100, 100, 2, 16)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				f := k.Cast(k.id(), x[0], mil.FP32)
				g := k.Mul(k.id(), f, k.ConstScalar(k.id(), mil.FP32, 0.5))
				return vars(k.Cast(k.id(), g, mil.FP16))
			}},
		{name: "cast/int32_truncates", ins: []operand{fixed([]float64{-2.75, -2.5, -1, -0.25, 0, 0.25, 1, 2.5, 2.75, 3, 100.5, -100.5, 7.999, -7.999, 1000, -1000}, 16)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Cast(k.id(), k.Cast(k.id(), x[0], mil.Int32), mil.FP16))
			}},
		{name: "cast/bool_to_fp16", ins: []operand{uniform(-1, 1, 16), uniform(-1, 1, 16)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Cast(k.id(), k.Greater(k.id(), x[0], x[1]), mil.FP16))
			}},

		// fp16 overflow: results past 65504 are ±inf, as on the hardware.
		{name: "overflow/mul_300x300", ins: []operand{fixed([]float64{300, -300, 255, 256, 100, 1000, -1000, 2}, 8)},
			// 300² = 90000 → inf; 255² = 65025 stays finite; 256² = 65536
			// rounds past the threshold → inf.
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Mul(k.id(), x[0], x[0]), k.Mul(k.id(), x[0], k.scalar(300)))
			}},
		{name: "overflow/exp", ins: []operand{fixed([]float64{12, 11.1, 11, 10, 0, -12, 20, -20}, 8)},
			// exp(12) = 162755 and exp(11.1) = 66171 overflow; exp(11) = 59874
			// does not.
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Exp(k.id(), x[0])) }},
		{name: "overflow/add_sub_and_propagate", ins: []operand{fixed([]float64{60000, -60000, 30000, 65504}, 4), fixed([]float64{10000, -10000, 30000, 16}, 4)},
			// Sums past the maximum overflow, and inf propagates through
			// later ops (inf − 1 = inf, relu(−inf) = 0, clip(inf) = beta).
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				s := k.Add(k.id(), x[0], x[1])
				return vars(s, k.Sub(k.id(), s, k.scalar(1)), k.Relu(k.id(), k.Mul(k.id(), s, k.scalar(-1))),
					k.Clip(k.id(), s, -2, 2))
			}},

		// softmax on different axes, with large inputs that overflow unless
		// the maximum is subtracted first.
		{name: "softmax/last_axis", ins: []operand{uniform(-2, 2, 2, 3, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Softmax(k.id(), x[0], -1)) }},
		{name: "softmax/channel_axis", ins: []operand{uniform(-2, 2, 1, 16, 1, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Softmax(k.id(), x[0], 1)) }},
		{name: "softmax/first_axis_large_inputs", ins: []operand{uniform(50, 54, 5, 3)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Softmax(k.id(), x[0], 0)) }},

		// Reductions with and without keep_dims.
		{name: "reduce/sum_channels_keep", ins: []operand{uniform(-2, 2, 1, 8, 1, 16)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.ReduceSum(k.id(), x[0], []int{1}, true)) }},
		{name: "reduce/sum_last_drop", ins: []operand{uniform(-2, 2, 2, 3, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.ReduceSum(k.id(), x[0], []int{-1}, false)) }},
		{name: "reduce/mean_two_axes", ins: []operand{uniform(-2, 2, 3, 4, 5)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.ReduceMean(k.id(), x[0], []int{0, -1}, false), k.ReduceMean(k.id(), x[0], []int{1}, true))
			}},
		{name: "reduce/max_all", ins: []operand{uniform(-2, 2, 3, 4, 5)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.ReduceMax(k.id(), x[0], nil, true), k.ReduceMax(k.id(), x[0], []int{-2}, false))
			}},
		{name: "reduce/max_all_to_scalar", ins: []operand{uniform(-2, 2, 4, 5)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.ReduceMax(k.id(), x[0], nil, false)) }},

		// Shape ops. A reshape or squeeze alone would not show a wrong shape
		// in the flattened output, so each is followed by an op that depends
		// on the shape.
		{name: "shape/reshape_minus_one_and_zero", ins: []operand{uniform(-1, 1, 2, 3, 4)},
			// From iOS17 a 0 is right-aligned: [0, -1] on [2,3,4] is [3, 8].
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				a := k.Reshape(k.id(), x[0], 0, -1)
				b := k.Reshape(k.id(), x[0], 1, 0, -1, 0)
				return vars(k.Transpose(k.id(), a, 1, 0), k.ReduceSum(k.id(), b, []int{1}, false))
			}},
		{name: "shape/reshape_zero_by_index_ios16", target: mil.IOS16, ins: []operand{uniform(-1, 1, 2, 3, 4)},
			// Before iOS17 a 0 copies the dimension at the same index, and
			// the program is printed in the program(1.0) dialect.
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				a := k.Reshape(k.id(), x[0], 0, -1, 2)
				return vars(k.Transpose(k.id(), a, 2, 1, 0))
			}},
		{name: "shape/transpose_negative_perm", ins: []operand{uniform(-1, 1, 2, 3, 4), uniform(-1, 1, 1, 2, 3, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Transpose(k.id(), x[0], -1, 0, 1), k.Transpose(k.id(), x[1], 0, 1, 3, 2))
			}},
		{name: "shape/slice_by_size", ins: []operand{uniform(-1, 1, 4, 6, 5)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.SliceBySize(k.id(), x[0], []int{1, -3, 0}, []int{2, -1, 3}),
					k.SliceBySize(k.id(), x[0], []int{-1, 0, 4}, []int{1, 6, 1}))
			}},
		{name: "shape/slice_by_index_masks_stride", ins: []operand{uniform(-1, 1, 4, 6, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				// x[1:3, ::2, -1::-2]
				return vars(k.SliceByIndex(k.id(), x[0], []int{1, 0, -1}, []int{3, 0, 0}, mil.SliceOpts{
					Stride: []int{1, 2, -2}, EndMask: []bool{false, true, true}}))
			}},
		{name: "shape/slice_by_index_squeeze", ins: []operand{uniform(-1, 1, 3, 4, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				// x[2, :, 1::3] (a stride that does not divide the range) and
				// x[-1, 1, :]
				a := k.SliceByIndex(k.id(), x[0], []int{2, 0, 1}, []int{3, 4, 8}, mil.SliceOpts{
					Stride: []int{1, 1, 3}, SqueezeMask: []bool{true, false, false}})
				b := k.SliceByIndex(k.id(), x[0], []int{-1, 1, 0}, []int{0, 2, 5}, mil.SliceOpts{
					SqueezeMask: []bool{true, true, false}, BeginMask: []bool{false, false, true}})
				// x[0, 2, :]: axis 0 squeezed with its begin masked takes
				// element 0, whatever begin says.
				c := k.SliceByIndex(k.id(), x[0], []int{2, 2, 0}, []int{3, 3, 8}, mil.SliceOpts{
					SqueezeMask: []bool{true, true, false}, BeginMask: []bool{true, false, false}})
				return vars(k.Transpose(k.id(), a, 1, 0), b, c)
			}},
		{name: "shape/slice_by_index_clamps", ins: []operand{uniform(-1, 1, 5, 6)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				// x[-100:100, 1:-1] and x[::-1, 4:1:-1]
				a := k.SliceByIndex(k.id(), x[0], []int{-100, 1}, []int{100, -1}, mil.SliceOpts{})
				b := k.SliceByIndex(k.id(), x[0], []int{0, 4}, []int{0, 1}, mil.SliceOpts{
					Stride: []int{-1, -1}, BeginMask: []bool{true, false}, EndMask: []bool{true, false}})
				return vars(a, b)
			}},
		{name: "shape/concat", ins: []operand{uniform(-1, 1, 2, 3, 4), uniform(-1, 1, 2, 1, 4), uniform(-1, 1, 2, 2, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Concat(k.id(), -2, false, x[0], x[1], x[2])) }},
		{name: "shape/concat_interleave", ins: []operand{uniform(-1, 1, 2, 3, 4), uniform(-1, 1, 2, 3, 4), uniform(-1, 1, 2, 3, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Concat(k.id(), 1, true, x[0], x[1], x[2]), k.Concat(k.id(), -1, true, x[0], x[2]))
			}},
		{name: "shape/split", ins: []operand{uniform(-1, 1, 4, 6)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				s := k.Split(k.id(), x[0], -1, []int{1, 3, 2})
				n := k.SplitN(k.id(), x[0], 0, 2)
				// Recombine in another order so a swapped split shows.
				return vars(s[2], s[0], s[1], n[1], k.Sub(k.id(), n[0], n[1]))
			}},
		{name: "shape/expand_squeeze", ins: []operand{uniform(-1, 1, 3, 1, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				e := k.ExpandDims(k.id(), x[0], 0, -1) // [1,3,1,4,1]
				s := k.Squeeze(k.id(), e)              // [3,4]
				q := k.Squeeze(k.id(), x[0], 1)        // [3,4]
				return vars(k.Transpose(k.id(), e, 4, 3, 2, 1, 0), k.Transpose(k.id(), s, 1, 0), k.Sub(k.id(), q, s))
			}},

		// matmul: transposes, batch broadcasting, rank-1 operands and a
		// deep accumulation.
		{name: "matmul/batched", ins: []operand{uniform(-1, 1, 2, 3, 4), uniform(-1, 1, 2, 4, 5)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.MatMul(k.id(), x[0], x[1], false, false)) }},
		{name: "matmul/transpose_flags", ins: []operand{uniform(-1, 1, 2, 4, 3), uniform(-1, 1, 2, 5, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				a := k.MatMul(k.id(), x[0], x[1], true, true)                                // [2,3,5]
				b := k.MatMul(k.id(), x[0], k.Transpose(k.id(), x[1], 0, 2, 1), true, false) // same
				c := k.MatMul(k.id(), x[1], x[0], false, false)                              // [2,5,3]
				return vars(a, b, c)
			}},
		{name: "matmul/batch_broadcast", ins: []operand{uniform(-1, 1, 2, 1, 3, 8), uniform(-1, 1, 4, 8, 5)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.MatMul(k.id(), x[0], x[1], false, false)) }},
		{name: "matmul/rank1", ins: []operand{uniform(-1, 1, 3, 4), uniform(-1, 1, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.MatMul(k.id(), x[0], x[1], false, false), k.MatMul(k.id(), x[1], k.Transpose(k.id(), x[0], 1, 0), false, false))
			}},
		{name: "matmul/deep_k", ins: []operand{uniform(-1, 1, 1, 1, 8, 256), uniform(-1, 1, 1, 1, 256, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.MatMul(k.id(), x[0], x[1], false, false)) }},
		{name: "matmul/const_weight", ins: []operand{uniform(-1, 1, 1, 1, 16, 32)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.MatMul(k.id(), x[0], k.constant(-0.5, 0.5, 32, 8), false, false))
			}},

		// conv: the 1×1 linear layer, every pad type, strides, dilations,
		// groups and depthwise, bias, 1-D, and a runtime weight.
		{name: "conv/1x1_linear_bias", ins: []operand{uniform(-1, 1, 1, 16, 1, 32)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				w := k.constant(-0.25, 0.25, 8, 16, 1, 1)
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{Bias: k.constant(-1, 1, 8)}))
			}},
		{name: "conv/3x3_valid", ins: []operand{uniform(-1, 1, 1, 3, 7, 6)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Conv(k.id(), x[0], k.constant(-0.5, 0.5, 4, 3, 3, 3), mil.ConvOpts{PadType: mil.PadValid}))
			}},
		{name: "conv/3x3_same", ins: []operand{uniform(-1, 1, 1, 3, 7, 6)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Conv(k.id(), x[0], k.constant(-0.5, 0.5, 4, 3, 3, 3), mil.ConvOpts{PadType: mil.PadSame}))
			}},
		{name: "conv/same_even_kernel_stride2", ins: []operand{uniform(-1, 1, 1, 2, 7, 8)},
			// An even kernel with stride 2 pads unevenly: same puts the
			// extra row/column after, same_lower before.
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				w := k.constant(-0.5, 0.5, 3, 2, 4, 2)
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{PadType: mil.PadSame, Strides: []int{2, 2}}),
					k.Conv(k.id(), x[0], w, mil.ConvOpts{PadType: mil.PadSameLower, Strides: []int{2, 2}}))
			}},
		{name: "conv/custom_pad", ins: []operand{uniform(-1, 1, 1, 3, 5, 6)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				w := k.constant(-0.5, 0.5, 2, 3, 3, 3)
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{PadType: mil.PadCustom, Pad: []int{1, 0, 2, 1}}),
					k.Conv(k.id(), x[0], w, mil.ConvOpts{PadType: mil.PadCustom, Pad: []int{0, 2, 0, 0}, Strides: []int{2, 3}}))
			}},
		{name: "conv/dilated", ins: []operand{uniform(-1, 1, 1, 2, 9, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				w := k.constant(-0.5, 0.5, 3, 2, 3, 3)
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{Dilations: []int{2, 3}}),
					k.Conv(k.id(), x[0], w, mil.ConvOpts{Dilations: []int{2, 1}, PadType: mil.PadSame}))
			}},
		{name: "conv/groups", ins: []operand{uniform(-1, 1, 1, 6, 4, 5)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				w := k.constant(-0.5, 0.5, 4, 3, 3, 3)
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{Groups: 2, PadType: mil.PadSame, Bias: k.constant(-1, 1, 4)}))
			}},
		{name: "conv/depthwise", ins: []operand{uniform(-1, 1, 1, 4, 5, 6)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				w := k.constant(-0.5, 0.5, 8, 1, 3, 3) // channel multiplier 2
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{Groups: 4, PadType: mil.PadSame}))
			}},
		{name: "conv/1d", ins: []operand{uniform(-1, 1, 1, 4, 10)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				w := k.constant(-0.5, 0.5, 6, 4, 3)
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{Strides: []int{2}, PadType: mil.PadSameLower}))
			}},
		{name: "conv/runtime_weight", ins: []operand{uniform(-1, 1, 1, 8, 1, 16), uniform(-0.5, 0.5, 4, 8, 1, 1)},
			// The dynamic-weight conv: the weight is part of the input.
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.Conv(k.id(), x[0], x[1], mil.ConvOpts{})) }},

		// scaled_dot_product_attention. The ANE ignores attn_mask
		// (ane-anchor §8.1), so the reference is the unmasked attention even
		// when a mask is given.
		{name: "sdpa/no_mask", ins: []operand{uniform(-1, 1, 1, 2, 4, 8), uniform(-1, 1, 1, 2, 6, 8), uniform(-1, 1, 1, 2, 6, 3)},
			build: func(k *kb, x []*mil.Var) []*mil.Var { return vars(k.SDPA(k.id(), x[0], x[1], x[2], nil)) }},
		{name: "sdpa/causal_mask_ignored", ins: []operand{uniform(-2, 2, 1, 2, 8, 8), uniform(-2, 2, 1, 2, 8, 8), uniform(-1, 1, 1, 2, 8, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				mask := k.ConstFP16(k.id(), mil.Shape{1, 1, 8, 8}, causalMask(8))
				return vars(k.SDPA(k.id(), x[0], x[1], x[2], mask))
			}},
		{name: "sdpa/bool_mask_ignored", ins: []operand{uniform(-2, 2, 2, 4, 8), uniform(-2, 2, 2, 4, 8), uniform(-1, 1, 2, 4, 8)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				m := make([]bool, 16)
				for i := range m {
					m[i] = i%3 != 0
				}
				mask := k.Const(k.id(), mil.BoolTensor(mil.Shape{4, 4}, m))
				return vars(k.SDPA(k.id(), x[0], x[1], x[2], mask))
			}},

		// Quantisation: round half to even and clipping.
		{name: "quant/int8_round_half_even_clip", target: mil.IOS18,
			// Multiples of scale/2 hit every tie; ±20 clip to 127·s and −128·s.
			ins: []operand{fixed(quantTies(), 1, 32)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				q := mil.QuantParams{Scale: mil.FloatScalar(mil.FP16, 0.125)}
				return vars(k.Dequantize(k.id(), k.Quantize(k.id(), x[0], mil.Int8, q), q))
			}},
		{name: "quant/uint8_per_channel_zero_point", ins: []operand{uniform(-3, 3, 1, 3, 1, 16)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				q := mil.QuantParams{
					Scale:     mil.FloatTensor(mil.FP16, mil.Shape{3}, []float64{0.03125, 0.0234375, 0.01}),
					ZeroPoint: mil.IntTensor(mil.UInt8, mil.Shape{3}, []int64{128, 100, 200}),
					Axis:      1,
				}
				return vars(k.Dequantize(k.id(), k.Quantize(k.id(), x[0], mil.UInt8, q), q))
			}},
		{name: "quant/constexpr_affine_dequantize", ins: []operand{uniform(-1, 1, 1, 8, 1, 16)},
			// int8 weights dequantised at compile time feed a 1×1 conv, the
			// W8 idiom of the reference benches.
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				data := make([]byte, 4*8)
				for i := range data {
					data[i] = byte(int8(k.rng.IntN(255) - 127))
				}
				qd := k.Blob(mil.TensorOf(mil.Int8, 4, 8, 1, 1), data)
				w := k.ConstexprAffineDequantize(k.id(), qd, mil.QuantParams{
					Scale:     mil.FloatTensor(mil.FP16, mil.Shape{4}, []float64{0.01, 0.02, 0.005, 0.0078125}),
					ZeroPoint: mil.IntTensor(mil.Int8, mil.Shape{4}, []int64{0, 3, -5, 1}),
					Axis:      0,
				})
				ws := k.ConstexprAffineDequantize(k.id(), qd, mil.QuantParams{Scale: mil.FloatScalar(mil.FP16, 0.015625)})
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{}), k.Conv(k.id(), x[0], ws, mil.ConvOpts{}))
			}},
		{name: "quant/constexpr_attributes_ios17", target: mil.IOS17, ins: []operand{uniform(-1, 1, 1, 8, 1, 16)},
			// Up to iOS17 the constexpr's parameters are attributes.
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				data := make([]byte, 4*8)
				for i := range data {
					data[i] = byte(k.rng.IntN(256))
				}
				qd := k.Blob(mil.TensorOf(mil.UInt8, 4, 8, 1, 1), data)
				w := k.ConstexprAffineDequantize(k.id(), qd, mil.QuantParams{
					Scale: mil.FloatScalar(mil.FP16, 0.01), ZeroPoint: mil.IntScalar(mil.UInt8, 128)})
				return vars(k.Conv(k.id(), x[0], w, mil.ConvOpts{}))
			}},

		// Special values on input: the device must carry ±inf through ops
		// whose result is defined for them.
		{name: "special/inf_inputs", ins: []operand{fixed([]float64{math.Inf(1), math.Inf(-1), 1, -1}, 4)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Relu(k.id(), x[0]), k.Clip(k.id(), x[0], -3, 3), k.Add(k.id(), x[0], k.scalar(1)),
					k.Mul(k.id(), x[0], k.scalar(-2)), k.Sigmoid(k.id(), x[0]), k.Exp(k.id(), x[0]))
			}},

		// The reference kernels' idioms, end to end.
		{name: "idiom/rmsnorm", ins: []operand{uniform(-3, 3, 1, 16, 1, 32)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				sq := k.Mul(k.id(), x[0], x[0])
				ss := k.ReduceSum(k.id(), sq, []int{1}, true)
				ms := k.Add(k.id(), k.Mul(k.id(), ss, k.scalar(1.0/16)), k.scalar(1e-5))
				r := k.Pow(k.id(), ms, k.scalar(-0.5))
				w := k.constant(0.5, 1.5, 1, 16, 1, 1)
				return vars(k.Mul(k.id(), k.Mul(k.id(), x[0], r), w))
			}},
		{name: "idiom/causal_attention", ins: []operand{uniform(-1, 1, 1, 2, 8, 16), uniform(-1, 1, 1, 2, 8, 16), uniform(-1, 1, 1, 2, 8, 16)},
			// The explicit masked attention that works on the ANE.
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				s := k.Mul(k.id(), k.MatMul(k.id(), x[0], x[1], false, true), k.scalar(0.25))
				s = k.Add(k.id(), s, k.ConstFP16(k.id(), mil.Shape{1, 1, 8, 8}, causalMask(8)))
				return vars(k.MatMul(k.id(), k.Softmax(k.id(), s, -1), x[2], false, false))
			}},
		{name: "idiom/swiglu", ins: []operand{uniform(-3, 3, 1, 8, 1, 32), uniform(-3, 3, 1, 8, 1, 32)},
			build: func(k *kb, x []*mil.Var) []*mil.Var {
				return vars(k.Mul(k.id(), k.Mul(k.id(), x[0], k.Sigmoid(k.id(), x[0])), x[1]))
			}},
	}
}

// quantTies returns 32 inputs for an int8 quantize with scale 1/8: every
// multiple of 1/16 in [−1, 1) hits a tie at odd multiples (round half to
// even), and a few values fall outside the int8 range.
func quantTies() []float64 {
	v := make([]float64, 0, 32)
	for i := -12; i < 14; i++ {
		v = append(v, float64(i)/16)
	}
	return append(v, 20, -20, 15.875, -16, 15.9375, -16.0625)
}
