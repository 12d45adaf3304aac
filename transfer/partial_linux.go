package transfer

import (
	"os"
	"syscall"
)

// errDirectRefused is what a direct write fails with on a file system
// that does not do direct I/O after all.
var errDirectRefused = syscall.EINVAL

// openDirect opens path for direct writes (tmpfs, for one, refuses).
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
}
