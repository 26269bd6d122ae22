package model

import (
	"fmt"

	"github.com/anetop/anetop/mil/fp16"
)

// BlockWriter stages float32 into an fp16 surface (ane.Surface implements
// it): a rows×cols block, row-major with leading dimension ld, at (row, col).
type BlockWriter interface {
	WriteBlock(row, col, rows, cols int, src []float32, ld int)
}

// BlockReader reads an fp16 surface block into float32 (ane.Surface).
type BlockReader interface {
	ReadBlock(row, col, rows, cols int, dst []float32, ld int)
}

// RowSurface exposes a surface's fp16 rows (ane.Surface), for copies between
// surfaces without conversion. On device memory the rows are valid only
// while the surface is locked.
type RowSurface interface {
	Row(r int) []fp16.Bits
}

// Write stages src, the block's tensor in row-major [Rows, Cols] (an
// activation's channel-first [C, Seq]), into the block.
func (b Block) Write(w BlockWriter, src []float32) {
	w.WriteBlock(b.Row, b.Col, b.Rows, b.Cols, src, b.Cols)
}

// Read converts the block into dst, row-major [Rows, Cols].
func (b Block) Read(r BlockReader, dst []float32) {
	r.ReadBlock(b.Row, b.Col, b.Rows, b.Cols, dst, b.Cols)
}

// WriteWeight stages a weight given as llama2.c stores it, [out, in]
// row-major, into the block, transposing it through scratch (at least
// b.Size() elements) when the block holds Wᵀ; scratch may be nil otherwise.
func (b Block) WriteWeight(dst BlockWriter, w, scratch []float32) {
	if len(w) != b.Size() {
		panic(fmt.Sprintf("model: staging %d weights into block %v", len(w), b))
	}
	if !b.Transposed {
		b.Write(dst, w)
		return
	}
	// The block is Wᵀ [in, out] = [Rows, Cols]; w is [out, in] = [Cols, Rows].
	t := scratch[:b.Size()]
	transpose(t, w, b.Cols, b.Rows)
	b.Write(dst, t)
}

// transpose writes the transpose of src [rows, cols] into dst [cols, rows],
// in tiles so that both sides stay in cache.
func transpose(dst, src []float32, rows, cols int) {
	const tile = 32
	for i0 := 0; i0 < rows; i0 += tile {
		for j0 := 0; j0 < cols; j0 += tile {
			for i := i0; i < min(i0+tile, rows); i++ {
				for j := j0; j < min(j0+tile, cols); j++ {
					dst[j*rows+i] = src[i*cols+j]
				}
			}
		}
	}
}

// ScratchSize is the scratch StageAttnWeights and StageFFNWeights need: the
// largest transposed weight block.
func (l *Layout) ScratchSize() int {
	n := 0
	for _, p := range []*Packing{&l.Attn.Packing, &l.FFN.Packing} {
		for _, b := range p.Blocks {
			if b.Transposed {
				n = max(n, b.Size())
			}
		}
	}
	return n
}

// StageAttnWeights writes a layer's wq, wk, wv and wo into its attention
// surface. scratch holds ScratchSize elements.
func (l *Layout) StageAttnWeights(dst BlockWriter, w LayerOf[float32], scratch []float32) {
	a := &l.Attn
	a.Wq.WriteWeight(dst, w.Wq, scratch)
	a.Wk.WriteWeight(dst, w.Wk, scratch)
	a.Wv.WriteWeight(dst, w.Wv, scratch)
	a.Wo.WriteWeight(dst, w.Wo, scratch)
}

// StageFFNWeights writes a layer's w1, w2 and w3 into its FFN surface.
func (l *Layout) StageFFNWeights(dst BlockWriter, w LayerOf[float32], scratch []float32) {
	f := &l.FFN
	f.W1.WriteWeight(dst, w.W1, scratch)
	f.W2.WriteWeight(dst, w.W2, scratch)
	f.W3.WriteWeight(dst, w.W3, scratch)
}

// CopyBlock copies block sb of src into block db of dst as fp16, without
// conversion: how a forward tap (an output block) becomes part of the
// backward kernel's input. The blocks must have the same size.
func CopyBlock(dst RowSurface, db Block, src RowSurface, sb Block) {
	if db.Rows != sb.Rows || db.Cols != sb.Cols {
		panic(fmt.Sprintf("model: copying block %v into %v", sb, db))
	}
	for r := range sb.Rows {
		copy(dst.Row(db.Row + r)[db.Col:db.Col+db.Cols], src.Row(sb.Row + r)[sb.Col:sb.Col+sb.Cols])
	}
}
