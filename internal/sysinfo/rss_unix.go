//go:build unix

package sysinfo

import (
	"runtime"
	"syscall"
)

// PeakRSS returns the process's peak resident set size in bytes (the high
// water mark the kernel keeps), or 0 if the system does not say.
func PeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	// ru_maxrss is in kilobytes on Linux and the BSDs, in bytes on macOS.
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) * 1024
}
