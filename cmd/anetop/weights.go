package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
			return checkpoint.ReadLlama2C(path)
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
// little-endian header length, then a JSON object.
func isSafetensors(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [9]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(head[8:], " "), []byte("{"))
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
