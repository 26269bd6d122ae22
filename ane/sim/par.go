package sim

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/anetop/anetop/mil/fp16"
)

// parMin is the least work (elements) worth splitting across goroutines:
// rounding and conversion are memory-bound and take about 0.1 ns per
// element, so below a few million elements one core is as fast.
const parMin = 1 << 21

// maxParts bounds the parts one parallel pass is split into (the claim word
// below holds part counts in 16 bits).
const maxParts = 1 << 15

// parParts is the number of parts par(n, grain, …) splits [0, n) into: up to
// GOMAXPROCS contiguous chunks of at least grain items.
func parParts(n, grain int) int {
	parts, _ := parSplit(n, grain)
	return parts
}

// parSplit returns the number of parts and the items per part (the last may
// have fewer); every part is non-empty.
func parSplit(n, grain int) (parts, step int) {
	w := min(runtime.GOMAXPROCS(0), n/max(grain, 1), maxParts)
	if w <= 1 {
		return 1, n
	}
	step = (n + w - 1) / w
	return (n + step - 1) / step, step
}

// par splits [0, n) into parParts(n, grain) contiguous chunks and runs
// fn(part, lo, hi) on each, concurrently when there is more than one, on the
// calling goroutine and the persistent helpers of a shared pool. part is in
// [0, parParts(n, grain)), so fn may index per-part scratch. Used for the
// memory-bound passes (fp16 conversion and rounding) around the sgemms, which
// would otherwise run on one core while the BLAS uses them all.
//
// par does not allocate in steady state, provided fn is not a closure made
// for the call (fn is shared with the helpers, so it escapes): build it once,
// when the kernel is planned.
func par(n, grain int, fn func(part, lo, hi int)) {
	parRun(n, grain, parFn, fn, nil, nil, 0)
}

// round16 rounds d to fp16 in place, in parallel when it is large.
func round16(d []float32) {
	parRun(len(d), parMin, parRound, nil, d, nil, 0)
}

// parKind selects what a parallel job runs on each part: the built-in kinds
// take their arguments from the job, so their callers make no closure.
type parKind uint8

const (
	parFn      parKind = iota // fn(part, lo, hi)
	parRound                  // round dst[lo:hi] to fp16
	parSoftmax                // softmax rows [lo, hi) of src (width each) into dst
)

// parJob is the descriptor of one parallel pass, reused from a free list.
// Parts are claimed by compare-and-swap on state, which holds the job's
// generation (high 32 bits), its number of parts (next 16) and the next part
// to claim (low 16). A helper holds a ticket naming the generation it was
// asked to help with, so a ticket that arrives late, after the job finished
// and was reused, claims nothing. The job's other fields are written before
// state is published and read only after a successful claim.
type parJob struct {
	state   atomic.Uint64
	pending atomic.Int32  // unfinished parts, plus one for the caller
	done    chan struct{} // signalled by whoever finishes the last part, if not the caller
	gen     uint32        // the caller's copy of the generation

	kind     parKind
	fn       func(part, lo, hi int)
	dst, src []float32
	width    int
	n, step  int
}

// parTicket asks a helper to join generation gen of job j.
type parTicket struct {
	j   *parJob
	gen uint32
}

var parPool struct {
	mu      sync.Mutex
	helpers atomic.Int32   // helper goroutines started
	tickets chan parTicket // to the helpers
	free    chan *parJob   // idle job descriptors
}

func init() {
	parPool.tickets = make(chan parTicket, 256)
	parPool.free = make(chan *parJob, 64)
}

// ensureHelpers starts helpers until there are at least n. They live for the
// rest of the process, parked on the ticket channel when idle.
func ensureHelpers(n int) {
	if int(parPool.helpers.Load()) >= n {
		return
	}
	parPool.mu.Lock()
	defer parPool.mu.Unlock()
	for int(parPool.helpers.Load()) < n {
		parPool.helpers.Add(1)
		go func() {
			for t := range parPool.tickets {
				t.j.work(t.gen)
			}
		}()
	}
}

func parRun(n, grain int, kind parKind, fn func(part, lo, hi int), dst, src []float32, width int) {
	parts, step := parSplit(n, grain)
	if parts <= 1 {
		runPart(kind, fn, dst, src, width, 0, 0, n)
		return
	}
	var j *parJob
	select {
	case j = <-parPool.free:
	default:
		j = &parJob{done: make(chan struct{}, 1)}
	}
	j.kind, j.fn, j.dst, j.src, j.width = kind, fn, dst, src, width
	j.n, j.step = n, step
	j.gen++
	gen := j.gen
	j.pending.Store(int32(parts + 1))
	j.state.Store(uint64(gen)<<32 | uint64(parts)<<16)
	ensureHelpers(runtime.GOMAXPROCS(0) - 1)
	for range parts - 1 {
		select {
		case parPool.tickets <- parTicket{j, gen}:
		default: // the helpers are swamped: the caller does the part itself
		}
	}
	j.work(gen)
	if j.pending.Add(-1) != 0 {
		<-j.done
	}
	// Drop the references so an idle descriptor holds no tensor memory.
	j.fn, j.dst, j.src = nil, nil, nil
	select {
	case parPool.free <- j:
	default:
	}
}

// work claims and runs parts of generation gen of j until none is left.
func (j *parJob) work(gen uint32) {
	for {
		s := j.state.Load()
		if uint32(s>>32) != gen {
			return
		}
		next, parts := int(s&0xffff), int(s>>16&0xffff)
		if next >= parts {
			return
		}
		if !j.state.CompareAndSwap(s, s+1) {
			continue
		}
		lo := next * j.step
		runPart(j.kind, j.fn, j.dst, j.src, j.width, next, lo, min(lo+j.step, j.n))
		if j.pending.Add(-1) == 0 {
			j.done <- struct{}{}
		}
	}
}

func runPart(kind parKind, fn func(part, lo, hi int), dst, src []float32, width, part, lo, hi int) {
	switch kind {
	case parFn:
		fn(part, lo, hi)
	case parRound:
		fp16.RoundFloat32s(dst[lo:hi], dst[lo:hi])
	case parSoftmax:
		softmaxRange(dst, src, lo, hi, width)
	}
}
