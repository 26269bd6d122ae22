package sim

import (
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
)

// fuzzBlobPath is the weight file every fuzzed program may reference; the
// fuzzer supplies its content.
const fuzzBlobPath = "@model_path/weights/w.bin"

func fuzzSeeds(t testing.TB) (texts []string, blob []byte) {
	var bw mil.BlobWriter
	if _, err := bw.Add(mil.FP16, make([]byte, 2*4*3)); err != nil {
		t.Fatal(err)
	}
	if _, err := bw.Add(mil.Int8, []byte{1, 2, 3, 4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	blob = bw.Bytes()
	p, _ := dynMatmul(t, 8, 6, 4)
	texts = []string{
		prog("tensor<fp16, [1, 4, 1, 8]> x", addOne, "y"),
		string(mil.Print(p)),
		prog("tensor<fp16, [1, 3, 4, 4]> x", `            tensor<fp16, [4, 3, 1, 1]> w = const()[name = string("w"), val = tensor<fp16, [4, 3, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
            tensor<fp16, [1, 4, 3, 3]> c = conv(dilations = tensor<int32, [2]>([1, 1]), groups = int32(1), pad = tensor<int32, [4]>([1, 1, 1, 1]), pad_type = string("custom"), strides = tensor<int32, [2]>([2, 2]), weight = w, x = x)[name = string("c")];
            tensor<fp16, [1, 4, 3, 3]> y = softmax(axis = int32(1), x = c)[name = string("y")];`, "y"),
		prog("tensor<fp16, [1, 2, 4, 8]> q", `            tensor<fp16, [1, 2, 4, 8]> k = mul(x = q, y = fp16(0x1p-1))[name = string("k")];
            tensor<fp16, [1, 2, 4, 8]> y = scaled_dot_product_attention(key = k, query = q, value = k)[name = string("y")];`, "y"),
		prog("tensor<fp16, [2, 3, 4]> x", `            tensor<fp16, [2, 3, 4]> r = slice_by_index(begin = tensor<int32, [3]>([0, 0, 0]), begin_mask = tensor<bool, [3]>([true, true, true]), end = tensor<int32, [3]>([0, 0, 0]), end_mask = tensor<bool, [3]>([true, true, true]), squeeze_mask = tensor<bool, [3]>([false, false, false]), stride = tensor<int32, [3]>([1, 1, -1]), x = x)[name = string("r")];
            tensor<fp16, [2, 3, 8]> c = concat(axis = int32(2), interleave = bool(true), values = (x, r))[name = string("c")];
            tensor<fp16, [2, 1, 8]> s = reduce_sum(axes = tensor<int32, [1]>([1]), keep_dims = bool(true), x = c)[name = string("s")];
            tensor<fp16, [8, 2]> y = reshape(shape = tensor<int32, [2]>([8, 2]), x = s)[name = string("y")];`, "y"),
		prog("tensor<fp16, [1, 2, 1, 3]> x", `            tensor<int8, [2, 3]> qd = const()[name = string("qd"), val = tensor<int8, [2, 3]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(192)))];
            tensor<fp16, [2, 3]> wq = constexpr_affine_dequantize(axis = int32(0), quantized_data = qd, scale = tensor<fp16, [2]>([0x1p-2, 0x1p+1]), zero_point = tensor<int8, [2]>([1, -1]))[name = string("wq")];
            tensor<fp16, [1, 2, 2, 3]> m = mul(x = x, y = wq)[name = string("m")];
            tensor<int8, [1, 2, 2, 3]> q = quantize(input = m, output_dtype = string("int8"), scale = fp16(0x1p-3))[name = string("q")];
            tensor<fp16, [1, 2, 2, 3]> y = dequantize(input = q, scale = fp16(0x1p-3))[name = string("y")];`, "y"),
	}
	return texts, blob
}

// FuzzCompileText: no MIL text or weight blob may panic the compiler, and a
// kernel that compiles must evaluate on zero inputs without an internal error.
func FuzzCompileText(f *testing.F) {
	texts, blob := fuzzSeeds(f)
	for _, s := range texts {
		f.Add([]byte(s), blob)
		f.Add([]byte(strings.Replace(s, "fp16", "fp32", 3)), blob)
		f.Add([]byte(s), blob[:len(blob)/2])
	}
	f.Fuzz(func(t *testing.T, text, blob []byte) {
		k, err := CompileTextOptions("fuzz.mil", text, mil.Weights{fuzzBlobPath: blob}, ane.Options{MultiIO: true})
		if err != nil {
			return
		}
		defer k.Close()
		kk := k.(*kernel)
		if kk.plan.flops > 1e8 || kk.plan.arena > 1<<24 {
			return // valid but too slow to evaluate in a fuzz loop
		}
		var in, out []*ane.Surface
		for i := range k.Inputs() {
			s, err := k.NewSurface(ane.Input, i)
			if err != nil {
				t.Fatalf("input surface %d: %v", i, err)
			}
			in = append(in, s)
		}
		for i := range k.Outputs() {
			s, err := k.NewSurface(ane.Output, i)
			if err != nil {
				t.Fatalf("output surface %d: %v", i, err)
			}
			out = append(out, s)
		}
		if err := k.Eval(in, out); err != nil {
			t.Fatalf("eval of a compiled kernel: %v\n%s", err, text)
		}
	})
}

func TestFuzzSeedsCompile(t *testing.T) {
	texts, blob := fuzzSeeds(t)
	for i, s := range texts {
		k, err := CompileTextOptions("seed.mil", []byte(s), mil.Weights{fuzzBlobPath: blob}, ane.Options{MultiIO: true})
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", i, err, numbered(s))
		}
		k.Close()
	}
}
