package anetest_test

import (
	"testing"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/ane/anetest"
	_ "github.com/anetop/anetop/ane/sim" // registers the emulator as "sim"
)

// TestConformance runs the suite on the device named by -device: the
// emulator by default, the Neural Engine with -device=ane on a Mac.
func TestConformance(t *testing.T) {
	dev, err := anetest.OpenDevice(ane.Options{})
	if err != nil {
		t.Fatalf("open -device=%s: %v", anetest.DeviceName(), err)
	}
	defer dev.Close()
	anetest.Run(t, dev, anetest.WithOpen(anetest.OpenDevice))
}
