package fp16

import (
	"math/rand/v2"
	"testing"
)

// The brief's size is 1Mi elements (4 MiB of float32 + 2 MiB of binary16,
// out of L2 on current x86 and Apple cores); 16Ki elements (96 KiB) shows
// the in-cache throughput.
var benchSizes = []struct {
	name string
	n    int
}{{"1Mi", 1 << 20}, {"16Ki", 1 << 14}}

// benchWeights returns n float32 values distributed like transformer
// weights (normal, std 0.02).
func benchWeights(n int) []float32 {
	rng := rand.New(rand.NewPCG(7, 8))
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * 0.02)
	}
	return s
}

func report(b *testing.B, n, bytesPerElem int) {
	b.SetBytes(int64(n * bytesPerElem))
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
}

func BenchmarkFromFloat32s(b *testing.B) {
	for _, sz := range benchSizes {
		src := benchWeights(sz.n)
		dst := make([]Bits, sz.n)
		for _, k := range allKernels() {
			b.Run(kname(k)+"/"+sz.name, func(b *testing.B) {
				for range b.N {
					fromFloat32s(k, dst, src)
				}
				report(b, sz.n, 4+2)
			})
		}
	}
}

func BenchmarkToFloat32s(b *testing.B) {
	for _, sz := range benchSizes {
		src := make([]Bits, sz.n)
		fromFloat32sGo(src, benchWeights(sz.n))
		dst := make([]float32, sz.n)
		for _, k := range allKernels() {
			b.Run(kname(k)+"/"+sz.name, func(b *testing.B) {
				toFloat32s(k, dst, src) // build the table outside the timing
				b.ResetTimer()
				for range b.N {
					toFloat32s(k, dst, src)
				}
				report(b, sz.n, 2+4)
			})
		}
	}
}

func BenchmarkRoundFloat32s(b *testing.B) {
	for _, sz := range benchSizes {
		src := benchWeights(sz.n)
		dst := make([]float32, sz.n)
		for _, k := range allKernels() {
			b.Run(kname(k)+"/"+sz.name, func(b *testing.B) {
				for range b.N {
					roundFloat32s(k, dst, src)
				}
				report(b, sz.n, 4+4)
			})
		}
	}
}

// The scalar functions, on the same data, for comparison.

var sinkBits Bits
var sinkF32 float32

func BenchmarkFromFloat32(b *testing.B) {
	src := benchWeights(4096)
	for range b.N {
		var acc Bits
		for _, f := range src {
			acc ^= FromFloat32(f)
		}
		sinkBits = acc
	}
	report(b, len(src), 4+2)
}

func BenchmarkFloat32(b *testing.B) {
	src := make([]Bits, 4096)
	fromFloat32sGo(src, benchWeights(len(src)))
	for range b.N {
		var acc float32
		for _, h := range src {
			acc += h.Float32()
		}
		sinkF32 = acc
	}
	report(b, len(src), 2+4)
}
