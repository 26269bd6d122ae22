package ane

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/anetop/anetop/mil"
)

func TestBudgetRefusesPastLimit(t *testing.T) {
	b := NewBudget(3)
	for i := range 3 {
		if err := b.Reserve("k"); err != nil {
			t.Fatalf("reserve %d: %v", i, err)
		}
	}
	err := b.Reserve("fourth")
	if !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("4th reserve = %v, want ErrBudgetExhausted", err)
	}
	if !strings.Contains(err.Error(), "3 of 3") || !strings.Contains(err.Error(), "--budget") {
		t.Errorf("error %q should give the counts and the way out", err)
	}
	b.Release() // a failed compile does not count
	if used, limit := b.Counts(); used != 2 || limit != 3 {
		t.Errorf("counts = %d/%d, want 2/3", used, limit)
	}
	if err := b.Reserve("again"); err != nil {
		t.Errorf("reserve after release: %v", err)
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if b.Reserve("k") == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if used, _ := b.Counts(); ok != 50 || used != 50 {
		t.Errorf("granted %d, used %d; want exactly the limit 50", ok, used)
	}
}

func TestSurfaceBlocksRespectStride(t *testing.T) {
	// [1, 3, 1, 5] with rows padded to 8 elements.
	s, err := NewSurface(mil.Shape{1, 3, 1, 5}, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rows() != 3 || s.Cols() != 5 || s.Stride() != 8 || len(s.Data()) != 2*8+5 {
		t.Fatalf("geometry rows %d cols %d stride %d len %d", s.Rows(), s.Cols(), s.Stride(), len(s.Data()))
	}
	// Write a 2×3 block at (1, 2) from a source with leading dimension 4.
	src := []float32{1, 2, 3, -1, 4.5, 1e5, -0.1, -1}
	s.WriteBlock(1, 2, 2, 3, src, 4)
	for i, v := range s.Data() {
		r, c := i/8, i%8
		var want float32
		if r >= 1 && r < 3 && c >= 2 && c < 5 {
			want = src[(r-1)*4+c-2]
		}
		got := v.Float32()
		switch {
		case want == 1e5:
			if !math.IsInf(float64(got), 1) {
				t.Errorf("element %d: 1e5 must overflow to +inf in fp16, got %v", i, got)
			}
		case want == -0.1:
			if math.Abs(float64(got+0.1)) > 0.1/1024 {
				t.Errorf("element %d: got %v, want -0.1 within fp16 rounding", i, got)
			}
		case got != want:
			t.Errorf("element %d (row %d col %d): got %v, want %v", i, r, c, got, want)
		}
	}
	dst := make([]float32, 2*6)
	s.ReadBlock(1, 2, 2, 3, dst, 6)
	if dst[0] != 1 || dst[1] != 2 || dst[2] != 3 || dst[6] != 4.5 {
		t.Errorf("read back %v", dst)
	}
}

func TestCopyRows(t *testing.T) {
	a, _ := NewSurface(mil.Shape{1, 4, 1, 3}, 0, nil)
	b, _ := NewSurface(mil.Shape{1, 5, 1, 3}, 4, nil)
	vals := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	a.WriteBlock(0, 0, 4, 3, vals, 3)
	CopyRows(b, 2, a, 1, 2) // rows 1..2 of a → rows 2..3 of b
	got := make([]float32, 15)
	b.ReadBlock(0, 0, 5, 3, got, 3)
	want := []float32{0, 0, 0, 0, 0, 0, 4, 5, 6, 7, 8, 9, 0, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("b = %v, want %v", got, want)
		}
	}
}

func TestSurfaceRejectsBadGeometry(t *testing.T) {
	for _, c := range []struct {
		shape  mil.Shape
		stride int
	}{
		{mil.Shape{}, 0},
		{mil.Shape{1, 0, 1, 4}, 0},
		{mil.Shape{1, 2, 1, 8}, 4},
		{mil.Shape{1, -1, 1, 8}, 0},
	} {
		if _, err := NewSurface(c.shape, c.stride, nil); err == nil {
			t.Errorf("NewSurface(%v, %d) succeeded", c.shape, c.stride)
		}
	}
}

// registerAbsent keeps -count=N runs from registering the backend twice.
var registerAbsent sync.Once

func TestOpenUnknownAndUnavailable(t *testing.T) {
	registerAbsent.Do(func() {
		Register(Backend{Name: "test-absent", Priority: -100,
			Available: func() (bool, string) { return false, "no such hardware in tests" },
			Open:      func(Options) (Device, error) { return nil, errors.New("unreachable") }})
	})
	_, err := Open("test-absent", Options{})
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "no such hardware in tests") {
		t.Errorf("Open unavailable = %v", err)
	}
	_, err = Open("gpu", Options{})
	if err == nil || !strings.Contains(err.Error(), "choose one of auto") {
		t.Errorf("Open unknown = %v", err)
	}
}
