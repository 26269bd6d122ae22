package ane

// Reading a compiled model's I/O layout: pure Go over the attributes the
// runtime converts to Go values, tested on every platform (hw_test.go).

import (
	"fmt"

	"github.com/anetop/anetop/mil"
)

// layoutKeys are the dictionary keys layoutFromAttributes reads. The darwin
// runtime fetches them from every dictionary by name before anything else
// (toGo in objc_darwin.go), so no bound on the entries it copies can drop
// them.
var layoutKeys = []string{
	"NetworkStatusList", "LiveInputList", "LiveOutputList",
	"RowStride", "PlaneStride", "Width", "Height", "Channels",
}

// layoutFromAttributes reads each input's and output's row stride from the
// compiled model's attributes: NetworkStatusList[0].LiveInputList and
// LiveOutputList, one dictionary per tensor with Channels, Width, Height,
// PlaneStride and RowStride in bytes (peers.md §1.4, from tmc/apple's x/ane,
// which pads rows to multiples of 64 bytes). The reference project writes
// dense rows (ane-anchor §1.5); reports conflict (peers.md §5), so the
// compiled model decides where it says, and rows are dense where it does not.
// Attributes that contradict the program's shapes are an error rather than a
// guess: a wrong stride computes garbage silently (peers.md §4.1, the 889×
// fallback was a layout mismatch).
func layoutFromAttributes(attrs any, in, out []mil.Type) (inL, outL []ioLayout, source string, err error) {
	dense := func(ts []mil.Type) []ioLayout {
		ls := make([]ioLayout, len(ts))
		for i, t := range ts {
			rows, cols := surfaceRowsCols(t.Shape)
			ls[i] = ioLayout{stride: cols, bytes: rows * cols * 2}
		}
		return ls
	}
	inL, outL = dense(in), dense(out)
	root, ok := attrs.(map[string]any)
	if !ok {
		return inL, outL, "dense rows (the framework gave no model attributes)", nil
	}
	list, ok := root["NetworkStatusList"].([]any)
	if !ok || len(list) == 0 {
		return inL, outL, "dense rows (the model attributes have no NetworkStatusList)", nil
	}
	status, ok := list[0].(map[string]any)
	if !ok {
		return inL, outL, "dense rows (NetworkStatusList[0] is not a dictionary)", nil
	}
	lin, okIn := status["LiveInputList"].([]any)
	lout, okOut := status["LiveOutputList"].([]any)
	if !okIn || !okOut {
		return inL, outL, "dense rows (the model attributes have no LiveInputList/LiveOutputList)", nil
	}
	if len(lin) != len(in) || len(lout) != len(out) {
		return inL, outL, fmt.Sprintf("dense rows (the model attributes list %d inputs and %d outputs, the program has %d and %d)",
			len(lin), len(lout), len(in), len(out)), nil
	}
	read := func(which IO, entries []any, ts []mil.Type, ls []ioLayout) error {
		for i, e := range entries {
			l, found, err := tensorLayout(e, ts[i].Shape)
			if err != nil {
				return fmt.Errorf("the compiled model's layout of %v %d (%v) %w", which, i, ts[i].Shape, err)
			}
			if found {
				ls[i] = l
			}
		}
		return nil
	}
	if err := read(Input, lin, in, inL); err != nil {
		return nil, nil, "", err
	}
	if err := read(Output, lout, out, outL); err != nil {
		return nil, nil, "", err
	}
	return inL, outL, "the compiled model's attributes (LiveInputList/LiveOutputList)", nil
}

// tensorLayout reads one LiveInputList/LiveOutputList entry. found is false
// when the entry carries no stride, and the rows stay dense.
func tensorLayout(entry any, shape mil.Shape) (l ioLayout, found bool, err error) {
	m, ok := entry.(map[string]any)
	if !ok {
		return l, false, fmt.Errorf("is not a dictionary: %v", entry)
	}
	get := func(key string) (int, bool) {
		switch v := m[key].(type) {
		case int64:
			return int(v), true
		case float64:
			if v == float64(int64(v)) {
				return int(v), true
			}
		}
		return 0, false
	}
	rows, cols := surfaceRowsCols(shape)
	rowStride, hasRow := get("RowStride")
	planeStride, hasPlane := get("PlaneStride")
	if !hasRow && !hasPlane {
		return l, false, nil
	}
	if w, ok := get("Width"); ok && w != cols {
		return l, false, fmt.Errorf("has Width %d, but rows of the program's tensor hold %d elements", w, cols)
	}
	h, ok := get("Height")
	if !ok || h < 1 {
		h = 1
	}
	if c, ok := get("Channels"); ok && c*h != rows {
		return l, false, fmt.Errorf("has %d channels of height %d, but the program's tensor has %d rows", c, h, rows)
	}
	// Rows of one plane are RowStride apart and planes (channels)
	// PlaneStride apart. Surface rows run across both, so they have one
	// stride only when the planes are contiguous.
	var strideBytes int
	switch {
	case h > 1:
		if !hasRow || (hasPlane && planeStride != h*rowStride) {
			return l, false, fmt.Errorf("has height %d with RowStride %d and PlaneStride %d: "+
				"rows of unequal spacing, which anetop's surfaces cannot describe", h, rowStride, planeStride)
		}
		strideBytes = rowStride
	case hasPlane && planeStride > 0:
		strideBytes = planeStride
	default:
		strideBytes = rowStride
	}
	if strideBytes%2 != 0 || strideBytes < 2*cols {
		return l, false, fmt.Errorf("has a row stride of %d bytes for rows of %d fp16 elements", strideBytes, cols)
	}
	return ioLayout{stride: strideBytes / 2, bytes: rows * strideBytes}, true, nil
}

// surfaceRowsCols is a surface's geometry: rows of the last axis.
func surfaceRowsCols(s mil.Shape) (rows, cols int) {
	if len(s) == 0 {
		return 1, 1
	}
	cols = s[len(s)-1]
	if cols <= 0 {
		return 0, 0
	}
	return s.NumElements() / cols, cols
}
