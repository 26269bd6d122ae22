package checkpoint

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const crashChildEnv = "ANETOP_CHECKPOINT_CRASH_DIR"

// crashTensors is large enough (1 MB) that a kill often lands mid-write.
func crashTensors(step int) []Tensor {
	d := make([]float32, 1<<18)
	for i := range d {
		d[i] = float32(step) + float32(i%13)/16
	}
	return []Tensor{
		{Name: "model.layers.0.mlp.up_proj.weight", Shape: []int{512, 256}, Data: d[:1<<17]},
		{Name: "exp_avg.model.layers.0.mlp.up_proj.weight", Shape: []int{512, 256}, Data: d[1<<17:]},
	}
}

// TestCheckpointCrashChild is the child side of TestCheckpointCrash: it
// resumes from the latest checkpoint and saves step after step, in the
// background as training would, reporting each completed save, until killed.
func TestCheckpointCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("child process of TestCheckpointCrash")
	}
	r, err := OpenRun(dir, 2)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready") // the parent's kill clock starts here
	step := 1
	if ck, _, err := Latest(dir); err == nil {
		step = ck.Step + 1
	}
	for ; ; step++ {
		md := map[string]string{MetaValLoss: strconv.FormatFloat(float64(step%5), 'g', -1, 64)}
		if err := <-r.SaveAsync(step, crashTensors(step), md); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("saved", step)
	}
}

// TestCheckpointCrash kills a process that is saving checkpoints with
// SIGKILL at random moments. After every kill the run directory must hold a
// valid checkpoint at least as new as the last save the child reported (no
// completed save is lost), no file must fail verification, and temporary
// files must never be taken for checkpoints.
func TestCheckpointCrash(t *testing.T) {
	kills := 20
	if testing.Short() {
		kills = 5
	}
	dir := t.TempDir()
	// Random kill moments are the point; the seed is logged to replay a failure.
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	lastSaved, tempsSeen := 0, 0
	for kill := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCheckpointCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A Fatalf below must not leave the child saving forever.
		t.Cleanup(func() { cmd.Process.Kill() })
		// The kill clock starts when the child is ready, not when it is
		// started: a race-instrumented binary on a loaded machine can take
		// longer to start than the longest kill delay. One round in four
		// waits for a save first, so the run always makes progress.
		lines := make(chan string, 1024) // the scanner never blocks on a test that stopped reading
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var ls []string
		wait := func(prefix string) {
			deadline := time.After(time.Minute)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("kill %d: the child exited before %q: %v", kill, prefix, ls)
					}
					if ls = append(ls, l); strings.HasPrefix(l, prefix) {
						return
					}
				case <-deadline:
					t.Fatalf("kill %d: no %q from the child in a minute: %v", kill, prefix, ls)
				}
			}
		}
		wait("ready")
		if kill%4 == 3 {
			wait("saved")
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		cmd.Process.Kill()
		for l := range lines {
			ls = append(ls, l)
		}
		cmd.Wait()
		for _, l := range ls {
			if s, ok := strings.CutPrefix(l, "saved "); ok {
				lastSaved, _ = strconv.Atoi(s)
			} else if strings.HasPrefix(l, "error") {
				t.Fatalf("child: %s", l)
			}
		}

		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if isTemp(e.Name()) {
				tempsSeen++
			}
		}
		ck, skipped, err := Latest(dir)
		if len(skipped) > 0 {
			t.Fatalf("kill %d: a killed save left a bad checkpoint: %v", kill, skipped)
		}
		if lastSaved == 0 {
			continue // killed before its first save completed
		}
		if err != nil {
			t.Fatalf("kill %d: after step %d was saved: %v", kill, lastSaved, err)
		}
		if isTemp(filepath.Base(ck.Path)) || filepath.Base(ck.Path) != StepName(ck.Step) {
			t.Fatalf("kill %d: Latest returned %s", kill, ck.Path)
		}
		// The save of lastSaved+1 may have completed before the child could
		// report it; nothing older than the last reported save is acceptable.
		if ck.Step < lastSaved || ck.Step > lastSaved+1 {
			t.Fatalf("kill %d: latest is step %d, last reported save was %d", kill, ck.Step, lastSaved)
		}
		for _, tt := range crashTensors(ck.Step) {
			checkTensor(t, ck.File, tt.Name, tt.Shape, tt.Data)
		}
		lastSaved = ck.Step
	}
	t.Logf("%d kills, reached step %d, %d temporary files seen after kills", kills, lastSaved, tempsSeen)
	if lastSaved == 0 {
		t.Fatal("the child never completed a save")
	}
}
