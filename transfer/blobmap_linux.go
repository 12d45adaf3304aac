//go:build linux

package transfer

import (
	"fmt"
	"os"
	"syscall"
)

// mapChunk maps chunk h, of n bytes, into memory: the server writes it to
// the stream from the page cache, without first copying it into a buffer
// (that copy was a tenth of the server's CPU). Blobs are never written
// again once stored, so the mapping stays valid until unmap.
func (b *Blobs) mapChunk(h Hash, n int) (data []byte, unmap func(), err error) {
	f, err := os.Open(b.path(h))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	switch {
	case fi.Size() < int64(n):
		return nil, nil, fmt.Errorf("transfer: stored chunk %s is short", h)
	case n == 0:
		return nil, func() {}, nil // nothing to map
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("transfer: map chunk %s: %w", h, err)
	}
	return data, func() { syscall.Munmap(data) }, nil
}
