package sim

import (
	"math"
	"testing"
)

func TestFastExp(t *testing.T) {
	r := rng(9)
	worst := 0.0
	for range 200000 {
		x := (r.next()*2 - 1) * 100
		want := math.Exp(x)
		if d := math.Abs(fastExp(x)-want) / want; d > worst {
			worst = d
		}
	}
	if worst > 1e-9 {
		t.Errorf("worst relative error %g", worst)
	}
	for _, c := range []struct{ x, want float64 }{
		{0, 1}, {1, math.E}, {710, math.Inf(1)}, {-746, 0}, {math.Inf(-1), 0}, {math.Inf(1), math.Inf(1)},
		{-740, math.Exp(-740)}, {709, math.Exp(709)},
	} {
		if got := fastExp(c.x); math.Abs(got-c.want) > 1e-9*c.want && got != c.want {
			t.Errorf("fastExp(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if !math.IsNaN(fastExp(math.NaN())) {
		t.Error("fastExp(NaN) is not NaN")
	}
}
