package ane

// The model's temporary directory and the content key: pure Go, tested on
// every platform (hw_test.go).

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// contentKey hashes what the compiler sees, so that identical programs share
// one compiled model. The framework's own hexStringIdentifier is also derived
// from content, and identical programs collide on one directory
// (ane-anchor §1.4, §8.14), which is one more reason to compile each once.
func contentKey(text []byte, files []weightFile) [32]byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put([]byte("anetop ANE program v1"))
	put(text)
	for _, f := range files {
		put([]byte(f.path))
		put(f.data)
	}
	var key [32]byte
	h.Sum(key[:0])
	return key
}

// modelPathPrefix starts every BLOBFILE path; the framework resolves it to
// the model's directory (ane-anchor §1.4 step 7).
const modelPathPrefix = "@model_path/"

// weightRel returns the file a BLOBFILE path names inside the model's
// directory: "@model_path/weights/wq.bin" → "weights/wq.bin".
//
// The path must be valid UTF-8 without NUL bytes: on macOS it becomes a key
// of the weights dictionary through +[NSString stringWithUTF8String:], which
// returns nil for invalid UTF-8 (and a NUL would silently cut the key short
// of the BLOBFILE path the program names), and a nil key makes
// +[NSDictionary dictionaryWithObjects:forKeys:count:] raise, which aborts a
// Go process. Compile checks every path with this function before any
// framework call.
func weightRel(path string) (string, error) {
	if !utf8.ValidString(path) {
		return "", fmt.Errorf("weight path %q is not valid UTF-8", path)
	}
	if strings.IndexByte(path, 0) >= 0 {
		return "", fmt.Errorf("weight path %q contains a NUL byte", path)
	}
	rel, ok := strings.CutPrefix(path, modelPathPrefix)
	if !ok || rel == "" || !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("weight path %q must be %s followed by a relative path inside the model directory", path, modelPathPrefix)
	}
	return filepath.FromSlash(rel), nil
}

var modelIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)

// modelDir joins the temporary directory and the model's identifier after
// checking both, since the result is later removed recursively.
func modelDir(root, id string) (string, error) {
	if !filepath.IsAbs(root) {
		return "", fmt.Errorf("temporary directory %q is not absolute", root)
	}
	if !modelIDRE.MatchString(id) || strings.Contains(id, "..") {
		return "", fmt.Errorf("model identifier %q is not a plain directory name", id)
	}
	return filepath.Join(root, id), nil
}

// writeModelFiles pre-populates a model's directory: model.mil and every
// weight file at its BLOBFILE path. The framework does not reliably write
// them itself (ane-anchor §1.4 step 7, §8.14; maderix issue #54). Files are
// written atomically (a temporary file renamed into place), as the reference
// does with writeToFile:atomically:YES.
func writeModelFiles(dir string, text []byte, files []weightFile) error {
	if err := os.MkdirAll(filepath.Join(dir, "weights"), 0o700); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "model.mil"), text); err != nil {
		return err
	}
	for _, f := range files {
		rel, err := weightRel(f.path)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := writeAtomic(p, f.data); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".anetop-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// modelDirs counts the users of each model directory in this process: two
// devices compiling the same program share one directory (its name is the
// content-derived hexStringIdentifier), which is removed when the last one
// frees its model.
var modelDirs = struct {
	sync.Mutex
	refs map[string]int
}{refs: map[string]int{}}

func acquireDir(dir string) {
	modelDirs.Lock()
	modelDirs.refs[dir]++
	modelDirs.Unlock()
}

func releaseDir(dir string) error {
	modelDirs.Lock()
	defer modelDirs.Unlock()
	if modelDirs.refs[dir]--; modelDirs.refs[dir] > 0 {
		return nil
	}
	delete(modelDirs.refs, dir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the model directory: %w", err)
	}
	return nil
}
