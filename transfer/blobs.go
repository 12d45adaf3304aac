package transfer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"lukechampine.com/blake3"

	"github.com/meshtalk/meshtalk/internal/atomicfile"
)

// Blobs is the content-addressed chunk store in a node's blobs/ folder:
// a chunk lives at blobs/<first two hex digits>/<hash in hex>, so the
// same content is stored once however many files share it.
type Blobs struct{ dir string }

// NewBlobs opens (and creates) the store in dir.
func NewBlobs(dir string) (*Blobs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("transfer: blobs: %w", err)
	}
	return &Blobs{dir: dir}, nil
}

func (b *Blobs) path(h Hash) string {
	s := h.String()
	return filepath.Join(b.dir, s[:2], s)
}

// Has reports whether the chunk is stored.
func (b *Blobs) Has(h Hash) bool {
	_, err := os.Stat(b.path(h))
	return err == nil
}

// Put stores a chunk whose hash is h (the caller computed it). The chunk is
// written under a temporary name, synced, and renamed into place.
func (b *Blobs) Put(h Hash, data []byte) error {
	p := b.path(h)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	err := atomicfile.Write(p, data, 0o600, false)
	if errors.Is(err, os.ErrExist) {
		return nil // the same content, stored meanwhile
	}
	return err
}

// Read reads chunk h into buf (which has the chunk's length). It does not
// hash it: the receiver verifies every chunk, and drops a sender whose
// chunks do not match, so a chunk damaged on disk is caught there, at no
// cost to every read.
func (b *Blobs) Read(h Hash, buf []byte) ([]byte, error) {
	f, err := os.Open(b.path(h))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	if n != len(buf) {
		return nil, fmt.Errorf("transfer: stored chunk %s is short", h)
	}
	return buf[:n], nil
}

// Import reads the file at path into the store and returns its manifest.
// name overrides the file's base name when not empty.
func (b *Blobs) Import(path, name string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("transfer: %s is not a regular file", path)
	}
	if name == "" {
		name = filepath.Base(path)
	}
	m, err := b.importFrom(f, fi.Size(), name)
	if err != nil {
		return nil, fmt.Errorf("transfer: %s: %w", path, err)
	}
	return m, nil
}

// ImportBytes puts data into the store as a file called name.
func (b *Blobs) ImportBytes(name string, data []byte) (*Manifest, error) {
	return b.importFrom(bytes.NewReader(data), int64(len(data)), name)
}

// importFrom stores size bytes from r, chunk by chunk.
func (b *Blobs) importFrom(r io.Reader, size int64, name string) (*Manifest, error) {
	m := newManifest(name, size)
	buf := make([]byte, m.ChunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h := Hash(blake3.Sum256(buf[:n]))
			if err := b.Put(h, buf[:n]); err != nil {
				return nil, fmt.Errorf("transfer: store: %w", err)
			}
			m.Chunks = append(m.Chunks, h)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("transfer: read: %w", err)
		}
	}
	if uint64(len(m.Chunks))*uint64(m.ChunkSize) < m.Size {
		return nil, errors.New("transfer: the file changed while it was read")
	}
	if err := m.checkShape(len(m.Chunks)); err != nil {
		return nil, err
	}
	return m, nil
}

// newManifest is the manifest of a file of size bytes called name, without
// its chunk hashes.
func newManifest(name string, size int64) *Manifest {
	m := &Manifest{Name: SafeName(name), Size: uint64(size), MIME: mime.TypeByExtension(filepath.Ext(name)), ChunkSize: chunkSizeFor(size)}
	if m.MIME == "" {
		m.MIME = "application/octet-stream"
	}
	return m
}

// chunkSizeFor picks the chunk size of a file of size bytes: the default,
// doubled (up to MaxChunkSize) while the file would have more than
// compactChunks chunks, so that the manifest of a file of up to 16 GiB
// stays within 140 KiB and travels inside a message.
func chunkSizeFor(size int64) uint32 {
	chunkSize := uint32(DefaultChunkSize)
	for chunkSize < MaxChunkSize && size > int64(chunkSize)*compactChunks {
		chunkSize *= 2
	}
	return chunkSize
}

// compactChunks is how many chunks chunkSizeFor aims to stay under.
const compactChunks = 4096

// SafeName turns a name from a peer into a plain file name: no path
// separators, no "." or "..", no control characters, no format characters
// (which reorder or hide what a name shows: U+202E turns
// "invoice\u202efdp.exe" into "invoiceexe.pdf" on screen), at most
// MaxNameBytes bytes, never empty. A manifest whose name SafeName would
// change is malformed.
func SafeName(name string) string {
	name = strings.TrimSpace(cleanName(name))
	for strings.HasPrefix(name, ".") {
		name = strings.TrimPrefix(name, ".")
	}
	if name == "" {
		name = "file"
	}
	if len(name) > MaxNameBytes {
		// Cut once, on a rune boundary: the name may be a peer's or an
		// API client's, of any length.
		cut := MaxNameBytes
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut]
	}
	return name
}

// UniquePath returns dir/name, or dir/"name (N).ext" for the first N that
// does not exist yet: an existing file is never overwritten.
func UniquePath(dir, name string) string {
	p := filepath.Join(dir, name)
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 1; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = filepath.Join(dir, fmt.Sprintf("%s (%d)%s", base, i, ext))
	}
}

// Delete removes chunk h; a chunk that is not there is no error.
func (b *Blobs) Delete(h Hash) error {
	if err := os.Remove(b.path(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("transfer: blobs: %w", err)
	}
	return nil
}

// HashOf is the BLAKE3 hash of b: its name in the store.
func HashOf(b []byte) Hash { return Hash(blake3.Sum256(b)) }

// ParseHash reads a hash in hex.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("transfer: %q is not a hash", s)
	}
	copy(h[:], b)
	return h, nil
}

// ReadAll reads a whole stored blob of at most max bytes and checks it
// against its hash: for small blobs read whole (avatars), not chunks on
// their way to a peer.
func (b *Blobs) ReadAll(h Hash, max int64) ([]byte, error) {
	f, err := os.Open(b.path(h))
	if err != nil {
		return nil, fmt.Errorf("transfer: blob %s: %w", h, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("transfer: blob %s: %w", h, err)
	}
	if int64(len(data)) > max || HashOf(data) != h {
		return nil, fmt.Errorf("transfer: blob %s is damaged", h)
	}
	return data, nil
}
