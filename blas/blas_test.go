package blas

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

const eps32 = 1.0 / (1 << 23) // float32 unit roundoff ×2

// sentinel marks storage outside the logical matrix (leading-dimension
// padding, slice tail) that no backend may touch.
const sentinel = float32(-12345.5)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.Float64()*2 - 1)
	}
	return s
}

// randMatrix returns rows×cols values with row stride ld, padding and a short
// tail filled with sentinel.
func randMatrix(r *rand.Rand, rows, cols, ld int) []float32 {
	if rows == 0 || cols == 0 {
		return nil
	}
	s := make([]float32, (rows-1)*ld+cols+3)
	for i := range s {
		s[i] = sentinel
	}
	for i := range rows {
		for j := range cols {
			s[i*ld+j] = float32(r.Float64()*2 - 1)
		}
	}
	return s
}

// refGemm returns, for every C element, the float64 value of
// alpha·op(A)·op(B) + beta·C and the error scale |alpha|·Σ|a||b| + |beta||c|.
func refGemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, scale []float64) {
	// Dense float64 copies of op(A) (m×k) and op(B)ᵀ (n×k) keep the inner
	// loop simple enough to stay quick under -race.
	opA := make([]float64, m*k)
	opBT := make([]float64, n*k)
	for p := range k {
		for i := range m {
			if tA {
				opA[i*k+p] = float64(a[p*lda+i])
			} else {
				opA[i*k+p] = float64(a[i*lda+p])
			}
		}
		for j := range n {
			if tB {
				opBT[j*k+p] = float64(b[j*ldb+p])
			} else {
				opBT[j*k+p] = float64(b[p*ldb+j])
			}
		}
	}
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := range m {
		ai := opA[i*k : i*k+k]
		for j := range n {
			bj := opBT[j*k : j*k+k]
			var s, abs float64
			for p, av := range ai {
				ab := av * bj[p]
				s += ab
				if ab < 0 { // not math.Abs: checkptr makes it slow under -race
					ab = -ab
				}
				abs += ab
			}
			w := float64(alpha) * s
			sc := math.Abs(float64(alpha)) * abs
			if beta != 0 {
				cv := float64(c[i*ldc+j])
				w += float64(beta) * cv
				sc += math.Abs(float64(beta) * cv)
			}
			want[i*n+j], scale[i*n+j] = w, sc
		}
	}
	return want, scale
}

// checkGemm compares c against the reference, with a tolerance of
// (k+2)·eps relative to the error scale, and checks that storage outside
// the m×n matrix is untouched.
func checkGemm(t *testing.T, what string, k int, want, scale []float64, m, n int, c []float32, ldc int) {
	t.Helper()
	bad := 0
	for i := range m {
		for j := range n {
			got := float64(c[i*ldc+j])
			tol := float64(k+2)*eps32*scale[i*n+j] + 1e-30
			if d := math.Abs(got - want[i*n+j]); !(d <= tol) {
				if bad++; bad <= 3 {
					t.Errorf("%s: c[%d,%d] = %g, want %g (|diff| %.3g > tol %.3g)", what, i, j, got, want[i*n+j], d, tol)
				}
			}
		}
	}
	for idx, v := range c {
		i, j := idx/ldc, idx%ldc
		if (i >= m || j >= n) && v != sentinel {
			t.Errorf("%s: c[%d] (row %d, col %d) outside the matrix changed to %g", what, idx, i, j, v)
			return
		}
	}
}

func forEachBackend(t *testing.T, f func(t *testing.T, im *Impl)) {
	t.Helper()
	ims := Backends()
	if len(ims) == 0 || ims[len(ims)-1].ID() != Go {
		t.Fatalf("Backends() = %v, want pure Go last", ims)
	}
	for _, im := range ims {
		t.Run(im.ID(), func(t *testing.T) { f(t, im) })
	}
}

func TestSgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{
		{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {3, 5, 1}, {2, 3, 4}, {17, 13, 29},
		{31, 33, 35}, {64, 64, 64}, {65, 33, 127}, {9, 130, 70},
		// Enough 64×64 tiles of C for the pure-Go backend's parallel path:
		// exactly four, and ragged edges in m, n and k.
		{128, 128, 64}, {130, 197, 150},
	}
	for range 6 {
		shapes = append(shapes, [3]int{1 + r.IntN(150), 1 + r.IntN(150), 1 + r.IntN(300)})
	}
	type scalars struct{ alpha, beta float32 }
	cases := []scalars{{1, 0}, {1, 1}, {-0.7, 0.3}, {2.5, 0}, {0, 0.5}, {0, 0}, {1.5, -1}}
	forEachBackend(t, func(t *testing.T, im *Impl) {
		for _, sh := range shapes {
			m, n, k := sh[0], sh[1], sh[2]
			for combo := range 4 {
				tA, tB := combo&1 != 0, combo&2 != 0
				for _, pad := range []int{0, 3} {
					sc := cases[r.IntN(len(cases))]
					testOneGemm(t, r, im, tA, tB, m, n, k, sc.alpha, sc.beta, pad)
				}
			}
		}
		// Every alpha/beta case on one odd shape and all transposes.
		for _, sc := range cases {
			for combo := range 4 {
				testOneGemm(t, r, im, combo&1 != 0, combo&2 != 0, 23, 19, 41, sc.alpha, sc.beta, 2)
			}
		}
	})
}

func testOneGemm(t *testing.T, r *rand.Rand, im *Impl, tA, tB bool, m, n, k int, alpha, beta float32, pad int) {
	t.Helper()
	rowsA, colsA := m, k
	if tA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if tB {
		rowsB, colsB = n, k
	}
	lda, ldb, ldc := max(1, colsA)+pad, max(1, colsB)+pad, max(1, n)+pad
	a := randMatrix(r, rowsA, colsA, lda)
	b := randMatrix(r, rowsB, colsB, ldb)
	c := randMatrix(r, m, n, ldc)
	if beta == 0 {
		// beta == 0 must overwrite C without reading it.
		for i := range m {
			for j := range n {
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	want, scale := refGemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	im.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	what := fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g", tA, tB, m, n, k, lda, ldb, ldc, alpha, beta)
	checkGemm(t, what, k, want, scale, m, n, c, ldc)
}

func TestSgemmZeroSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	forEachBackend(t, func(t *testing.T, im *Impl) {
		for _, sh := range [][3]int{{0, 0, 0}, {0, 5, 3}, {4, 0, 3}, {4, 5, 0}, {1, 1, 0}, {0, 0, 7}} {
			for combo := range 4 {
				for _, beta := range []float32{0, 1, -2} {
					testOneGemm(t, r, im, combo&1 != 0, combo&2 != 0, sh[0], sh[1], sh[2], 1.5, beta, 1)
				}
			}
		}
		// Empty matrices may be nil, with the minimal leading dimension.
		im.Sgemm(false, false, 0, 0, 0, 1, nil, 1, nil, 1, 0, nil, 1)
		im.Sgemm(true, true, 0, 3, 0, 1, nil, 1, nil, 1, 0, nil, 3)
		// alpha == 0 reads neither A nor B.
		nan := float32(math.NaN())
		c := []float32{1, 2, 3, 4}
		im.Sgemm(false, true, 2, 2, 2, 0, []float32{nan, nan, nan, nan}, 2, []float32{nan, nan, nan, nan}, 2, 0.5, c, 2)
		for i, v := range c {
			if want := 0.5 * float32(i+1); v != want {
				t.Fatalf("alpha=0, beta=0.5: c[%d] = %g, want %g", i, v, want)
			}
		}
		c = []float32{1, 2, 3, nan}
		im.Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
		for i, v := range c {
			if v != 0 {
				t.Fatalf("k=0, beta=0: c[%d] = %g, want 0", i, v)
			}
		}
	})
}

func TestSgemmPanics(t *testing.T) {
	a := make([]float32, 12)
	b := make([]float32, 12)
	c := make([]float32, 12)
	cases := []struct {
		name string
		call func(im *Impl)
		want string
	}{
		{"negative m", func(im *Impl) { im.Sgemm(false, false, -1, 2, 2, 1, a, 2, b, 2, 0, c, 2) }, "m = -1 < 0"},
		{"negative n", func(im *Impl) { im.Sgemm(false, false, 2, -1, 2, 1, a, 2, b, 2, 0, c, 2) }, "n = -1 < 0"},
		{"negative k", func(im *Impl) { im.Sgemm(false, false, 2, 2, -1, 1, a, 2, b, 2, 0, c, 2) }, "k = -1 < 0"},
		{"lda < k", func(im *Impl) { im.Sgemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2) }, "lda = 2 < max(1, 3)"},
		{"lda < m when transposed", func(im *Impl) { im.Sgemm(true, false, 3, 2, 2, 1, a, 2, b, 2, 0, c, 2) }, "lda = 2 < max(1, 3)"},
		{"ldb < n", func(im *Impl) { im.Sgemm(false, false, 2, 3, 2, 1, a, 2, b, 2, 0, c, 3) }, "ldb = 2 < max(1, 3)"},
		{"ldb < k when transposed", func(im *Impl) { im.Sgemm(false, true, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2) }, "ldb = 2 < max(1, 3)"},
		{"ldc < n", func(im *Impl) { im.Sgemm(false, false, 2, 3, 2, 1, a, 2, b, 3, 0, c, 2) }, "ldc = 2 < max(1, 3)"},
		{"zero ld on empty", func(im *Impl) { im.Sgemm(false, false, 0, 0, 0, 1, nil, 0, nil, 1, 0, nil, 1) }, "lda = 0 < max(1, 0)"},
		{"short a", func(im *Impl) { im.Sgemm(false, false, 4, 2, 4, 1, a, 4, b, 2, 0, c, 2) }, "len(a) = 12 too short for 4×4"},
		{"short b", func(im *Impl) { im.Sgemm(false, false, 2, 3, 4, 1, a, 4, b, 4, 0, c, 3) }, "len(b) = 12 too short for 4×3"},
		{"short c", func(im *Impl) { im.Sgemm(false, false, 3, 3, 2, 1, a, 2, b, 3, 0, c, 5) }, "len(c) = 12 too short for 3×3"},
		{"huge ld", func(im *Impl) { im.Sgemm(false, false, 3, 2, 2, 1, a, math.MaxInt, b, 2, 0, c, 2) }, "len(a) = 12 too short"},
		{"saxpy lengths", func(im *Impl) { im.Saxpy(1, a, b[:3]) }, "Saxpy: len(x) = 12 != len(y) = 3"},
		{"sdot lengths", func(im *Impl) { im.Sdot(a[:1], b) }, "Sdot: len(x) = 1 != len(y) = 12"},
	}
	forEachBackend(t, func(t *testing.T, im *Impl) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				defer func() {
					r := recover()
					msg, _ := r.(string)
					if !strings.HasPrefix(msg, "blas: ") || !strings.Contains(msg, tc.want) {
						t.Errorf("panic = %v, want one containing %q", r, tc.want)
					}
				}()
				tc.call(im)
			})
		}
	})
}

// TestLevel1 checks the vector helpers through the front end and, for
// native backends, the kernels directly so that short vectors also reach
// the library.
func TestLevel1(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	sizes := []int{0, 1, 7, 100, 4095, 4096, 10001, 40000}
	forEachBackend(t, func(t *testing.T, im *Impl) {
		for _, via := range []string{"Impl", "kernel"} {
			for _, n := range sizes {
				if via == "kernel" && n == 0 {
					continue
				}
				what := fmt.Sprintf("%s n=%d", via, n)
				saxpy, sdot, sscal, snrm2 := im.Saxpy, im.Sdot, im.Sscal, im.Snrm2
				if via == "kernel" {
					saxpy, sdot, sscal, snrm2 = im.k.saxpy, im.k.sdot, im.k.sscal, im.k.snrm2
				}
				x, y := randSlice(r, n), randSlice(r, n)
				for _, alpha := range []float32{0.75, -2} {
					yy := append([]float32(nil), y...)
					saxpy(alpha, x, yy)
					for i := range yy {
						w := float64(y[i]) + float64(alpha)*float64(x[i])
						tol := 2 * eps32 * (math.Abs(float64(y[i])) + math.Abs(float64(alpha)*float64(x[i])))
						if d := math.Abs(float64(yy[i]) - w); d > tol {
							t.Fatalf("%s: Saxpy(%g): y[%d] = %g, want %g", what, alpha, i, yy[i], w)
						}
					}
				}

				var dot, absDot, sumSq float64
				for i := range x {
					dot += float64(x[i]) * float64(y[i])
					absDot += math.Abs(float64(x[i]) * float64(y[i]))
					sumSq += float64(x[i]) * float64(x[i])
				}
				if got := float64(sdot(x, y)); math.Abs(got-dot) > float64(n+2)*eps32*absDot {
					t.Errorf("%s: Sdot = %g, want %g", what, got, dot)
				}
				if got, want := float64(snrm2(x)), math.Sqrt(sumSq); math.Abs(got-want) > float64(n+2)*eps32*want {
					t.Errorf("%s: Snrm2 = %g, want %g", what, got, want)
				}

				xx := append([]float32(nil), x...)
				sscal(-1.25, xx)
				for i := range xx {
					if w := -1.25 * float64(x[i]); math.Abs(float64(xx[i])-w) > eps32*math.Abs(w) {
						t.Fatalf("%s: Sscal: x[%d] = %g, want %g", what, i, xx[i], w)
					}
				}
			}
		}
		// Sscal by zero clears, whatever was there.
		for _, n := range []int{3, 5000} {
			x := randSlice(r, n)
			x[0], x[n-1] = float32(math.NaN()), float32(math.Inf(-1))
			im.Sscal(0, x)
			for i, v := range x {
				if v != 0 || math.Signbit(float64(v)) {
					t.Fatalf("Sscal(0) n=%d: x[%d] = %g, want +0", n, i, v)
				}
			}
		}
		// Snrm2 must not overflow where the plain sum of squares would.
		big := []float32{3e30, 4e30}
		if got := im.Snrm2(big); math.Abs(float64(got)-5e30) > 5e30*1e-6 {
			t.Errorf("Snrm2(%v) = %g, want 5e30", big, got)
		}
		big = make([]float32, 10000)
		for i := range big {
			big[i] = 1e30
		}
		want := 1e30 * math.Sqrt(float64(len(big)))
		if got := im.Snrm2(big); math.Abs(float64(got)-want) > want*1e-5 {
			t.Errorf("Snrm2(%d × 1e30) = %g, want %g", len(big), got, want)
		}
	})
}

// TestConcurrent runs each backend from two goroutines at once, sharing the
// read-only inputs as anetop's workers share weights, while a third changes
// the thread count and reads the backend name. Under -race this also checks
// the package's own state.
func TestConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const m, n, k = 96, 80, 72
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	x, y := randSlice(r, 12000), randSlice(r, 12000)
	want, scale := refGemm(true, false, m, n, k, 1, a, m, b, n, 0, nil, n)
	wantDot := float64(0)
	for i := range x {
		wantDot += float64(x[i]) * float64(y[i])
	}
	iters := 50
	if testing.Short() {
		iters = 5
	}
	forEachBackend(t, func(t *testing.T, im *Impl) {
		var wg sync.WaitGroup
		errs := make(chan error, 2*iters)
		for g := range 2 {
			wg.Go(func() {
				c := make([]float32, m*n)
				for it := range iters {
					for i := range c {
						c[i] = float32(g + it) // beta = 0: must not show through
					}
					im.Sgemm(true, false, m, n, k, 1, a, m, b, n, 0, c, n)
					for i := range c {
						if d := math.Abs(float64(c[i]) - want[i]); d > float64(k+2)*eps32*scale[i] {
							errs <- fmt.Errorf("goroutine %d, iteration %d: c[%d] = %g, want %g", g, it, i, c[i], want[i])
							break
						}
					}
					if im.Name() == "" || Backend() == "" {
						errs <- fmt.Errorf("goroutine %d: empty backend name", g)
					}
					if got := float64(im.Sdot(x, y)); math.Abs(got-wantDot) > 1e-3 {
						errs <- fmt.Errorf("goroutine %d: Sdot = %g, want %g", g, got, wantDot)
					}
				}
			})
		}
		wg.Go(func() {
			for i := range 4 {
				SetThreads(1 + i%2)
				_ = im.Name()
				_ = Backend()
				runtime.Gosched()
			}
			SetThreads(0)
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestBackendName(t *testing.T) {
	forEachBackend(t, func(t *testing.T, im *Impl) {
		name := im.Name()
		t.Logf("%s: %q", im.ID(), name)
		switch im.ID() {
		case Go:
			if name != "pure Go (gonum)" {
				t.Errorf("Name() = %q", name)
			}
		case Accelerate:
			if name != "Accelerate" {
				t.Errorf("Name() = %q", name)
			}
		case OpenBLAS:
			re := regexp.MustCompile(`^OpenBLAS \d+\.\d+\.\d+ \((1 thread|[2-9]\d* threads)\)$`)
			if !re.MatchString(name) {
				t.Errorf("Name() = %q, want like %q", name, "OpenBLAS 0.3.21 (2 threads)")
			}
			SetThreads(1)
			if got := im.Name(); !strings.HasSuffix(got, "(1 thread)") {
				t.Errorf("after SetThreads(1): Name() = %q", got)
			}
			SetThreads(0)
			if got := im.Name(); got != name {
				t.Errorf("after SetThreads(0): Name() = %q, want %q back", got, name)
			}
		}
	})
	if !strings.Contains(Backend(), " ") && Backend() != "Accelerate" {
		t.Errorf("Backend() = %q", Backend())
	}
}

func TestUse(t *testing.T) {
	prev := Current()
	t.Cleanup(func() { current.Store(prev) })
	if err := Use(Go); err != nil {
		t.Fatal(err)
	}
	if got := Backend(); got != "pure Go (gonum)" {
		t.Errorf("after Use(Go): Backend() = %q", got)
	}
	c := make([]float32, 1)
	Sgemm(false, false, 1, 1, 2, 1, []float32{1, 2}, 2, []float32{3, 4}, 1, 0, c, 1)
	if c[0] != 11 {
		t.Errorf("Sgemm through the package = %g, want 11", c[0])
	}
	if err := Use("cuda"); err == nil || !strings.Contains(err.Error(), `unknown backend "cuda"`) {
		t.Errorf("Use(cuda) = %v", err)
	}
	if Current().ID() != Go {
		t.Errorf("a failed Use changed the backend to %s", Current().ID())
	}
	for _, im := range Backends() {
		if err := Use(im.ID()); err != nil || Current() != im {
			t.Errorf("Use(%s) = %v, current %s", im.ID(), err, Current().ID())
		}
	}
}

func TestChoose(t *testing.T) {
	goImpl, _ := Lookup(Go)
	native := &Impl{id: OpenBLAS, k: fakeKernel("OpenBLAS 9.9 (2 threads)")}
	missing := errors.New("blas: openblas: cannot load libopenblas.so.0, libopenblasp.so.0, libopenblas.so (libopenblas.so.0: cannot open shared object file)")
	withOpenBLAS := func(id string) (*Impl, error) {
		switch id {
		case OpenBLAS:
			return native, nil
		case Go:
			return goImpl, nil
		case Accelerate:
			return nil, fmt.Errorf("blas: accelerate: %w", errNotBuilt)
		}
		return Lookup(id)
	}
	withoutOpenBLAS := func(id string) (*Impl, error) {
		if id == OpenBLAS {
			return nil, missing
		}
		return withOpenBLAS(id)
	}
	cases := []struct {
		env    string
		lookup func(string) (*Impl, error)
		want   *Impl
		msg    []string // substrings of the notice; nil: no notice
	}{
		{"", withOpenBLAS, native, nil},
		{"go", withOpenBLAS, goImpl, nil},
		{" OpenBLAS ", withOpenBLAS, native, nil},
		{"", withoutOpenBLAS, goImpl, []string{"cannot load libopenblas.so.0", "using pure Go (gonum)", "libopenblas0-pthread"}},
		{"openblas", withoutOpenBLAS, goImpl, []string{"ANETOP_BLAS=openblas: cannot load", "using pure Go"}},
		{"accelerate", withOpenBLAS, native, []string{"ANETOP_BLAS=accelerate: not available on", "using OpenBLAS 9.9"}},
		{"mkl", withOpenBLAS, native, []string{`ANETOP_BLAS=mkl: unknown backend "mkl"`, "using OpenBLAS 9.9"}},
	}
	if im, msg := choose("", Lookup); im != Backends()[0] || msg != "" {
		t.Errorf("choose(\"\", Lookup) = %s, %q; want %s, no notice", im.ID(), msg, Backends()[0].ID())
	}
	for _, tc := range cases {
		im, msg := choose(tc.env, tc.lookup)
		if im != tc.want {
			t.Errorf("choose(%q) = %s, want %s", tc.env, im.ID(), tc.want.ID())
		}
		if tc.msg == nil && msg != "" {
			t.Errorf("choose(%q): unexpected notice %q", tc.env, msg)
		}
		if tc.msg != nil && (strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "blas: ")) {
			t.Errorf("choose(%q): notice %q is not one line starting with \"blas: \"", tc.env, msg)
		}
		for _, s := range tc.msg {
			if !strings.Contains(msg, s) {
				t.Errorf("choose(%q): notice %q lacks %q", tc.env, msg, s)
			}
		}
	}
}

// TestEnvOverride runs the test binary again with ANETOP_BLAS set, to check
// the real first-use selection and that a failed request costs one line on
// standard error and nothing else.
func TestEnvOverride(t *testing.T) {
	if os.Getenv("BLAS_TEST_CHILD") == "1" {
		c := make([]float32, 1)
		Sgemm(false, false, 1, 1, 1, 1, []float32{2}, 1, []float32{3}, 1, 0, c, 1)
		fmt.Printf("%s|%g", Backend(), c[0])
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	goName := "pure Go (gonum)"
	cases := []struct {
		env, want, stderr string
	}{
		{"go", goName, ""},
		{"GO", goName, ""},
		{"", Backends()[0].Name(), ""},
		{"nonsense", Backends()[0].Name(), `blas: ANETOP_BLAS=nonsense: unknown backend "nonsense"`},
	}
	if runtime.GOOS != "darwin" {
		cases = append(cases, struct{ env, want, stderr string }{Accelerate, Backends()[0].Name(), "blas: ANETOP_BLAS=accelerate: not available on"})
	}
	for _, tc := range cases {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnvOverride$")
		cmd.Env = append(os.Environ(), "BLAS_TEST_CHILD=1", EnvVar+"="+tc.env)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s=%s: %v\n%s", EnvVar, tc.env, err, stderr.String())
		}
		if want := tc.want + "|6"; stdout.String() != want {
			t.Errorf("%s=%s: got %q, want %q", EnvVar, tc.env, stdout.String(), want)
		}
		errOut := stderr.String()
		if tc.stderr == "" && errOut != "" {
			t.Errorf("%s=%s: unexpected stderr %q", EnvVar, tc.env, errOut)
		}
		if tc.stderr != "" && (!strings.HasPrefix(errOut, tc.stderr) || strings.Count(errOut, "\n") != 1) {
			t.Errorf("%s=%s: stderr = %q, want one line starting %q", EnvVar, tc.env, errOut, tc.stderr)
		}
	}
}

type fakeKernel string

func (f fakeKernel) name() string { return string(f) }
func (fakeKernel) sgemm(bool, bool, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int) {
}
func (fakeKernel) saxpy(float32, []float32, []float32) {}
func (fakeKernel) sdot([]float32, []float32) float32   { return 0 }
func (fakeKernel) sscal(float32, []float32)            {}
func (fakeKernel) snrm2([]float32) float32             { return 0 }
