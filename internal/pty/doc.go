// Package pty opens pseudo-terminals, for tests that drive anetop's console
// as a user's terminal would. It is Linux-only (pty.go): it uses the ioctls
// directly (golang.org/x/sys/unix), so it needs no cgo and no extra
// dependency.
package pty
