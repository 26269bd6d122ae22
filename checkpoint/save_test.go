package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smallTensors is a checkpoint small enough to corrupt exhaustively.
func smallTensors() []Tensor {
	return []Tensor{
		{Name: "model.embed_tokens.weight", Shape: []int{4, 3}, Data: []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{Name: "model.norm.weight", Shape: []int{3}, Data: []float32{1, 1, 1}},
		{Name: "exp_avg.model.norm.weight", Shape: []int{3}, Data: []float32{0.25, -0.5, 1e-8}},
	}
}

func smallMeta() map[string]string {
	return map[string]string{"step": "42", "config": `{"dim":3,"n_layers":0}`}
}

func TestCheckpointRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.safetensors")
	md := smallMeta()
	md[MetaCRCPrefix+"stale"] = "deadbeef" // stale checksums from a loaded file are replaced
	if err := Save(path, smallTensors(), md); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range smallTensors() {
		checkTensor(t, f, tt.Name, tt.Shape, tt.Data)
	}
	if f.Metadata["step"] != "42" || f.Metadata["format"] != "pt" || f.Metadata[MetaCRCPrefix+"model.norm.weight"] == "" {
		t.Errorf("metadata %v", f.Metadata)
	}
	if _, ok := f.Metadata[MetaCRCPrefix+"stale"]; ok {
		t.Error("stale checksum kept")
	}
	// The tensor checksum is over the stored little-endian bytes, so anyone
	// can check it (e.g. crc32c(t.numpy().tobytes()) in Python).
	raw := make([]byte, 0, 12)
	for _, v := range []float32{0.25, -0.5, 1e-8} {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	want := fmt.Sprintf("%08x", crc32.Checksum(raw, crc32.MakeTable(crc32.Castagnoli)))
	if got := f.Metadata[MetaCRCPrefix+"exp_avg.model.norm.weight"]; got != want {
		t.Errorf("checksum %s, want %s", got, want)
	}
	// A plain reader accepts it too, and verifies the checksums it finds.
	if _, err := ReadSafetensors(path); err != nil {
		t.Fatal(err)
	}
}

// checkpointFixture assembles testdata/checkpoint.safetensors by hand,
// computing the checksums with hash/crc32 directly: it pins the exact bytes
// anetop's checkpoint writer produces.
func checkpointFixture() []byte {
	tab := crc32.MakeTable(crc32.Castagnoli)
	a := []byte{0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0} // [1, -2]
	b := []byte{0x00, 0x00, 0x00, 0x3f}                         // [[0.5]]
	hdr := fmt.Sprintf(`{"__metadata__":{"crc32c.__header__":"00000000","crc32c.a":"%08x","crc32c.b":"%08x","format":"pt","step":"7"},`+
		`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}}`,
		crc32.Checksum(a, tab), crc32.Checksum(b, tab))
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	prefix := stFile(hdr, nil)
	sum := fmt.Sprintf("%08x", crc32.Checksum(prefix, tab))
	prefix = bytes.Replace(prefix, []byte(`"crc32c.__header__":"00000000"`), []byte(`"crc32c.__header__":"`+sum+`"`), 1)
	return concat(prefix, a, b)
}

func TestCheckpointFixture(t *testing.T) {
	want := checkpointFixture()
	path := checkFixture(t, "checkpoint.safetensors", want)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	checkTensor(t, f, "a", []int{2}, []float32{1, -2})
	checkTensor(t, f, "b", []int{1, 1}, []float32{0.5})
	var buf bytes.Buffer
	ts := []Tensor{{Name: "b", Shape: []int{1, 1}, Data: []float32{0.5}}, {Name: "a", Shape: []int{2}, Data: []float32{1, -2}}}
	if err := EncodeCheckpoint(&buf, ts, map[string]string{"step": "7"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("EncodeCheckpoint wrote\n%q\nwant\n%q", buf.Bytes(), want)
	}
}

func TestLoadRefusesForeignFile(t *testing.T) {
	// A valid safetensors file without checksums is importable but is not a
	// checkpoint.
	path := filepath.Join("testdata", "handmade.safetensors")
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not an anetop checkpoint") {
		t.Fatalf("error %v", err)
	}
}

// tensorAt returns the name of the tensor whose data holds byte off of the
// file, or "" if off is in the prefix or header.
func tensorAt(t *testing.T, file []byte, off int) string {
	f, err := DecodeSafetensors(bytes.NewReader(file), int64(len(file)), "x")
	if err != nil {
		t.Fatal(err)
	}
	pos := 8 + int(binary.LittleEndian.Uint64(file))
	for _, tt := range f.Tensors {
		end := pos + 4*len(tt.Data)
		if off >= pos && off < end {
			return tt.Name
		}
		pos = end
	}
	return ""
}

func TestLoadRefusesEveryTruncation(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := EncodeCheckpoint(&buf, smallTensors(), smallMeta()); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	path := filepath.Join(dir, "t.safetensors")
	for n := range len(good) {
		if err := os.WriteFile(path, good[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil {
			t.Fatalf("truncated to %d of %d bytes: accepted", n, len(good))
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("truncated to %d: error %q does not name the file", n, err)
		}
	}
	// Appended garbage is refused as well.
	os.WriteFile(path, append(bytes.Clone(good), 0), 0o644)
	if _, err := Load(path); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestLoadRefusesEveryBitFlip(t *testing.T) {
	var buf bytes.Buffer
	if err := EncodeCheckpoint(&buf, smallTensors(), smallMeta()); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	path := filepath.Join("run", "f.safetensors")
	// Every bit of the file, header padding included: the header checksum
	// covers the padding, so no flip is harmless and every one must be refused.
	for off := range good {
		name := tensorAt(t, good, off)
		for bit := range 8 {
			bad := bytes.Clone(good)
			bad[off] ^= 1 << bit
			// In memory, through the same checks as Load, to keep the
			// 8 × size cases fast; the truncation test covers real files.
			sf, err := DecodeSafetensors(bytes.NewReader(bad), int64(len(bad)), path)
			if err == nil {
				err = verify(sf, path)
			}
			if err == nil {
				t.Fatalf("bit %d of byte %d flipped: accepted", bit, off)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Fatalf("byte %d bit %d: error %q does not name the file", off, bit, msg)
			}
			if name != "" && !strings.Contains(msg, fmt.Sprintf("%q", name)) {
				t.Fatalf("byte %d bit %d (in tensor %s): error %q does not name the tensor", off, bit, name, msg)
			}
		}
	}
}

func TestSaveReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	if err := Save(path, smallTensors(), smallMeta()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	// A save that fails half-way through writing.
	boom := errors.New("disk on fire")
	err := writeAtomic(path, func(w io.Writer) error {
		w.Write(before[:len(before)/2])
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v", err)
	}
	// A save that the encoder refuses.
	if err := Save(path, []Tensor{{Name: "x", Shape: []int{2}}}, nil); err == nil {
		t.Fatal("bad tensor saved")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("failed save changed the previous checkpoint")
	}
	assertNoTemp(t, dir)

	// A successful save replaces it.
	md := smallMeta()
	md["step"] = "43"
	if err := Save(path, smallTensors(), md); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil || f.Metadata["step"] != "43" {
		t.Fatalf("after replace: %v %v", err, f)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	assertNoTemp(t, dir)
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if isTemp(e.Name()) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestSaveMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "c.safetensors")
	err := Save(path, smallTensors(), nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v", err)
	}
}

func TestSaveRefusesReservedName(t *testing.T) {
	err := Save(filepath.Join(t.TempDir(), "c"), []Tensor{{Name: "__header__", Data: []float32{1}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("error %v", err)
	}
}

func BenchmarkSave(b *testing.B) {
	// 16M parameters: the size of a stories15M checkpoint's weights.
	ts := []Tensor{{Name: "w", Shape: []int{1 << 24}, Data: make([]float32, 1<<24)}}
	path := filepath.Join(b.TempDir(), "c.safetensors")
	b.SetBytes(4 << 24)
	for b.Loop() {
		if err := Save(path, ts, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHeaderChecksumNotFooledByMetadata(t *testing.T) {
	// A caller's value or key that spells the checksum entry must not be
	// taken for it: JSON escaping keeps the quotes apart.
	path := filepath.Join(t.TempDir(), "c.safetensors")
	md := map[string]string{
		"a":                              `"crc32c.__header__":"00000000"`,
		`"crc32c.__header__":"00000000"`: "b",
	}
	if err := Save(path, smallTensors(), md); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range md {
		if f.Metadata[k] != v {
			t.Errorf("metadata[%q] = %q", k, f.Metadata[k])
		}
	}
}
