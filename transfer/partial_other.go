//go:build !linux

package transfer

import (
	"errors"
	"os"
)

var errDirectRefused = errors.ErrUnsupported

// openDirect: direct I/O is used on Linux only.
func openDirect(string) (*os.File, error) { return nil, errors.ErrUnsupported }
