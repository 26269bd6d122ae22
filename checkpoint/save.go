package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Metadata keys written and checked by this package. Everything else in the
// metadata belongs to the caller.
const (
	// MetaCRCPrefix + tensor name holds the tensor's CRC-32C (Castagnoli) over
	// its stored little-endian bytes, as 8 lowercase hex digits.
	MetaCRCPrefix = "crc32c."
	// MetaHeaderCRC holds the CRC-32C of the 8-byte length prefix and the
	// whole padded header, computed with this key's own value set to
	// "00000000". It makes a flipped bit in the metadata (the step, the
	// config, a tensor's shape or offsets) as detectable as one in the data.
	MetaHeaderCRC = MetaCRCPrefix + "__header__"
	// MetaFormat is "pt": Hugging Face transformers refuses safetensors
	// files whose metadata lacks it.
	MetaFormat = "format"
	// MetaStep is the training step a checkpoint was taken at (decimal).
	MetaStep = "step"
	// MetaValLoss is the validation loss at that step (decimal float); the
	// run directory keeps the checkpoint with the lowest one.
	MetaValLoss = "val_loss"
)

// headerCRCPlaceholder is how the header checksum appears in the header bytes
// while it is computed. The writer emits it in exactly this compact form, and
// JSON escaping guarantees the byte sequence cannot occur inside any other
// key or value (an inner quote would be written \").
var headerCRCPlaceholder = []byte(`"` + MetaHeaderCRC + `":"00000000"`)

// EncodeCheckpoint writes tensors and metadata as safetensors, like
// EncodeSafetensors, adding the checksums Load verifies: a CRC-32C of every
// tensor and of the header. Metadata keys starting with MetaCRCPrefix are
// replaced; MetaFormat defaults to "pt".
func EncodeCheckpoint(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	md := make(map[string]string, len(metadata)+len(tensors)+2)
	for k, v := range metadata {
		if !strings.HasPrefix(k, MetaCRCPrefix) {
			md[k] = v
		}
	}
	if _, ok := md[MetaFormat]; !ok {
		md[MetaFormat] = "pt"
	}
	for i := range tensors {
		if MetaCRCPrefix+tensors[i].Name == MetaHeaderCRC {
			return fmt.Errorf("checkpoint: tensor name %q is reserved", tensors[i].Name)
		}
		md[MetaCRCPrefix+tensors[i].Name] = fmt.Sprintf("%08x", tensorCRC(&tensors[i]))
	}
	md[MetaHeaderCRC] = "00000000"
	hdr, order, err := encodeHeader(tensors, md)
	if err != nil {
		return err
	}
	prefix := make([]byte, 8, 8+len(hdr))
	binary.LittleEndian.PutUint64(prefix, uint64(len(hdr)))
	prefix = append(prefix, hdr...)
	at := bytes.Index(prefix, headerCRCPlaceholder)
	if at < 0 {
		return errors.New("checkpoint: internal error: header checksum placeholder not found")
	}
	at += len(headerCRCPlaceholder) - 9
	copy(prefix[at:], fmt.Sprintf("%08x", crc32.Checksum(prefix, castagnoli)))

	bw := bufio.NewWriterSize(w, 1<<16)
	bw.Write(prefix)
	if err := writeTensorData(bw, tensors, order, nil); err != nil {
		return err
	}
	return bw.Flush()
}

// verify checks a decoded file's checksums: the header's and every tensor's
// must be present and match, and every checksum key must name a tensor.
func verify(sf *File, path string) error {
	want, err := parseCRC(sf.Metadata[MetaHeaderCRC])
	if err != nil {
		return fmt.Errorf("%s: header checksum %s: %v; not an anetop checkpoint, or corrupt", path, MetaHeaderCRC, err)
	}
	// Recompute over the stored bytes with the stored value zeroed. The key
	// must appear exactly once in the canonical form the writer uses.
	stored := []byte(`"` + MetaHeaderCRC + `":"` + sf.Metadata[MetaHeaderCRC] + `"`)
	at := bytes.Index(sf.prefix, stored)
	if at < 0 || bytes.Index(sf.prefix[at+1:], stored) >= 0 {
		return fmt.Errorf("%s: header checksum is not in the form anetop writes: the header is corrupt", path)
	}
	buf := bytes.Clone(sf.prefix)
	copy(buf[at+len(stored)-9:], "00000000")
	if got := crc32.Checksum(buf, castagnoli); got != want {
		return fmt.Errorf("%s: header fails its CRC-32C check (stored %08x, computed %08x): the file is corrupt", path, want, got)
	}
	for _, t := range sf.Tensors {
		v, ok := sf.Metadata[MetaCRCPrefix+t.Name]
		if !ok {
			return fmt.Errorf("%s: tensor %q has no checksum (%s%s missing from the metadata)", path, t.Name, MetaCRCPrefix, t.Name)
		}
		want, err := parseCRC(v)
		if err != nil {
			return fmt.Errorf("%s: tensor %q: checksum: %v", path, t.Name, err)
		}
		if got := sf.crcs[t.Name]; got != want {
			return fmt.Errorf("%s: tensor %q fails its CRC-32C check (stored %08x, computed %08x): the file is corrupt", path, t.Name, want, got)
		}
	}
	for k := range sf.Metadata {
		if name, ok := strings.CutPrefix(k, MetaCRCPrefix); ok && k != MetaHeaderCRC && sf.Tensor(name) == nil {
			return fmt.Errorf("%s: checksum %q names tensor %q, which the file does not hold", path, k, name)
		}
	}
	return nil
}

func parseCRC(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("%q is not 8 lowercase hex digits", s)
	}
	// Lowercase only, as written: accepting "D" for "d" would let a flipped
	// bit pass unnoticed.
	if strings.Trim(s, "0123456789abcdef") != "" {
		return 0, fmt.Errorf("%q is not 8 lowercase hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not 8 lowercase hex digits", s)
	}
	return uint32(v), nil
}

// Load reads an anetop checkpoint and verifies it completely: the layout
// (see DecodeSafetensors), the header checksum and every tensor's checksum.
// A truncated, bit-flipped or foreign file is refused with an error naming
// the file and, where it is one tensor's fault, the tensor.
func Load(path string) (*File, error) { return readFile(path, true) }

// loadHeader reads and verifies only the header of a checkpoint: enough to
// read its metadata without touching the data.
func loadHeader(path string) (map[string]string, error) {
	f, err := openSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sf, _, err := decodeHeader(f, f.size, path)
	if err != nil {
		return nil, err
	}
	// Tensor checksums are not known yet; check the header's alone.
	hdrOnly := &File{Metadata: map[string]string{MetaHeaderCRC: sf.Metadata[MetaHeaderCRC]}, prefix: sf.prefix}
	if err := verify(hdrOnly, path); err != nil {
		return nil, err
	}
	return sf.Metadata, nil
}

// Save writes a checkpoint (EncodeCheckpoint) to path atomically: the bytes
// go to a temporary file in the same directory, which is fsynced, renamed
// over path, and the directory fsynced so the rename itself is durable. At
// every moment path names either the previous complete file or the new
// complete file, never a partial one; if Save fails, the previous file is
// untouched and the temporary file removed. (A crash can leave a temporary
// file behind; its name starts with "." and contains ".tmp-", and
// CleanTemp removes it.)
func Save(path string, tensors []Tensor, metadata map[string]string) error {
	return writeAtomic(path, func(w io.Writer) error { return EncodeCheckpoint(w, tensors, metadata) })
}

// tempMarker is part of every temporary file name, so that CleanTemp can
// recognise them and no listing mistakes one for a checkpoint.
const tempMarker = ".tmp-"

func writeAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("save %s: %w", path, err)
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	// CreateTemp makes files 0600; a checkpoint is as shareable as any file.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	// On darwin, Sync is F_FULLFSYNC, which also flushes the drive's cache.
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some file systems cannot fsync a directory; they give no stronger
	// guarantee to ask for, so that is not an error.
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// CleanTemp removes the temporary files an interrupted Save left in dir.
// Call it only when no Save into dir is in progress.
func CleanTemp(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if isTemp(e.Name()) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempMarker)
}

// cloneMetadata copies m so a background save never races with the caller.
func cloneMetadata(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}
