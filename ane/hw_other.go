//go:build !darwin

package ane

import (
	"fmt"
	"runtime"

	"github.com/anetop/anetop/internal/sysinfo"
)

// On systems other than macOS the "ane" backend is registered so that
// `--device ane` and `anetop doctor` say plainly why there is no Neural
// Engine, rather than "unknown device".
func init() {
	Register(Backend{
		Name:      "ane",
		Priority:  100,
		Available: func() (bool, string) { return false, noEngineReason() },
		Open: func(Options) (Device, error) {
			return nil, fmt.Errorf("open device \"ane\": %w: %s", ErrNoDevice, noEngineReason())
		},
	})
}

func noEngineReason() string {
	return fmt.Sprintf("the Neural Engine needs macOS on Apple silicon; this is %s/%s — use --device sim",
		runtime.GOOS, runtime.GOARCH)
}

// ProbeEngine reports what the Neural Engine backend finds on this machine:
// here, that there is none.
func ProbeEngine() Probe {
	return Probe{
		OS:     runtime.GOOS + "/" + runtime.GOARCH,
		Chip:   identifyChip(sysinfo.CPUModel(), "", 0),
		Reason: noEngineReason(),
	}
}
