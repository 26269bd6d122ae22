package anetest

import (
	"math"
	"slices"
	"testing"

	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

// The reference is only worth what its own tests show: here it is checked
// against hand-computed values (from mil-spec §4's examples where it has
// them), and its fp16 arithmetic against package fp16's.

func TestRound16MatchesFP16(t *testing.T) {
	for h := range 1 << 16 {
		b := fp16.Bits(h)
		if b.IsNaN() {
			continue
		}
		x := b.Float64()
		if got := half16(uint16(h)); got != x && !(got == 0 && x == 0) {
			t.Fatalf("half16(%#04x) = %v, fp16 says %v", h, got, x)
		}
		if got := round16(x); got != x {
			t.Fatalf("round16(%v) = %v, want itself", x, got)
		}
		// The midpoint to the next value up ties to the even neighbour,
		// and just off it rounds to the nearer.
		next := (b + 1).Float64()
		if b.Signbit() || math.IsInf(x, 0) || math.IsNaN(next) {
			continue
		}
		mid := x + (next-x)/2
		for _, y := range []float64{mid, math.Nextafter(mid, 0), math.Nextafter(mid, math.Inf(1))} {
			if got, want := round16(y), fp16.FromFloat64(y).Float64(); got != want {
				t.Fatalf("round16(%v) = %v, fp16 rounds to %v", y, got, want)
			}
		}
	}
	for _, c := range []struct{ x, want float64 }{
		{65504, 65504}, {65519.99, 65504}, {65520, math.Inf(1)}, {-90000, math.Inf(-1)},
		{1e-8, 0}, {3e-8, 5.960464477539063e-08}, {1e-12, 0},
	} {
		if got := round16(c.x); got != c.want {
			t.Errorf("round16(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

// refEval builds a one-input program with build and runs the reference on
// vals.
func refEval(t *testing.T, target mil.Target, shape []int, vals []float64, build func(b *mil.Builder, x *mil.Var) *mil.Var) *tensor {
	t.Helper()
	b := mil.NewBuilder(target)
	x := b.Input("x", mil.TensorOf(mil.FP16, shape...))
	b.Output(build(b, x))
	p, w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	in := newTensor(mil.FP16, shape)
	for i, v := range vals {
		in.v[i] = round16(v)
	}
	out, err := reference(p.Main(), w, []*tensor{in})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func arange(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i)
	}
	return v
}

func wantValues(t *testing.T, what string, got *tensor, shape []int, want []float64) {
	t.Helper()
	if !slices.Equal(got.shape, shape) {
		t.Errorf("%s: shape %v, want %v", what, got.shape, shape)
		return
	}
	for i := range want {
		if math.Abs(got.v[i]-want[i]) > 1e-3*math.Max(1, math.Abs(want[i])) {
			t.Errorf("%s: %v, want %v", what, got.v, want)
			return
		}
	}
}

func TestReferenceConvPadding(t *testing.T) {
	// x = [1, 2, 3, 4], kernel [1, 10]: "same" pads one zero at the end,
	// "same_lower" at the start (mil-spec §4.7).
	conv := func(pad string) func(b *mil.Builder, x *mil.Var) *mil.Var {
		return func(b *mil.Builder, x *mil.Var) *mil.Var {
			w := b.ConstFP16("w", mil.Shape{1, 1, 2}, []float32{1, 10})
			return b.Conv("y", x, w, mil.ConvOpts{PadType: pad})
		}
	}
	x := []float64{1, 2, 3, 4}
	wantValues(t, "same", refEval(t, mil.IOS18, []int{1, 1, 4}, x, conv(mil.PadSame)), []int{1, 1, 4}, []float64{21, 32, 43, 4})
	wantValues(t, "same_lower", refEval(t, mil.IOS18, []int{1, 1, 4}, x, conv(mil.PadSameLower)), []int{1, 1, 4}, []float64{10, 21, 32, 43})
	wantValues(t, "valid", refEval(t, mil.IOS18, []int{1, 1, 4}, x, conv(mil.PadValid)), []int{1, 1, 3}, []float64{21, 32, 43})

	// A 3×3 box filter over 1…9 with same padding: corners see 4 values.
	box := refEval(t, mil.IOS18, []int{1, 1, 3, 3}, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}, func(b *mil.Builder, x *mil.Var) *mil.Var {
		w := b.ConstFP16("w", mil.Shape{1, 1, 3, 3}, []float32{1, 1, 1, 1, 1, 1, 1, 1, 1})
		return b.Conv("y", x, w, mil.ConvOpts{PadType: mil.PadSame, Bias: b.ConstFP16("bias", mil.Shape{1}, []float32{100})})
	})
	wantValues(t, "box", box, []int{1, 1, 3, 3}, []float64{112, 121, 116, 127, 145, 133, 124, 139, 128})

	// Depthwise, stride 2, dilation 2 on x = 0…7 per channel, channel c
	// scaled by c+1: y[c][j] = (c+1)·(x[2j] + x[2j+2]).
	dw := refEval(t, mil.IOS18, []int{1, 2, 8}, append(arange(8), arange(8)...), func(b *mil.Builder, x *mil.Var) *mil.Var {
		w := b.ConstFP16("w", mil.Shape{2, 1, 2}, []float32{1, 1, 2, 2})
		return b.Conv("y", x, w, mil.ConvOpts{Groups: 2, Strides: []int{2}, Dilations: []int{2}})
	})
	wantValues(t, "depthwise", dw, []int{1, 2, 3}, []float64{2, 6, 10, 4, 12, 20})
}

func TestReferenceSlices(t *testing.T) {
	x := arange(10)
	cases := []struct {
		name       string
		begin, end []int
		opt        mil.SliceOpts
		shape      []int
		want       []float64
	}{
		{"8:2:-3", []int{8}, []int{2}, mil.SliceOpts{Stride: []int{-3}}, []int{2}, []float64{8, 5}},
		{"::-4", []int{0}, []int{0}, mil.SliceOpts{Stride: []int{-4}, BeginMask: []bool{true}, EndMask: []bool{true}}, []int{3}, []float64{9, 5, 1}},
		{"-3:", []int{-3}, []int{0}, mil.SliceOpts{EndMask: []bool{true}}, []int{3}, []float64{7, 8, 9}},
		{"-100:3", []int{-100}, []int{3}, mil.SliceOpts{}, []int{3}, []float64{0, 1, 2}},
		{"1:100:4", []int{1}, []int{100}, mil.SliceOpts{Stride: []int{4}}, []int{3}, []float64{1, 5, 9}},
		{"[-2]", []int{-2}, []int{0}, mil.SliceOpts{SqueezeMask: []bool{true}}, []int{}, []float64{8}},
	}
	for _, c := range cases {
		got := refEval(t, mil.IOS18, []int{10}, x, func(b *mil.Builder, x *mil.Var) *mil.Var {
			return b.SliceByIndex("y", x, c.begin, c.end, c.opt)
		})
		wantValues(t, c.name, got, c.shape, c.want)
	}
	got := refEval(t, mil.IOS18, []int{2, 5}, x, func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.SliceBySize("y", x, []int{-1, 1}, []int{1, -1})
	})
	wantValues(t, "slice_by_size", got, []int{1, 4}, []float64{6, 7, 8, 9})
}

func TestReferenceShapes(t *testing.T) {
	// mil-spec §4.9: from iOS17, [1, 0, -1, 0] on [2, 50] is [1, 1, 2, 50].
	r := refEval(t, mil.IOS18, []int{2, 50}, arange(100), func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.Reshape("y", x, 1, 0, -1, 0)
	})
	if !slices.Equal(r.shape, []int{1, 1, 2, 50}) {
		t.Errorf("iOS18 reshape: shape %v, want [1 1 2 50]", r.shape)
	}
	r = refEval(t, mil.IOS16, []int{2, 50}, arange(100), func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.Reshape("y", x, 0, -1)
	})
	if !slices.Equal(r.shape, []int{2, 50}) {
		t.Errorf("iOS16 reshape: shape %v, want [2 50]", r.shape)
	}

	// Interleave: two (3, 2) on axis 0 give rows a0, b0, a1, b1, a2, b2.
	r = refEval(t, mil.IOS18, []int{2, 3, 2}, arange(12), func(b *mil.Builder, x *mil.Var) *mil.Var {
		s := b.SplitN("s", x, 0, 2)
		a := b.Reshape("a", s[0], 3, 2)
		c := b.Reshape("c", s[1], 3, 2)
		return b.Concat("y", 0, true, a, c)
	})
	wantValues(t, "interleave", r, []int{6, 2}, []float64{0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11})

	r = refEval(t, mil.IOS18, []int{2, 3}, arange(6), func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.Transpose("y", x, -1, 0)
	})
	wantValues(t, "transpose", r, []int{3, 2}, []float64{0, 3, 1, 4, 2, 5})

	r = refEval(t, mil.IOS18, []int{2, 6}, arange(12), func(b *mil.Builder, x *mil.Var) *mil.Var {
		s := b.Split("s", x, -1, []int{1, 3, 2})
		return b.Concat("y", 1, false, s[2], s[0])
	})
	wantValues(t, "split", r, []int{2, 3}, []float64{4, 5, 0, 10, 11, 6})

	r = refEval(t, mil.IOS18, []int{3, 1, 2}, arange(6), func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.ExpandDims("y", b.Squeeze("s", x), 0, -1)
	})
	if !slices.Equal(r.shape, []int{1, 3, 2, 1}) {
		t.Errorf("squeeze/expand_dims: shape %v, want [1 3 2 1]", r.shape)
	}
}

func TestReferenceArithmetic(t *testing.T) {
	r := refEval(t, mil.IOS18, []int{1, 2}, []float64{1, 2}, func(b *mil.Builder, x *mil.Var) *mil.Var {
		y := b.ConstFP16("m", mil.Shape{2, 2}, []float32{1, 2, 3, 4})
		return b.MatMul("y", b.Reshape("v", x, 2), y, false, false)
	})
	wantValues(t, "vector·matrix", r, []int{2}, []float64{7, 10})

	r = refEval(t, mil.IOS18, []int{2}, []float64{0, math.Log(3)}, func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.Softmax("y", x, 0)
	})
	wantValues(t, "softmax", r, []int{2}, []float64{0.25, 0.75})

	r = refEval(t, mil.IOS18, []int{2, 3}, arange(6), func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.ReduceMean("y", x, []int{-1}, true)
	})
	wantValues(t, "reduce_mean", r, []int{2, 1}, []float64{1, 4})

	r = refEval(t, mil.IOS18, []int{6}, []float64{-2.5, -0.5, 0.5, 1.5, 2.5, 300}, func(b *mil.Builder, x *mil.Var) *mil.Var {
		q := mil.QuantParams{Scale: mil.FloatScalar(mil.FP16, 1)}
		return b.Dequantize("y", b.Quantize("q", x, mil.Int8, q), q)
	})
	wantValues(t, "quantize ties to even and clips", r, []int{6}, []float64{-2, 0, 0, 2, 2, 127})

	r = refEval(t, mil.IOS18, []int{4}, []float64{-2.5, 2.75, 300, 256}, func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.Concat("y", 0, false, b.Cast("c", b.Cast("i", x, mil.Int32), mil.FP16), b.Mul("m", x, x))
	})
	wantValues(t, "cast and overflow", r, []int{8}, []float64{-2, 2, 300, 256, 6.25, 7.5625, math.Inf(1), math.Inf(1)})

	// SDPA ignores its mask: a mask that would hide every key but the first
	// changes nothing.
	sdpa := func(masked bool) *tensor {
		return refEval(t, mil.IOS18, []int{3, 1, 2}, []float64{1, 0, 0.5, 0.5, -1, 2}, func(b *mil.Builder, x *mil.Var) *mil.Var {
			s := b.SplitN("s", x, 0, 3)
			q := b.Reshape("q", s[0], 1, 1, 2)
			k := b.Reshape("k", b.Concat("kk", 0, false, s[1], s[2]), 1, 2, 2)
			v := b.ConstFP16("v", mil.Shape{1, 2, 1}, []float32{10, 20})
			var m *mil.Var
			if masked {
				m = b.ConstFP16("m", mil.Shape{1, 2}, []float32{0, -65504})
			}
			return b.SDPA("y", q, k, v, m)
		})
	}
	// scores q·k/√2: (0.5/√2, −1/√2); softmax weights; y = 10·p0 + 20·p1.
	s0, s1 := 0.5/math.Sqrt2, -1/math.Sqrt2
	p0 := math.Exp(s0) / (math.Exp(s0) + math.Exp(s1))
	want := 10*p0 + 20*(1-p0)
	wantValues(t, "sdpa", sdpa(false), []int{1, 1, 1}, []float64{want})
	wantValues(t, "sdpa with mask", sdpa(true), []int{1, 1, 1}, []float64{want})
}

func TestReferenceBounds(t *testing.T) {
	// An exact op has no error; a rounded one a few ulps; cancellation keeps
	// the absolute bound of its operands.
	r := refEval(t, mil.IOS18, []int{2}, []float64{1, 3}, func(b *mil.Builder, x *mil.Var) *mil.Var {
		return b.Relu("y", x)
	})
	if r.e[0] != 0 || r.e[1] != 0 {
		t.Errorf("relu of exact inputs has bound %v, want 0", r.e)
	}
	r = refEval(t, mil.IOS18, []int{2}, []float64{1.1, 3.3}, func(b *mil.Builder, x *mil.Var) *mil.Var {
		e := b.Exp("e", x)
		return b.Sub("y", e, e)
	})
	if r.v[0] != 0 || r.e[0] < 2*unit*math.Exp(1.1) || r.e[0] > 8*unit*math.Exp(1.1) {
		t.Errorf("exp(x) − exp(x) = %v ± %v; want 0 ± a few ulps of exp(1.1)", r.v[0], r.e[0])
	}
	// Comparisons too close to call are marked uncertain, and select then
	// allows both branches.
	r = refEval(t, mil.IOS18, []int{2}, []float64{1, 1}, func(b *mil.Builder, x *mil.Var) *mil.Var {
		e := b.Exp("e", x)
		c := b.Greater("c", e, b.ConstScalar("k", mil.FP16, math.E))
		return b.Select("y", c, b.ConstScalar("one", mil.FP16, 1), b.ConstScalar("zero", mil.FP16, 0))
	})
	if r.e[0] < 1 {
		t.Errorf("select on exp(1) > e: bound %v, want ≥ 1 (either branch)", r.e[0])
	}
}

func TestCompare(t *testing.T) {
	inf := math.Inf(1)
	nan := math.NaN()
	cases := []struct {
		got, want, bound float64
		ok               bool
	}{
		{1.001, 1, 0.01, true},
		{1.1, 1, 0.01, false},
		{inf, inf, 0, true},
		{65504, inf, 0, false},
		{-inf, inf, 0, false},
		{nan, nan, 0, true},
		{1, nan, 0, false},
		{nan, 1, 1, false},
		{inf, 65500, 10, true},     // may overflow: 65500 + 10 reaches the maximum
		{inf, 60000, 10, false},    // may not
		{-inf, 65500, 10, false},   // wrong sign
		{1, 1, math.Inf(1), false}, // an unbounded reference is a test bug
	}
	for _, c := range cases {
		bad := compare([]float64{c.got}, []float64{c.want}, []float64{c.bound}, 1)
		if (len(bad) == 0) != c.ok {
			t.Errorf("compare(got %v, want %v ± %v): ok = %v, want %v", c.got, c.want, c.bound, len(bad) == 0, c.ok)
		}
	}
}

// TestCoverage checks that the cases use every op the mil builder offers,
// and that every case builds and has a finite bound wherever its reference
// is finite, so a badly designed case fails here, without a device.
func TestCoverage(t *testing.T) {
	used := map[string]bool{}
	for _, c := range opCases() {
		p, err := c.kernel()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for _, op := range p.prog.Main().Ops {
			used[op.Type] = true
		}
		f := p.prog.Main()
		ref, err := reference(f, p.weights, []*tensor{inputTensor(p.input, f.Inputs[0].Type.Shape)})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for i, v := range ref[0].v {
			if e := ref[0].e[i]; !math.IsInf(v, 0) && !math.IsNaN(v) && (math.IsInf(e, 0) || math.IsNaN(e)) {
				t.Errorf("%s: output %d = %v has bound %v", c.name, i, v, e)
				break
			}
		}
	}
	for _, op := range mil.OpTypes() {
		if !used[op] {
			t.Errorf("no case uses %s", op)
		}
	}
}
