package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/anetop/anetop/checkpoint"
	"github.com/anetop/anetop/model"
)

// readInitWeights reads the weights --init names, in whichever format the
// user has them:
//
//   - a llama2.c model.bin (v0 or v1);
//   - a Hugging Face Llama directory (config.json + model.safetensors), or
//     its model.safetensors;
//   - an anetop checkpoint (step-*.safetensors; its optimizer state is not
//     used: --init starts a new run) or run directory (its newest valid
//     checkpoint).
func readInitWeights(path string, warn func(string)) (*model.Params, error) {
	fi, err := os.Stat(path)
	if err != nil {
		// Exit 1 like any unreadable input file, not 2: the flag is fine.
		return nil, fmt.Errorf("--init %s: %w", path, bareErr(err))
	}
	dir := path
	if !fi.IsDir() {
		if !isSafetensors(path) {
			p, err := checkpoint.ReadLlama2C(path)
			var fe *checkpoint.FormatError
			if err == nil || !errors.As(err, &fe) {
				return p, err
			}
			// Neither format: say why each refused the file.
			return nil, fmt.Errorf("--init %s: not a format anetop reads: %s; pass a llama2.c model.bin, a Hugging Face Llama "+
				"directory (or its %s), or an anetop checkpoint or run directory", path,
				formatReasons(checkpoint.SniffSafetensors(path), err), checkpoint.HFWeightsFile)
		}
		dir = filepath.Dir(path)
	}
	if _, err := os.Stat(filepath.Join(dir, checkpoint.HFConfigFile)); err == nil &&
		(fi.IsDir() || filepath.Base(path) == checkpoint.HFWeightsFile) {
		return checkpoint.ReadHF(dir)
	}
	ck, err := openCheckpoint(path, warn)
	if err != nil {
		return nil, err
	}
	return checkpointParams(ck)
}

// isSafetensors reports whether the file starts like a safetensors file: a
// little-endian header length that fits in the file, then a JSON object. (A
// llama2.c model.bin's first 8 bytes, dim and hidden_dim, make a length
// far beyond its size.)
func isSafetensors(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	var head [9]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return false
	}
	if n := binary.LittleEndian.Uint64(head[:8]); n > uint64(fi.Size()-8) {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(head[8:], " "), []byte("{"))
}

// formatReasons says why each format reader refused a file, from their
// errors: "not a safetensors file (header length … does not fit in a file
// of 1234 bytes …), not a llama2.c model.bin (the header's hidden_dim is
// -146205089)". An error that is not a *checkpoint.FormatError is quoted
// as is; nil errors are skipped.
func formatReasons(errs ...error) string {
	var why []string
	for _, err := range errs {
		var fe *checkpoint.FormatError
		switch {
		case err == nil:
		case errors.As(err, &fe):
			why = append(why, fmt.Sprintf("not a %s (%s)", fe.Format, fe.Reason))
		default:
			why = append(why, err.Error())
		}
	}
	return strings.Join(why, ", ")
}

// bareErr strips the operation and path from an *os.PathError, for messages
// that name the path themselves.
func bareErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
