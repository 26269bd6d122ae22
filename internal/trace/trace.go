// Package trace writes the engine's step timeline (an engine.Tracer) as a
// Chrome trace-event JSON file, so that the overlap of device evaluations,
// CPU phases and the dW worker can be seen rather than inferred from sums.
//
// Open the file in https://ui.perfetto.dev (Open trace file, or drag and
// drop it) or in Chrome at chrome://tracing (Load). Each engine.Track is a
// thread of the process "anetop": step, cpu, device, dW worker, top to
// bottom; every span is a complete ("X") event whose args carry the step
// and, for per-layer work, the layer. Nothing leaves the machine: Perfetto
// parses the file in the browser.
//
// The file is the trace-event format's JSON array form: one event per line
// after a "[", closed by "]" on Close. A run killed before Close leaves a
// file without the "]", which both viewers accept. A Writer records at most
// Options.MaxEvents spans, so a long run cannot fill the disk; the spans
// after that are counted, and Close adds an instant event "trace truncated"
// with the count where the first was dropped.
package trace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/anetop/anetop/engine"
)

// DefaultMaxEvents is Options.MaxEvents's default: about 100 MB of JSON,
// some 7000 stories15m steps (~150 spans each).
const DefaultMaxEvents = 1 << 20

// Options configures a Writer. The zero value takes the defaults.
type Options struct {
	// MaxEvents is the most spans recorded; later ones are dropped and
	// counted. 0 means DefaultMaxEvents; negative means no limit.
	MaxEvents int
	// Process names the trace's one process; "" means "anetop".
	Process string
}

// Writer streams spans as trace events. It implements engine.Tracer: Span
// is safe for concurrent use and does not allocate. Close must be called to
// complete the file.
type Writer struct {
	mu      sync.Mutex
	bw      *bufio.Writer
	closer  io.Closer // the file Create opened; nil for New
	origin  time.Time // ts 0
	max     int
	n       int       // spans recorded
	dropped int       // spans dropped after max
	firstDr time.Time // start of the first dropped span
	buf     []byte    // one event, reused
	err     error     // the first write error; recording stops there
	closed  bool
}

// pid is the trace's one process id; a track's tid is its index + 1 (tid 0
// is avoided: some viewers treat it as "no thread").
const pid = 1

// New returns a Writer streaming to w, with ts 0 at the call. The header
// and the tracks' names are written at once (buffered).
func New(w io.Writer, opt Options) *Writer {
	if opt.MaxEvents == 0 {
		opt.MaxEvents = DefaultMaxEvents
	}
	if opt.Process == "" {
		opt.Process = "anetop"
	}
	tw := &Writer{bw: bufio.NewWriterSize(w, 1<<16), origin: time.Now(), max: opt.MaxEvents, buf: make([]byte, 0, 256)}
	b := append(tw.buf[:0], '[')
	b = appendMeta(b, "process_name", 0, "name", opt.Process)
	for t := range engine.NumTracks {
		b = append(b, ",\n"...)
		b = appendMeta(b, "thread_name", int(t)+1, "name", t.String())
		b = append(b, ",\n"...)
		b = appendMeta(b, "thread_sort_index", int(t)+1, "sort_index", int(t))
	}
	tw.write(b)
	return tw
}

// Create creates (or truncates) the file at path and returns a Writer
// streaming to it; Close closes the file.
func Create(path string, opt Options) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	w := New(f, opt)
	w.closer = f
	return w, nil
}

// appendMeta appends a metadata ("M") event: process-wide for tid 0.
func appendMeta(b []byte, name string, tid int, key string, val any) []byte {
	b = append(b, `{"name":`...)
	b = strconv.AppendQuote(b, name)
	b = append(b, `,"ph":"M","pid":`...)
	b = strconv.AppendInt(b, pid, 10)
	if tid > 0 {
		b = append(b, `,"tid":`...)
		b = strconv.AppendInt(b, int64(tid), 10)
	}
	b = append(b, `,"args":{`...)
	b = strconv.AppendQuote(b, key)
	b = append(b, ':')
	switch v := val.(type) {
	case string:
		b = strconv.AppendQuote(b, v)
	case int:
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return append(b, "}}"...)
}

// appendMicros appends d in microseconds with three decimals, exactly (the
// format's unit; the nanoseconds are kept so that adjacent spans stay
// adjacent rather than overlapping by a rounding).
func appendMicros(b []byte, d time.Duration) []byte {
	ns := int64(d)
	if ns < 0 {
		b = append(b, '-')
		ns = -ns
	}
	b = strconv.AppendInt(b, ns/1000, 10)
	frac := ns % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// Span records s as a complete event on its track's thread.
func (w *Writer) Span(s engine.Span) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.err != nil {
		return
	}
	if w.max >= 0 && w.n >= w.max {
		if w.dropped == 0 {
			w.firstDr = s.Start
		}
		w.dropped++
		return
	}
	w.n++
	b := append(w.buf[:0], ",\n"...)
	b = append(b, `{"name":`...)
	b = strconv.AppendQuote(b, s.Name)
	b = append(b, `,"cat":`...)
	b = strconv.AppendQuote(b, s.Track.String())
	b = append(b, `,"ph":"X","ts":`...)
	b = appendMicros(b, s.Start.Sub(w.origin))
	b = append(b, `,"dur":`...)
	b = appendMicros(b, s.End.Sub(s.Start))
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, pid, 10)
	b = append(b, `,"tid":`...)
	b = strconv.AppendInt(b, int64(s.Track)+1, 10)
	b = append(b, `,"args":{"step":`...)
	b = strconv.AppendInt(b, int64(s.Step), 10)
	if s.Layer >= 0 {
		b = append(b, `,"layer":`...)
		b = strconv.AppendInt(b, int64(s.Layer), 10)
	}
	b = append(b, "}}"...)
	w.buf = b
	w.write(b)
}

// write writes b, keeping the first error (under mu, or before sharing).
func (w *Writer) write(b []byte) {
	if w.err == nil {
		_, w.err = w.bw.Write(b)
	}
}

// Events returns the spans recorded and dropped so far.
func (w *Writer) Events() (recorded, dropped int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.dropped
}

// Close completes the file — a "trace truncated" instant event if spans
// were dropped, then the closing "]" — flushes it and closes the file
// Create opened. Spans after Close are ignored. It returns the first write
// error, if any.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	b := w.buf[:0]
	if w.dropped > 0 {
		b = append(b, ",\n"...)
		b = append(b, `{"name":"trace truncated","ph":"i","s":"g","ts":`...)
		b = appendMicros(b, w.firstDr.Sub(w.origin))
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, pid, 10)
		b = append(b, `,"tid":1,"args":{"max_events":`...)
		b = strconv.AppendInt(b, int64(w.max), 10)
		b = append(b, `,"dropped_spans":`...)
		b = strconv.AppendInt(b, int64(w.dropped), 10)
		b = append(b, "}}"...)
	}
	b = append(b, "\n]\n"...)
	w.write(b)
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.closer != nil {
		w.err = errors.Join(w.err, w.closer.Close())
	}
	if w.err != nil {
		w.err = fmt.Errorf("trace: %w", w.err)
	}
	return w.err
}
