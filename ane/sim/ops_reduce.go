package sim

import (
	"math"
	"slices"

	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

func init() {
	ops["reduce_sum"] = func(p *planner) error { return p.planReduce(redSum) }
	ops["reduce_mean"] = func(p *planner) error { return p.planReduce(redMean) }
	ops["reduce_max"] = func(p *planner) error { return p.planReduce(redMax) }
	ops["softmax"] = planSoftmax
}

type redKind int

const (
	redSum redKind = iota
	redMean
	redMax
)

func (p *planner) planReduce(kind redKind) error {
	rd := p.reader()
	x := rd.need("x")
	if rd.err != nil {
		return rd.err
	}
	dt := x.typ.DType
	if !isFloat16or32(dt) && dt != mil.Int32 {
		return invalid("x must be fp16, fp32 or int32, found %v", x.typ)
	}
	r := len(x.typ.Shape)
	axes, keep := rd.paramInts("axes", nil), rd.paramBool("keep_dims", false)
	if rd.err != nil {
		return rd.err
	}
	red := make([]bool, r)
	if axes == nil {
		for i := range red {
			red[i] = true
		}
	}
	for _, a := range axes {
		i, err := normAxis(a, r)
		if err != nil {
			return err
		}
		red[i] = true
	}
	xv, err := p.data(x)
	if err != nil {
		return err
	}
	kept := slices.Clone([]int(x.typ.Shape))
	var declared []int
	count := 1
	for i, d := range kept {
		if red[i] {
			kept[i] = 1
			count *= d
			if keep {
				declared = append(declared, 1)
			}
		} else {
			declared = append(declared, d)
		}
	}
	ob, err := p.newBuf(numel(kept))
	if err != nil {
		return err
	}
	acc := denseView(ob, kept)
	ast := slices.Clone(acc.strides)
	for i := range ast {
		if red[i] {
			ast[i] = 0
		}
	}
	l := newLoop(xv.shape, ast, xv.strides)
	n := l.inner
	as, xs := l.istr[0], l.istr[1]
	init := float32(0)
	if kind == redMax {
		init = float32(math.Inf(-1))
	}
	scale := float32(1)
	if kind == redMean && count > 0 {
		scale = 1 / float32(count)
	}
	isFloat := dt.IsFloat()
	base := []int{0, xv.off}
	run := func() {
		a, s := ob.data, xv.buf.data
		for i := range a {
			a[i] = init
		}
		l.each(base, func(o []int) {
			ao, xo := o[0], o[1]
			switch {
			case as == 0:
				v := a[ao]
				switch kind {
				case redSum, redMean:
					acc := float32(0)
					for i, j := 0, xo; i < n; i, j = i+1, j+xs {
						acc += s[j]
					}
					v += acc
				case redMax:
					for i, j := 0, xo; i < n; i, j = i+1, j+xs {
						v = max(v, s[j])
					}
				}
				a[ao] = v
			case as == 1 && xs == 1:
				ar, sr := a[ao:ao+n], s[xo:xo+n]
				switch kind {
				case redSum, redMean:
					for i := range ar {
						ar[i] += sr[i]
					}
				case redMax:
					for i := range ar {
						ar[i] = max(ar[i], sr[i])
					}
				}
			case kind == redMax:
				for i, j, k := 0, ao, xo; i < n; i, j, k = i+1, j+as, k+xs {
					a[j] = max(a[j], s[k])
				}
			default:
				for i, j, k := 0, ao, xo; i < n; i, j, k = i+1, j+as, k+xs {
					a[j] += s[k]
				}
			}
		})
		if kind == redMean {
			for i := range a {
				a[i] *= scale
				if !isFloat {
					a[i] = float32(math.Trunc(float64(a[i])))
				}
			}
		}
		if isFloat {
			fp16.RoundFloat32s(a, a)
		}
	}
	p.emit(run, float64(numel(x.typ.Shape)), []view{xv}, ob)
	out, _ := reshapeView(acc, declared)
	return p.out(0, out, dt)
}

// softmaxRows computes softmax over each of rows×n contiguous rows of src
// into dst, in float32, then rounds to fp16.
func softmaxRows(dst, src []float32, rows, n int) {
	parRun(rows, max(1, softmaxGrain/max(n, 1)), parSoftmax, nil, dst, src, n)
}

// softmaxGrain is the least number of elements worth a goroutine: softmax is
// bound by exp, not memory.
const softmaxGrain = 1 << 14

func softmaxRange(dst, src []float32, lo, hi, n int) {
	for r := lo; r < hi; r++ {
		x := src[r*n : (r+1)*n]
		d := dst[r*n : (r+1)*n]
		mx := float32(math.Inf(-1))
		for _, v := range x {
			mx = max(mx, v)
		}
		sum := float32(0)
		for i, v := range x {
			e := exp32(v - mx)
			d[i] = e
			sum += e
		}
		for i := range d {
			d[i] /= sum
		}
		fp16.RoundFloat32s(d, d)
	}
}

// exp32 is eˣ in float32 precision (through float64; the result is rounded
// to fp16 later, so its last bits never matter).
func exp32(x float32) float32 { return float32(fastExp(float64(x))) }

func planSoftmax(p *planner) error {
	x, err := p.needFloat("x")
	if err != nil {
		return err
	}
	shape := x.typ.Shape
	axis, err := p.paramInt("axis", -1, false)
	if err != nil {
		return err
	}
	if axis, err = normAxis(axis, len(shape)); err != nil {
		return err
	}
	xv, err := p.denseOf(x)
	if err != nil {
		return err
	}
	outer, n, inner := numel(shape[:axis]), shape[axis], numel(shape[axis+1:])
	ob, err := p.newBuf(numel(shape))
	if err != nil {
		return err
	}
	var run func()
	if inner == 1 {
		run = func() { softmaxRows(ob.data, xv.slice(), outer, n) }
	} else {
		// Vectorised along the contiguous inner axis: per outer block, a
		// running max and sum over the n rows of length inner.
		mx := make([]float32, inner)
		sum := make([]float32, inner)
		run = func() {
			src, dst := xv.slice(), ob.data
			for o := range outer {
				blk := src[o*n*inner : (o+1)*n*inner]
				out := dst[o*n*inner : (o+1)*n*inner]
				for i := range mx {
					mx[i] = float32(math.Inf(-1))
				}
				clear(sum)
				for a := range n {
					row := blk[a*inner : (a+1)*inner]
					for i, v := range row {
						mx[i] = max(mx[i], v)
					}
				}
				for a := range n {
					row := blk[a*inner : (a+1)*inner]
					orow := out[a*inner : (a+1)*inner]
					for i, v := range row {
						e := exp32(v - mx[i])
						orow[i] = e
						sum[i] += e
					}
				}
				for a := range n {
					orow := out[a*inner : (a+1)*inner]
					for i := range orow {
						orow[i] /= sum[i]
					}
				}
			}
			fp16.RoundFloat32s(dst, dst)
		}
	}
	p.emit(run, 5*float64(numel(shape)), []view{xv}, ob)
	return p.out(0, denseView(ob, shape), x.typ.DType)
}
