//go:build !linux

package exetrim

// Trim is Linux only (see exetrim_linux.go).
func Trim() {}
