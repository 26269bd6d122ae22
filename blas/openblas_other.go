//go:build !linux || android || !(amd64 || arm64) || nonativeblas

package blas

func loadOpenBLAS() (kernel, error) { return nil, errNotBuilt }
