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

	"github.com/anetop/anetop/engine"
	"github.com/anetop/anetop/tui"
)

// Restart is the console's r key: checkpoint the current step, stop the run
// cleanly, and exec the same binary with the same arguments plus
// --resume=<that checkpoint>, so training continues at the same step in a
// fresh process. A fresh process is what the ANE's per-process compile
// budget needs (issue #7 item 3); the engine's own Restart command (back to
// the initial weights) is never sent by the console.

// restartEnv counts the exec restarts of a run, so a restart that restarts
// again at once cannot loop forever.
const (
	restartEnv  = "ANETOP_RESTARTS"
	maxRestarts = 32
)

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
	ckpt string // the checkpoint to resume from
	step int
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

// restartEnviron returns env with the restart counter incremented, or an
// error once the run has restarted maxRestarts times.
func restartEnviron(env []string) ([]string, error) {
	n := 0
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if k != restartEnv {
			out = append(out, kv)
			continue
		}
		if v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 0 {
				return nil, fmt.Errorf("%s=%q is not a count of restarts: unset it", restartEnv, v)
			}
		}
	}
	if n >= maxRestarts {
		return nil, fmt.Errorf("this run has already restarted %d times (%s=%d): refusing to restart again, in case it loops", n, restartEnv, n)
	}
	return append(out, restartEnv+"="+strconv.Itoa(n+1)), nil
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
	env, err := restartEnviron(os.Environ())
	if err != nil {
		return fmt.Errorf("restart: %v; %s", err, resumeHint)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("restart: finding the anetop binary: %v; %s", err, resumeHint)
	}
	argv0 := exe
	if len(os.Args) > 0 {
		argv0 = os.Args[0]
	}
	argv := append([]string{argv0}, restartArgs(args, ckpt)...)
	fmt.Fprintf(stderr, "anetop: restarting at step %d in a fresh process, resuming from %s\n", rr.step, ckpt)
	if err := restartExec(exe, argv, env); err != nil {
		var es exitStatus
		if errors.As(err, &es) {
			return err
		}
		return fmt.Errorf("restart: exec %s: %v; %s", exe, err, resumeHint)
	}
	return nil
}
