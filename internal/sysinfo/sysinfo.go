// Package sysinfo describes the machine anetop runs on, for labels and
// benchmark records: the CPU's model name and the thread count in use; and
// for sanity checks: its physical memory size.
package sysinfo

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// CPUModel returns the processor's marketing name ("AMD EPYC 7B13",
// "Apple M4"), or GOARCH when the system does not say.
var CPUModel = sync.OnceValue(func() string {
	if s := strings.TrimSpace(cpuModel()); s != "" {
		return s
	}
	return runtime.GOARCH
})

// Describe returns a one-line description of the machine: CPU model, usable
// threads, OS and architecture.
func Describe() string {
	return CPUModel() + ", " + strconv.Itoa(runtime.GOMAXPROCS(0)) + " threads, " + runtime.GOOS + "/" + runtime.GOARCH
}
