package ane

import (
	"fmt"

	"github.com/anetop/anetop/mil"
	"github.com/anetop/anetop/mil/fp16"
)

// Surface is an fp16 tensor shared between the CPU and a device: a kernel's
// input or output. Its elements are stored row by row, a row being the last
// axis (the sequence axis S of anetop's [1, C, 1, S] tensors), so a surface of
// shape [1, C, 1, S] has C rows of S elements.
//
// Rows start Stride elements apart. Reports conflict on whether the ANE wants
// dense rows or rows padded to 64 bytes, so the stride is part of the type and
// every reader and writer goes through it; the emulator honours it too.
type Surface struct {
	shape  mil.Shape
	rows   int
	cols   int
	stride int
	data   []fp16.Bits
	mem    Memory
	owner  any
}

// Memory is device memory behind a surface (an IOSurface on the ANE), which
// must be locked while the CPU touches it. Surfaces in Go memory have none.
type Memory interface {
	Lock(readOnly bool) error
	Unlock(readOnly bool) error
}

// NewSurface returns a surface of the given shape in Go memory, with rows
// stride elements apart (stride 0 means dense). Owner identifies the device
// that may evaluate with it; nil for a surface any device may read.
func NewSurface(shape mil.Shape, stride int, owner any) (*Surface, error) {
	rows, cols, err := surfaceGeometry(shape, stride)
	if err != nil {
		return nil, err
	}
	if stride == 0 {
		stride = cols
	}
	return &Surface{shape: shape.Clone(), rows: rows, cols: cols, stride: stride,
		data: make([]fp16.Bits, surfaceLen(rows, cols, stride)), owner: owner}, nil
}

// NewSurfaceOn wraps device memory as a surface. data must hold the whole
// tensor at the given stride and stay valid until the device frees it.
func NewSurfaceOn(shape mil.Shape, stride int, data []fp16.Bits, mem Memory, owner any) (*Surface, error) {
	rows, cols, err := surfaceGeometry(shape, stride)
	if err != nil {
		return nil, err
	}
	if stride == 0 {
		stride = cols
	}
	if need := surfaceLen(rows, cols, stride); len(data) < need {
		return nil, fmt.Errorf("surface %v: device memory holds %d elements, need %d", shape, len(data), need)
	}
	return &Surface{shape: shape.Clone(), rows: rows, cols: cols, stride: stride, data: data, mem: mem, owner: owner}, nil
}

func surfaceGeometry(shape mil.Shape, stride int) (rows, cols int, err error) {
	n := shape.NumElements()
	if len(shape) == 0 || n <= 0 {
		return 0, 0, fmt.Errorf("surface shape %v: need a static shape of rank ≥ 1 with at least one element", shape)
	}
	cols = shape[len(shape)-1]
	rows = n / cols
	if stride != 0 && stride < cols {
		return 0, 0, fmt.Errorf("surface %v: row stride %d is shorter than a row (%d)", shape, stride, cols)
	}
	return rows, cols, nil
}

func surfaceLen(rows, cols, stride int) int { return (rows-1)*stride + cols }

// Shape is the tensor's shape.
func (s *Surface) Shape() mil.Shape { return s.shape }

// Rows is the number of rows: the product of all dimensions but the last.
func (s *Surface) Rows() int { return s.rows }

// Cols is the row length: the last dimension.
func (s *Surface) Cols() int { return s.cols }

// Stride is the distance in elements between the starts of two rows.
func (s *Surface) Stride() int { return s.stride }

// Owner returns the device the surface belongs to.
func (s *Surface) Owner() any { return s.owner }

// Data returns the backing elements, rows Stride apart. On device memory it is
// valid only between Lock and Unlock.
func (s *Surface) Data() []fp16.Bits { return s.data }

// Row returns row r.
func (s *Surface) Row(r int) []fp16.Bits {
	off := r * s.stride
	return s.data[off : off+s.cols : off+s.cols]
}

// Lock makes device memory accessible to the CPU; a no-op in Go memory. Lock
// once around a whole staging pass, not per tensor: each lock of an IOSurface
// is a foreign call costing tens of microseconds.
func (s *Surface) Lock(readOnly bool) error {
	if s.mem == nil {
		return nil
	}
	return s.mem.Lock(readOnly)
}

// Unlock ends a Lock.
func (s *Surface) Unlock(readOnly bool) error {
	if s.mem == nil {
		return nil
	}
	return s.mem.Unlock(readOnly)
}

func (s *Surface) checkBlock(op string, row, col, rows, cols int) {
	if row < 0 || col < 0 || rows < 0 || cols < 0 || row+rows > s.rows || col+cols > s.cols {
		panic(fmt.Sprintf("ane: %s block rows [%d,%d) cols [%d,%d) outside surface %v (%d×%d)",
			op, row, row+rows, col, col+cols, s.shape, s.rows, s.cols))
	}
}

// WriteBlock converts a rows×cols block of float32, row-major with leading
// dimension ld, to fp16 (round to nearest even) at (row, col). This is how
// activations and weights are staged side by side along a row.
func (s *Surface) WriteBlock(row, col, rows, cols int, src []float32, ld int) {
	s.checkBlock("write", row, col, rows, cols)
	if rows > 0 && len(src) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("ane: write block %d×%d ld %d: source has only %d elements", rows, cols, ld, len(src)))
	}
	for r := range rows {
		off := (row+r)*s.stride + col
		fp16.FromFloat32s(s.data[off:off+cols], src[r*ld:r*ld+cols])
	}
}

// ReadBlock converts a rows×cols block at (row, col) to float32 into dst,
// row-major with leading dimension ld.
func (s *Surface) ReadBlock(row, col, rows, cols int, dst []float32, ld int) {
	s.checkBlock("read", row, col, rows, cols)
	if rows > 0 && len(dst) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("ane: read block %d×%d ld %d: destination has only %d elements", rows, cols, ld, len(dst)))
	}
	for r := range rows {
		off := (row+r)*s.stride + col
		fp16.ToFloat32s(dst[r*ld:r*ld+cols], s.data[off:off+cols])
	}
}

// CopyRows copies rows [srcRow, srcRow+rows) of src to dst starting at dstRow,
// in fp16 without conversion. Both surfaces must have the same row length.
// This moves a kernel's output taps into the next kernel's input.
func CopyRows(dst *Surface, dstRow int, src *Surface, srcRow, rows int) {
	if dst.cols != src.cols {
		panic(fmt.Sprintf("ane: copy rows between surfaces with rows of %d and %d elements", dst.cols, src.cols))
	}
	dst.checkBlock("copy into", dstRow, 0, rows, dst.cols)
	src.checkBlock("copy from", srcRow, 0, rows, src.cols)
	if dst.stride == dst.cols && src.stride == src.cols {
		copy(dst.data[dstRow*dst.cols:(dstRow+rows)*dst.cols], src.data[srcRow*src.cols:(srcRow+rows)*src.cols])
		return
	}
	for r := range rows {
		copy(dst.Row(dstRow+r), src.Row(srcRow+r))
	}
}
