package transfer

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"
)

// directAlign is the alignment direct I/O asks of offsets, lengths and
// buffers.
const directAlign = 4096

// partialFile is the file a download writes its verified chunks into.
// Where the system allows it, whole chunks bypass the page cache (direct
// I/O): a gigabyte file otherwise fills a gigabyte of fresh page cache,
// and on a virtual machine first touching that memory cost more than the
// rest of the download. The last chunk, whatever its length, and every
// chunk where direct I/O is refused go through the page cache.
//
// Direct writes go through an io_uring where the kernel has one
// (aio_linux.go): a write(2) that waits for the disk holds one of the
// process's Ps all the while, and on a small machine the streams that
// read the next chunks need it.
type partialFile struct {
	f      *os.File
	direct *os.File // nil: no direct I/O here
	// async writes to direct; nil: plain write(2) calls. noAsync: the
	// ring failed; plain calls from then on.
	async   *asyncWriter
	noAsync atomic.Bool
	// refused: a direct write failed as unsupported; every write goes
	// through the page cache from then on. Several streams write at once.
	refused atomic.Bool
}

// openPartial opens the partial file at path; ring says whether direct
// writes may go through an io_uring (false: plain positioned writes).
func openPartial(path string, ring bool) (*partialFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	p := &partialFile{f: f}
	if d, err := openDirect(path); err == nil {
		p.direct = d
		if !ring {
			return p, nil
		}
		if w, err := newAsyncWriter(d); err == nil {
			p.async = w
		}
	}
	return p, nil
}

// WriteAt writes b at off.
func (p *partialFile) WriteAt(b []byte, off int64) (int, error) {
	if p.direct != nil && !p.refused.Load() && aligned(b, off) {
		n, err := p.writeDirect(b, off)
		if err == nil {
			return n, nil
		}
		// A file system that takes the flag but not the write: the page
		// cache it is, from now on.
		if !errors.Is(err, errDirectRefused) {
			return n, err
		}
		p.refused.Store(true)
	}
	return p.f.WriteAt(b, off)
}

// writeDirect writes b at off around the page cache, through the ring
// while it works.
func (p *partialFile) writeDirect(b []byte, off int64) (int, error) {
	if p.async != nil && !p.noAsync.Load() {
		n, err := p.async.WriteAt(b, off)
		if !errors.Is(err, errRingFailed) {
			return n, err
		}
		p.noAsync.Store(true)
	}
	return p.direct.WriteAt(b, off)
}

func aligned(b []byte, off int64) bool {
	return len(b) > 0 && len(b)%directAlign == 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(&b[0]))%directAlign == 0
}

// Sync makes what was written durable (direct writes too: one inode).
func (p *partialFile) Sync() error { return p.f.Sync() }

func (p *partialFile) Name() string { return p.f.Name() }

func (p *partialFile) Close() error {
	if p.async != nil {
		// Waits for the writes in flight.
		p.async.Close()
	}
	if p.direct != nil {
		p.direct.Close()
	}
	return p.f.Close()
}

// alignedBuffer returns n bytes that start on a directAlign boundary.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := 0
	if r := uintptr(unsafe.Pointer(&b[0])) % directAlign; r != 0 {
		skip = int(directAlign - r)
	}
	return b[skip : skip+n : skip+n]
}
