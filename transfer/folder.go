package transfer

// Folders. A folder is offered as one manifest (manifest version 2, see
// wire.go): its entries, files and folders by relative path (empty folders
// kept), and chunks that span its files' bytes, one after the other in the
// order of the entries. So a folder moves as a file does: the same
// chunked, verified, resumable download into one partial file, one
// progress for the whole. Once every chunk is verified, unpack lays the
// files out in a private folder of the staging folder, through an os.Root
// (nothing can be written outside it, whatever a path or a link says),
// and gives that folder its final name in the downloads folder.
//
// The sender shares a folder in place (ShareFolder): no copy is made; its
// origin record (source.go, "v": 2) lists where each file lies, and every
// chunk is read through an os.Root of the folder, so no link leads a read
// out of it, and is checked against the manifest.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxFolderManifest bounds a folder's encoded manifest on the sender: it
// travels in one direct or group message.
const maxFolderManifest = 200 << 10

// checkEntries checks a folder's entries: each path (checkPath), no path
// twice, no file that is also a folder, and the files' sizes add up to
// size.
func checkEntries(entries []Entry, size uint64) error {
	if len(entries) > MaxEntries {
		return fmt.Errorf("%w: %d entries, the limit is %d", ErrBadManifest, len(entries), MaxEntries)
	}
	isDir := make(map[string]bool, len(entries))
	var total uint64
	for _, e := range entries {
		if err := checkPath(e.Path); err != nil {
			return err
		}
		if _, dup := isDir[e.Path]; dup {
			return fmt.Errorf("%w: %q is listed twice", ErrBadManifest, e.Path)
		}
		isDir[e.Path] = e.Dir
		if e.Dir && e.Size != 0 {
			return fmt.Errorf("%w: folder %q has a size", ErrBadManifest, e.Path)
		}
		if total+e.Size < total {
			return fmt.Errorf("%w: sizes overflow", ErrBadManifest)
		}
		total += e.Size
	}
	if total != size {
		return fmt.Errorf("%w: files of %d bytes in a folder of %d", ErrBadManifest, total, size)
	}
	for _, e := range entries {
		for a := path.Dir(e.Path); a != "."; a = path.Dir(a) {
			if dir, ok := isDir[a]; ok && !dir {
				return fmt.Errorf("%w: %q is a file and a folder", ErrBadManifest, a)
			}
		}
	}
	return nil
}

// checkPath checks a path inside a folder: relative, "/"-separated, no
// empty part, no "." or "..", no part that cleanName would change, local
// on this system too (filepath.IsLocal: no Windows drive or device name).
func checkPath(p string) error {
	if p == "" || len(p) > MaxPathBytes || !utf8.ValidString(p) {
		return fmt.Errorf("%w: path %q is empty, too long or not UTF-8", ErrBadManifest, p)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: path %q is absolute", ErrBadManifest, p)
	}
	for part := range strings.SplitSeq(p, "/") {
		switch {
		case part == "." || part == "..":
			return fmt.Errorf("%w: path %q leaves its folder", ErrBadManifest, p)
		case part == "" || len(part) > MaxNameBytes || cleanName(part) != part:
			return fmt.Errorf("%w: path %q has a part that is not a plain name", ErrBadManifest, p)
		}
	}
	if !filepath.IsLocal(filepath.FromSlash(p)) {
		return fmt.Errorf("%w: path %q leaves its folder", ErrBadManifest, p)
	}
	return nil
}

// cleanName is a name inside a folder as it travels: what SafeName strips
// (control and invisible format characters) goes, a separator or NUL
// becomes "_"; unlike a file's own name it may start with a dot.
func cleanName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\' || r == 0:
			return '_'
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, name)
}

// ShareFolder shares the folder at dir as Share shares a file: its files
// are hashed where they lie, on every core, and recorded as the source of
// the folder's chunks. Every folder inside is listed, empty ones too. A
// link inside the folder, or anything but files and folders, is an error
// (nothing is sent that the receiver would not get). name overrides the
// folder's name when not empty.
func (s *Service) ShareFolder(ctx context.Context, dir, name string) (*Manifest, error) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs) // the folder named, if by a link; none inside it
	}
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if name == "" {
		name = SafeName(filepath.Base(abs))
	}
	m := &Manifest{Name: name, Folder: true, Entries: []Entry{}}
	var sources []string // the files' paths in abs, in the order of m's file entries
	var infos []fs.FileInfo
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == abs {
			if !d.IsDir() {
				return fmt.Errorf("%s is not a folder", dir)
			}
			return nil
		}
		rel, _ := filepath.Rel(abs, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		for i, part := range parts {
			parts[i] = cleanName(part)
		}
		e := Entry{Path: strings.Join(parts, "/"), Dir: d.IsDir()}
		switch {
		case d.IsDir():
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			e.Size = uint64(fi.Size())
			sources, infos = append(sources, filepath.ToSlash(rel)), append(infos, fi)
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a link: a folder is sent with its files and folders only; remove the link or send what it points to", p)
		default:
			return fmt.Errorf("%s is neither a file nor a folder", p)
		}
		if err := checkPath(e.Path); err != nil {
			return fmt.Errorf("%s: its name cannot be sent: %w", p, err)
		}
		m.Entries = append(m.Entries, e)
		m.Size += e.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	return s.shareFolder(ctx, m, abs, sources, infos)
}

// shareFolder hashes the files of m, which lie at sources in abs, checks
// they did not change meanwhile, and records m and its origin.
func (s *Service) shareFolder(ctx context.Context, m *Manifest, abs string, sources []string, infos []fs.FileInfo) (*Manifest, error) {
	m.ChunkSize = newManifest(m.Name, int64(m.Size)).ChunkSize
	if err := m.checkShape(int((m.Size + uint64(m.ChunkSize) - 1) / uint64(m.ChunkSize))); err != nil {
		return nil, err
	}
	if len(m.Encode()) > maxFolderManifest {
		return nil, fmt.Errorf("transfer: %s holds too many files (%d) to offer in one message: send its folders one by one", abs, len(m.Entries))
	}
	r, err := openFolder(abs, m, sources)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	defer r.Close()
	if m.Chunks, err = hashChunks(r, int64(m.Size), m.ChunkSize); err != nil {
		return nil, fmt.Errorf("transfer: %s: %w", abs, err)
	}
	for i, src := range sources {
		fi, err := r.root.Stat(src)
		if err != nil || fi.Size() != infos[i].Size() || !fi.ModTime().Equal(infos[i].ModTime()) {
			return nil, fmt.Errorf("transfer: %s changed while it was read", filepath.Join(abs, src))
		}
	}
	return s.storeShared(ctx, m, origin{V: originFolder, Path: abs, Files: sources})
}

// folderReader reads a folder's files as one run of bytes: the bytes its
// chunks span. Each file is opened through root, so no link leads out of
// the folder; a file shorter than the manifest says is an error.
type folderReader struct {
	root  *os.Root
	files []fileSpan // in order of off, empty files left out
}

type fileSpan struct {
	path      string // in root, "/"-separated
	off, size int64
}

// openFolder opens the folder at dir, whose files (m's file entries, in
// order) lie at paths; nil paths: at their entries' paths.
func openFolder(dir string, m *Manifest, paths []string) (*folderReader, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	r := &folderReader{root: root}
	var off int64
	k := 0
	for _, e := range m.Entries {
		if e.Dir {
			continue
		}
		p := e.Path
		if paths != nil {
			if k >= len(paths) {
				root.Close()
				return nil, errors.New("the folder's record does not match its manifest")
			}
			p = paths[k]
		}
		k++
		if e.Size > 0 {
			r.files = append(r.files, fileSpan{path: p, off: off, size: int64(e.Size)})
			off += int64(e.Size)
		}
	}
	if paths != nil && k != len(paths) {
		root.Close()
		return nil, errors.New("the folder's record does not match its manifest")
	}
	return r, nil
}

// ReadAt reads len(b) bytes at off, across files.
func (r *folderReader) ReadAt(b []byte, off int64) (int, error) {
	i := sort.Search(len(r.files), func(i int) bool { return r.files[i].off+r.files[i].size > off })
	n := 0
	for n < len(b) {
		if i >= len(r.files) {
			return n, io.EOF
		}
		sp := r.files[i]
		at := off + int64(n) - sp.off
		l := int(min(int64(len(b)-n), sp.size-at))
		f, err := r.root.Open(sp.path)
		if err != nil {
			return n, err
		}
		k, err := f.ReadAt(b[n:n+l], at)
		f.Close()
		n += k
		if err != nil {
			return n, err
		}
		i++
	}
	return n, nil
}

func (r *folderReader) Close() error { return r.root.Close() }

// unpack lays the folder m out from the verified partial file at partial:
// into a private folder beside it, through an os.Root, then under its own
// name (never over an existing one) in dir. It returns where it is. A cut
// unpack starts again from the partial file.
func unpack(m *Manifest, partial, dir string) (string, error) {
	if err := checkEntries(m.Entries, m.Size); err != nil {
		return "", err
	}
	tmp := strings.TrimSuffix(partial, ".partial") + ".folder"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", err
	}
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return "", err
	}
	defer root.Close()
	src, err := os.Open(partial)
	if err != nil {
		return "", err
	}
	defer src.Close()
	for _, e := range m.Entries {
		if err := unpackEntry(root, src, e); err != nil {
			return "", fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	for {
		final := UniquePath(dir, m.Name)
		// os.Rename refuses an existing folder (and the system a file)
		// as the new name: one that appeared meanwhile is no loss.
		err := os.Rename(tmp, final)
		if err == nil {
			return final, nil
		}
		if _, serr := os.Lstat(final); serr != nil {
			return "", err
		}
	}
}

// unpackEntry makes one entry in root: a folder, or a file with the next
// e.Size bytes of src.
func unpackEntry(root *os.Root, src *os.File, e Entry) error {
	if e.Dir {
		return root.MkdirAll(e.Path, 0o700)
	}
	if d := path.Dir(e.Path); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	out, err := root.OpenFile(e.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	// The partial file's bytes, file to file (copy_file_range where the
	// system has it).
	n, err := io.Copy(out, io.LimitReader(src, int64(e.Size)))
	if err == nil && n != int64(e.Size) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	return out.Sync()
}

// Packed reads what this node holds of m, shared in place or stored, as
// one stream: the bytes a download of m writes (a folder's files one after
// the other), each chunk checked against m as it is read. A file changed
// since it was shared fails the read with ErrChanged.
func (s *Service) Packed(ctx context.Context, m *Manifest) (io.ReadCloser, error) {
	h, err := s.hold(ctx, m.Root(), m)
	if err != nil {
		return nil, fmt.Errorf("transfer: %s: %w", m.Name, err)
	}
	return &packedReader{h: h, buf: make([]byte, m.ChunkSize)}, nil
}

// packedReader reads a holding's chunks in order.
type packedReader struct {
	h     *holding
	buf   []byte
	chunk []byte // what is left of the last chunk read
	next  int    // the chunk to read next
}

func (r *packedReader) Read(b []byte) (int, error) {
	if len(r.chunk) == 0 {
		if r.next >= len(r.h.m.Chunks) {
			return 0, io.EOF
		}
		data, err := r.h.read(r.next, r.buf[:r.h.m.chunkLen(r.next)])
		if err != nil {
			return 0, fmt.Errorf("transfer: %s: chunk %d: %w", r.h.m.Name, r.next, err)
		}
		r.chunk = data
		r.next++
	}
	n := copy(b, r.chunk)
	r.chunk = r.chunk[n:]
	return n, nil
}

func (r *packedReader) Close() error {
	r.h.close()
	return nil
}

// UnpackFolder lays out the folder m from packed, a file of its bytes as
// Packed reads them, under its own name (never over an existing one) in
// dir, once every chunk of packed matches m; it answers where the folder
// is. Nothing is laid out from bytes that do not match (ErrBadChunk).
func UnpackFolder(m *Manifest, packed, dir string) (string, error) {
	if !m.Folder {
		return "", fmt.Errorf("%w: %s is not a folder", ErrBadManifest, m.Name)
	}
	if err := m.checkShape(len(m.Chunks)); err != nil {
		return "", err
	}
	f, err := os.Open(packed)
	if err != nil {
		return "", fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("transfer: %w", err)
	}
	if uint64(fi.Size()) != m.Size {
		return "", fmt.Errorf("%w: folder %s: %d bytes, its manifest says %d", ErrBadChunk, m.Name, fi.Size(), m.Size)
	}
	hashes, err := hashChunks(f, fi.Size(), m.ChunkSize)
	if err != nil {
		return "", fmt.Errorf("transfer: %w", err)
	}
	for i, h := range hashes {
		if h != m.Chunks[i] {
			return "", fmt.Errorf("%w: folder %s, chunk %d", ErrBadChunk, m.Name, i)
		}
	}
	final, err := unpack(m, packed, dir)
	if err != nil {
		os.RemoveAll(strings.TrimSuffix(packed, ".partial") + ".folder") // what unpack left
		return "", fmt.Errorf("transfer: folder %s: %w", m.Name, err)
	}
	return final, nil
}
