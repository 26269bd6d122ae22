package fp16

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// allKernels returns the kernel sets to test: every SIMD set this CPU
// supports, and nil for the pure-Go path.
func allKernels() []*kernels {
	return append(append([]*kernels(nil), availableKernels...), nil)
}

func kname(k *kernels) string {
	if k == nil {
		return "purego"
	}
	return k.name
}

// wantNaN32 is the documented NaN result of FromFloat32 for a NaN with
// float32 bits b: sign, quiet bit, top 10 fraction bits.
func wantNaN32(b uint32) Bits {
	return Bits(b>>16)&0x8000 | 0x7e00 | Bits(b>>13)&0x3ff
}

func TestAccel(t *testing.T) {
	t.Logf("GOARCH=%s accel=%s available=%d", runtime.GOARCH, Accel(), len(availableKernels))
	if accel != nil && Accel() != availableKernels[0].name {
		t.Errorf("Accel() = %q, want %q", Accel(), availableKernels[0].name)
	}
}

func TestConstants(t *testing.T) {
	cases := []struct {
		h    Bits
		want float64
	}{
		{MaxFinite, MaxValue},
		{1, SmallestSubnormal},
		{0x0400, SmallestNormal},
		{One, 1},
		{One + 1, 1 + Epsilon},
		{PosInf, math.Inf(1)},
		{NegInf, math.Inf(-1)},
		{PosZero, 0},
		{NegZero, math.Copysign(0, -1)},
	}
	for _, c := range cases {
		if got := float64(c.h.Float32()); !sameFloat64(got, c.want) {
			t.Errorf("%#04x.Float32() = %v, want %v", uint16(c.h), got, c.want)
		}
	}
	if !NaN.IsNaN() || NaN.Signbit() || NaN&0x0200 == 0 {
		t.Errorf("NaN = %#04x is not a positive quiet NaN", uint16(NaN))
	}
	if FromFloat32(OverflowThreshold) != PosInf || FromFloat32(math.Nextafter32(OverflowThreshold, 0)) != MaxFinite {
		t.Error("OverflowThreshold is wrong")
	}
	if FromFloat32(UnderflowToZero) != 0 || FromFloat32(math.Nextafter32(UnderflowToZero, 1)) != 1 {
		t.Error("UnderflowToZero is wrong")
	}
}

func TestPredicates(t *testing.T) {
	for i := range 1 << 16 {
		h := Bits(i)
		x := refDecode(h)
		if h.IsNaN() != math.IsNaN(x) || h.IsInf(0) != math.IsInf(x, 0) ||
			h.IsInf(1) != math.IsInf(x, 1) || h.IsInf(-1) != math.IsInf(x, -1) ||
			h.IsFinite() != !(math.IsNaN(x) || math.IsInf(x, 0)) ||
			h.Signbit() != math.Signbit(x) && !math.IsNaN(x) {
			t.Fatalf("predicates wrong for %#04x (%v)", i, x)
		}
		if h.Neg().Abs() != h.Abs() || h.Neg().Signbit() == h.Signbit() {
			t.Fatalf("Neg/Abs wrong for %#04x", i)
		}
	}
}

// TestToFloat32Exhaustive checks every binary16 value: the scalar
// conversion against the reference, the bulk conversions (each SIMD path
// and pure Go) bit-for-bit against the scalar one, and the round trip.
func TestToFloat32Exhaustive(t *testing.T) {
	all := make([]Bits, 1<<16)
	for i := range all {
		all[i] = Bits(i)
	}
	want := make([]float32, len(all))
	for i, h := range all {
		got := h.Float32()
		want[i] = got
		ref := refDecode(h)
		b := math.Float32bits(got)
		if math.IsNaN(ref) {
			// Documented: quiet NaN, same sign, fraction in the top bits.
			w := uint32(h&0x8000)<<16 | 0x7fc00000 | uint32(h&0x3ff)<<13
			if b != w {
				t.Errorf("%#04x.Float32() = %#08x, want NaN %#08x", i, b, w)
			}
			if back := FromFloat32(got); back != h|0x0200 {
				t.Errorf("FromFloat32(%#04x.Float32()) = %#04x, want %#04x", i, back, h|0x0200)
			}
			continue
		}
		if !sameFloat64(float64(got), ref) {
			t.Errorf("%#04x.Float32() = %v (%#08x), want %v", i, got, b, ref)
		}
		if !sameFloat64(h.Float64(), ref) {
			t.Errorf("%#04x.Float64() = %v, want %v", i, h.Float64(), ref)
		}
		if back := FromFloat32(got); back != h {
			t.Errorf("FromFloat32(%#04x.Float32()) = %#04x", i, back)
		}
		if back := FromFloat64(ref); back != h {
			t.Errorf("FromFloat64(%v) = %#04x, want %#04x", ref, back, i)
		}
		if r := Round(got); math.Float32bits(r) != b {
			t.Errorf("Round(%v) = %v, want it unchanged", got, r)
		}
	}
	dst := make([]float32, len(all))
	for _, k := range allKernels() {
		clear(dst)
		toFloat32s(k, dst, all) // long: the table path for pure Go
		compare32(t, kname(k)+"/long", dst, want)
		clear(dst)
		for i := 0; i < len(all); i += 1000 { // short: arithmetic path
			j := min(i+1000, len(all))
			toFloat32s(k, dst[i:j], all[i:j])
		}
		compare32(t, kname(k)+"/short", dst, want)
	}
}

func compare32(t *testing.T, name string, got, want []float32) {
	t.Helper()
	bad := 0
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			if bad++; bad <= 10 {
				t.Errorf("%s: element %d: got %#08x, want %#08x", name, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	}
}

// TestFromFloat32Edges pins down hand-computed cases.
func TestFromFloat32Edges(t *testing.T) {
	cases := []struct {
		f    float32
		want Bits
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{1 + 0x1p-11, 0x3c00},                 // tie, to even (down)
		{1 + 3*0x1p-11, 0x3c02},               // tie, to even (up)
		{1 + 0x1p-11 + 0x1p-23, 0x3c01},       // just above a tie
		{65504, 0x7bff},                       // max
		{65519.996, 0x7bff},                   // just below the overflow threshold
		{65520, 0x7c00},                       // tie between 65504 and 2^16: overflows
		{-65520, 0xfc00},                      //
		{1e10, 0x7c00},                        //
		{float32(math.Inf(1)), 0x7c00},        //
		{float32(math.Inf(-1)), 0xfc00},       //
		{0x1p-24, 0x0001},                     // smallest subnormal
		{0x1p-25, 0x0000},                     // tie, to even (zero)
		{-0x1p-25, 0x8000},                    //
		{0x1p-25 + 0x1p-48, 0x0001},           // just above the tie
		{1.5 * 0x1p-24, 0x0002},               // tie, to even (up)
		{2.5 * 0x1p-24, 0x0002},               // tie, to even (down)
		{0x1p-14, 0x0400},                     // smallest normal
		{0x1p-14 - 0x1p-25, 0x0400},           // subnormal tie rounding up to the smallest normal
		{0x1p-14 - 0x1p-25 - 0x1p-38, 0x03ff}, // just below it (one float32 ulp)
		{0x1p-14 - 0x1p-24, 0x03ff},           // largest subnormal
		{0x1p-126, 0x0000},                    // float32 subnormals all vanish
		{-0x1p-149, 0x8000},                   //
		{2047, 0x67ff},                        //
		{2049, 0x6800},                        // tie, to even (up to 2048)
		{2051, 0x6802},                        // tie, to even (up to 2052)
	}
	for _, c := range cases {
		if got := FromFloat32(c.f); got != c.want {
			t.Errorf("FromFloat32(%v) = %#04x, want %#04x", c.f, uint16(got), uint16(c.want))
		}
		if !checkFrom(float64(c.f), c.want) {
			t.Errorf("reference disagrees with the hand-computed case %v -> %#04x", c.f, uint16(c.want))
		}
		if got := FromFloat64(float64(c.f)); got != c.want {
			t.Errorf("FromFloat64(%v) = %#04x, want %#04x", c.f, uint16(got), uint16(c.want))
		}
	}
	nans := []struct {
		b    uint32
		want Bits
	}{
		{0x7fc00000, 0x7e00},
		{0xffc00000, 0xfe00},
		{0x7f800001, 0x7e00}, // signalling NaN whose payload is all below the kept bits: must not become Inf
		{0xff800001, 0xfe00},
		{0x7fffffff, 0x7fff},
		{0x7f802000, 0x7e01}, // signalling NaN, payload kept, quieted
		{0x7fa00000, 0x7f00},
	}
	for _, c := range nans {
		f := math.Float32frombits(c.b)
		if got := FromFloat32(f); got != c.want || got != wantNaN32(c.b) {
			t.Errorf("FromFloat32(NaN %#08x) = %#04x, want %#04x", c.b, uint16(got), uint16(c.want))
		}
		if got := FromFloat64(float64(f)); !got.IsNaN() || got.Signbit() != (c.b>>31 == 1) {
			t.Errorf("FromFloat64(NaN %#08x) = %#04x", c.b, uint16(got))
		}
		if got := Round(f); !math.IsNaN(float64(got)) || math.Signbit(float64(got)) != (c.b>>31 == 1) {
			t.Errorf("Round(NaN %#08x) = %#08x", c.b, math.Float32bits(got))
		}
	}
}

// A sweeper checks FromFloat32 and Round, scalar and on every slice path, on
// the values in src against the reference.
type sweeper struct {
	src  []float32
	dsts [][]Bits
	rnds [][]float32
	ks   []*kernels
}

func newSweeper(n int) *sweeper {
	s := &sweeper{src: make([]float32, n), ks: allKernels()}
	for range s.ks {
		s.dsts = append(s.dsts, make([]Bits, n))
		s.rnds = append(s.rnds, make([]float32, n))
	}
	return s
}

// check checks the values in s.src. If walk is set, they must be
// consecutive float32 bit patterns of one sign and are checked against
// refWalker, otherwise against refRound.
func (s *sweeper) check(t *testing.T, errs *atomic.Int64, walk bool) {
	for j, k := range s.ks {
		fromFloat32s(k, s.dsts[j], s.src)
		roundFloat32s(k, s.rnds[j], s.src)
	}
	fail := func(format string, args ...any) {
		if errs.Add(1) <= 20 {
			t.Errorf(format, args...)
		}
	}
	var w refWalker
	if walk {
		w.start(math.Abs(float64(s.src[0])))
	}
	for i, f := range s.src {
		b := math.Float32bits(f)
		h := FromFloat32(f)
		x := float64(f)
		switch {
		case x != x:
			if h != wantNaN32(b) {
				fail("FromFloat32(NaN %#08x) = %#04x, want %#04x", b, uint16(h), uint16(wantNaN32(b)))
			}
		case walk:
			if want := Bits(b>>16)&0x8000 | w.nearest(math.Abs(x)); h != want {
				fail("FromFloat32(%v [%#08x]) = %#04x, want %#04x", f, b, uint16(h), uint16(want))
			}
		case !checkFrom(x, h):
			fail("FromFloat32(%v [%#08x]) = %#04x (%v), want %v", f, b, uint16(h), refDecodeTable[h], refRound(x))
		}
		r := math.Float32bits(Round(f))
		if hr := math.Float32bits(h.Float32()); r != hr {
			fail("Round(%#08x) = %#08x, want %#08x", b, r, hr)
		}
		for j, k := range s.ks {
			// Bit-identical results are required for everything,
			// NaNs included; see TestSIMDNaNs for what is contract.
			if s.dsts[j][i] != h {
				fail("%s FromFloat32s(%#08x) = %#04x, scalar %#04x", kname(k), b, uint16(s.dsts[j][i]), uint16(h))
			}
			if rb := math.Float32bits(s.rnds[j][i]); rb != r {
				fail("%s RoundFloat32s(%#08x) = %#08x, scalar %#08x", kname(k), b, rb, r)
			}
		}
	}
}

var sweepStride = flag.Uint64("fp16.sweepstride", 1,
	"TestFromFloat32Exhaustive checks every `N`th chunk of 65536 float32 bit patterns (1: all 2^32; larger values for slow emulators)")

// TestFromFloat32Exhaustive checks FromFloat32, Round and the bulk
// conversions on every one of the 2^32 float32 bit patterns.
func TestFromFloat32Exhaustive(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive 2^32 sweep skipped in -short mode")
	}
	const chunk = 1 << 16
	stride := max(*sweepStride, 1) * chunk
	var next atomic.Uint64
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newSweeper(chunk)
			for errs.Load() < 20 {
				base := next.Add(stride) - stride
				if base >= 1<<32 {
					return
				}
				for i := range s.src {
					s.src[i] = math.Float32frombits(uint32(base) + uint32(i))
				}
				s.check(t, &errs, true)
			}
		}()
	}
	wg.Wait()
	t.Logf("swept 2^32/%d float32 values (scalar + %d slice paths) in %v (GOMAXPROCS=%d)",
		stride/chunk, len(allKernels()), time.Since(start).Round(time.Millisecond), runtime.GOMAXPROCS(0))
}

// TestFromFloat32Sample is the -short stand-in for the exhaustive sweep: a
// few million random bit patterns plus every value near the interesting
// exponents.
func TestFromFloat32Sample(t *testing.T) {
	var errs atomic.Int64
	rng := rand.New(rand.NewPCG(1, 2))
	s := newSweeper(1 << 16)
	for range 32 {
		for i := range s.src {
			s.src[i] = math.Float32frombits(rng.Uint32())
		}
		s.check(t, &errs, false)
	}
	// All float32 values with exponents around the subnormal, normal and
	// overflow boundaries of binary16 (2^23 each), both signs, sampled
	// densely: every 7th bit pattern.
	for _, e := range []uint32{101, 102, 103, 111, 112, 113, 141, 142, 143, 255} {
		for _, sign := range []uint32{0, 1 << 31} {
			base := sign | e<<23
			for off := uint32(0); off < 1<<23; off += uint32(len(s.src)) * 7 {
				for i := range s.src {
					s.src[i] = math.Float32frombits(base | (off+uint32(i)*7)&(1<<23-1))
				}
				s.check(t, &errs, false)
			}
		}
	}
}

// TestReferencesAgree cross-checks the two references on an increasing
// sample of float32 values (every 331st bit pattern up to +Inf).
func TestReferencesAgree(t *testing.T) {
	var w refWalker
	bad := 0
	for b := uint32(0); b <= 0x7f800000; b += 331 {
		x := float64(math.Float32frombits(b))
		if b == 0 {
			w.start(x)
		}
		h := w.nearest(x)
		if !sameFloat64(refDecodeTable[h], refRound(x)) {
			if bad++; bad <= 10 {
				t.Errorf("%#08x (%v): walker %#04x (%v), refRound %v", b, x, uint16(h), refDecodeTable[h], refRound(x))
			}
		}
	}
}

// TestSIMDNaNs documents what the SIMD paths do with NaNs: on the hardware
// we test on they produce exactly the scalar bits, which the sweeps check;
// here we check the weaker contract (NaN in, NaN of the same sign out) on a
// set of payloads, which is all the package promises.
func TestSIMDNaNs(t *testing.T) {
	var src []float32
	for _, b := range []uint32{0x7f800001, 0x7fc00000, 0x7fffffff, 0x7f802000, 0x7fa00000, 0x7f801fff} {
		src = append(src, math.Float32frombits(b), math.Float32frombits(b|1<<31))
	}
	for len(src)%8 != 0 || len(src) < 16 {
		src = append(src, float32(math.NaN()))
	}
	var h16 []Bits
	for _, b := range []Bits{0x7c01, 0x7e00, 0x7fff, 0x7d55, 0x7c20, 0x7dff, 0x7e01, 0x7c02} {
		h16 = append(h16, b, b|0x8000)
	}
	for _, k := range allKernels() {
		dst := make([]Bits, len(src))
		rnd := make([]float32, len(src))
		fromFloat32s(k, dst, src)
		roundFloat32s(k, rnd, src)
		for i, f := range src {
			sign := math.Signbit(float64(f))
			if !dst[i].IsNaN() || dst[i].Signbit() != sign {
				t.Errorf("%s: FromFloat32s(%#08x) = %#04x", kname(k), math.Float32bits(f), uint16(dst[i]))
			}
			if !math.IsNaN(float64(rnd[i])) || math.Signbit(float64(rnd[i])) != sign {
				t.Errorf("%s: RoundFloat32s(%#08x) = %#08x", kname(k), math.Float32bits(f), math.Float32bits(rnd[i]))
			}
		}
		out := make([]float32, len(h16))
		toFloat32s(k, out, h16)
		for i, h := range h16 {
			if !math.IsNaN(float64(out[i])) || math.Signbit(float64(out[i])) != h.Signbit() {
				t.Errorf("%s: ToFloat32s(%#04x) = %#08x", kname(k), uint16(h), math.Float32bits(out[i]))
			}
		}
	}
}

// TestTails checks lengths 0..40 (and a few longer ones) of all the slice
// functions on every path, that dst beyond len(src) is left alone, and the
// exported entry points.
func TestTails(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	specials := []float32{0, 1, -1, 65504, 65520, 1e-8, 0x1p-25, 6e-5, float32(math.Inf(1)), float32(math.NaN())}
	lengths := make([]int, 0, 50)
	for n := range 41 {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 63, 64, 65, 127, 129, 1000, 4095, 4096, 4100)
	const guard = 5
	for _, k := range append(allKernels(), &kernels{name: "exported"}) {
		for _, n := range lengths {
			src := make([]float32, n)
			h16 := make([]Bits, n)
			for i := range src {
				if rng.IntN(4) == 0 {
					src[i] = specials[rng.IntN(len(specials))]
				} else {
					src[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-25)))
				}
				h16[i] = Bits(rng.Uint32())
			}
			dst := make([]Bits, n+guard)
			out := make([]float32, n+guard)
			rnd := make([]float32, n+guard)
			for i := range guard {
				dst[n+i] = 0xabcd
				out[n+i] = 42
				rnd[n+i] = 42
			}
			if k != nil && k.name == "exported" {
				FromFloat32s(dst, src)
				ToFloat32s(out, h16)
				RoundFloat32s(rnd, src)
			} else {
				fromFloat32s(k, dst[:n], src)
				toFloat32s(k, out[:n], h16)
				roundFloat32s(k, rnd[:n], src)
			}
			for i := range n {
				if dst[i] != FromFloat32(src[i]) {
					t.Errorf("%s n=%d: FromFloat32s[%d] = %#04x, want %#04x", kname(k), n, i, uint16(dst[i]), uint16(FromFloat32(src[i])))
				}
				if math.Float32bits(out[i]) != math.Float32bits(h16[i].Float32()) {
					t.Errorf("%s n=%d: ToFloat32s[%d] = %#08x, want %#08x", kname(k), n, i, math.Float32bits(out[i]), math.Float32bits(h16[i].Float32()))
				}
				if math.Float32bits(rnd[i]) != math.Float32bits(Round(src[i])) {
					t.Errorf("%s n=%d: RoundFloat32s[%d] = %v, want %v", kname(k), n, i, rnd[i], Round(src[i]))
				}
			}
			for i := n; i < n+guard; i++ {
				if dst[i] != 0xabcd || out[i] != 42 || rnd[i] != 42 {
					t.Errorf("%s n=%d: wrote past len(src) at %d", kname(k), n, i)
				}
			}
			// In place.
			inplace := append([]float32(nil), src...)
			if k != nil && k.name == "exported" {
				RoundFloat32s(inplace, inplace)
			} else {
				roundFloat32s(k, inplace, inplace)
			}
			for i := range n {
				if math.Float32bits(inplace[i]) != math.Float32bits(rnd[i]) {
					t.Errorf("%s n=%d: in-place RoundFloat32s[%d] = %v, want %v", kname(k), n, i, inplace[i], rnd[i])
				}
			}
		}
	}
}

func TestExportedPaths(t *testing.T) {
	saved := accel
	defer func() { accel = saved }()
	src := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 0x1p-20, 70000}
	want := []Bits{0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600, 0x4700, 0x4800, 0x4880, 0x0010, 0x7c00}
	for _, k := range allKernels() {
		accel = k
		if Accel() != kname(k) {
			t.Errorf("Accel() = %q, want %q", Accel(), kname(k))
		}
		dst := make([]Bits, len(src))
		FromFloat32s(dst, src)
		back := make([]float32, len(src))
		ToFloat32s(back, dst)
		rnd := make([]float32, len(src))
		RoundFloat32s(rnd, src)
		for i := range src {
			if dst[i] != want[i] || back[i] != want[i].Float32() || rnd[i] != back[i] {
				t.Errorf("%s: element %d: %#04x %v %v", kname(k), i, uint16(dst[i]), back[i], rnd[i])
			}
		}
	}
}

func TestPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"FromFloat32s":  func() { FromFloat32s(make([]Bits, 3), make([]float32, 4)) },
		"ToFloat32s":    func() { ToFloat32s(make([]float32, 3), make([]Bits, 4)) },
		"RoundFloat32s": func() { RoundFloat32s(make([]float32, 3), make([]float32, 4)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with a short dst did not panic", name)
				}
			}()
			f()
		}()
	}
	// A longer dst and empty slices are fine.
	FromFloat32s(make([]Bits, 5), make([]float32, 4))
	ToFloat32s(nil, nil)
	RoundFloat32s(nil, nil)
}

func TestFromFloat64(t *testing.T) {
	check := func(x float64) {
		t.Helper()
		h := FromFloat64(x)
		if !checkFrom(x, h) {
			t.Errorf("FromFloat64(%v [%#016x]) = %#04x (%v), want %v", x, math.Float64bits(x), uint16(h), refDecodeTable[h], refRound(x))
		}
		if math.IsNaN(x) {
			// Documented payload: the top 10 fraction bits, quieted.
			b := math.Float64bits(x)
			if w := Bits(b>>48)&0x8000 | 0x7e00 | Bits(b>>42)&0x3ff; h != w {
				t.Errorf("FromFloat64(NaN %#016x) = %#04x, want %#04x", b, uint16(h), uint16(w))
			}
		}
	}
	edges := []float64{
		0, math.Copysign(0, -1), 1, -1, 65504, 65520, math.Nextafter(65520, 0), math.Nextafter(65520, 1e9),
		65536, 1e300, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64, 0x1p-1022,
		0x1p-24, 0x1p-25, math.Nextafter(0x1p-25, 1), math.Nextafter(0x1p-25, 0), 0x1p-14,
		math.Nextafter(0x1p-14, 0), 0x1p-14 - 0x1p-25, math.Nextafter(0x1p-14-0x1p-25, 0),
		math.NaN(), math.Float64frombits(0x7ff0000000000001), math.Float64frombits(0xfff0000000000001),
		math.Float64frombits(0x7ff8000000000000), math.Float64frombits(0x7fffffffffffffff),
		math.Float64frombits(0x7ff0040000000000),
	}
	for _, x := range edges {
		check(x)
		check(-x)
	}
	// Double-rounding traps: for every binary16 value a and its successor
	// b (in magnitude), the midpoint m and the float64 values right next to
	// it. float32(m ± 1ulp) == m, so converting via float32 would round
	// the tie to even where the correct answer is to go up (or down).
	traps := 0
	for i := range 0x7c00 {
		a := refDecode(Bits(i))
		b := refDecode(Bits(i + 1))
		if i == 0x7bff {
			b = 65536
		}
		m := (a + b) / 2
		for _, s := range []float64{1, -1} {
			for _, x := range []float64{m, math.Nextafter(m, 0), math.Nextafter(m, math.Inf(1))} {
				check(s * x)
				if FromFloat64(s*x) != FromFloat32(float32(s*x)) {
					traps++
				}
			}
		}
	}
	if traps < 0x7c00 {
		t.Errorf("only %d double-rounding traps were exercised", traps)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1 << 20 {
		check(math.Float64frombits(rng.Uint64()))
		// Mostly values inside the binary16 range, with random low bits.
		x := math.Ldexp(1+rng.Float64(), rng.IntN(50)-30)
		x = math.Float64frombits(math.Float64bits(x) ^ rng.Uint64()&(1<<30-1))
		check(x)
		check(-x)
	}
}

func FuzzFromFloat32(f *testing.F) {
	for _, b := range []uint32{0, 0x3f800000, 0x477ff000, 0x477fefff, 0x33000000, 0x33000001, 0x387fc000, 0x7f800001, 0xffc00000} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b uint32) {
		x := math.Float32frombits(b)
		h := FromFloat32(x)
		if !checkFrom(float64(x), h) {
			t.Fatalf("FromFloat32(%#08x) = %#04x, want %v", b, uint16(h), refRound(float64(x)))
		}
		if x == x && math.Float32bits(Round(x)) != math.Float32bits(h.Float32()) {
			t.Fatalf("Round(%#08x) = %v, want %v", b, Round(x), h.Float32())
		}
		src := make([]float32, 9)
		for i := range src {
			src[i] = x
		}
		for _, k := range allKernels() {
			dst := make([]Bits, len(src))
			fromFloat32s(k, dst, src)
			for i := range dst {
				if dst[i] != h {
					t.Fatalf("%s: FromFloat32s(%#08x)[%d] = %#04x, want %#04x", kname(k), b, i, uint16(dst[i]), uint16(h))
				}
			}
		}
	})
}

func FuzzFromFloat64(f *testing.F) {
	for _, x := range []float64{0, 1, 65520, math.Nextafter(65520, 0), 0x1p-25, 1 + 0x1p-11 + 0x1p-40, math.NaN()} {
		f.Add(math.Float64bits(x))
	}
	f.Fuzz(func(t *testing.T, b uint64) {
		x := math.Float64frombits(b)
		if h := FromFloat64(x); !checkFrom(x, h) {
			t.Fatalf("FromFloat64(%#016x) = %#04x, want %v", b, uint16(h), refRound(x))
		}
	})
}

func ExampleFromFloat32() {
	h := FromFloat32(0.1)
	fmt.Printf("%#04x %v\n", uint16(h), h)
	fmt.Println(FromFloat32(1e6) == PosInf, Round(65519), Round(0x1p-25))
	// Output:
	// 0x2e66 0.099975586
	// true 65504 0
}
