//go:build !linux

package transfer

import (
	"errors"
	"os"
)

var errDirectRefused = errors.ErrUnsupported

// openDirect: direct I/O is used on Linux only.
func openDirect(string) (*os.File, error) { return nil, errors.ErrUnsupported }

// preallocate: files are allocated as written elsewhere.
func preallocate(*os.File, int64) error { return nil }

// noFollow: elsewhere the private staging folder alone keeps links out.
const noFollow = 0

// ownedHere: ownership is checked on Linux only.
func ownedHere(os.FileInfo) bool { return true }
