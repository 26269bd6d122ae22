package checkpoint

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anetop/anetop/model"
)

// sameParams fails unless got has want's config and bit-identical weights.
func sameParams(t *testing.T, got, want *model.Params) {
	t.Helper()
	if got.Config != want.Config {
		t.Fatalf("config %+v, wrote %+v", got.Config, want.Config)
	}
	for i := range want.Data {
		if math.Float32bits(got.Data[i]) != math.Float32bits(want.Data[i]) {
			t.Fatalf("weight %d (%v): %v, wrote %v", i, want.Config, got.Data[i], want.Data[i])
		}
	}
}

// refusesLlama2C writes data to a file and checks that ReadLlama2C refuses
// it with an error naming the file and containing want.
func refusesLlama2C(t *testing.T, data []byte, want string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadLlama2C(path)
	if err == nil {
		t.Fatal("accepted")
	}
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not mention %q and the file", err, want)
	}
}
