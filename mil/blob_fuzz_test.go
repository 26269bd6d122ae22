package mil

import (
	"bytes"
	"testing"
)

// FuzzReadBlobFile checks that ReadBlobFile never panics, and that every file
// it accepts is exactly what BlobWriter writes for the blobs it found, apart
// from the metadata reserved words the reader tolerates. Together with the
// round-trip test this pins the reader and the writer to one format.
func FuzzReadBlobFile(f *testing.F) {
	var seeds [][]byte
	add := func(w *BlobWriter) { seeds = append(seeds, bytes.Clone(w.Bytes())) }

	var empty BlobWriter
	add(&empty)
	var one BlobWriter
	mustAdd(f, &one, FP16, seq(10))
	add(&one)
	seeds = append(seeds, blobFile3(f))
	var mixed BlobWriter
	for i, d := range blobDTypes() {
		mustAdd(f, &mixed, d, seq(i*d.Size()))
	}
	add(&mixed)
	garbage := blobFile3(f) // accepted: metadata reserved words are tolerated
	for i := 2176 + 32; i < 2176+64; i++ {
		garbage[i] = 0xCC
	}
	seeds = append(seeds, garbage)

	valid := len(seeds)
	for _, s := range seeds[:valid] {
		for _, n := range []int{0, 8, 63, 64, 100, 127, 128, len(s) - 1} {
			if n >= 0 && n < len(s) {
				seeds = append(seeds, s[:n])
			}
		}
		for _, bit := range []int{0, 3, 8*4 + 1, 8*9 + 2, 8*64 + 5, 8*68 + 1, 8*72 + 4, 8*80 + 7, 8*88 + 1, 8*100 + 2} {
			if bit/8 < len(s) {
				b := bytes.Clone(s)
				b[bit/8] ^= 1 << (bit % 8)
				seeds = append(seeds, b)
			}
		}
		seeds = append(seeds, append(bytes.Clone(s), 0))
	}
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		bf, err := ReadBlobFile(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		var w BlobWriter
		want := bytes.Clone(data)
		for i, b := range bf.Blobs {
			es := uint64(b.DType.Size())
			blob, err := bf.Data(b.Offset, TensorOf(b.DType, int(b.Size/es)))
			if err != nil {
				t.Fatalf("blob %d (%+v) listed but Data fails: %v", i, b, err)
			}
			off, err := w.Add(b.DType, blob)
			if err != nil {
				t.Fatalf("blob %d: re-adding: %v", i, err)
			}
			if off != b.Offset {
				t.Fatalf("blob %d: re-added at %d, read at %d", i, off, b.Offset)
			}
			clear(want[b.Offset+32 : b.Offset+64]) // the tolerated reserved words
		}
		if got := w.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("accepted file re-encodes differently:\n got % x\nwant % x", got, want)
		}
	})
}
