package sim

import (
	"slices"
	"testing"
)

// elems lists a view's buffer offsets in row-major order of its shape.
func elems(v view) []int {
	var out []int
	idx := make([]int, len(v.shape))
	for range numel(v.shape) {
		off := v.off
		for i, x := range idx {
			off += x * v.strides[i]
		}
		out = append(out, off)
		for a := len(idx) - 1; a >= 0; a-- {
			idx[a]++
			if idx[a] < v.shape[a] {
				break
			}
			idx[a] = 0
		}
	}
	return out
}

// reshapeView must either refuse or produce a view visiting the same
// elements in the same order; and it must not refuse the cases that matter
// (dense views, and splitting or merging axes that are contiguous together).
func TestReshapeViewProperty(t *testing.T) {
	r := rng(5)
	pick := func(n int) int { return int(r.next() * float64(n)) }
	for iter := range 3000 {
		rank := 1 + pick(4)
		shape := make([]int, rank)
		for i := range shape {
			shape[i] = 1 + pick(4)
		}
		base := denseView(&buffer{n: numel(shape)}, shape)
		// A random permutation and an optional slice on one axis.
		perm := make([]int, rank)
		for i := range perm {
			perm[i] = i
		}
		for i := rank - 1; i > 0; i-- {
			j := pick(i + 1)
			perm[i], perm[j] = perm[j], perm[i]
		}
		v := view{buf: base.buf}
		for _, a := range perm {
			v.shape = append(v.shape, base.shape[a])
			v.strides = append(v.strides, base.strides[a])
		}
		if ax := pick(rank); v.shape[ax] > 1 && pick(2) == 0 {
			v.off += v.strides[ax]
			v.shape[ax]--
		}
		// A random target shape with the same element count: factor n.
		n := numel(v.shape)
		var target []int
		for m := n; m > 1; {
			f := 2
			for m%f != 0 {
				f++
			}
			k := f
			for m%(k*f) == 0 && pick(2) == 0 {
				k *= f
			}
			target = append(target, k)
			m /= k
		}
		for pick(3) == 0 {
			target = slices.Insert(target, pick(len(target)+1), 1)
		}
		if len(target) == 0 {
			target = []int{1}
		}
		got, ok := reshapeView(v, target)
		if v.dense() && !ok {
			t.Fatalf("iter %d: dense view %v refused", iter, v)
		}
		if ok && !slices.Equal(elems(got), elems(v)) {
			t.Fatalf("iter %d: reshape of %+v to %v gives %+v: element order differs", iter, v, target, got)
		}
	}
	// The dynamic-matmul case: a column slice of [C, S+W], reshaped to add unit axes.
	v := view{off: 4, shape: []int{1, 3, 1, 2}, strides: []int{30, 10, 10, 1}}
	got, ok := reshapeView(v, []int{1, 1, 3, 2})
	if !ok || !slices.Equal(elems(got), elems(v)) {
		t.Errorf("column slice reshape: ok=%v %+v", ok, got)
	}
}

func TestCopyLoopTranspose(t *testing.T) {
	// A large transposed copy takes the tiled path; check it against elems.
	for _, sh := range [][]int{{3, 40, 50}, {70, 33}, {2, 3, 64, 17}} {
		b := &buffer{n: numel(sh), data: make([]float32, numel(sh))}
		for i := range b.data {
			b.data[i] = float32(i)
		}
		src := denseView(b, sh)
		r := len(sh)
		src.shape[r-1], src.shape[r-2] = src.shape[r-2], src.shape[r-1]
		src.strides[r-1], src.strides[r-2] = src.strides[r-2], src.strides[r-1]
		db := &buffer{n: numel(sh), data: make([]float32, numel(sh))}
		dst := denseView(db, src.shape)
		copyLoop(dst, src)()
		for i, off := range elems(src) {
			if db.data[i] != float32(off) {
				t.Fatalf("shape %v: element %d = %v, want %v", sh, i, db.data[i], off)
			}
		}
	}
}
