//go:build !linux

package transfer

import (
	"errors"
	"os"
)

var errRingFailed = errors.ErrUnsupported

// asyncWriter: writes go through io_uring on Linux only.
type asyncWriter struct{}

func newAsyncWriter(*os.File) (*asyncWriter, error) { return nil, errors.ErrUnsupported }

func (*asyncWriter) WriteAt([]byte, int64) (int, error) { return 0, errors.ErrUnsupported }

func (*asyncWriter) Close() error { return nil }
