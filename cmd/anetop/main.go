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
  anetop help <command>      a command's own help (as 'anetop <command> --help')

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

// usageError marks errors in how anetop was invoked (exit code 2). run
// prints the message and, when set, a one-line hint: most messages name the
// flag and the fix themselves, so a pointer to the help would be noise;
// reported marks errors whose message was already printed.
type usageError struct {
	msg      string
	hint     string
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
			fmt.Fprintf(stderr, "anetop: %v\n", err)
			if ue.hint != "" {
				fmt.Fprintln(stderr, ue.hint)
			}
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
		return helpCmd(rest, stdout)
	case "-h", "-help", "--help":
		// Plain anetop is training, so --help is the training flags (with a
		// pointer to the commands).
		_, err := parseTrainFlags([]string{"-h"}, stdout)
		return err
	case "version", "--version":
		return versionCmd(cmd, rest, stdout, stderr)
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
		return usageError{msg: fmt.Sprintf("unknown command %q", cmd), hint: "run 'anetop help' for usage"}
	}
}

// commands are the commands dispatch knows, for 'anetop help CMD'.
var commands = []string{"bench", "data", "doctor", "export", "help", "mil", "sample", "version"}

// helpCmd is 'anetop help [CMD]': the general usage, or CMD's own help (what
// 'anetop CMD --help' prints), on stdout.
func helpCmd(args []string, stdout io.Writer) error {
	switch {
	case len(args) == 0 || len(args) == 1 && args[0] == "help":
		fmt.Fprint(stdout, usage)
		return nil
	case len(args) > 1:
		return usageError{msg: fmt.Sprintf("help takes one command, got %q", args)}
	case !slices.Contains(commands, args[0]):
		return usageError{msg: fmt.Sprintf("unknown command %q; the commands are %s", args[0], strings.Join(commands, ", "))}
	}
	return dispatch([]string{args[0], "--help"}, stdout, stdout)
}

// versionCmd is 'anetop version' (or --version), which takes no arguments.
func versionCmd(name string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "anetop version\n\nPrints anetop's version, the Go version and the platform.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("%s takes no arguments, got %q", name, fs.Args())}
	}
	fmt.Fprintln(stdout, versionString())
	return nil
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
// prints its usage to stderr on --help.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors. Only -h
// and --help print fs's usage (and return flag.ErrHelp); a bad flag is the
// flag package's one-line error and a hint to the command's --help, so the
// error does not scroll away above the whole usage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	}
	return usageError{msg: err.Error(), hint: flagsHint(fs.Name())}
}

// flagsHint points at the --help of the command whose flag set is named
// name ("anetop" is training's, the others are subcommands').
func flagsHint(name string) string {
	if name == "anetop" || name == "" {
		return "run 'anetop --help' for the flags"
	}
	return fmt.Sprintf("run 'anetop %s --help' for the flags", name)
}
