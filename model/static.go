package model

import (
	"fmt"

	"github.com/anetop/anetop/mil"
)

// BuildStatic writes kernel k for one layer with that layer's weights baked
// in as fp16 constants (BLOBFILE values in the weight file) instead of read
// from the input: the static pipeline, the reference project's original
// design and the second mode of DESIGN.md §2, kept for kernel research. Such
// a kernel is valid only for the weights it was built with, so every
// optimizer update needs a recompile of every layer's kernels, and compiles
// are what the ANE's per-process budget limits.
//
// The program keeps the dynamic kernel's input geometry (Input(k)) and
// simply does not read the weight blocks, so the engine stages activations
// the same way in both modes. Its output is bit-for-bit the dynamic kernel's
// given the same activations and the weights staged as w: the constants hold
// exactly the fp16 values staging would write.
func (l *Layout) BuildStatic(k KernelID, w LayerOf[float32]) (*mil.Program, mil.Weights, error) {
	// Stage the weights into a capture rather than a surface: the same code
	// path (transposes included) decides what each weight block holds.
	captured := blockCapture{}
	scratch := make([]float32, l.ScratchSize())
	switch k {
	case AttnFwd, AttnBwd:
		l.StageAttnWeights(captured, w, scratch)
	case FFNFwd, FFNBwd:
		l.StageFFNWeights(captured, w, scratch)
	default:
		return nil, nil, fmt.Errorf("model: unknown kernel %v", k)
	}
	return l.build(k, captured)
}

// blockCapture is a BlockWriter that keeps each written block as float32,
// keyed by its position.
type blockCapture map[[2]int][]float32

func (c blockCapture) WriteBlock(row, col, rows, cols int, src []float32, ld int) {
	dst := make([]float32, rows*cols)
	for r := range rows {
		copy(dst[r*cols:(r+1)*cols], src[r*ld:r*ld+cols])
	}
	c[[2]int{row, col}] = dst
}
