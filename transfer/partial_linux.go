package transfer

import (
	"os"
	"syscall"
)

// errDirectRefused is what a direct write fails with on a file system
// that does not do direct I/O after all.
var errDirectRefused = syscall.EINVAL

// noFollow makes an open fail on a symbolic link.
const noFollow = syscall.O_NOFOLLOW

// openDirect opens path for direct writes (tmpfs, for one, refuses).
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT|noFollow, 0)
}

// preallocate allocates size bytes to f, and makes it that long; the
// blocks read as zeros until written. It keeps what f holds already.
func preallocate(f *os.File, size int64) error {
	if size <= 0 {
		return nil
	}
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if err != syscall.EINTR {
			return err
		}
	}
}

// ownedHere reports whether this user owns the file fi describes.
func ownedHere(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
