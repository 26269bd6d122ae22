//go:build !unix

package data

func mapFile(path string) ([]byte, func() error, error) { return readWhole(path) }
