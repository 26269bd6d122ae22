package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stepTensors is a checkpoint whose content identifies its step.
func stepTensors(step int) []Tensor {
	d := make([]float32, 1000)
	for i := range d {
		d[i] = float32(step) + float32(i%7)/8
	}
	return []Tensor{{Name: "w", Shape: []int{10, 100}, Data: d}}
}

func checkStep(t *testing.T, ck *Checkpoint, step int) {
	t.Helper()
	if ck.Step != step || ck.Metadata[MetaStep] != strconv.Itoa(step) || filepath.Base(ck.Path) != StepName(step) {
		t.Fatalf("checkpoint %s step %d (metadata %q), want %d", ck.Path, ck.Step, ck.Metadata[MetaStep], step)
	}
	checkTensor(t, ck.File, "w", []int{10, 100}, stepTensors(step)[0].Data)
}

func stepFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestStepName(t *testing.T) {
	if got := StepName(123); got != "step-000123.safetensors" {
		t.Errorf("StepName(123) = %s", got)
	}
	if got := StepName(12345678); got != "step-12345678.safetensors" {
		t.Errorf("StepName(12345678) = %s", got)
	}
}

func TestRunKeepsLastKAndBest(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRun(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Validation loss falls to its minimum at step 4, then rises; steps 1
	// and 2 carry none.
	loss := map[int]string{3: "2.5", 4: "1.25", 5: "1.5", 6: "1.75", 7: "2", 8: "2", 9: "1.3", 10: "1.4"}
	for step := 1; step <= 10; step++ {
		md := map[string]string{"tokens_seen": strconv.Itoa(step * 100)}
		if l, ok := loss[step]; ok {
			md[MetaValLoss] = l
		}
		if err := r.Save(step, stepTensors(step), md); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{StepName(4), StepName(8), StepName(9), StepName(10)}
	if got := stepFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	ck, skipped, err := Latest(dir)
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	checkStep(t, ck, 10)
	if ck.Metadata["tokens_seen"] != "1000" {
		t.Errorf("metadata %v", ck.Metadata)
	}
	best, _, err := Best(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkStep(t, best, 4)

	// A better loss later makes the old best go once it is out of the last K.
	for step := 11; step <= 14; step++ {
		if err := r.Save(step, stepTensors(step), map[string]string{MetaValLoss: "0.5"}); err != nil {
			t.Fatal(err)
		}
	}
	want = []string{StepName(12), StepName(13), StepName(14)}
	if got := stepFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	best, _, _ = Best(dir)
	checkStep(t, best, 14) // the newest among equals
}

func TestLatestSkipsBadFiles(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRun(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 5; step++ {
		if err := r.Save(step, stepTensors(step), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Step 5 truncated, step 4 with a flipped bit in its data, step 3 saved
	// under the wrong name; temporary files of interrupted saves, one
	// complete and newer, one garbage.
	p5, p4, p3 := r.Path(5), r.Path(4), r.Path(3)
	b, _ := os.ReadFile(p5)
	os.WriteFile(p5, b[:len(b)-10], 0o644)
	b, _ = os.ReadFile(p4)
	b[len(b)-100] ^= 0x10
	os.WriteFile(p4, b, 0o644)
	b, _ = os.ReadFile(r.Path(2))
	os.WriteFile(p3, b, 0o644)
	b, _ = os.ReadFile(r.Path(1))
	os.WriteFile(filepath.Join(dir, "."+StepName(9)+tempMarker+"123"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "."+StepName(6)+tempMarker+"456"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a checkpoint"), 0o644)

	ck, skipped, err := Latest(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkStep(t, ck, 2)
	if len(skipped) != 3 {
		t.Fatalf("skipped %v", skipped)
	}
	for i, want := range []struct{ path, why string }{
		{p5, "truncated"},
		{p4, `tensor "w" fails its CRC-32C check`},
		{p3, "metadata says step 2 but the name says 3"},
	} {
		s := skipped[i]
		msg := s.String()
		if s.Path != want.path || !strings.Contains(msg, want.path) || !strings.Contains(msg, want.why) {
			t.Errorf("skipped[%d] = %q; want %s: %s", i, msg, want.path, want.why)
		}
	}
	// Reopening the run removes the temporary files and nothing else.
	if _, err := OpenRun(dir, 10); err != nil {
		t.Fatal(err)
	}
	want := []string{"notes.txt", StepName(1), StepName(2), StepName(3), StepName(4), StepName(5)}
	if got := stepFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
}

func TestLatestNothingValid(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Latest(dir); !errors.Is(err, ErrNoCheckpoint) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, StepName(1)), []byte("garbage!"), 0o644)
	_, skipped, err := Latest(dir)
	if !errors.Is(err, ErrNoCheckpoint) || len(skipped) != 1 {
		t.Fatalf("garbage: %v %v", err, skipped)
	}
	if _, _, err := Latest(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing dir accepted")
	}
	if _, _, err := Best(dir); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("best: %v", err)
	}
}

func TestRunSaveAsync(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRun(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(); err != nil {
		t.Fatalf("Wait with nothing saved: %v", err)
	}
	md := map[string]string{"k": "v"}
	var chans []<-chan error
	for step := 1; step <= 5; step++ {
		chans = append(chans, r.SaveAsync(step, stepTensors(step), md))
		md["k"] = "changed" // metadata is copied; the caller may reuse it
	}
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	for i, c := range chans {
		if err := <-c; err != nil {
			t.Fatalf("save %d: %v", i+1, err)
		}
	}
	ck, _, err := Latest(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkStep(t, ck, 5)
	if ck.Metadata["k"] != "changed" {
		t.Errorf("metadata %v", ck.Metadata)
	}
	if got := stepFiles(t, dir); !slices.Equal(got, []string{StepName(4), StepName(5)}) {
		t.Fatalf("files %v", got)
	}

	// A failing save reports through the channel and Wait.
	bad := r.SaveAsync(6, []Tensor{{Name: "x", Shape: []int{3}}}, nil)
	if err := <-bad; err == nil {
		t.Fatal("bad save succeeded")
	}
	if err := r.Wait(); err == nil {
		t.Fatal("Wait lost the error")
	}
	ck, _, _ = Latest(dir)
	checkStep(t, ck, 5)
}

func TestRunPruneLeavesLaterTimeline(t *testing.T) {
	// Resuming from step 2 while steps 3..5 exist, then saving step 3 and 4:
	// the new saves must survive pruning, and the later files are left to
	// the caller.
	dir := t.TempDir()
	r, _ := OpenRun(dir, 2)
	for step := 1; step <= 5; step++ {
		if err := r.Save(step, stepTensors(step), nil); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{StepName(4), StepName(5)}
	if got := stepFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	for _, step := range []int{2, 3} {
		if err := r.Save(step, stepTensors(step), nil); err != nil {
			t.Fatal(err)
		}
	}
	want = []string{StepName(2), StepName(3), StepName(4), StepName(5)}
	if got := stepFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
}

// TestNewestFile: the newest step file by its number (not its name's
// order), verified or not; temporary files and directories are not step
// files; no directory or no files give "".
func TestNewestFile(t *testing.T) {
	dir := t.TempDir()
	if got := NewestFile(dir); got != "" {
		t.Errorf("empty directory: %q", got)
	}
	if got := NewestFile(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("missing directory: %q", got)
	}
	for _, name := range []string{StepName(2), StepName(10), "." + StepName(50) + ".tmp123"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("not even a checkpoint"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, StepName(99)), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := NewestFile(dir), filepath.Join(dir, StepName(10)); got != want {
		t.Errorf("NewestFile = %q, want %q", got, want)
	}
}
