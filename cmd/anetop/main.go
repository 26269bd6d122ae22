// Command anetop trains Llama-style transformers on Apple's Neural Engine, or
// on anetop's CPU emulator of it, and shows the run live in a terminal.
//
// Plain "anetop [flags]" trains (train.go: the console when stdout is a
// terminal, output.go: the headless outputs, restart.go: exec restarts);
// the subcommands are bench, data get, doctor, export, mil check, sample and
// version, a file each.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// version is set at link time with -ldflags "-X main.version=v0.1.0"; module
// builds report the module version instead.
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `anetop trains Llama-style transformers on Apple's Neural Engine (or its
CPU emulator) and shows the run live in a terminal.

Usage:
  anetop [flags]             train (anetop --help lists the training flags)
  anetop <command> [flags]

Commands available in this build:
  bench           measure sgemm and fp16 conversion; --model PRESET: training steps
  data get tinystories  download the TinyStories text and llama2.c tokenizer
  doctor          check the Neural Engine (or, without one, the emulator) end to end
  export          write a checkpoint as a llama2.c model.bin or a Hugging Face model
  mil check FILE  parse and type-check MIL kernel files with the emulator's compiler
  sample          generate text from a checkpoint (--ckpt PATH|RUN_DIR --prompt TEXT)
  version         print the version and build information

Examples:
  anetop                           train the tiny model on the built-in stories
  anetop --no-tui --json --steps 200
  anetop --resume                  continue the newest checkpoint in runs/tiny
  anetop bench --model stories15m --steps 10
  anetop mil check kernel.mil
`

// usageError marks errors in how anetop was invoked (exit code 2). The flag
// package prints its own errors with the usage; those are marked reported.
type usageError struct {
	msg      string
	reported bool
}

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	var ue usageError
	var es exitStatus
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &es):
		if es.msg != "" {
			fmt.Fprintf(stderr, "anetop: %s\n", es.msg)
		}
		return es.code
	case errors.As(err, &ue):
		if !ue.reported {
			fmt.Fprintf(stderr, "anetop: %v\nRun 'anetop help' for usage.\n", err)
		}
		return exitUsage
	default:
		fmt.Fprintf(stderr, "anetop: %v\n", err)
		return exitError
	}
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	// No command, or flags first: train.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !slices.Contains(helpWords, args[0]) && args[0] != "--version" {
		return trainCmd(args, stdout, stderr)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "-h", "-help", "--help":
		// Plain anetop is training, so --help is the training flags (with a
		// pointer to the commands).
		_, err := parseTrainFlags([]string{"-h"}, stdout)
		return err
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "bench":
		return benchCmd(rest, stdout, stderr)
	case "mil":
		return milCmd(rest, stdout, stderr)
	case "doctor":
		return doctorCmd(rest, stdout, stderr)
	case "data":
		return dataCmd(rest, stdout, stderr)
	case "export":
		return exportCmd(rest, stdout, stderr)
	case "sample":
		return sampleCmd(rest, stdout, stderr)
	default:
		return usageError{msg: fmt.Sprintf("unknown command %q", cmd)}
	}
}

var helpWords = []string{"-h", "-help", "--help"}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	return fmt.Sprintf("anetop %s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints its usage to stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{msg: err.Error(), reported: true}
	}
	return nil
}
