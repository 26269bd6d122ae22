package sim

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
)

func compileErr(t *testing.T, opts ane.Options, text string, w mil.Weights) error {
	t.Helper()
	d := newDev(t, opts)
	k, err := d.CompileText("k.mil", []byte(text), w)
	if err == nil {
		k.Close()
		t.Fatalf("compile succeeded, want an error:\n%s", numbered(text))
	}
	if used, _ := d.Budget(); used != 0 {
		t.Errorf("a failed compile used the budget (%d)", used)
	}
	return err
}

func wantErr(t *testing.T, err, kind error, parts ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

const addOne = `            tensor<fp16, [1, 4, 1, 8]> y = add(x = x, y = fp16(0x1p+0))[name = string("y")];`

func TestRuleSingleIO(t *testing.T) {
	two := prog("tensor<fp16, [1, 4, 1, 8]> x, tensor<fp16, [1, 4, 1, 8]> z", addOne, "y")
	err := compileErr(t, ane.Options{}, two, nil)
	wantErr(t, err, ane.ErrUnsupported, "2 inputs", "MultiIO")
	twoOut := prog("tensor<fp16, [1, 4, 1, 8]> x", addOne, "y, x")
	wantErr(t, compileErr(t, ane.Options{}, twoOut, nil), ane.ErrUnsupported, "2 outputs")
	// Allowed behind the option.
	out := run(t, two, multi, nil, make([]float32, 32), make([]float32, 32))
	if out[0][0] != 1 {
		t.Errorf("y[0] = %v, want 1", out[0][0])
	}
}

func TestRuleFP16IO(t *testing.T) {
	text := prog("tensor<fp32, [1, 4]> x", `            tensor<fp32, [1, 4]> y = relu(x = x)[name = string("y")];`, "y")
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrUnsupported, "fp16", "cast inside the kernel")
	text = prog("tensor<fp16, [1, 4]> x", `            string dt = const()[name = string("dt"), val = string("fp32")];
            tensor<fp32, [1, 4]> y = cast(dtype = dt, x = x)[name = string("y")];`, "y")
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrUnsupported, "output y")
}

func TestRuleStaticShapes(t *testing.T) {
	text := prog("tensor<fp16, [1, ?]> x", `            tensor<fp16, [1, ?]> y = relu(x = x)[name = string("y")];`, "y")
	err := compileErr(t, ane.Options{}, text, nil)
	wantErr(t, err, ane.ErrUnsupported, "static")
}

func TestRuleAxisLimit(t *testing.T) {
	ok := prog(fmt.Sprintf("tensor<fp16, [1, 1, 1, %d]> x", MaxAxis),
		fmt.Sprintf(`            tensor<fp16, [1, 1, 1, %d]> y = relu(x = x)[name = string("y")];`, MaxAxis), "y")
	d := newDev(t, ane.Options{})
	if _, err := d.CompileText("ok", []byte(ok), nil); err != nil {
		t.Fatalf("axis of %d refused: %v", MaxAxis, err)
	}
	big := MaxAxis + 1
	text := prog(fmt.Sprintf("tensor<fp16, [1, 1, 1, %d]> x", big),
		fmt.Sprintf(`            tensor<fp16, [1, 1, 1, %d]> y = relu(x = x)[name = string("y")];`, big), "y")
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrUnsupported, "16384", "axis 3")
	// An intermediate counts too, and the error points at its op.
	text = prog("tensor<fp16, [1, 2, 1, 16384]> x",
		`            tensor<fp16, [1, 1, 1, 32768]> y = reshape(shape = tensor<int32, [4]>([1, 1, 1, 32768]), x = x)[name = string("y")];
            tensor<fp16, [1, 2, 1, 16384]> z = reshape(shape = tensor<int32, [4]>([1, 2, 1, 16384]), x = y)[name = string("z")];`, "z")
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrUnsupported, "k.mil:4:", "reshape")
	// The channel axis of a rank-4 tensor may be wide (32000 output channels work).
	text = prog("tensor<fp16, [1, 32000, 1, 2]> x", `            tensor<fp16, [1, 32000, 1, 2]> y = softmax(axis = int32(1), x = x)[name = string("y")];`, "y")
	if _, err := d.CompileText("wide", []byte(text), nil); err != nil {
		t.Fatalf("32000 channels refused: %v", err)
	}
}

func TestRuleConvInputChannels(t *testing.T) {
	conv := func(cin, cout int) string {
		return prog(fmt.Sprintf("tensor<fp16, [1, %d, 1, 2]> x", cin), fmt.Sprintf(
			`            tensor<fp16, [%d, %d, 1, 1]> w = const()[name = string("w"), val = tensor<fp16, [%d, %d, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
            tensor<fp16, [1, %d, 1, 2]> y = conv(weight = w, x = x)[name = string("y")];`, cout, cin, cout, cin, cout), "y")
	}
	blob := func(n int) mil.Weights {
		var bw mil.BlobWriter
		if _, err := bw.Add(mil.FP16, make([]byte, 2*n)); err != nil {
			t.Fatal(err)
		}
		return mil.Weights{"@model_path/weights/w.bin": bw.Bytes()}
	}
	// 32000 output channels compile (research §8.7) …
	d := newDev(t, ane.Options{})
	if _, err := d.CompileText("wide out", []byte(conv(64, 32000)), blob(64*32000)); err != nil {
		t.Fatalf("32000 output channels refused: %v", err)
	}
	// … 32000 input channels do not.
	err := compileErr(t, ane.Options{}, conv(32000, 64), blob(64*32000))
	wantErr(t, err, ane.ErrUnsupported, "k.mil:5:", "conv", "32000 input channels")
}

func TestRuleBudget(t *testing.T) {
	d := newDev(t, ane.Options{Budget: 3})
	text := prog("tensor<fp16, [1, 4, 1, 8]> x", addOne, "y")
	for i := range 3 {
		if _, err := d.CompileText(fmt.Sprint("k", i), []byte(text), nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := d.CompileText("k3", []byte(text), nil)
	if !errors.Is(err, ane.ErrBudgetExhausted) {
		t.Fatalf("4th compile: %v, want ErrBudgetExhausted", err)
	}
	if used, limit := d.Budget(); used != 3 || limit != 3 {
		t.Errorf("budget = %d/%d, want 3/3", used, limit)
	}
	// The default limit.
	if _, limit := newDev(t, ane.Options{}).Budget(); limit != ane.DefaultBudget {
		t.Errorf("default limit %d, want %d", limit, ane.DefaultBudget)
	}
}

func TestRuleUnknownOpAndControlFlow(t *testing.T) {
	text := prog("tensor<fp16, [1, 4, 1, 8]> x", `            tensor<fp16, [1, 4, 1, 8]> y = relu(x = x)[name = string("y")];
            tensor<fp16, [1, 4, 1, 8]> z = gelu(x = y)[name = string("z")];`, "z")
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrUnsupported, "k.mil:5:13", `gelu "z"`, "does not implement")
	text = prog("tensor<fp16, [1, 4, 1, 8]> x", `            tensor<fp16, [1, 4, 1, 8]> z = while_loop(loop_vars = (x))[name = string("z")];`, "z")
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrUnsupported, "k.mil:4:13", "control flow")
}

func TestRuleMainOnly(t *testing.T) {
	text := "program(1.3)\n{\n    func other<ios18>(tensor<fp16, [1, 2]> x) {\n        } -> (x);\n}\n"
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrInvalidProgram, "main")
	text = "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 2]> x) {\n        } -> (x);\n    func other<ios18>(tensor<fp16, [1, 2]> x) {\n        } -> (x);\n}\n"
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrUnsupported, "k.mil:5:", "exactly one function")
}

func TestInvalidPrograms(t *testing.T) {
	cases := []struct{ name, text, part string }{
		{"syntax", "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 2]> x) {\n  tensor<fp16, [1, 2]> y = relu(x = )\n", "k.mil:4:"},
		{"declared type", prog("tensor<fp16, [1, 4]> x", `            tensor<fp16, [1, 5]> y = relu(x = x)[name = string("y")];`, "y"), "k.mil:4:13"},
		{"bad perm", prog("tensor<fp16, [1, 4]> x", `            tensor<fp16, [4, 1]> y = transpose(perm = tensor<int32, [2]>([0, 0]), x = x)[name = string("y")];`, "y"), "k.mil:4:13"},
		{"missing blob", prog("tensor<fp16, [1, 2]> x", `            tensor<fp16, [1, 2]> w = const()[name = string("w"), val = tensor<fp16, [1, 2]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
            tensor<fp16, [1, 2]> y = add(x = x, y = w)[name = string("y")];`, "y"), "w.bin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, compileErr(t, ane.Options{}, c.text, nil), ane.ErrInvalidProgram, c.part)
		})
	}
	// A truncated blob file.
	var bw mil.BlobWriter
	if _, err := bw.Add(mil.FP16, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	b := bw.Bytes()
	text := prog("tensor<fp16, [1, 2]> x", `            tensor<fp16, [1, 2]> w = const()[name = string("w"), val = tensor<fp16, [1, 2]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
            tensor<fp16, [1, 2]> y = add(x = x, y = w)[name = string("y")];`, "y")
	err := compileErr(t, ane.Options{}, text, mil.Weights{"@model_path/weights/w.bin": b[:len(b)-2]})
	wantErr(t, err, ane.ErrInvalidProgram, "w.bin")
}

func TestArenaLimit(t *testing.T) {
	// 16384² fp16 elements as float32 is exactly 1 GiB; with the input it is more.
	text := prog("tensor<fp16, [1, 16384]> x", `            tensor<fp16, [16384, 16384]> y = matmul(transpose_x = bool(true), transpose_y = bool(false), x = x, y = x)[name = string("y")];
            tensor<fp16, [1, 16384]> z = reduce_sum(axes = tensor<int32, [1]>([0]), keep_dims = bool(true), x = y)[name = string("z")];`, "z")
	wantErr(t, compileErr(t, ane.Options{}, text, nil), ane.ErrUnsupported, "arena")
}
