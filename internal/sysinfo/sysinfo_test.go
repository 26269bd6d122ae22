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
	// Touch more memory than the high-water mark so far: every touched
	// page is resident at once, so the mark must reach at least that much.
	// (Comparing the rise with what was touched fails when earlier
	// allocations, since freed, left the mark above the current set.)
	n := before + 64<<20
	buf := make([]byte, n)
	for i := int64(0); i < n; i += 4096 {
		buf[i] = 1
	}
	if after := PeakRSS(); after < n {
		t.Errorf("PeakRSS() = %d after touching %d bytes at once (was %d); want at least %d", after, n, before, n)
	}
	runtime.KeepAlive(buf)
}
