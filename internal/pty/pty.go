//go:build linux

package pty

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Open returns a new pseudo-terminal's master and slave. The master is
// what a terminal emulator holds: read it for the program's output, write
// it to type. The slave is the program's terminal: give it as the child's
// stdin, stdout and stderr (with Setsid and Setctty so that it becomes the
// controlling terminal), then close it in the parent so that reads of the
// master end (EIO) once the child is gone. Neither is inherited across
// exec.
func Open() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var n uint32
	err = control(m, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil { // unlockpt
			return fmt.Errorf("unlock: %w", err)
		}
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN) // ptsname
		if err != nil {
			return fmt.Errorf("TIOCGPTN: %w", err)
		}
		return nil
	})
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty: %w", err)
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	s, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty: %w", err)
	}
	return m, s, nil
}

// control runs fn on f's descriptor without File.Fd, which would switch the
// file to blocking mode and so stop deadlines and Close from interrupting a
// Read.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// SetSize sets the terminal's size in character cells (f is the master or
// the slave). A program reads it with TIOCGWINSZ; one already running gets
// SIGWINCH.
func SetSize(f *os.File, cols, rows int) error {
	ws := &unix.Winsize{Col: uint16(cols), Row: uint16(rows)}
	err := control(f, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
	if err != nil {
		return fmt.Errorf("pty: set size: %w", err)
	}
	return nil
}

// Size reads the terminal's size in character cells.
func Size(f *os.File) (cols, rows int, err error) {
	var ws *unix.Winsize
	err = control(f, func(fd int) (err error) {
		ws, err = unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("pty: get size: %w", err)
	}
	return int(ws.Col), int(ws.Row), nil
}
