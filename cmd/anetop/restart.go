package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/tui"
)

// Restart is the console's r key, and what the static pipeline does when
// the compile budget would run out (engine.ErrCompileBudget): checkpoint the
// current step, stop the run cleanly, and exec the same binary with the same
// arguments plus --resume=<that checkpoint>, so training continues at the
// same step in a fresh process. A fresh process is what the ANE's per-process compile
// budget needs (issue #7 item 3); the engine's own Restart command (back to
// the initial weights) is never sent by the console.

// restartEnv counts the exec restarts of a run (for names, such as
// --trace's per-process files); restartStepEnv is the step the last one
// resumed at, so that a restart which made no progress since the previous
// one — a loop — is refused. A static-pipeline run restarts every few steps
// for as long as it trains, so there is no cap on the count itself.
const (
	restartEnv     = "ANETOP_RESTARTS"
	restartStepEnv = "ANETOP_RESTART_STEP"
	// runStartEnv is when the first process of a restarted run started
	// (Unix nanoseconds), so the console's elapsed time spans the run.
	runStartEnv = "ANETOP_RUN_START"
)

// processStart is when this process started, near enough.
var processStart = time.Now()

// withRunStart adds runStartEnv = start to env unless a restart before set
// it.
func withRunStart(env []string, start time.Time) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, runStartEnv+"=") {
			return env
		}
	}
	return append(env, runStartEnv+"="+strconv.FormatInt(start.UnixNano(), 10))
}

// runStart is when the run this process continues started: runStartEnv in
// a process an exec restart started, else the zero time.
func runStart() time.Time {
	if os.Getenv(restartEnv) == "" {
		return time.Time{}
	}
	ns, err := strconv.ParseInt(os.Getenv(runStartEnv), 10, 64)
	if err != nil || ns <= 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Seams for tests: the exec (execSelf is build-tagged: syscall.Exec on
// unix), the console and whether stdout is one.
var (
	restartExec     = execSelf
	consoleRun      = tui.Run
	stdoutIsConsole = isTerminal
)

// restartRequest is returned by trainRun when the run stopped for a
// restart; trainCmd execs once everything (engine, device, data) is closed.
type restartRequest struct {
	ckpt   string // the checkpoint to resume from
	step   int
	budget bool // automatic: the compile budget ran out (engine.ErrCompileBudget)
}

func (r restartRequest) Error() string {
	return fmt.Sprintf("restart requested at step %d from %s", r.step, r.ckpt)
}

// sender is what restartCtl wraps (*engine.Runner).
type sender interface {
	Send(engine.Command) bool
}

// restartCtl is the console's Controller: every command goes to the runner
// except Restart, which becomes Checkpoint (written synchronously on the
// runner's goroutine, like the c key) followed by Stop; trainRun then sees
// Requested and asks trainCmd to exec.
type restartCtl struct {
	r         sender
	mu        sync.Mutex
	requested bool
}

func (c *restartCtl) Send(cmd engine.Command) bool {
	if cmd != engine.Restart {
		return c.r.Send(cmd)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.requested {
		return true
	}
	if !c.r.Send(engine.Checkpoint) {
		return false
	}
	if !c.r.Send(engine.Stop) {
		// The checkpoint alone is harmless; the console says "busy".
		return false
	}
	c.requested = true
	return true
}

// Requested reports whether a restart was asked for.
func (c *restartCtl) Requested() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requested
}

// restartArgs rewrites the training arguments for the restarted process:
// every --resume (bare, --resume=PATH, --resume PATH) and --init (which
// conflicts with --resume) is dropped and --resume=ckpt appended, before a
// "--" terminator if there is one. Everything else is kept as given.
func restartArgs(args []string, ckpt string) []string {
	out := make([]string, 0, len(args)+1)
	resume := "--resume=" + ckpt
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, resume)
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			out = append(out, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		switch {
		case name == "resume":
			// A bare --resume takes a following non-flag argument as its
			// path (parseTrainFlags).
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
			}
		case name == "init":
			if !hasValue && i+1 < len(args) {
				i++
			}
		case hasValue || restartBoolFlags[name]:
			out = append(out, a)
		default:
			// A flag with its value in the next argument.
			out = append(out, a)
			if i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	return append(out, resume)
}

// restartBoolFlags are the training flags that take no value argument
// (besides --resume, handled apart).
var restartBoolFlags = map[string]bool{"json": true, "no-tui": true, "h": true, "help": true}

// restartEnviron returns env for a restart resuming at step: the restart
// counter incremented and the step recorded. It refuses a restart at a step
// no later than the previous restart's: the run would loop without
// training.
func restartEnviron(env []string, step int) ([]string, error) {
	n, last := 0, -1
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		var dst *int
		switch k {
		case restartEnv:
			dst = &n
		case restartStepEnv:
			dst = &last
		default:
			out = append(out, kv)
			continue
		}
		if v == "" {
			continue
		}
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 {
			return nil, fmt.Errorf("%s=%q is not a count: unset it", k, v)
		}
		*dst = x
	}
	if last >= 0 && step <= last {
		return nil, fmt.Errorf("the previous restart already resumed at step %d and this one is at step %d: refusing to restart again, as the run would loop without training", last, step)
	}
	return append(out, restartEnv+"="+strconv.Itoa(n+1), restartStepEnv+"="+strconv.Itoa(step)), nil
}

// restartSelf execs the binary with args rewritten to resume from rr.ckpt.
// On unix it returns only on failure; elsewhere it runs the new process as
// a child and returns its exit status.
func restartSelf(args []string, rr restartRequest, stderr io.Writer) error {
	ckpt := rr.ckpt
	if abs, err := filepath.Abs(ckpt); err == nil {
		ckpt = abs
	}
	resumeHint := fmt.Sprintf("checkpoint %s is written; continue with: anetop --resume=%s", ckpt, ckpt)
	env, err := restartEnviron(os.Environ(), rr.step)
	if err != nil {
		return fmt.Errorf("restart: %v; %s", err, resumeHint)
	}
	env = withRunStart(env, processStart)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("restart: finding the anetop binary: %v; %s", err, resumeHint)
	}
	argv0 := exe
	if len(os.Args) > 0 {
		argv0 = os.Args[0]
	}
	argv := append([]string{argv0}, restartArgs(args, ckpt)...)
	why := ""
	if rr.budget {
		why = " (the next step's kernel compiles would exceed this process's compile budget)"
	}
	fmt.Fprintf(stderr, "anetop: restarting at step %d in a fresh process%s, resuming from %s\n", rr.step, why, ckpt)
	if err := restartExec(exe, argv, env); err != nil {
		var es exitStatus
		if errors.As(err, &es) {
			return err
		}
		return fmt.Errorf("restart: exec %s: %v; %s", exe, err, resumeHint)
	}
	return nil
}
