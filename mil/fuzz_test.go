package mil

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that the parser never panics, that whatever it accepts is
// a well-linked program, and that the printed form of an accepted program
// parses again and prints identically (Print is a fixed point after one round).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "parse", "*.mil"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
	}
	for _, s := range []string{
		"",
		"program(1.3)\n{\n}\n",
		"program(1.0)\n[buildInfo = dict<tensor<string, []>, tensor<string, []>>({})]\n{\n    func main<ios16>() {\n        } -> ();\n}\n",
		wrap(`            tensor<fp16, [2, 2]> c = const()[name = string("c"), val = tensor<fp16, [2, 2]>([[0x1p-24, -inf], [nan, 1e-5]])];`, "c"),
		wrap(`            tensor<fp16, [2, 2]> c = const()[name = string("c"), val = tensor<fp16, [2, 2]>([1, 2, 3, 4])];`, "c"),
		wrap(`            tensor<int32, [2, 0, 3]> c = const()[val = tensor<int32, [2, 0, 3]>([[], []])];`, "x"),
		wrap(`            tensor<fp16, [1, 4]> y = concat(axis = int32(0), interleave = false, values = (x, x));`, "y"),
		wrap(`            (tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b) = split(x = x, num_splits = int32(2), axis = int32(1))[name = string("s")];`, "a, b"),
		wrap(`            string s = const()[name = string("a\"b\\c\nd"), val = string("")];`, "x"),
		wrap(`            tensor<int8, [2]> q = constexpr_affine_dequantize()[axis = int32(0), quantized_data = tensor<int8, [2]>(BLOBFILE(path = string("w"), offset = uint64(64))), scale = fp16(1), zero_point = int8(0)];`, "q"),
		wrap(`            uint8 u = const()[val = uint8(256)];`, "x"),
		wrap(`            int32 u = const()[val = int32(1.5)];`, "x"),
		wrap(`            tensor<fp16, [1, 4]> y = add(x = x, y = r);`, "y"),
		wrap(`            tensor<fp16, [1, 4]> y = relu(x = x)`, "y"),
		"program(1.3)\n{\n    func main<ios17>(tensor<int32, [1, ?]> ids) [F = tuple<string>((\"a\", {{\"b\", [1]}}))] {\n        } -> (ids);\n}\n",
		"program(1.3)\n{\n    func main<ios18>(fp16 x) {\n            fp16 y = f(x = (x, fp16(0x1.ffcp+15), true));\n        } -> (y);\n}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz.mil", src)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error %T is not a *ParseError: %v", err, err)
			}
			return
		}
		if err := checkLinks(p); err != nil {
			t.Fatalf("accepted program is malformed: %v", err)
		}
		out := Print(p)
		q, err := Parse("printed.mil", out)
		if err != nil {
			t.Fatalf("printed program does not parse: %v\ninput:\n%q\nprinted:\n%s", err, src, out)
		}
		if again := Print(q); !bytes.Equal(again, out) {
			t.Fatalf("reprint differs\nfirst:\n%s\nsecond:\n%s", out, again)
		}
		// Printing must not change the meaning: the checker agrees on both.
		if errP, errQ := p.Check(), q.Check(); (errP == nil) != (errQ == nil) {
			t.Fatalf("Check differs after printing: %v vs %v\nprinted:\n%s", errP, errQ, out)
		}
	})
}
