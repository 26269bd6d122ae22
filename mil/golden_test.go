package mil

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The golden files in testdata/golden were written by hand from mil-spec §2
// (layout, dialects, literal spelling) and the kernels' op chains in
// ane-anchor §3.5, not copied from the printer. -update rewrites them from
// the printer; use it only for a deliberate format change, then review the
// diff line by line against the spec before committing.
var updateGolden = flag.Bool("update", false, "rewrite testdata/golden from the printer (review the diff against mil-spec by hand)")

// Small kernel sizes: model width D, heads H of width HD, sequence S.
const (
	gD  = 16
	gH  = 2
	gHD = gD / gH
	gS  = 8
	gOC = 24 // output channels of the dynamic matmul
	// gAS is the attention kernel's sequence, different from gHD so that a
	// wrong transpose shows in the types.
	gAS = 16
)

// dynMatmul is ane-anchor's "dynamic matmul": activations and the weight
// travel in one input [1, IC, 1, S+OC]; y[OC, S] = Wᵀ·act.
func dynMatmul(t Target) *Builder {
	b := NewBuilder(t)
	x := b.Input("x", TensorOf(FP16, 1, gD, 1, gS+gOC))
	act := b.SliceBySize("act", x, []int{0, 0, 0, 0}, []int{1, gD, 1, gS})
	wt := b.SliceBySize("wt", x, []int{0, 0, 0, gS}, []int{1, gD, 1, gOC})
	act4 := b.Reshape("act4", act, 1, 1, gD, gS)
	actT := b.Transpose("act_t", act4, 0, 1, 3, 2)
	wt4 := b.Reshape("wt4", wt, 1, 1, gD, gOC)
	mm := b.MatMul("mm", actT, wt4, false, false)
	mmT := b.Transpose("mm_t", mm, 0, 1, 3, 2)
	b.Output(b.Reshape("y", mmT, 1, gOC, 1, gS))
	return b
}

// rmsGain is the RMSNorm gain of the golden kernel: exact in fp16.
func rmsGain() []float32 {
	g := make([]float32, gD)
	for i := range g {
		g[i] = 1 + float32(i)/16
	}
	return g
}

// rmsNorm is ane-anchor's RMSNorm over channels:
// x · (Σx²/D + eps)^-½ · gain.
func rmsNorm(t Target) *Builder {
	b := NewBuilder(t)
	x := b.Input("x", TensorOf(FP16, 1, gD, 1, gS))
	sq := b.Mul("sq", x, x)
	ss := b.ReduceSum("ss", sq, []int{1}, true)
	ms := b.Mul("ms", ss, b.ConstScalar("invd", FP16, 1.0/gD))
	me := b.Add("me", ms, b.ConstScalar("eps", FP16, 1e-5))
	rrms := b.Pow("rrms", me, b.ConstScalar("nhalf", FP16, -0.5))
	xr := b.Mul("xr", x, rrms)
	g := b.ConstFP16("g", Shape{1, gD, 1, 1}, rmsGain())
	b.Output(b.Mul("y", xr, g))
	return b
}

// causalMask is [1,1,gAS,gAS]: 0 where key ≤ query, else -65504 (fp16 lowest,
// ane-anchor §2.4).
func causalMask() []float32 {
	m := make([]float32, gAS*gAS)
	for q := range gAS {
		for k := range gAS {
			if k > q {
				m[q*gAS+k] = -65504
			}
		}
	}
	return m
}

// attention is ane-anchor's causal attention block on q, k, v packed along
// the channels of one input [1, 3D, 1, S].
func attention(t Target) *Builder {
	b := NewBuilder(t)
	x := b.Input("x", TensorOf(FP16, 1, 3*gD, 1, gAS))
	heads := func(name string, c int) *Var {
		s := b.SliceBySize(name, x, []int{0, c * gD, 0, 0}, []int{1, gD, 1, gAS})
		h := b.Reshape(name+"h", s, 1, gH, gHD, gAS)
		return b.Transpose(name+"t", h, 0, 1, 3, 2) // [1, H, S, HD]
	}
	q, k, v := heads("q", 0), heads("k", 1), heads("v", 2)
	sc := b.MatMul("sc", q, k, false, true)
	scaled := b.Mul("scaled", sc, b.ConstScalar("scale", FP16, 1/math.Sqrt(gHD)))
	mask := b.ConstFP16("mask", Shape{1, 1, gAS, gAS}, causalMask())
	masked := b.Add("masked", scaled, mask)
	probs := b.Softmax("probs", masked, -1)
	att := b.MatMul("att", probs, v, false, false)
	attT := b.Transpose("att_t", att, 0, 1, 3, 2) // [1, H, HD, S]
	b.Output(b.Reshape("y", attT, 1, gD, 1, gAS))
	return b
}

func TestCausalMask(t *testing.T) {
	// Independent of how causalMask loops: row q may see keys 0..q only.
	m := causalMask()
	masked := 0
	for _, x := range m {
		if x == -65504 {
			masked++
		}
	}
	if masked != gAS*(gAS-1)/2 || m[1] != -65504 || m[gAS] != 0 || m[gAS*gAS-1] != 0 {
		t.Errorf("mask: %d masked entries, m[0][1]=%v m[1][0]=%v", masked, m[1], m[gAS])
	}
}

func TestGolden(t *testing.T) {
	cases := []struct {
		file   string
		build  func(Target) *Builder
		target Target
		blobs  map[uint64][]float32 // offset → fp16 values expected in weight.bin
		shapes map[uint64]Type
	}{
		{"dyn_matmul.mil", dynMatmul, IOS18, nil, nil},
		{"rmsnorm.mil", rmsNorm, IOS18, map[uint64][]float32{64: rmsGain()}, map[uint64]Type{64: TensorOf(FP16, 1, gD, 1, 1)}},
		{"rmsnorm_ios16.mil", rmsNorm, IOS16, map[uint64][]float32{64: rmsGain()}, map[uint64]Type{64: TensorOf(FP16, 1, gD, 1, 1)}},
		{"attention.mil", attention, IOS18, map[uint64][]float32{64: causalMask()}, map[uint64]Type{64: TensorOf(FP16, 1, 1, gAS, gAS)}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			p, w, err := c.build(c.target).Build()
			if err != nil {
				t.Fatal(err)
			}
			got := Print(p)
			path := filepath.Join("testdata", "golden", c.file)
			if *updateGolden {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("printed kernel differs from %s\n%s", path, lineDiff(want, got))
			}

			// The hand-written text parses, checks, and prints back to itself.
			parsed, err := Parse(c.file, want)
			if err != nil {
				t.Fatalf("golden file does not parse: %v", err)
			}
			if err := parsed.Check(); err != nil {
				t.Fatalf("golden file does not check: %v", err)
			}
			if again := Print(parsed); !bytes.Equal(again, want) {
				t.Errorf("Print(Parse(golden)) differs\n%s", lineDiff(want, again))
			}

			// Weights: exactly the expected blobs, at the offsets the text names.
			if len(c.blobs) == 0 {
				if len(w) != 0 {
					t.Errorf("unexpected weights %v", w)
				}
				return
			}
			f, err := ReadBlobFile(w[WeightPath])
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Blobs) != len(c.blobs) {
				t.Errorf("%d blobs, want %d", len(f.Blobs), len(c.blobs))
			}
			for off, vals := range c.blobs {
				data, err := f.Data(off, c.shapes[off])
				if err != nil {
					t.Fatal(err)
				}
				dec, err := DecodeFloat32s(FP16, data)
				if err != nil {
					t.Fatal(err)
				}
				for i := range vals {
					if dec[i] != vals[i] {
						t.Fatalf("blob %d element %d = %v, want %v", off, i, dec[i], vals[i])
					}
				}
			}
		})
	}
}

// lineDiff shows the first differing line of two texts.
func lineDiff(want, got []byte) string {
	wl := bytes.Split(want, []byte("\n"))
	gl := bytes.Split(got, []byte("\n"))
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			return "line " + strconv.Itoa(i+1) + ":\nwant: " + string(w) + "\n got: " + string(g)
		}
	}
	return "(identical lines; lengths differ)"
}
