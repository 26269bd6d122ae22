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
