// Package atomicfile writes files so that a reader, or a crash, sees the
// whole old content or the whole new one, never part of either.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to path with mode: to a temporary file beside it,
// synced, then moved into place. With replace false it fails (with an
// error satisfying errors.Is(err, os.ErrExist)) rather than replace a file
// that exists, even one that appeared meanwhile.
func Write(path string, data []byte, mode os.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else {
		// A hard link fails where a rename would replace.
		err = os.Link(tmp, path)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
