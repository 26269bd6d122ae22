//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/internal/pty"
)

// The console end to end: the real binary on a pseudo-terminal, driven by
// keys, read from the screen it draws (and from its run directory, the
// ground truth behind the screen).

// Terminal queries and the answers a terminal gives. bubbletea's init asks
// (through lipgloss and termenv) for the background colour and then the
// cursor position, and waits up to 5 s for the answers; every process
// started on the terminal does it once, including the one a restart execs.
var termQueries = []struct{ query, answer string }{
	{"\x1b]11;?", "\x1b]11;rgb:0000/0000/0000\x1b\\"},
	{"\x1b]10;?", "\x1b]10;rgb:ffff/ffff/ffff\x1b\\"},
	{"\x1b[6n", "\x1b[1;1R"},
}

// header is the console's second line: "step 123/100000 (0.1%) │ … │
// elapsed 4s │ …"; the step is the count of steps done.
var headerRe = regexp.MustCompile(`step (\d+)/(\d+) \([0-9.]+%\).*elapsed (\S+)`)

// frame is one drawing of the header line.
type frame struct {
	step    int
	elapsed string
}

// term is the test's terminal emulator, as far as the test needs one: it
// answers the queries, keeps the output with the escape sequences
// stripped, and notes every drawing of the header.
type term struct {
	master *os.File
	record bool // keep the text (off for the benchmark: it only answers)

	mu      sync.Mutex
	raw     []byte // output not yet consumed
	text    []byte // output, escape sequences stripped, complete lines only
	frames  []frame
	queries int // queries answered

	notify chan struct{} // a token whenever output arrives
	done   chan struct{} // closed when the master's reads end
}

func newTerm(t testing.TB, cols, rows int, record bool) (*term, *os.File) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.SetSize(master, cols, rows); err != nil {
		t.Fatal(err)
	}
	tm := &term{master: master, record: record, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go tm.read()
	t.Cleanup(func() {
		master.Close()
		<-tm.done
	})
	return tm, slave
}

func (tm *term) read() {
	defer close(tm.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := tm.master.Read(buf)
		if n > 0 {
			tm.consume(buf[:n])
			select {
			case tm.notify <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return // EIO once every process holding the slave has gone
		}
	}
}

// consume answers the queries in the new output, in order, and folds its
// complete lines into text and frames.
func (tm *term) consume(b []byte) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.raw = append(tm.raw, b...)
	for {
		at, which := -1, -1
		for i, q := range termQueries {
			if j := bytes.Index(tm.raw, []byte(q.query)); j >= 0 && (at < 0 || j < at) {
				at, which = j, i
			}
		}
		if at < 0 {
			break
		}
		tm.master.Write([]byte(termQueries[which].answer))
		tm.queries++
		tm.fold(tm.raw[:at])
		tm.raw = tm.raw[at+len(termQueries[which].query):]
	}
	// Fold complete lines only: a line split between two reads waits for
	// the rest (escape sequences hold no newline).
	if cut := bytes.LastIndexByte(tm.raw, '\n'); cut >= 0 {
		tm.fold(tm.raw[:cut+1])
		tm.raw = tm.raw[cut+1:]
	}
	if !tm.record && len(tm.raw) > 1<<16 {
		tm.raw = tm.raw[len(tm.raw)-64:] // nothing to keep; a query never spans 64 KiB
	}
}

func (tm *term) fold(b []byte) {
	if !tm.record || len(b) == 0 {
		return
	}
	s := ansi.Strip(string(b))
	tm.text = append(tm.text, s...)
	for _, line := range strings.Split(s, "\n") {
		if m := headerRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			tm.frames = append(tm.frames, frame{step: n, elapsed: m[3]})
		}
	}
}

// mark is a point in the output: what came after it can be asked for.
type mark struct{ text, frames int }

func (tm *term) mark() mark {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return mark{len(tm.text), len(tm.frames)}
}

// since is the output after m, for a condition to look at; it is called
// with the lock held.
type since struct {
	text   string
	frames []frame
}

// waitFor polls cond, on every output and at least every 100 ms, until it
// holds or timeout passes (then the test fails, showing the screen's
// recent text). The timeout is generous: it only bounds a broken run.
func (tm *term) waitFor(t testing.TB, what string, m mark, timeout time.Duration, cond func(s since) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		tm.mu.Lock()
		s := since{text: string(tm.text[m.text:]), frames: tm.frames[m.frames:]}
		ok := cond(s)
		tm.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-tm.notify:
		case <-tick.C:
		case <-tm.done:
			tm.mu.Lock()
			ok := cond(since{text: string(tm.text[m.text:]), frames: tm.frames[m.frames:]})
			tm.mu.Unlock()
			if !ok {
				t.Fatalf("terminal closed before %s; output:\n%s", what, tm.tail())
			}
			return
		case <-deadline.C:
			t.Fatalf("after %v still waiting for %s; output:\n%s", timeout, what, tm.tail())
		}
	}
}

// tail is the end of the screen text, for failure messages.
func (tm *term) tail() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	s := string(tm.text)
	if len(s) > 6000 {
		s = "…" + s[len(s)-6000:]
	}
	return s
}

func (tm *term) typeKeys(t testing.TB, keys string) {
	t.Helper()
	if _, err := tm.master.Write([]byte(keys)); err != nil {
		t.Fatalf("typing %q: %v", keys, err)
	}
}

// startOnTerm starts the binary with the slave as its controlling terminal
// and stdin, stdout and stderr, in a session of its own as a login shell
// would start it.
func startOnTerm(t testing.TB, slave *os.File, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(anetopBinaryTB(t), args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.Env = termEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Only the child holds the terminal now: its reads end when it exits.
	slave.Close()
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// proc is a started process; err is Wait's result once exited is closed.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// termEnv is the environment of an interactive colour terminal, without
// what would change the console (NO_COLOR; CI, which makes termenv treat
// every terminal as none) or the restart count.
func termEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NO_COLOR", "CI", "TERM", "COLORTERM", "COLORFGBG", restartEnv:
			continue
		}
		env = append(env, kv)
	}
	return append(env, "TERM=xterm-256color")
}

// anetopBinaryTB is anetopBinary for benchmarks too (same single build).
// ANETOP_BENCH_BIN names a binary built beforehand instead, one that
// outlives the benchmark so that a profiler (perf record around the
// benchmark) can still resolve its symbols.
func anetopBinaryTB(t testing.TB) string {
	if bin := os.Getenv("ANETOP_BENCH_BIN"); bin != "" {
		if _, ok := t.(*testing.B); ok {
			return bin
		}
	}
	return anetopBinary(t)
}

func lastStep(fs []frame) int {
	if len(fs) == 0 {
		return -1
	}
	return fs[len(fs)-1].step
}

// stillFor reports whether the last n drawings of the header show the same
// step while the elapsed clock moved on at least n-1 times: the header is
// redrawn each time the clock ticks, so the step stood still for that long.
func stillFor(fs []frame, n int) bool {
	if len(fs) < n {
		return false
	}
	last := fs[len(fs)-n:]
	clocks := map[string]bool{}
	for _, f := range last {
		if f.step != last[0].step {
			return false
		}
		clocks[f.elapsed] = true
	}
	return len(clocks) >= n-1
}

var (
	ckptStatusRe = regexp.MustCompile(`checkpoint step (\d+), `)
	restartingRe = regexp.MustCompile(`restarting at step (\d+) in a fresh process, resuming from (\S+)`)
	resumingRe   = regexp.MustCompile(`resuming from (\S+) \(step (\d+)\)`)
	stoppedRe    = regexp.MustCompile(`stopped at step (\d+) of (\d+), checkpoint (\S+);`)
)

const e2eTotal = 100000 // far more steps than the test lets it run

// TestE2EConsole is issue #8's console test: pause stops the step counter
// and resume restarts it, c writes a checkpoint of the step shown, r execs
// the same process again resuming at the same step, and q checkpoints and
// exits 0.
func TestE2EConsole(t *testing.T) {
	dir := t.TempDir()
	tm, slave := newTerm(t, 120, 40, true)
	p := startOnTerm(t, slave, "--device", "sim", "--steps", strconv.Itoa(e2eTotal),
		"--ckpt-every", strconv.Itoa(e2eTotal), "--sample-every", "0", "--keep", "20", "--run-dir", dir)
	pid := p.cmd.Process.Pid
	const wait = 60 * time.Second // per stage; only a broken run comes near it

	// The console is up and training.
	m := tm.mark()
	tm.waitFor(t, "the console to show a few steps", m, wait, func(s since) bool { return lastStep(s.frames) >= 3 })
	tm.waitFor(t, "the RUNNING badge", m, wait, func(s since) bool { return strings.Contains(s.text, "RUNNING") })

	// p: the step counter stops.
	m = tm.mark()
	tm.typeKeys(t, "p")
	tm.waitFor(t, "the PAUSED badge", m, wait, func(s since) bool { return strings.Contains(s.text, "PAUSED") })
	tm.waitFor(t, "the step counter to stand still over 4 redraws", m, wait, func(s since) bool { return stillFor(s.frames, 4) })
	m2 := tm.mark()
	tm.mu.Lock()
	paused := lastStep(tm.frames)
	tm.mu.Unlock()
	t.Logf("paused at step %d", paused)

	// c while paused: the checkpoint is of exactly the step on screen,
	// which the engine, not only the screen, is stopped at.
	tm.typeKeys(t, "c")
	want := filepath.Join(dir, checkpoint.StepName(paused))
	tm.waitFor(t, "checkpoint "+want, m2, wait, func(s since) bool {
		_, err := os.Stat(want)
		return err == nil
	})
	tm.waitFor(t, "the status line to show the checkpoint", m2, wait, func(s since) bool {
		mm := ckptStatusRe.FindAllStringSubmatch(s.text, -1)
		return len(mm) > 0 && mm[len(mm)-1][1] == strconv.Itoa(paused)
	})
	ck, _, err := checkpoint.Latest(dir)
	if err != nil || ck.Step != paused {
		t.Fatalf("latest checkpoint %v, %v; want step %d", ck, err, paused)
	}
	tm.mu.Lock()
	for _, f := range tm.frames[m.frames:] {
		if f.step > paused {
			t.Errorf("step %d shown after the pause settled at %d", f.step, paused)
		}
	}
	tm.mu.Unlock()

	// p again: training resumes.
	m = tm.mark()
	tm.typeKeys(t, "p")
	tm.waitFor(t, "steps after the resume", m, wait, func(s since) bool { return lastStep(s.frames) > paused+2 })

	// r: a checkpoint, then the same process execs itself with --resume and
	// continues at the step after it, on the same terminal.
	m = tm.mark()
	tm.typeKeys(t, "r")
	var restartStep int
	var restartCkpt string
	tm.waitFor(t, "the restart message", m, wait, func(s since) bool {
		mm := restartingRe.FindStringSubmatch(s.text)
		if mm == nil {
			return false
		}
		restartStep, _ = strconv.Atoi(mm[1])
		restartCkpt = mm[2]
		return true
	})
	if restartStep <= paused {
		t.Errorf("restart at step %d, but the run had resumed past %d", restartStep, paused)
	}
	if want := filepath.Join(dir, checkpoint.StepName(restartStep)); restartCkpt != want {
		t.Errorf("restart resumes from %s, want %s", restartCkpt, want)
	}
	if _, err := os.Stat(restartCkpt); err != nil {
		t.Errorf("restart checkpoint: %v", err)
	}
	tm.waitFor(t, "the new process to resume", m, wait, func(s since) bool {
		mm := resumingRe.FindStringSubmatch(s.text)
		return mm != nil && mm[1] == restartCkpt && mm[2] == strconv.Itoa(restartStep)
	})
	m = tm.mark()
	tm.waitFor(t, "the restarted console to show steps", m, wait, func(s since) bool {
		n := 0
		for _, f := range s.frames {
			if f.step > 0 {
				n++
			}
		}
		return n >= 2
	})
	tm.mu.Lock()
	t.Logf("restarted at step %d from %s; the new process shows step %d", restartStep, restartCkpt, lastStep(tm.frames))
	for _, f := range tm.frames[m.frames:] {
		// Step 0 is the header before the new process's first step.
		if f.step != 0 && f.step <= restartStep {
			t.Errorf("after the restart at step %d the console shows step %d", restartStep, f.step)
		}
	}
	tm.mu.Unlock()
	// The same process, now running the resumed command line.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatalf("pid %d after the restart: %v", pid, err)
	}
	if !bytes.Contains(cmdline, []byte("\x00--resume="+restartCkpt)) {
		t.Errorf("pid %d's command line after the restart is %q; want --resume=%s", pid, cmdline, restartCkpt)
	}
	select {
	case <-p.exited:
		t.Fatalf("the process exited on restart: %v", p.err)
	default:
	}

	// q: checkpoint and exit 0.
	tm.mu.Lock()
	beforeQuit := lastStep(tm.frames)
	tm.mu.Unlock()
	m = tm.mark()
	tm.typeKeys(t, "q")
	select {
	case <-p.exited:
	case <-time.After(wait):
		t.Fatalf("still running %v after q; output:\n%s", wait, tm.tail())
	}
	if p.err != nil {
		t.Fatalf("exit after q: %v; output:\n%s", p.err, tm.tail())
	}
	<-tm.done // the rest of the output
	var final int
	tm.waitFor(t, "the exit message", m, time.Second, func(s since) bool {
		mm := stoppedRe.FindStringSubmatch(s.text)
		if mm == nil {
			return false
		}
		final, _ = strconv.Atoi(mm[1])
		return mm[3] == filepath.Join(dir, checkpoint.StepName(final))
	})
	if final < beforeQuit {
		t.Errorf("stopped at step %d, before the %d shown when q was pressed", final, beforeQuit)
	}
	ck, _, err = checkpoint.Latest(dir)
	if err != nil || ck.Step != final {
		t.Fatalf("latest checkpoint %v, %v; want the exit's, step %d", ck, err, final)
	}
	for _, s := range []int{paused, restartStep, final} {
		if _, err := os.Stat(filepath.Join(dir, checkpoint.StepName(s))); err != nil {
			t.Errorf("checkpoint of step %d: %v", s, err)
		}
	}
	t.Logf("q: stopped at step %d (shown %d when pressed); %d terminal queries answered", final, beforeQuit, tm.queries)
	if tm.queries < 4 {
		t.Errorf("answered %d terminal queries; two processes each ask two", tm.queries)
	}
}

// TestE2EConsoleCtrlC: ctrl+c in the console (a key in the terminal's raw
// mode, not a signal) checkpoints the last step and exits 130, as SIGINT
// does without the console.
func TestE2EConsoleCtrlC(t *testing.T) {
	dir := t.TempDir()
	tm, slave := newTerm(t, 100, 30, true)
	p := startOnTerm(t, slave, "--device", "sim", "--steps", strconv.Itoa(e2eTotal),
		"--ckpt-every", strconv.Itoa(e2eTotal), "--sample-every", "0", "--run-dir", dir)
	const wait = 60 * time.Second
	m := tm.mark()
	tm.waitFor(t, "the console to show a few steps", m, wait, func(s since) bool { return lastStep(s.frames) >= 3 })
	tm.typeKeys(t, "\x03")
	select {
	case <-p.exited:
	case <-time.After(wait):
		t.Fatalf("still running %v after ctrl+c; output:\n%s", wait, tm.tail())
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit after ctrl+c: %v, want code %d; output:\n%s", p.err, exitInterrupted, tm.tail())
	}
	<-tm.done
	ck, _, err := checkpoint.Latest(dir)
	if err != nil || ck.Step < 3 {
		t.Fatalf("latest checkpoint %v, %v; want the exit's", ck, err)
	}
	if !strings.Contains(tm.tail(), "interrupted at step") {
		t.Errorf("no 'interrupted at step' message; output:\n%s", tm.tail())
	}
}

// BenchmarkConsoleOverhead is issue #8's criterion "steps/s with the
// console is at least 98% of headless" for the tiny preset on the
// emulator. Each iteration trains the same run twice, headless (--no-tui
// --json, stdout read by the benchmark) and with the console on a 120×40
// pseudo-terminal (read and discarded, as a terminal would), and measures
// both the same way: steps between two periodic checkpoints divided by the
// time between their files' modification times, which leaves out start-up
// and shut-down. Pairs alternate, so a noisy machine affects both sides;
// the ratio is reported per pair, as the median over the pairs and as the
// ratio of the best runs (the least disturbed by other work), with the CPU
// time per step of each side (start-up included, the same on both).
//
//	go test ./cmd/anetop -run '^$' -bench ConsoleOverhead -benchtime 5x
//
// ANETOP_BENCH_STEPS sets the steps per run (default 600).
func BenchmarkConsoleOverhead(b *testing.B) {
	steps := 600
	if s := os.Getenv("ANETOP_BENCH_STEPS"); s != "" {
		var err error
		if steps, err = strconv.Atoi(s); err != nil || steps < 60 {
			b.Fatalf("ANETOP_BENCH_STEPS=%q: want a number ≥ 60", s)
		}
	}
	every := steps / 6
	first, last := every, steps-every // periodic checkpoints, away from both ends
	args := func(dir string) []string {
		return []string{"--device", "sim", "--steps", strconv.Itoa(steps), "--ckpt-every", strconv.Itoa(every),
			"--keep", "100", "--sample-every", "0", "--run-dir", dir}
	}
	rateOf := func(b *testing.B, dir string) float64 {
		var t [2]time.Time
		for i, s := range []int{first, last} {
			fi, err := os.Stat(filepath.Join(dir, checkpoint.StepName(s)))
			if err != nil {
				b.Fatal(err)
			}
			t[i] = fi.ModTime()
		}
		return float64(last-first) / t[1].Sub(t[0]).Seconds()
	}
	bin := anetopBinaryTB(b)
	cpu := func(ps *os.ProcessState) float64 {
		return 1e3 * (ps.UserTime() + ps.SystemTime()).Seconds() / float64(steps)
	}
	// startHeadless starts the headless run; wait waits for it and
	// measures it.
	startHeadless := func(b *testing.B) (wait func() (rate, cpuMS float64)) {
		dir := b.TempDir()
		cmd := exec.Command(bin, append(args(dir), "--no-tui", "--json")...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		// A session of its own, as the console run has: with the
		// kernel's autogroup scheduling each session gets an equal share
		// of the CPUs, and without this the two sides would not compete
		// on equal terms.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		return func() (float64, float64) {
			if err := cmd.Wait(); err != nil {
				b.Fatalf("headless: %v: %s", err, errb.Bytes())
			}
			return rateOf(b, dir), cpu(cmd.ProcessState)
		}
	}
	console := func(b *testing.B) (rate, cpuMS float64) {
		dir := b.TempDir()
		tm, slave := newTerm(b, 120, 40, false)
		a := args(dir)
		if os.Getenv("ANETOP_BENCH_CONTROL") != "" {
			a = append(a, "--no-tui")
		}
		p := startOnTerm(b, slave, a...)
		final := filepath.Join(dir, checkpoint.StepName(steps))
		tm.waitFor(b, "the final checkpoint", tm.mark(), 10*time.Minute, func(since) bool {
			_, err := os.Stat(final)
			return err == nil
		})
		tm.typeKeys(b, "q")
		select {
		case <-p.exited:
		case <-time.After(time.Minute):
			b.Fatal("the console did not exit after q")
		}
		if p.err != nil {
			b.Fatalf("console run: %v", p.err)
		}
		return rateOf(b, dir), cpu(p.cmd.ProcessState)
	}
	measure := func(b *testing.B, pair func(i int) (h, c, hc, cc float64)) {
		var ratios, hs, cs, hcpu, ccpu []float64
		for i := range b.N {
			h, c, hc, cc := pair(i)
			load, _ := os.ReadFile("/proc/loadavg")
			b.Logf("headless %.2f steps/s (%.1f CPU ms/step), console %.2f steps/s (%.1f CPU ms/step): %.1f%%; load %s",
				h, hc, c, cc, 100*c/h, strings.Join(strings.Fields(string(load))[:3], " "))
			hs, cs, ratios = append(hs, h), append(cs, c), append(ratios, c/h)
			hcpu, ccpu = append(hcpu, hc), append(ccpu, cc)
		}
		b.ReportMetric(median(hs), "headless-steps/s")
		b.ReportMetric(median(cs), "console-steps/s")
		b.ReportMetric(100*median(ratios), "console/headless-%")
		// The best run of each side is the least disturbed by other work.
		b.ReportMetric(100*slices.Max(cs)/slices.Max(hs), "best-console/best-headless-%")
		b.ReportMetric(median(hcpu), "headless-cpu-ms/step")
		b.ReportMetric(median(ccpu), "console-cpu-ms/step")
		b.ReportMetric(0, "ns/op")
	}
	// One after the other, alternating which goes first so that a load
	// rising or falling during a pair does not always favour one side.
	b.Run("alternating", func(b *testing.B) {
		measure(b, func(i int) (h, c, hc, cc float64) {
			if i%2 == 0 {
				h, hc = startHeadless(b)()
				c, cc = console(b)
			} else {
				c, cc = console(b)
				h, hc = startHeadless(b)()
			}
			return
		})
	})
	// Both at once: each sees the same outside load at the same time, and
	// they share the two CPUs, so what the console costs in CPU shows as
	// fewer steps.
	b.Run("concurrent", func(b *testing.B) {
		measure(b, func(int) (h, c, hc, cc float64) {
			wait := startHeadless(b)
			c, cc = console(b)
			h, hc = wait()
			return
		})
	})
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
