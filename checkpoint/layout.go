package checkpoint

// This file checks a file's tensors against the model config its metadata
// (or a config.json beside it) claims, before anything sized by that config
// is allocated: a config is just a header claim until the tensors agree.

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/anetop/anetop/internal/sysinfo"
	"github.com/anetop/anetop/model"
)

// TensorGroup is one copy of a model's tensors in a file, each under its
// Hugging Face name (model.Tensor.HFName) with Prefix prepended: the weights
// (prefix "") or one of the optimizer's moments (e.g. "exp_avg.").
type TensorGroup struct {
	Prefix string
	// Optional groups may be absent altogether (no tensor name starts with
	// Prefix); one present in part is an error like a missing weight. A
	// group with an empty prefix is never optional.
	Optional bool
}

// mismatch is the first tensor at which a file and a config disagree.
type mismatch struct {
	name      string
	got, want []int // shapes, for a tensor of the wrong shape
	extra     bool  // the file holds a tensor the config does not imply
}

func (m *mismatch) String() string {
	switch {
	case m.extra:
		return fmt.Sprintf("tensor %s is not part of that model", m.name)
	case m.want != nil:
		return fmt.Sprintf("tensor %s has shape %v, the config implies %v", m.name, m.got, m.want)
	}
	return fmt.Sprintf("tensor %s is missing", m.name)
}

// eachTensor calls fn for every tensor of c (resolved, passing CheckShape)
// in the order of c.Tensors, without building that list: a config's layer
// count is not to be trusted with an allocation. It stops at the first
// false.
func eachTensor(c model.Config, fn func(k model.Kind, layer int) bool) bool {
	if !fn(model.Embed, -1) {
		return false
	}
	for k := model.AttnNorm; k <= model.W3; k++ {
		for l := range c.Layers {
			if !fn(k, l) {
				return false
			}
		}
	}
	if !fn(model.FinalNorm, -1) {
		return false
	}
	return c.Tied || fn(model.Classifier, -1)
}

// checkTensors compares f's tensors with the groups of c (resolved, passing
// CheckShape): every tensor of every present group must be in f with its
// shape, and unless extraOK every tensor of f must be one of them or
// ignored by ignore (which may be nil). The work is bounded by the file's
// tensor count, whatever c says.
func checkTensors(f *File, c model.Config, groups []TensorGroup, extraOK bool, ignore func(string) bool) *mismatch {
	byName := make(map[string]*Tensor, len(f.Tensors))
	for i := range f.Tensors {
		byName[f.Tensors[i].Name] = &f.Tensors[i]
	}
	matched := make(map[string]bool, len(f.Tensors))
	var bad *mismatch
	for _, g := range groups {
		if g.Optional && g.Prefix != "" && !slices.ContainsFunc(f.Tensors, func(t Tensor) bool { return strings.HasPrefix(t.Name, g.Prefix) }) {
			continue
		}
		eachTensor(c, func(k model.Kind, layer int) bool {
			name := g.Prefix + model.Tensor{Kind: k, Layer: layer}.HFName()
			t := byName[name]
			if t == nil {
				bad = &mismatch{name: name}
				return false
			}
			if want := c.Shape(k); !slices.Equal(t.Shape, want) || len(t.Data) != c.Size(k) {
				bad = &mismatch{name: name, got: t.Shape, want: want}
				return false
			}
			matched[name] = true
			return true
		})
		if bad != nil {
			return bad
		}
	}
	if extraOK || len(matched) == len(f.Tensors) {
		return nil
	}
	// Name an extra weight before an extra moment: it is the likelier
	// cause (a layer too many), and the moments follow the weights.
	prefixed := func(name string) bool {
		return slices.ContainsFunc(groups, func(g TensorGroup) bool { return g.Prefix != "" && strings.HasPrefix(name, g.Prefix) })
	}
	for _, weightsFirst := range []bool{true, false} {
		for _, t := range f.Tensors {
			if !matched[t.Name] && (ignore == nil || !ignore(t.Name)) && (!weightsFirst || !prefixed(t.Name)) {
				return &mismatch{name: t.Name, extra: true}
			}
		}
	}
	return nil
}

// CheckTensors reports whether f, read from path, holds exactly the tensors
// of a model of config c: every tensor of every group (see TensorGroup)
// with the shape c implies, and nothing else. It allocates nothing sized by
// c and its work is bounded by the file's own tensors, so it is the check to
// make before trusting a config read from a file's metadata: a header that
// claims 100000 layers over a file holding 3 is refused here, not by the
// allocator. The error names path and the first tensor at fault, and says
// that the metadata and the tensors disagree.
func CheckTensors(f *File, c model.Config, path string, groups ...TensorGroup) error {
	if err := c.CheckShape(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c = c.Resolved()
	if len(groups) == 0 {
		groups = []TensorGroup{{}}
	}
	if m := checkTensors(f, c, groups, false, nil); m != nil {
		return fmt.Errorf("%s: its metadata and its tensors disagree: the config in the metadata is %v, but %v; "+
			"the file is corrupt or was edited: use another checkpoint (an earlier step of the run)", path, c, m)
	}
	return nil
}

// CheckFinite refuses a file holding a NaN or an infinity in any tensor,
// naming the file, the tensor and the element: training from such weights
// (or optimizer moments) only spreads them.
func CheckFinite(f *File, path string) error {
	for _, t := range f.Tensors {
		if err := finite(t.Name, t.Data); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// finite is the check behind CheckFinite and checkFinite, with their shared
// message.
func finite(name string, data []float32) error {
	for i, x := range data {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("tensor %s element %d is %v; the weights are corrupt (a diverged run?)", name, i, x)
		}
	}
	return nil
}

// totalMemory is the machine's physical memory in bytes, 0 if unknown; a
// variable so that tests can pretend.
var totalMemory = sysinfo.TotalMemory

// CheckMemory refuses a config whose parameters, copies float32 copies of
// them (1 for the weights; 3 with Adam's two moments), would not fit in the
// machine's physical memory: a config read from a file is a claim, and an
// absurd one must be an error, not an out-of-memory crash. It does nothing
// when the memory size is unknown. c must pass CheckShape.
func CheckMemory(c model.Config, copies int) error {
	mem := totalMemory()
	if mem <= 0 {
		return nil
	}
	n := c.NumParams()
	need := float64(n) * 4 * float64(max(copies, 1))
	if need <= float64(mem) {
		return nil
	}
	what := "float32 weights"
	if copies > 1 {
		what = fmt.Sprintf("float32 weights and optimizer state (%d copies)", copies)
	}
	return fmt.Errorf("the model config (%v) has %d parameters: %s of %s, more than this machine's %s of physical memory",
		c, n, fmtBytes(need), what, fmtBytes(float64(mem)))
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.0f bytes", b)
}

// FormatError reports that a file is not in the format it was read as, as
// opposed to one in that format that is corrupt or unreadable: a caller
// that guesses a file's format can try another, and say why each refused.
type FormatError struct {
	Format string // what it is not: "safetensors file" or "llama2.c model.bin"
	Reason string // why the file is not one, e.g. "the header's dim is -7"
	msg    string // the full message, path included where known
}

func (e *FormatError) Error() string { return e.msg }
