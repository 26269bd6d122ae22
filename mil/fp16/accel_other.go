//go:build purego || !(amd64 || arm64)

package fp16

var availableKernels []*kernels
