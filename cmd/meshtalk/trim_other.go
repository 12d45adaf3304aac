//go:build !linux

package main

// trimMappedBinary is Linux only (see trim_linux.go).
func trimMappedBinary() {}
