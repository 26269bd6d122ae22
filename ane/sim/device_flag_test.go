package sim_test

// go test ./ane/... -device=ane passes -device to every test binary under
// ane/; linking the conformance suite, which defines the flag, lets this one
// accept it too. The suite itself runs in ane/anetest.
import _ "github.com/anetop/anetop/ane/anetest"
