package sim

import (
	"testing"

	"github.com/anetop/anetop/ane"
)

func TestSmokeAdd(t *testing.T) {
	text := prog("tensor<fp16, [1, 2, 1, 3]> x", `            fp16 c = const()[name = string("c"), val = fp16(0x1p-1)];
            tensor<fp16, [1, 2, 1, 3]> y = add(x = x, y = c)[name = string("y")];`, "y")
	out := run(t, text, ane.Options{}, nil, []float32{1, 2, 3, 4, 5, 6})
	near(t, "y", out[0], []float64{1.5, 2.5, 3.5, 4.5, 5.5, 6.5}, 0, 0)
}
