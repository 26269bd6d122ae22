package anetest

import (
	"flag"

	"github.com/anetop/anetop/ane"
)

// deviceFlag is registered by the package rather than by one test file so
// that every test binary linking the suite accepts -device, which is what
// lets `go test ./ane/... -device=ane` reach the hardware.
var deviceFlag = flag.String("device", "sim", "device to run the ANE conformance suite on: sim, ane or auto")

// DeviceName returns the value of the -device test flag: "sim" unless the
// test was run with -device=ane (or auto).
func DeviceName() string { return *deviceFlag }

// OpenDevice opens the device the -device flag names with opts. The emulator
// is available only where ane/sim is linked in (import it for its side
// effect); the hardware backend lives in package ane itself.
func OpenDevice(opts ane.Options) (ane.Device, error) { return ane.Open(*deviceFlag, opts) }
