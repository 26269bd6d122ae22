package checkpoint

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
)

// DefaultKeep is how many of the newest checkpoints a run directory keeps.
const DefaultKeep = 3

// ErrNoCheckpoint is wrapped by Latest and Best when a directory holds no
// valid checkpoint.
var ErrNoCheckpoint = errors.New("no valid checkpoint")

// StepName is the file name of the checkpoint for step: step-000123.safetensors.
// Steps past 999999 simply get more digits; ordering is by the parsed number.
func StepName(step int) string {
	return fmt.Sprintf("step-%06d.safetensors", step)
}

var stepRE = regexp.MustCompile(`^step-([0-9]+)\.safetensors$`)

// Checkpoint is a verified checkpoint loaded from a run directory.
type Checkpoint struct {
	Path string
	Step int
	*File
}

// Skipped is a checkpoint file that Latest or Best passed over, and why.
type Skipped struct {
	Path   string
	Reason error
}

func (s Skipped) String() string { return fmt.Sprintf("skipped %s: %v", s.Path, s.Reason) }

type stepFile struct {
	path string
	step int
}

// listSteps returns the step-N.safetensors files in dir, newest first.
// Temporary files never match the pattern, so they are never candidates.
func listSteps(dir string) ([]stepFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []stepFile
	for _, e := range ents {
		m := stepRE.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue // too many digits to be one of ours
		}
		out = append(out, stepFile{filepath.Join(dir, e.Name()), n})
	}
	slices.SortFunc(out, func(a, b stepFile) int { return b.step - a.step })
	return out, nil
}

// NewestFile returns the path of the newest step-N checkpoint file in dir by
// its name, verified or not, or "" when there is none (or no such
// directory): what a new run there would overwrite.
func NewestFile(dir string) string {
	steps, err := listSteps(dir)
	if err != nil || len(steps) == 0 {
		return ""
	}
	return steps[0].path
}

// loadStep loads and verifies one step file, including that the step in its
// metadata (when present) agrees with its name: a checkpoint copied under
// the wrong name would otherwise resume at the wrong step.
func loadStep(sf stepFile) (*Checkpoint, error) {
	f, err := Load(sf.path)
	if err != nil {
		return nil, err
	}
	if s, ok := f.Metadata[MetaStep]; ok && s != strconv.Itoa(sf.step) {
		return nil, fmt.Errorf("%s: metadata says step %s but the name says %d", sf.path, s, sf.step)
	}
	return &Checkpoint{Path: sf.path, Step: sf.step, File: f}, nil
}

// Latest loads the newest valid checkpoint in a run directory. Newer files
// that fail verification (truncated, corrupt, unreadable) are returned in
// skipped, each with the reason, so the caller can tell the user. Temporary
// files of interrupted saves are ignored. If nothing valid is found the
// error wraps ErrNoCheckpoint and names the directory.
func Latest(dir string) (ck *Checkpoint, skipped []Skipped, err error) {
	files, err := listSteps(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	for _, f := range files {
		ck, err := loadStep(f)
		if err == nil {
			return ck, skipped, nil
		}
		skipped = append(skipped, Skipped{f.path, err})
	}
	return nil, skipped, noneError(dir, skipped)
}

func noneError(dir string, skipped []Skipped) error {
	if len(skipped) == 0 {
		return fmt.Errorf("%s: %w (no step-*.safetensors files)", dir, ErrNoCheckpoint)
	}
	return fmt.Errorf("%s: %w (%d files failed verification)", dir, ErrNoCheckpoint, len(skipped))
}

// Best loads the valid checkpoint with the lowest MetaValLoss in dir (the
// newest among equals), with the files passed over and why.
func Best(dir string) (*Checkpoint, []Skipped, error) {
	files, err := listSteps(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("best checkpoint: %w", err)
	}
	var skipped []Skipped
	type cand struct {
		stepFile
		loss float64
	}
	var cands []cand
	for _, f := range files {
		md, err := loadHeader(f.path)
		if err != nil {
			skipped = append(skipped, Skipped{f.path, err})
			continue
		}
		if l, ok := valLoss(md); ok {
			cands = append(cands, cand{f, l})
		}
	}
	// Stable: among equal losses the newest (listed first) wins.
	slices.SortStableFunc(cands, func(a, b cand) int {
		switch {
		case a.loss < b.loss:
			return -1
		case a.loss > b.loss:
			return 1
		}
		return 0
	})
	for _, c := range cands {
		ck, err := loadStep(c.stepFile)
		if err == nil {
			return ck, skipped, nil
		}
		skipped = append(skipped, Skipped{c.path, err})
	}
	return nil, skipped, noneError(dir, skipped)
}

func valLoss(md map[string]string) (float64, bool) {
	s, ok := md[MetaValLoss]
	if !ok {
		return 0, false
	}
	l, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(l) {
		return 0, false
	}
	return l, true
}

// Run manages the checkpoints of one training run in a directory: files are
// named by StepName, the newest Keep are kept, plus the one with the lowest
// validation loss (MetaValLoss) among all step files — the best is kept by
// not deleting its step file, so it stays loadable by name and by Best.
//
// Saves may run in the background (SaveAsync): at most one is in flight, and
// a new one first waits for it, so checkpoints are written in order and
// never compete for the disk.
type Run struct {
	dir  string
	keep int

	start sync.Mutex // serialises SaveAsync calls
	mu    sync.Mutex
	done  chan struct{} // closed when the in-flight save ends; nil if none
	err   error         // result of the most recent save
}

// OpenRun creates dir if needed and removes temporary files that an
// interrupted save left there. keep ≤ 0 means DefaultKeep.
func OpenRun(dir string, keep int) (*Run, error) {
	if keep <= 0 {
		keep = DefaultKeep
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	if err := CleanTemp(dir); err != nil {
		return nil, fmt.Errorf("run directory %s: removing temporary files: %w", dir, err)
	}
	return &Run{dir: dir, keep: keep}, nil
}

// Dir is the run directory.
func (r *Run) Dir() string { return r.dir }

// Path is where the checkpoint of step lives.
func (r *Run) Path(step int) string { return filepath.Join(r.dir, StepName(step)) }

// Save writes the checkpoint of step (MetaStep is set in its metadata) and
// then removes the step files that are neither among the newest Keep nor the
// best (see prune: files of steps after this one are left alone). It waits
// for a background save in flight first.
//
// If the checkpoint was written but an old one could not be removed, the
// error says so; the new checkpoint is valid either way.
func (r *Run) Save(step int, tensors []Tensor, metadata map[string]string) error {
	return <-r.SaveAsync(step, tensors, metadata)
}

// SaveAsync is Save in the background: it returns once any earlier save has
// finished, and the channel receives this save's result. The caller must
// not modify tensors or their data until then — pass a snapshot (copying the
// parameters into it is the only time training stalls); metadata is copied.
func (r *Run) SaveAsync(step int, tensors []Tensor, metadata map[string]string) <-chan error {
	r.start.Lock()
	defer r.start.Unlock()
	r.Wait()
	md := cloneMetadata(metadata)
	md[MetaStep] = strconv.Itoa(step)
	res := make(chan error, 1)
	done := make(chan struct{})
	r.mu.Lock()
	r.done = done
	r.mu.Unlock()
	go func() {
		err := Save(r.Path(step), tensors, md)
		if err == nil {
			if perr := r.prune(step); perr != nil {
				err = fmt.Errorf("checkpoint %s saved, but: %w", r.Path(step), perr)
			}
		}
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(done)
		res <- err
	}()
	return res
}

// Wait waits for the save in flight, if any, and returns the result of the
// most recent save.
func (r *Run) Wait() error {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done != nil {
		<-done
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// prune removes step files beyond the newest Keep up to and including the
// one just saved, except the best of those. Files of later steps than saved
// (left by a run that was resumed from an earlier checkpoint) are not
// touched: they are another timeline's, and deleting or keeping them is the
// caller's decision. Files whose header does not verify cannot be the best;
// they are removed like any other old file.
func (r *Run) prune(saved int) error {
	all, err := listSteps(r.dir)
	if err != nil {
		return fmt.Errorf("removing old checkpoints: %w", err)
	}
	var files []stepFile
	for _, f := range all {
		if f.step <= saved {
			files = append(files, f)
		}
	}
	if len(files) <= r.keep {
		return nil
	}
	best, bestLoss := -1, math.Inf(1)
	for i, f := range files {
		md, err := loadHeader(f.path)
		if err != nil {
			continue
		}
		if l, ok := valLoss(md); ok && l < bestLoss {
			best, bestLoss = i, l
		}
	}
	var errs []error
	for i, f := range files[r.keep:] {
		if i+r.keep == best {
			continue
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing old checkpoints: %w", err)
	}
	return nil
}
