// Package data supplies what anetop trains on: llama2.c pretokenized token
// shards (memory-mapped), llama2.c tokenizer.bin files, plain text tokenized
// and cached beside itself, the built-in story corpus with its own small BPE
// tokenizer, and a seeded sampler whose cursor resumes exactly.
package data
