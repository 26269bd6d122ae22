//go:build !darwin || ios || nonativeblas

package blas

func loadAccelerate() (kernel, error) { return nil, errNotBuilt }
