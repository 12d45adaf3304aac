package transfer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// Writes are plain positioned writes, each from the goroutine that
// verified its chunk. An io_uring in their place was measured
// (BenchmarkTransfer, ring and plain downloads in the same rotating
// rounds, QUIC and TCP, 2 shared cores): best of 5 rounds, the ring was
// 5% (QUIC) and 4% (TCP) ahead in the quietest run and within the noise,
// either way, in three more; short of the 10% that hand-written kernel
// ABI code in a protocol package had to earn, so it went.
type partialFile struct {
	f      *os.File
	direct *os.File // nil: no direct I/O here
	// refused: a direct write failed as unsupported; every write goes
	// through the page cache from then on. Several streams write at once.
	refused atomic.Bool
}

// stagingName is the folder, inside a download's destination, that holds
// its partial files: private (0700, this user's, not a link), so that
// nobody else can plant a link at a partial file's name.
const stagingName = ".meshtalk-partial"

// stagingDir returns dir's staging folder, made if missing.
func stagingDir(dir string) (string, error) {
	p := filepath.Join(dir, stagingName)
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || !ownedHere(fi) {
		return "", fmt.Errorf("transfer: %s is not a private folder for partial files (a link, or open to others): remove it", p)
	}
	return p, nil
}

// openPartial opens a download's partial file of size bytes, never
// through a link: an existing one to resume, else a new one (O_EXCL).
// Where the file system allows it, the whole file is allocated first
// (preallocate): a direct write into allocated blocks is an overwrite,
// which ext4 lets several writers do at once (a write past the end of the
// file holds the file's lock alone until it is on the disk), and the file
// ends up in few extents.
func openPartial(path string, size int64) (*partialFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|noFollow, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR|noFollow, 0o600)
	}
	if err != nil {
		return nil, err
	}
	// Best effort: without it (a file system that cannot, a disk
	// without room for the whole file and a margin now) the writes
	// extend the file as before, and a full disk fails the write that
	// finds it full.
	preallocate(f, size)
	p := &partialFile{f: f}
	if d, err := openDirect(path); err == nil {
		p.direct = d
	}
	return p, nil
}

// WriteAt writes b at off.
func (p *partialFile) WriteAt(b []byte, off int64) (int, error) {
	if p.direct != nil && !p.refused.Load() && aligned(b, off) {
		n, err := p.direct.WriteAt(b, off)
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

func aligned(b []byte, off int64) bool {
	return len(b) > 0 && len(b)%directAlign == 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(&b[0]))%directAlign == 0
}

// Sync makes what was written durable (direct writes too: one inode).
func (p *partialFile) Sync() error { return p.f.Sync() }

func (p *partialFile) Name() string { return p.f.Name() }

func (p *partialFile) Close() error {
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

// useCache sends every write through the page cache: a file that other
// members read back while it is written (a group's file, served to them
// as it arrives) is found there, not read again from the disk.
func (p *partialFile) useCache() { p.refused.Store(true) }
