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

// preallocate allocates size bytes to f, and makes it that long, when
// the disk has room for it and preallocMargin beside: a download must not
// take the disk that the datastore writes to, nor hold it while it waits
// to resume. The blocks read as zeros until written. It keeps what f holds
// already, and undoes an allocation that failed part of the way.
func preallocate(f *os.File, size int64) error {
	if size <= 0 {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	var fs syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &fs); err != nil {
		return err
	}
	if need := size - int64(st.Blocks)*512; need > 0 && need+preallocMargin > int64(fs.Bavail)*int64(fs.Bsize) {
		return syscall.ENOSPC
	}
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			f.Truncate(st.Size) // blocks a failed allocation kept
		}
		return err
	}
}

// preallocMargin is the room preallocate leaves free on the disk.
const preallocMargin = 256 << 20

// ownedHere reports whether this user owns the file fi describes.
func ownedHere(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
