// Package checkpoint reads and writes anetop's checkpoints and the formats it
// exchanges with other tools.
//
// # Checkpoints
//
// A checkpoint is a safetensors file (readable as is by Python's
// safetensors, PyTorch and Hugging Face): an 8-byte little-endian header
// length N; N bytes of JSON padded with spaces to a multiple of 8,
//
//	{"__metadata__":{"k":"v",...},"name":{"dtype":"F32","shape":[...],"data_offsets":[begin,end]},...}
//
// and then the tensors' little-endian bytes, back to back, sorted by name,
// with offsets relative to the start of that data section. The package
// writes F32 only and reads F32, F16 and BF16 (widened to float32, for
// importing published weights). The caller's tensors are generic: a name, a
// shape and []float32; the metadata is string to string.
//
// # Metadata keys
//
// The package owns these keys; all others belong to the caller (the engine
// stores the config, optimizer state position, RNG state, data cursor...):
//
//   - crc32c.<tensor>: CRC-32C (Castagnoli) of that tensor's stored bytes,
//     8 lowercase hex digits; a Python user can check it over
//     tensor.numpy().tobytes().
//   - crc32c.__header__: CRC-32C of the length prefix and the padded header,
//     computed with this value set to "00000000".
//   - format: "pt", without which transformers refuses the file.
//   - step: the step of a run-directory checkpoint; val_loss: its validation
//     loss, used to keep the best one.
//
// Together the checksums cover every byte of the file, so Load refuses any
// truncation and any single flipped bit, naming the file and the tensor.
//
// # Atomicity
//
// Save writes to a temporary file in the destination directory (named
// ".<name>.tmp-<random>"), fsyncs it, renames it over the destination and
// fsyncs the directory. A final name therefore always holds a complete file,
// old or new; a failed save leaves the previous checkpoint untouched. A
// crash may leave a temporary file; nothing mistakes it for a checkpoint and
// OpenRun removes it.
//
// # Run directories
//
// Run keeps step-000123.safetensors files: the newest K (DefaultKeep) plus
// the step file with the lowest val_loss, which is kept in place rather
// than copied. Latest and Best return the newest (best) checkpoint that
// verifies, and the files they skipped with the reason for each. Saves may
// run in a background goroutine, one at a time, so training stalls only to
// copy its parameters into a snapshot.
//
// # llama2.c
//
// ReadLlama2C and WriteLlama2C import and export llama2.c's model.bin.
package checkpoint
