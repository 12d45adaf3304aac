package transfer

// Where a node reads the chunks it serves. A file this node offers
// (Share) stays where it is: the datastore records where it lies
//
//	/origins/<root hex>   origin (JSON, "v": originVersion)
//
// and every chunk is read from it when a peer asks, and checked against
// the manifest as it is read: a file changed or removed since the offer is
// CodeChanged to the receiver, never wrong bytes. A file this node is
// downloading, or downloaded, is served from the partial or final file,
// the chunks it has verified only (group members fetch from each other).
// Pictures, avatars and a relay's drops live in the blob store (Import),
// as they must outlive the original.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-datastore"
	"lukechampine.com/blake3"
)

// originVersion is the version of the stored origin record of a file;
// originFolder of a folder's (folder.go), which lists its files.
const (
	originVersion = 1
	originFolder  = 2
)

// origin is where an offered file lies, and what it looked like when it
// was hashed; or where an offered folder lies, and its files in it.
type origin struct {
	V       int    `json:"v"`
	Path    string `json:"path"`
	Size    int64  `json:"size,omitempty"`
	MTimeNS int64  `json:"mtime_ns,omitempty"`
	// Files: a folder's files, "/"-separated paths in Path, in the order
	// of its manifest's file entries.
	Files []string `json:"files,omitempty"`
}

func originKey(root Hash) datastore.Key { return datastore.NewKey("/origins/" + root.String()) }

// Share hashes the file at path where it lies, reading it once on every
// core, and records it as the source of its chunks: no copy is made. The
// manifest is ready to Offer; name overrides the file's base name when not
// empty. It is durable when Share returns.
func (s *Service) Share(ctx context.Context, path, name string) (*Manifest, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("transfer: %s is not a regular file", path)
	}
	if name == "" {
		name = filepath.Base(abs)
	}
	m := newManifest(name, before.Size())
	if m.Chunks, err = hashChunks(f, before.Size(), m.ChunkSize); err != nil {
		return nil, fmt.Errorf("transfer: %s: %w", path, err)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return nil, fmt.Errorf("transfer: %s changed while it was read", path)
	}
	if err := m.checkShape(len(m.Chunks)); err != nil {
		return nil, err
	}
	return s.storeShared(ctx, m, origin{V: originVersion, Path: abs, Size: before.Size(), MTimeNS: before.ModTime().UnixNano()})
}

// storeShared stores, durably, the manifest of something shared in place
// and where it lies.
func (s *Service) storeShared(ctx context.Context, m *Manifest, o origin) (*Manifest, error) {
	ob, _ := json.Marshal(o)
	root := m.Root()
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return nil, err
	}
	b.Put(ctx, manifestKey(root), m.Encode())
	b.Put(ctx, originKey(root), ob)
	if err := b.Commit(ctx); err != nil {
		return nil, fmt.Errorf("transfer: share: %w", err)
	}
	return m, s.ds.Sync(ctx, datastore.NewKey("/"))
}

// hashChunks hashes the chunks of the size bytes of f on every core, each
// worker reading the chunks it hashes: the file is read once.
func hashChunks(f io.ReaderAt, size int64, chunkSize uint32) ([]Hash, error) {
	cs := int64(chunkSize)
	n := int((size + cs - 1) / cs)
	hashes := make([]Hash, n)
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			buf := make([]byte, chunkSize)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				l := min(cs, size-i*cs)
				if _, err := f.ReadAt(buf[:l], i*cs); err != nil {
					if errors.Is(err, io.EOF) {
						err = errors.New("the file changed while it was read")
					}
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					next.Store(int64(n)) // the others stop too
					return
				}
				hashes[i] = blake3.Sum256(buf[:l])
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return hashes, nil
}

// holding is where this node reads a file's chunks from to serve them.
type holding struct {
	m      *Manifest
	blobs  *Blobs      // chunks in the blob store; or
	f      chunkReader // chunks in this file (or folder), at index × chunk size
	have   []bool      // which chunks of f are verified; nil: all
	origin bool        // f is the offered original: a mismatch means it changed
}

// chunkReader is a file, or a folder's files (folderReader).
type chunkReader interface {
	io.ReaderAt
	Close() error
}

// hold finds where this node keeps the file m (root) describes.
// ErrChanged: the offered original changed since; errMissing: this node
// holds none of it.
func (s *Service) hold(ctx context.Context, root Hash, m *Manifest) (*holding, error) {
	if b, err := s.ds.Get(ctx, originKey(root)); err == nil {
		var o origin
		if err := json.Unmarshal(b, &o); err != nil || (o.V != originVersion && o.V != originFolder) {
			return nil, fmt.Errorf("transfer: stored origin of %s is not valid", root)
		}
		if o.V == originFolder {
			r, err := openFolder(o.Path, m, o.Files)
			if err != nil {
				return nil, ErrChanged
			}
			return &holding{m: m, f: r, origin: true}, nil
		}
		f, err := os.Open(o.Path)
		if err != nil {
			return nil, ErrChanged
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() != o.Size || fi.ModTime().UnixNano() != o.MTimeNS {
			f.Close()
			return nil, ErrChanged
		}
		return &holding{m: m, f: f, origin: true}, nil
	}
	if n := len(m.Chunks); n == 0 || (s.blobs.Has(m.Chunks[0]) && s.blobs.Has(m.Chunks[n-1])) {
		// Imported (a picture, a relay's drop): the store has it.
		return &holding{m: m, blobs: s.blobs}, nil
	}
	if b, err := s.ds.Get(ctx, recvKey(root)); err == nil {
		var rc Receipt
		if json.Unmarshal(b, &rc) != nil {
			return nil, errMissing
		}
		path, have := rc.Final, []bool(nil)
		if rc.Done && m.Folder {
			r, err := openFolder(rc.Final, m, nil)
			if err != nil {
				return nil, errMissing
			}
			return &holding{m: m, f: r}, nil
		}
		if !rc.Done {
			path = rc.Partial
			if have = s.runningHave(root); have == nil {
				if have, err = s.have(ctx, root, len(m.Chunks)); err != nil {
					return nil, err
				}
			}
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, errMissing
		}
		return &holding{m: m, f: f, have: have}, nil
	}
	return nil, errMissing
}

// haveList is which chunks h can serve.
func (h *holding) haveList() []bool {
	if h.have != nil {
		return h.have
	}
	all := make([]bool, len(h.m.Chunks))
	for i := range all {
		all[i] = true
	}
	return all
}

// read reads chunk i into buf (its length); a chunk read from a file is
// checked against the manifest.
func (h *holding) read(i int, buf []byte) ([]byte, error) {
	if h.blobs != nil {
		data, err := h.blobs.Read(h.m.Chunks[i], buf)
		if errors.Is(err, os.ErrNotExist) {
			return nil, errMissing
		}
		return data, err
	}
	bad := errMissing
	if h.origin {
		bad = ErrChanged
	}
	if h.have != nil && !h.have[i] {
		return nil, bad
	}
	if _, err := h.f.ReadAt(buf, int64(i)*int64(h.m.ChunkSize)); err != nil {
		return nil, bad
	}
	if Hash(blake3.Sum256(buf)) != h.m.Chunks[i] {
		return nil, bad
	}
	return buf, nil
}

func (h *holding) close() {
	if h.f != nil {
		h.f.Close()
	}
}
