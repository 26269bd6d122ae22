package sim

// Per-op numeric tests against float64 references written here, independent
// of the implementation. Tolerances, in units of one fp16 ulp of the
// reference (ulp16):
//
//   - +, −, ×, ÷, sqrt, max/min, data movement: 0 — float32 arithmetic then one
//     rounding to fp16 is the correctly rounded fp16 result (float32 has
//     24 ≥ 2·11+2 bits, so the double rounding is innocuous).
//   - transcendental ops (exp, log, tanh, sigmoid, silu, pow, rsqrt): 1 ulp —
//     one rounding (½ ulp) plus the float64→float32→fp16 double rounding.
//   - accumulating ops (matmul, conv, reductions, softmax): 1 ulp plus an
//     absolute K·2⁻²²·Σ|terms| for fp32 accumulation of K terms.

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
)

var multi = ane.Options{MultiIO: true}

func TestBinaryBroadcast(t *testing.T) {
	xs, ys := []int{2, 3, 1, 4}, []int{3, 5, 1}
	os := []int{2, 3, 5, 4}
	x := randn(1, 24, 4)
	y := randn(2, 15, 4)
	for i := range y {
		if y[i] == 0 {
			y[i] = 0.5
		}
	}
	xr, yr := r16s(x), r16s(y)
	refs := map[string]func(a, b float64) float64{
		"add": func(a, b float64) float64 { return a + b }, "sub": func(a, b float64) float64 { return a - b },
		"mul": func(a, b float64) float64 { return a * b }, "real_div": func(a, b float64) float64 { return a / b },
		"maximum": math.Max, "minimum": math.Min,
		"pow": func(a, b float64) float64 { return math.Pow(math.Abs(a), b) },
	}
	for op, f := range refs {
		t.Run(op, func(t *testing.T) {
			xin := x
			if op == "pow" { // keep the base positive
				xin = make([]float32, len(x))
				for i, v := range x {
					xin[i] = float32(math.Abs(float64(v)))
				}
			}
			text := prog("tensor<fp16, [2, 3, 1, 4]> x, tensor<fp16, [3, 5, 1]> y", fmt.Sprintf(
				`            tensor<fp16, [2, 3, 5, 4]> z = %s(x = x, y = y)[name = string("z")];`, op), "z")
			got := run(t, text, multi, nil, xin, y)[0]
			want := make([]float64, numel(os))
			for a := range 2 {
				for b := range 3 {
					for c := range 5 {
						for d := range 4 {
							xv := xr[(a*3+b)*4+d]
							yv := yr[b*5+c]
							want[((a*3+b)*5+c)*4+d] = r16(f(xv, yv))
						}
					}
				}
			}
			ulps := 0.0
			if op == "pow" {
				ulps = 1
			}
			near(t, op, got, want, ulps, 0)
		})
	}
	_ = xs
	_ = ys
}

func TestScalarOperandAndFP32Intermediate(t *testing.T) {
	// 1 + 2^-12 is exact in fp32 but not in fp16: the ANE computes in fp16,
	// so an fp32-declared intermediate is rounded too.
	text := prog("tensor<fp16, [1, 4]> x", `            string dt = const()[name = string("dt"), val = string("fp32")];
            tensor<fp32, [1, 4]> x32 = cast(dtype = dt, x = x)[name = string("x32")];
            fp32 e = const()[name = string("e"), val = fp32(0x1p-12)];
            tensor<fp32, [1, 4]> y32 = add(x = x32, y = e)[name = string("y32")];
            string dt16 = const()[name = string("dt16"), val = string("fp16")];
            tensor<fp16, [1, 4]> y = cast(dtype = dt16, x = y32)[name = string("y")];`, "y")
	got := run(t, text, ane.Options{}, nil, []float32{1, 2, 0.5, -3})[0]
	near(t, "y", got, []float64{1, 2, r16(0.5 + 0x1p-12), -3}, 0, 0)
}

func TestOverflowToInf(t *testing.T) {
	text := prog("tensor<fp16, [1, 4]> x", `            tensor<fp16, [1, 4]> y = mul(x = x, y = x)[name = string("y")];
            fp16 big = const()[name = string("big"), val = fp16(0x1.ffcp+15)];
            tensor<fp16, [1, 4]> z = add(x = y, y = big)[name = string("z")];`, "z")
	got := run(t, text, ane.Options{}, nil, []float32{300, -300, 1, 0})[0]
	inf := math.Inf(1)
	// 300² = 90000 > 65504 → inf; 65504 + 1 rounds back to 65504; 65504 + 0 too.
	near(t, "z", got, []float64{inf, inf, 65504, 65504}, 0, 0)
	text = prog("tensor<fp16, [1, 2]> x", `            tensor<fp16, [1, 2]> y = exp(x = x)[name = string("y")];`, "y")
	got = run(t, text, ane.Options{}, nil, []float32{12, -20})[0]
	near(t, "exp", got, []float64{inf, r16(math.Exp(-20))}, 1, 0)
}

func TestUnary(t *testing.T) {
	x := randn(3, 64, 6)
	pos := make([]float32, len(x))
	for i, v := range x {
		pos[i] = float32(math.Abs(float64(v))) + 0.01
	}
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	cases := []struct {
		op, extra string
		in        []float32
		f         func(float64) float64
		ulps      float64
	}{
		{"sqrt", "", pos, math.Sqrt, 0},
		{"exp", "", x, math.Exp, 1},
		{"tanh", "", x, math.Tanh, 1},
		{"sigmoid", "", x, sig, 1},
		{"silu", "", x, func(v float64) float64 { return v * sig(v) }, 1},
		{"relu", "", x, func(v float64) float64 { return math.Max(v, 0) }, 0},
		{"log", "", pos, math.Log, 1},
		{"rsqrt", "", pos, func(v float64) float64 { return 1 / math.Sqrt(v) }, 1},
		// epsilon is rounded to fp16 (0.25 exactly) and added before the function.
		{"rsqrt", ", epsilon = fp16(0x1p-2)", pos, func(v float64) float64 { return 1 / math.Sqrt(v+0.25) }, 1},
		{"log", ", epsilon = fp16(0x1p-2)", pos, func(v float64) float64 { return math.Log(v + 0.25) }, 1},
		{"clip", ", alpha = fp16(-0x1p+0), beta = fp16(0x1.8p+1)", x, func(v float64) float64 { return math.Min(math.Max(v, -1), 3) }, 0},
	}
	for _, c := range cases {
		t.Run(c.op+c.extra, func(t *testing.T) {
			text := prog("tensor<fp16, [1, 8, 1, 8]> x", fmt.Sprintf(
				`            tensor<fp16, [1, 8, 1, 8]> y = %s(x = x%s)[name = string("y")];`, c.op, c.extra), "y")
			got := run(t, text, ane.Options{}, nil, c.in)[0]
			want := make([]float64, len(c.in))
			for i, v := range r16s(c.in) {
				want[i] = r16(c.f(v))
			}
			near(t, c.op, got, want, c.ulps, 0)
		})
	}
}

func TestDefaultEpsilonUnderflows(t *testing.T) {
	// rsqrt's default epsilon 1e-12 is 0 in fp16, so rsqrt(0) = +inf (mil-spec §5).
	text := prog("tensor<fp16, [1, 2]> x", `            tensor<fp16, [1, 2]> y = rsqrt(x = x)[name = string("y")];`, "y")
	got := run(t, text, ane.Options{}, nil, []float32{0, 4})[0]
	near(t, "rsqrt", got, []float64{math.Inf(1), 0.5}, 0, 0)
}

func TestCastCompareSelect(t *testing.T) {
	text := prog("tensor<fp16, [1, 6]> x, tensor<fp16, [2, 1, 1]> a, tensor<fp16, [1, 6]> b", `            string i32 = const()[name = string("i32"), val = string("int32")];
            tensor<int32, [1, 6]> xi = cast(dtype = i32, x = x)[name = string("xi")];
            string f16 = const()[name = string("f16"), val = string("fp16")];
            tensor<fp16, [1, 6]> xt = cast(dtype = f16, x = xi)[name = string("xt")];
            fp16 zero = const()[name = string("zero"), val = fp16(0x0p+0)];
            tensor<bool, [1, 6]> c = greater(x = x, y = zero)[name = string("c")];
            tensor<fp16, [2, 1, 6]> s = select(a = a, b = b, cond = c)[name = string("s")];
            tensor<bool, [1, 6]> l = less(x = x, y = b)[name = string("l")];
            tensor<fp16, [1, 6]> lf = cast(dtype = f16, x = l)[name = string("lf")];`, "xt, s, lf")
	x := []float32{1.75, -1.75, 0, 2.5, -0.5, 3}
	a := []float32{10, 20}
	b := []float32{-1, -2, -3, -4, -5, -6}
	out := run(t, text, multi, nil, x, a, b)
	near(t, "trunc", out[0], []float64{1, -1, 0, 2, 0, 3}, 0, 0)
	var sel []float64
	for _, av := range a {
		for i, v := range x {
			if v > 0 {
				sel = append(sel, float64(av))
			} else {
				sel = append(sel, float64(b[i]))
			}
		}
	}
	near(t, "select", out[1], sel, 0, 0)
	near(t, "less", out[2], []float64{0, 0, 0, 0, 0, 0}, 0, 0)
}

func TestSoftmax(t *testing.T) {
	x := randn(4, 2*5*1*7, 8)
	xr := r16s(x)
	for _, axis := range []int{-1, 1} {
		t.Run(fmt.Sprint(axis), func(t *testing.T) {
			text := prog("tensor<fp16, [2, 5, 1, 7]> x", fmt.Sprintf(`            int32 ax = const()[name = string("ax"), val = int32(%d)];
            tensor<fp16, [2, 5, 1, 7]> y = softmax(axis = ax, x = x)[name = string("y")];`, axis), "y")
			got := run(t, text, ane.Options{}, nil, x)[0]
			want := make([]float64, len(x))
			idx := func(n, c, s int) int { return (n*5+c)*7 + s }
			for n := range 2 {
				if axis == -1 {
					for c := range 5 {
						softmaxRef(want, xr, func(i int) int { return idx(n, c, i) }, 7)
					}
				} else {
					for s := range 7 {
						softmaxRef(want, xr, func(i int) int { return idx(n, i, s) }, 5)
					}
				}
			}
			near(t, "softmax", got, want, 1, 1e-6)
		})
	}
}

func softmaxRef(dst, src []float64, at func(int) int, n int) {
	mx := math.Inf(-1)
	for i := range n {
		mx = math.Max(mx, src[at(i)])
	}
	sum := 0.0
	for i := range n {
		sum += math.Exp(src[at(i)] - mx)
	}
	for i := range n {
		dst[at(i)] = r16(math.Exp(src[at(i)]-mx) / sum)
	}
}

func TestReductions(t *testing.T) {
	x := randn(5, 2*3*4*5, 3)
	xr := r16s(x)
	at := func(a, b, c, d int) float64 { return xr[((a*3+b)*4+c)*5+d] }
	cases := []struct {
		op, axes string
		keep     bool
		outType  string
		ref      func() []float64
	}{
		{"reduce_sum", "[1]", true, "tensor<fp16, [2, 1, 4, 5]>", func() []float64 {
			var o []float64
			for a := range 2 {
				for c := range 4 {
					for d := range 5 {
						s := 0.0
						for b := range 3 {
							s += at(a, b, c, d)
						}
						o = append(o, s)
					}
				}
			}
			return o
		}},
		{"reduce_mean", "[-1, 1]", false, "tensor<fp16, [2, 4]>", func() []float64 {
			var o []float64
			for a := range 2 {
				for c := range 4 {
					s := 0.0
					for b := range 3 {
						for d := range 5 {
							s += at(a, b, c, d)
						}
					}
					o = append(o, s/15)
				}
			}
			return o
		}},
		{"reduce_max", "[0, 2]", false, "tensor<fp16, [3, 5]>", func() []float64 {
			var o []float64
			for b := range 3 {
				for d := range 5 {
					m := math.Inf(-1)
					for a := range 2 {
						for c := range 4 {
							m = math.Max(m, at(a, b, c, d))
						}
					}
					o = append(o, m)
				}
			}
			return o
		}},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			n := strings.Count(c.axes, ",") + 1
			text := prog("tensor<fp16, [2, 3, 4, 5]> x", fmt.Sprintf(`            tensor<int32, [%d]> ax = const()[name = string("ax"), val = tensor<int32, [%d]>(%s)];
            bool kd = const()[name = string("kd"), val = bool(%v)];
            %s y = %s(axes = ax, keep_dims = kd, x = x)[name = string("y")];
            tensor<fp16, [1, 120]> o = reshape(shape = tensor<int32, [2]>([1, -1]), x = x)[name = string("o")];`,
				n, n, c.axes, c.keep, c.outType, c.op), "y, o")
			got := run(t, text, multi, nil, x)[0]
			want := c.ref()
			for i := range want {
				want[i] = r16(want[i])
			}
			near(t, c.op, got, want, 1, 1e-5)
		})
	}
	// Default axes: all, keep_dims false → a scalar output is not allowed as
	// kernel I/O, so keep it as [1] via expand_dims.
	text := prog("tensor<fp16, [2, 3, 4, 5]> x", `            fp16 s = reduce_sum(x = x)[name = string("s")];
            tensor<fp16, [1]> y = expand_dims(axes = tensor<int32, [1]>([0]), x = s)[name = string("y")];`, "y")
	got := run(t, text, ane.Options{}, nil, x)[0]
	s := 0.0
	for _, v := range xr {
		s += v
	}
	near(t, "sum all", got, []float64{r16(s)}, 1, 1e-4)
}

// perm is a data-movement test: the kernel's output must equal the input
// elements at the given flat indices.
func checkPerm(t *testing.T, name, text string, n int, idx []int) {
	t.Helper()
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i) - 7
	}
	got := run(t, text, ane.Options{}, nil, x)[0]
	want := make([]float64, len(idx))
	for i, j := range idx {
		want[i] = float64(x[j])
	}
	near(t, name, got, want, 0, 0)
}

func TestShapeOps(t *testing.T) {
	// x is [2, 3, 4] with element i = i-7.
	in := "tensor<fp16, [2, 3, 4]> x"
	at := func(a, b, c int) int { return (a*3+b)*4 + c }
	var idx []int

	// transpose [2,0,1] → [4,2,3], then reshape to [1, 24] (a copy: not a view).
	idx = nil
	for c := range 4 {
		for a := range 2 {
			for b := range 3 {
				idx = append(idx, at(a, b, c))
			}
		}
	}
	checkPerm(t, "transpose", prog(in, `            tensor<fp16, [4, 2, 3]> y = transpose(perm = tensor<int32, [3]>([-1, 0, 1]), x = x)[name = string("y")];
            tensor<fp16, [24]> z = reshape(shape = tensor<int32, [1]>([-1]), x = y)[name = string("z")];`, "z"), 24, idx)

	// slice_by_size with negative begin and size -1.
	idx = nil
	for b := 1; b < 3; b++ {
		for c := 1; c < 4; c++ {
			idx = append(idx, at(1, b, c))
		}
	}
	checkPerm(t, "slice_by_size", prog(in, `            tensor<fp16, [1, 2, 3]> y = slice_by_size(begin = tensor<int32, [3]>([-1, 1, 1]), size = tensor<int32, [3]>([1, -1, 3]), x = x)[name = string("y")];`, "y"), 24, idx)

	// slice_by_index: reversed stride on axis 2, begin mask on 1, squeeze axis 0.
	idx = nil
	for b := range 2 {
		for c := 3; c >= 1; c -= 2 {
			idx = append(idx, at(1, b, c))
		}
	}
	checkPerm(t, "slice_by_index", prog(in, `            tensor<fp16, [2, 2]> y = slice_by_index(begin = tensor<int32, [3]>([1, 2, -1]), begin_mask = tensor<bool, [3]>([false, true, false]), end = tensor<int32, [3]>([0, 2, 0]), end_mask = tensor<bool, [3]>([false, false, false]), squeeze_mask = tensor<bool, [3]>([true, false, false]), stride = tensor<int32, [3]>([1, 1, -2]), x = x)[name = string("y")];`, "y"), 24, idx)

	// concat on axis 1 of x with a slice of itself, and interleaved on axis 2.
	idx = nil
	for a := range 2 {
		for b := range 3 {
			for c := range 4 {
				idx = append(idx, at(a, b, c))
			}
		}
		for c := range 4 {
			idx = append(idx, at(a, 2, c))
		}
	}
	checkPerm(t, "concat", prog(in, `            tensor<fp16, [2, 1, 4]> s = slice_by_size(begin = tensor<int32, [3]>([0, 2, 0]), size = tensor<int32, [3]>([2, 1, 4]), x = x)[name = string("s")];
            tensor<fp16, [2, 4, 4]> y = concat(axis = int32(-2), interleave = bool(false), values = (x, s))[name = string("y")];`, "y"), 24, idx)
	idx = nil
	for a := range 2 {
		for b := range 3 {
			for c := range 4 {
				idx = append(idx, at(a, b, c), at(a, b, 3-c))
			}
		}
	}
	checkPerm(t, "interleave", prog(in, `            tensor<fp16, [2, 3, 4]> r = slice_by_index(begin = tensor<int32, [3]>([0, 0, 0]), begin_mask = tensor<bool, [3]>([true, true, true]), end = tensor<int32, [3]>([0, 0, 0]), end_mask = tensor<bool, [3]>([true, true, true]), squeeze_mask = tensor<bool, [3]>([false, false, false]), stride = tensor<int32, [3]>([1, 1, -1]), x = x)[name = string("r")];
            tensor<fp16, [2, 3, 8]> y = concat(axis = int32(2), interleave = bool(true), values = (x, r))[name = string("y")];`, "y"), 24, idx)

	// split into [1, 2] on axis 1, keep the second part; expand and squeeze.
	idx = nil
	for a := range 2 {
		for b := 1; b < 3; b++ {
			for c := range 4 {
				idx = append(idx, at(a, b, c))
			}
		}
	}
	checkPerm(t, "split", prog(in, `            tensor<fp16, [2, 1, 4]> p, tensor<fp16, [2, 2, 4]> q = split(axis = int32(1), split_sizes = tensor<int32, [2]>([1, 2]), x = x)[name = string("sp")];
            tensor<fp16, [2, 1, 2, 1, 4]> e = expand_dims(axes = tensor<int32, [2]>([1, -2]), x = q)[name = string("e")];
            tensor<fp16, [2, 2, 4]> y = squeeze(x = e)[name = string("y")];`, "y"), 24, idx)
}

func TestMatmul(t *testing.T) {
	cases := []struct {
		name         string
		xs, ys, os   []int
		tx, ty       bool
		xType, yType string
	}{
		{"plain", []int{2, 3, 4}, []int{2, 4, 5}, []int{2, 3, 5}, false, false, "", ""},
		{"tx", []int{2, 4, 3}, []int{2, 4, 5}, []int{2, 3, 5}, true, false, "", ""},
		{"ty", []int{2, 3, 4}, []int{2, 5, 4}, []int{2, 3, 5}, false, true, "", ""},
		{"both", []int{2, 4, 3}, []int{2, 5, 4}, []int{2, 3, 5}, true, true, "", ""},
		{"broadcast", []int{3, 1, 3, 4}, []int{2, 4, 5}, []int{3, 2, 3, 5}, false, false, "", ""},
		{"shared y", []int{1, 4, 3, 6}, []int{6, 5}, []int{1, 4, 3, 5}, false, false, "", ""},
		{"rank1 x", []int{4}, []int{2, 4, 5}, []int{2, 5}, false, false, "", ""},
		{"rank1 y", []int{2, 3, 4}, []int{4}, []int{2, 3}, false, false, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := randn(7, numel(c.xs), 2)
			y := randn(8, numel(c.ys), 2)
			text := prog(fmt.Sprintf("%v x, %v y", mil.TensorOf(mil.FP16, c.xs...), mil.TensorOf(mil.FP16, c.ys...)),
				fmt.Sprintf(`            %v z = matmul(transpose_x = bool(%v), transpose_y = bool(%v), x = x, y = y)[name = string("z")];`,
					mil.TensorOf(mil.FP16, c.os...), c.tx, c.ty), "z")
			got := run(t, text, multi, nil, x, y)[0]
			want, tol := matmulRef(r16s(x), c.xs, c.tx, r16s(y), c.ys, c.ty)
			nearTol(t, "matmul", got, want, tol)
		})
	}
}

// nearTol checks each element within 1 ulp16 plus its own absolute tolerance.
func nearTol(t *testing.T, what string, got []float32, want, tol []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= ulp16(want[i])+tol[i]) {
			t.Fatalf("%s[%d] = %v, want %v (tol %.3g)", what, i, got[i], want[i], ulp16(want[i])+tol[i])
		}
	}
}

// matmulRef is numpy's matmul in float64, with the fp32-accumulation tolerance.
func matmulRef(x []float64, xs []int, tx bool, y []float64, ys []int, ty bool) (out, tol []float64) {
	// Normalise to [batch..., m, k] and [batch..., k, n] index functions.
	x1, y1 := len(xs) == 1, len(ys) == 1
	if x1 {
		xs = []int{1, xs[0]}
	}
	if y1 {
		ys = []int{ys[0], 1}
	}
	rx, ry := len(xs), len(ys)
	m, k := xs[rx-2], xs[rx-1]
	if tx {
		m, k = k, m
	}
	n := ys[ry-1]
	if ty {
		n = ys[ry-2]
	}
	bx, by := xs[:rx-2], ys[:ry-2]
	r := max(len(bx), len(by))
	bs := make([]int, r)
	for i := range bs {
		dx, dy := 1, 1
		if j := i - (r - len(bx)); j >= 0 {
			dx = bx[j]
		}
		if j := i - (r - len(by)); j >= 0 {
			dy = by[j]
		}
		bs[i] = max(dx, dy)
	}
	bidx := func(b int, shape []int) int { // flat batch index of operand
		coords := make([]int, r)
		for i := r - 1; i >= 0; i-- {
			coords[i] = b % bs[i]
			b /= bs[i]
		}
		off := 0
		for i, d := range shape {
			c := coords[i+r-len(shape)]
			if d == 1 {
				c = 0
			}
			off = off*d + c
		}
		return off
	}
	for b := range numel(bs) {
		xo, yo := bidx(b, bx)*xs[rx-2]*xs[rx-1], bidx(b, by)*ys[ry-2]*ys[ry-1]
		for i := range m {
			for j := range n {
				s, a := 0.0, 0.0
				for q := range k {
					xv := x[xo+i*k+q]
					if tx {
						xv = x[xo+q*m+i]
					}
					yv := y[yo+q*n+j]
					if ty {
						yv = y[yo+j*k+q]
					}
					s += xv * yv
					a += math.Abs(xv * yv)
				}
				out = append(out, r16(s))
				tol = append(tol, float64(k)*0x1p-22*a)
			}
		}
	}
	return out, tol
}

func TestConv(t *testing.T) {
	cases := []struct {
		name                 string
		n, cin, h, w         int
		cout, kh, kw, groups int
		strides, dils        [2]int
		padType              string
		pad                  [4]int
		bias                 bool
	}{
		{"1x1", 1, 6, 1, 9, 4, 1, 1, 1, [2]int{1, 1}, [2]int{1, 1}, "valid", [4]int{}, false},
		{"1x1 bias groups", 2, 6, 2, 5, 4, 1, 1, 2, [2]int{1, 1}, [2]int{1, 1}, "valid", [4]int{}, true},
		{"3x3 valid", 1, 3, 6, 7, 4, 3, 3, 1, [2]int{1, 1}, [2]int{1, 1}, "valid", [4]int{}, true},
		{"3x3 same stride2", 1, 3, 6, 7, 2, 3, 3, 1, [2]int{2, 2}, [2]int{1, 1}, "same", [4]int{}, false},
		{"2x2 same_lower", 1, 2, 5, 5, 3, 2, 2, 1, [2]int{1, 1}, [2]int{1, 1}, "same_lower", [4]int{}, false},
		{"2x2 same", 1, 2, 5, 5, 3, 2, 2, 1, [2]int{1, 1}, [2]int{1, 1}, "same", [4]int{}, false},
		{"custom dilated", 1, 4, 7, 8, 4, 3, 2, 2, [2]int{1, 2}, [2]int{2, 1}, "custom", [4]int{1, 2, 0, 3}, true},
		{"depthwise", 1, 4, 4, 4, 4, 3, 3, 4, [2]int{1, 1}, [2]int{1, 1}, "same", [4]int{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			outH, padT := convRefGeom(c.h, c.kh, c.strides[0], c.dils[0], c.padType, c.pad[0], c.pad[1])
			outW, padL := convRefGeom(c.w, c.kw, c.strides[1], c.dils[1], c.padType, c.pad[2], c.pad[3])
			cg := c.cin / c.groups
			wn := c.cout * cg * c.kh * c.kw
			x := randn(9, c.n*c.cin*c.h*c.w, 2)
			wt := randn(10, wn, 1)
			bias := randn(11, c.cout, 1)
			xs := mil.TensorOf(mil.FP16, c.n, c.cin, c.h, c.w)
			ws := mil.TensorOf(mil.FP16, c.cout, cg, c.kh, c.kw)
			os := mil.TensorOf(mil.FP16, c.n, c.cout, outH, outW)
			body := fmt.Sprintf(`            %v w = const()[name = string("w"), val = %s];
`, ws, literal(ws, wt))
			biasArg := ""
			if c.bias {
				bt := mil.TensorOf(mil.FP16, c.cout)
				body += fmt.Sprintf(`            %v b = const()[name = string("b"), val = %s];
`, bt, literal(bt, bias))
				biasArg = "bias = b, "
			}
			body += fmt.Sprintf(`            %v y = conv(%sdilations = tensor<int32, [2]>([%d, %d]), groups = int32(%d), pad = tensor<int32, [4]>([%d, %d, %d, %d]), pad_type = string("%s"), strides = tensor<int32, [2]>([%d, %d]), weight = w, x = x)[name = string("y")];`,
				os, biasArg, c.dils[0], c.dils[1], c.groups, c.pad[0], c.pad[1], c.pad[2], c.pad[3], c.padType, c.strides[0], c.strides[1])
			got := run(t, prog(fmt.Sprintf("%v x", xs), body, "y"), ane.Options{}, nil, x)[0]
			xr, wr, br := r16s(x), r16s(wt), r16s(bias)
			var want, tol []float64
			og := c.cout / c.groups
			for n := range c.n {
				for o := range c.cout {
					g := o / og
					for oy := range outH {
						for ox := range outW {
							s, a := 0.0, 0.0
							if c.bias {
								s, a = br[o], math.Abs(br[o])
							}
							for ci := range cg {
								for ky := range c.kh {
									for kx := range c.kw {
										iy := oy*c.strides[0] - padT + ky*c.dils[0]
										ix := ox*c.strides[1] - padL + kx*c.dils[1]
										if iy < 0 || iy >= c.h || ix < 0 || ix >= c.w {
											continue
										}
										v := xr[((n*c.cin+g*cg+ci)*c.h+iy)*c.w+ix] * wr[((o*cg+ci)*c.kh+ky)*c.kw+kx]
										s += v
										a += math.Abs(v)
									}
								}
							}
							want = append(want, r16(s))
							tol = append(tol, float64(cg*c.kh*c.kw+1)*0x1p-22*a)
						}
					}
				}
			}
			nearTol(t, "conv", got, want, tol)
		})
	}
}

// convRefGeom is the output size and leading pad of one axis (mil-spec §4.7).
func convRefGeom(d, k, s, dil int, padType string, before, after int) (out, padBefore int) {
	ke := (k-1)*dil + 1
	switch padType {
	case "valid":
		return (d-ke)/s + 1, 0
	case "custom":
		return (d+before+after-ke)/s + 1, before
	}
	out = (d + s - 1) / s
	total := max(0, (out-1)*s+ke-d)
	if padType == "same" {
		return out, total / 2
	}
	return out, total - total/2
}

// literal writes vals as a nested MIL literal of type t.
func literal(t mil.Type, vals []float32) string {
	f := make([]float64, len(vals))
	for i, v := range vals {
		f[i] = float64(v)
	}
	p := &mil.Program{Version: "1.3", Functions: []*mil.Function{{Name: "main", Opset: "ios18",
		Ops: []*mil.Operation{{Type: "const", Name: "c", Attrs: []mil.Attr{{Name: "val", Value: mil.FloatTensor(t.DType, t.Shape, f)}},
			Outputs: []*mil.Var{{Name: "c", Type: t}}}}}}}
	s := string(mil.Print(p))
	i := strings.Index(s, "val = ")
	j := strings.LastIndex(s, "];")
	return s[i+len("val = ") : j]
}

func TestConv1D(t *testing.T) {
	x := randn(12, 3*10, 2)
	w := randn(13, 2*3*3, 1)
	ws := mil.TensorOf(mil.FP16, 2, 3, 3)
	text := prog("tensor<fp16, [1, 3, 10]> x", fmt.Sprintf(`            %v w = const()[name = string("w"), val = %s];
            tensor<fp16, [1, 2, 10]> y = conv(pad_type = string("same"), weight = w, x = x)[name = string("y")];`, ws, literal(ws, w)), "y")
	got := run(t, text, ane.Options{}, nil, x)[0]
	xr, wr := r16s(x), r16s(w)
	var want, tol []float64
	for o := range 2 {
		for p := range 10 {
			s, a := 0.0, 0.0
			for c := range 3 {
				for k := range 3 {
					if i := p - 1 + k; i >= 0 && i < 10 {
						v := xr[c*10+i] * wr[(o*3+c)*3+k]
						s += v
						a += math.Abs(v)
					}
				}
			}
			want = append(want, r16(s))
			tol = append(tol, 9*0x1p-22*a)
		}
	}
	nearTol(t, "conv1d", got, want, tol)
}

// sdpaRef is softmax(q·kᵀ/√E)·v per batch, ignoring any mask.
func sdpaRef(q, k, v []float64, nb, L, S, E, EV int) []float64 {
	var out []float64
	for b := range nb {
		for i := range L {
			sc := make([]float64, S)
			mx := math.Inf(-1)
			for j := range S {
				s := 0.0
				for e := range E {
					s += q[(b*L+i)*E+e] * k[(b*S+j)*E+e]
				}
				sc[j] = s / math.Sqrt(float64(E))
				mx = math.Max(mx, sc[j])
			}
			sum := 0.0
			for j := range sc {
				sc[j] = math.Exp(sc[j] - mx)
				sum += sc[j]
			}
			for e := range EV {
				o := 0.0
				for j := range S {
					o += sc[j] / sum * v[(b*S+j)*EV+e]
				}
				out = append(out, r16(o))
			}
		}
	}
	return out
}

func TestSDPAIgnoresMask(t *testing.T) {
	const nb, L, S, E, EV = 2, 5, 6, 8, 4
	q, k, v := randn(20, nb*L*E, 1), randn(21, nb*S*E, 1), randn(22, nb*S*EV, 1)
	// A causal mask of -65504 would change the result completely, were it applied.
	mask := make([]float32, L*S)
	for i := range L {
		for j := range S {
			if j > i {
				mask[i*S+j] = -65504
			}
		}
	}
	text := prog(fmt.Sprintf("tensor<fp16, [1, %d, %d, %d]> q, tensor<fp16, [1, %d, %d, %d]> k, tensor<fp16, [1, %d, %d, %d]> v, tensor<fp16, [%d, %d]> m",
		nb, L, E, nb, S, E, nb, S, EV, L, S),
		fmt.Sprintf(`            tensor<fp16, [1, %d, %d, %d]> o = scaled_dot_product_attention(attn_mask = m, key = k, query = q, value = v)[name = string("o")];`, nb, L, EV), "o")
	got := run(t, text, multi, nil, q, k, v, mask)[0]
	want := sdpaRef(r16s(q), r16s(k), r16s(v), nb, L, S, E, EV)
	// Scores and probabilities are rounded to fp16 in between: a few ulps.
	near(t, "sdpa", got, want, 4, 2e-3)
}

func TestQuantizeDequantize(t *testing.T) {
	text := prog("tensor<fp16, [1, 2, 1, 4]> x", `            tensor<int8, [1, 2, 1, 4]> q = quantize(input = x, output_dtype = string("int8"), scale = fp16(0x1p-3))[name = string("q")];
            tensor<fp16, [1, 2, 1, 4]> y = dequantize(input = q, scale = fp16(0x1p-3))[name = string("y")];
            tensor<uint8, [1, 2, 1, 4]> u = quantize(axis = int32(1), input = x, output_dtype = string("uint8"), scale = tensor<fp16, [2]>([0x1p+0, 0x1p-1]), zero_point = tensor<uint8, [2]>([10, 128]))[name = string("u")];
            tensor<fp16, [1, 2, 1, 4]> z = dequantize(axis = int32(1), input = u, scale = tensor<fp16, [2]>([0x1p+0, 0x1p-1]), zero_point = tensor<uint8, [2]>([10, 128]))[name = string("z")];`, "y, z")
	x := []float32{0.0625, 0.1875, -0.0625, 100, -100, 1.3, -20.25, 2.5}
	out := run(t, text, multi, nil, x)
	var wy, wz []float64
	for i, v := range r16s(x) {
		q := math.Max(-128, math.Min(127, math.RoundToEven(v/0.125)))
		wy = append(wy, r16(q*0.125))
		s, zp := 1.0, 10.0
		if i >= 4 {
			s, zp = 0.5, 128
		}
		u := math.Max(0, math.Min(255, math.RoundToEven(v/s)+zp))
		wz = append(wz, r16(s*(u-zp)))
	}
	near(t, "int8", out[0], wy, 0, 0)
	near(t, "uint8", out[1], wz, 0, 0)
}

func TestConstexprAffineDequantizeBlob(t *testing.T) {
	var bw mil.BlobWriter
	q := []byte{0, 1, 2, 255, 128, 127} // int8: 0 1 2 -1 -128 127
	off, err := bw.Add(mil.Int8, q)
	if err != nil {
		t.Fatal(err)
	}
	w := mil.Weights{"@model_path/weights/q.bin": bw.Bytes()}
	text := prog("tensor<fp16, [1, 3]> x", fmt.Sprintf(`            tensor<int8, [2, 3]> qd = const()[name = string("qd"), val = tensor<int8, [2, 3]>(BLOBFILE(path = string("@model_path/weights/q.bin"), offset = uint64(%d)))];
            tensor<fp16, [2, 3]> wq = constexpr_affine_dequantize(axis = int32(0), quantized_data = qd, scale = tensor<fp16, [2]>([0x1p-2, 0x1p+1]), zero_point = tensor<int8, [2]>([1, -1]))[name = string("wq")];
            tensor<fp16, [1, 2]> y = matmul(transpose_x = bool(false), transpose_y = bool(true), x = x, y = wq)[name = string("y")];`, off), "y")
	got := run(t, text, ane.Options{}, w, []float32{1, 10, 100})[0]
	deq := []float64{0.25 * (0 - 1), 0.25 * (1 - 1), 0.25 * (2 - 1), 2 * (-1 + 1), 2 * (-128 + 1), 2 * (127 + 1)}
	want := []float64{r16(deq[0] + 10*deq[1] + 100*deq[2]), r16(deq[3] + 10*deq[4] + 100*deq[5])}
	near(t, "constexpr", got, want, 0, 0)
}

// Rows longer than the kernels' chunk, broadcast and strided operands.
func TestElementwiseLongRows(t *testing.T) {
	const n = 5000
	text := prog("tensor<fp16, [3, 5000]> x, tensor<fp16, [3, 1]> y", `            tensor<fp16, [5000, 3]> xt = transpose(perm = tensor<int32, [2]>([1, 0]), x = x)[name = string("xt")];
            tensor<fp16, [1, 3]> yt = transpose(perm = tensor<int32, [2]>([1, 0]), x = y)[name = string("yt")];
            tensor<fp16, [5000, 3]> z = sub(x = xt, y = yt)[name = string("z")];`, "z")
	x, y := randn(50, 3*n, 100), randn(51, 3, 100)
	got := run(t, text, multi, nil, x, y)[0]
	xr, yr := r16s(x), r16s(y)
	var want []float64
	for i := range n {
		for c := range 3 {
			want = append(want, r16(xr[c*n+i]-yr[c]))
		}
	}
	near(t, "z", got, want, 0, 0)
}

// The pre-1.3 dialect (program(1.0), ios16, scalars spelled tensor<T, []>),
// as M1/M2 kernels are written (ane-anchor §3.1), with reshape's iOS16
// positional 0.
func TestLegacyDialect(t *testing.T) {
	text := `program(1.0)
{
    func main<ios16>(tensor<fp16, [1, 4, 1, 6]> x) {
            tensor<int32, [4]> s = const()[name = tensor<string, []>("s"), val = tensor<int32, [4]>([0, 2, 2, 0])];
            tensor<fp16, [1, 2, 2, 6]> r = reshape(shape = s, x = x)[name = tensor<string, []>("r")];
            tensor<fp16, []> h = const()[name = tensor<string, []>("h"), val = tensor<fp16, []>(0x1p-1)];
            tensor<fp16, [1, 2, 2, 6]> y = mul(x = r, y = h)[name = tensor<string, []>("y")];
        } -> (y);
}
`
	x := randn(60, 24, 4)
	got := run(t, text, ane.Options{}, nil, x)[0]
	want := r16s(x)
	for i := range want {
		want[i] = r16(want[i] / 2)
	}
	near(t, "legacy", got, want, 0, 0)
}
