//go:build linux

package node

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// onTmpfs reports whether path, or the folder it would be made in, is on
// tmpfs.
func onTmpfs(path string) bool {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil && unix.Statfs(filepath.Dir(path), &st) != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC
}
