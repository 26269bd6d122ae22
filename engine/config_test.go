package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/sim"

	"github.com/anetop/anetop/model"
)

func TestBadConfig(t *testing.T) {
	good := model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 2, Seq: 32, Vocab: 32, Tied: true}
	dev := openSim(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no device", Config{Model: good}, "no device"},
		{"heads", Config{Model: model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 5, Seq: 32, Vocab: 32}, Device: dev}, "Heads"},
		{"seq", Config{Model: model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 2, Seq: 40, Vocab: 32}, Device: dev}, "Seq"},
		{"minlr", Config{Model: good, Device: dev, LR: 1e-3, MinLR: 1}, "MinLR"},
		{"scale", Config{Model: good, Device: dev, LossScale: 0.5}, "LossScale"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	e, err := New(Config{Model: good, Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Step(make([]int32, 31), make([]int32, 31)); err == nil {
		t.Error("a short batch was accepted")
	}
	x := make([]int32, 32)
	x[3] = 32
	if _, err := e.Step(x, make([]int32, 32)); err == nil {
		t.Error("an out-of-vocabulary token was accepted")
	}
}

func TestLRSchedule(t *testing.T) {
	c := Config{LR: 1e-3, MinLR: 1e-4, Warmup: 10, Steps: 110}
	for _, tc := range []struct {
		t    int
		want float64
	}{{0, 1e-4}, {9, 1e-3}, {10, 1e-3}, {60, 5.5e-4}, {110, 1e-4}, {500, 1e-4}} {
		if got := c.LRAt(tc.t); got < tc.want*(1-1e-9) || got > tc.want*(1+1e-9) {
			t.Errorf("LRAt(%d) = %g, want %g", tc.t, got, tc.want)
		}
	}
}

// TestNewRefusesASmallBudget: a compile budget that cannot pay for the four
// start-up kernels is one clear error, with the budget to ask for, before
// any compile (not one error per kernel that failed).
func TestNewRefusesASmallBudget(t *testing.T) {
	dev, err := sim.New(ane.Options{Budget: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	c := model.Config{Dim: 64, Hidden: 128, Layers: 1, Heads: 2, Seq: 32, Vocab: 32}
	_, err = New(Config{Model: c, Device: dev, Steps: 1})
	if !errors.Is(err, ane.ErrBudgetExhausted) || !strings.Contains(err.Error(), "--budget 4 or more") {
		t.Fatalf("New with a budget of 3: %v; want ErrBudgetExhausted asking for --budget 4", err)
	}
	if used, _ := dev.Budget(); used != 0 {
		t.Errorf("%d compiles spent before refusing", used)
	}
}
