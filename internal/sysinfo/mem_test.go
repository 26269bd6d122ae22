package sysinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"MemTotal:       24683620 kB\nMemFree:         1000 kB\n", 24683620 * 1024},
		{"MemFree: 5 kB\nMemTotal: 16 kB\n", 16 * 1024},
		{"MemTotal: 4096\n", 4096},
		{"MemTotal: 2 GB\n", 2 << 30},
		{"", 0},
		{"MemFree: 5 kB\n", 0},
		{"MemTotal: lots kB\n", 0},
		{"MemTotal: -5 kB\n", 0},
		{"MemTotal: 5 parsecs\n", 0},
		{"MemTotal:\n", 0},
		{"MemTotal: 99999999999999999999 kB\n", 0},
		{"MemTotal: 9007199254740993 kB\n", 0}, // overflows int64 in bytes
	} {
		if got := parseMeminfo(strings.NewReader(tc.in)); got != tc.want {
			t.Errorf("parseMeminfo(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestTotalMemory(t *testing.T) {
	n := TotalMemory()
	switch runtime.GOOS {
	case "linux", "darwin":
		// Every machine that runs the tests has more than 64 MiB, and none
		// has a petabyte.
		if n < 64<<20 || n > 1<<50 {
			t.Errorf("TotalMemory() = %d on %s; want the physical memory size", n, runtime.GOOS)
		}
	default:
		if n != 0 {
			t.Errorf("TotalMemory() = %d on %s; want 0 (unknown)", n, runtime.GOOS)
		}
	}
	if TotalMemory() != n {
		t.Error("TotalMemory changed between calls")
	}
}
