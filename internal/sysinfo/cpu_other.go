//go:build !linux && !darwin

package sysinfo

func cpuModel() string { return "" }
