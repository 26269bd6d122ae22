package sysinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	d := Describe()
	if CPUModel() == "" || !strings.Contains(d, CPUModel()) || !strings.HasSuffix(d, runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("Describe() = %q", d)
	}
}

func TestPeakRSSGrowsWithTouchedMemory(t *testing.T) {
	before := PeakRSS()
	if before <= 0 {
		t.Fatalf("PeakRSS() = %d; a running Go test has a positive resident set", before)
	}
	// Touch 64 MiB that was never resident: the high-water mark must rise
	// by about that much.
	const n = 64 << 20
	buf := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		buf[i] = 1
	}
	after := PeakRSS()
	if after-before < n/2 {
		t.Errorf("PeakRSS rose %d bytes after touching %d new bytes; want at least %d", after-before, n, n/2)
	}
	runtime.KeepAlive(buf)
}
