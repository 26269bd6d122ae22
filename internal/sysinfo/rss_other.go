//go:build !unix

package sysinfo

// PeakRSS returns 0: the peak resident set size is not read on this system.
func PeakRSS() int64 { return 0 }
