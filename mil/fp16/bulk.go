package fp16

import (
	"math"
	"sync"
)

// kernels is a set of SIMD conversion kernels. Each converts the longest
// prefix of src whose length is a multiple of the kernel's block size into
// dst (len(dst) >= len(src) is guaranteed by the caller) and returns that
// length; the rest is converted in Go.
type kernels struct {
	name  string
	from  func(dst []Bits, src []float32) int
	to    func(dst []float32, src []Bits) int
	round func(dst, src []float32) int
}

// accel is the kernel set the slice functions use, nil for pure Go. It is
// the first (best) entry of availableKernels, the kernel sets this CPU
// supports. The tests swap it to exercise every path.
var accel = firstKernels()

func firstKernels() *kernels {
	if len(availableKernels) == 0 {
		return nil
	}
	return availableKernels[0]
}

// Accel names the conversion path the slice functions use: "avx512",
// "f16c", "neon" or "purego".
func Accel() string {
	if accel == nil {
		return "purego"
	}
	return accel.name
}

// FromFloat32s converts src to binary16 into dst[:len(src)], with the same
// rounding as [FromFloat32]. It panics if len(dst) < len(src). dst and src
// must not overlap.
func FromFloat32s(dst []Bits, src []float32) {
	if len(dst) < len(src) {
		panic("fp16: FromFloat32s: len(dst) < len(src)")
	}
	fromFloat32s(accel, dst[:len(src)], src)
}

// ToFloat32s converts src to float32 into dst[:len(src)], exactly, like
// [Bits.Float32]. It panics if len(dst) < len(src). dst and src must not
// overlap.
func ToFloat32s(dst []float32, src []Bits) {
	if len(dst) < len(src) {
		panic("fp16: ToFloat32s: len(dst) < len(src)")
	}
	toFloat32s(accel, dst[:len(src)], src)
}

// RoundFloat32s sets dst[i] = Round(src[i]) for every element of src, i.e.
// rounds each value to the nearest binary16 value, keeping it in float32.
// It panics if len(dst) < len(src). dst and src may be the same slice
// (in-place rounding) but must not otherwise overlap.
func RoundFloat32s(dst, src []float32) {
	if len(dst) < len(src) {
		panic("fp16: RoundFloat32s: len(dst) < len(src)")
	}
	roundFloat32s(accel, dst[:len(src)], src)
}

// The following take len(dst) == len(src).

func fromFloat32s(k *kernels, dst []Bits, src []float32) {
	i := 0
	if k != nil {
		i = k.from(dst, src)
	}
	fromFloat32sGo(dst[i:], src[i:])
}

func toFloat32s(k *kernels, dst []float32, src []Bits) {
	i := 0
	if k != nil {
		i = k.to(dst, src)
	}
	toFloat32sGo(dst[i:], src[i:])
}

func roundFloat32s(k *kernels, dst, src []float32) {
	i := 0
	if k != nil {
		i = k.round(dst, src)
	}
	roundFloat32sGo(dst[i:], src[i:])
}

// fromFloat32sGo and roundFloat32sGo are FromFloat32 and Round with their
// (inlined) fast paths written out in the loop, saving a call per element.

func fromFloat32sGo(dst []Bits, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		if b := math.Float32bits(f); inNormalRange(b) {
			dst[i] = fromFloat32Normal(b)
		} else {
			dst[i] = fromFloat32Slow(b)
		}
	}
}

func roundFloat32sGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		if b := math.Float32bits(f); roundsToNormal(b) {
			dst[i] = math.Float32frombits(roundNormal(b))
		} else {
			dst[i] = fromFloat32Slow(b).Float32()
		}
	}
}

// toFloat32sGo uses a 64Ki-entry table (256 KiB) for long slices. The table
// is built on first use, so programs that never take this path do not pay
// for it.
func toFloat32sGo(dst []float32, src []Bits) {
	dst = dst[:len(src)]
	if len(src) < tableThreshold {
		for i, h := range src {
			dst[i] = h.Float32()
		}
		return
	}
	t := f32Table()
	for i, h := range src {
		dst[i] = t[h]
	}
}

const tableThreshold = 4096

var f32Table = sync.OnceValue(func() *[1 << 16]float32 {
	t := new([1 << 16]float32)
	for i := range t {
		t[i] = Bits(i).Float32()
	}
	return t
})
