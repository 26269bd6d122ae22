//go:build !unix

package main

import (
	"errors"
	"os"
	"os/exec"
)

// execSelf runs path as a child with this process's standard streams (there
// is no exec(2) here), waits, and returns its exit status as an exitStatus
// (nil for success).
func execSelf(path string, argv, env []string) error {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitStatus{code: ee.ExitCode()}
	}
	return err
}
