//go:build unix

package main

import "syscall"

// execSelf replaces the process with path (argv, env); it returns only on
// failure.
func execSelf(path string, argv, env []string) error {
	return syscall.Exec(path, argv, env)
}
