package transfer_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/transfer"
)

// makeTree writes a folder: nested folders, an empty one, an empty file,
// a hidden one, a file of several chunks and small ones (chunks that span
// several files). It returns its path.
func makeTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "photos")
	big := make([]byte, 3<<20+77)
	rand.Read(big)
	files := map[string][]byte{
		"a.txt":               []byte("hello"),
		"sub/b.bin":           big,
		"sub/deep/c.txt":      []byte("deep down"),
		"sub/zero":            nil,
		".hidden":             []byte("dot"),
		"sub/deep/z last.txt": bytes.Repeat([]byte("z"), 70<<10),
	}
	for p, data := range files {
		p = filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"empty", "sub/deep/empty too"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestFolderArrives: a folder shared in place arrives as a folder, every
// file byte-identical, empty folders kept, and the progress counts the
// whole folder.
func TestFolderArrives(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := makeTree(t)
	before := dirSize(t, string(a.Home()))
	m, err := a.Transfer().ShareFolder(bg, src, "")
	if err != nil {
		t.Fatal(err)
	}
	if grew := dirSize(t, string(a.Home())) - before; grew > 1<<20 {
		t.Fatalf("sharing a folder grew the home by %d bytes", grew)
	}
	if !m.Folder || m.Name != "photos" || len(m.Chunks) < 4 {
		t.Fatalf("manifest: folder %v, name %q, %d chunks", m.Folder, m.Name, len(m.Chunks))
	}
	// What travels decodes to the same folder.
	again, err := transfer.DecodeManifest(m.Encode())
	if err != nil || again.Root() != m.Root() || !again.Folder {
		t.Fatalf("the manifest does not round-trip: %v", err)
	}
	if err := a.Transfer().Offer(bg, m, b.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.Connect(t, b, a)
	dir := t.TempDir()
	var last transfer.Progress
	got, err := b.Transfer().Download(bg, again, []peer.ID{a.ID()}, dir, func(p transfer.Progress) { last = p })
	if err != nil {
		t.Fatal(err)
	}
	if got != filepath.Join(dir, "photos") {
		t.Fatalf("received at %s", got)
	}
	nodetest.SameFolder(t, src, got)
	if last.Size != m.Size || last.Bytes != m.Size || last.Have != len(m.Chunks) {
		t.Fatalf("last progress %+v for a folder of %d bytes", last, m.Size)
	}
	// Nothing is left in the downloads folder but the folder.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("downloads folder holds %v", ents)
	}
	// A second time: under a name of its own, never over the first.
	if err := b.Transfer().Forget(bg, again); err != nil {
		t.Fatal(err)
	}
	got2, err := b.Transfer().Download(bg, again, []peer.ID{a.ID()}, dir, nil)
	if err != nil || got2 != filepath.Join(dir, "photos (1)") {
		t.Fatalf("second download at %s: %v", got2, err)
	}
}

// TestFolderRefusesEscape: a folder manifest with a path that leaves the
// folder (.., absolute, a hidden separator) is refused as it is decoded,
// and by Download, with a clear error, and nothing is written anywhere;
// a sender refuses a folder that holds a link.
func TestFolderRefusesEscape(t *testing.T) {
	b := nodetest.Start(t, nodetest.Options{})
	base := t.TempDir()
	dir := filepath.Join(base, "downloads")
	data := []byte("owned")
	for _, evil := range []string{"../x", "/tmp/x", "a/../../x", "a/./x", "a//x", "..", "a\u202e/x", `..\x`, ""} {
		m := &transfer.Manifest{Name: "evil", Folder: true, Size: uint64(len(data)), ChunkSize: transfer.DefaultChunkSize,
			Chunks: []transfer.Hash{transfer.HashOf(data)}, Entries: []transfer.Entry{{Path: evil, Size: uint64(len(data))}}}
		_, err := transfer.DecodeManifest(m.Encode())
		if !errors.Is(err, transfer.ErrBadManifest) || !strings.Contains(err.Error(), "path") {
			t.Fatalf("%q decodes: %v", evil, err)
		}
		_, err = b.Transfer().Download(bg, m, []peer.ID{b.ID()}, dir, nil)
		if !errors.Is(err, transfer.ErrBadManifest) {
			t.Fatalf("%q downloads: %v", evil, err)
		}
	}
	// A file that is a folder too, and a path twice.
	for _, entries := range [][]transfer.Entry{
		{{Path: "a", Size: 5}, {Path: "a/b", Dir: true}},
		{{Path: "a", Size: 5}, {Path: "a", Dir: true}},
	} {
		m := &transfer.Manifest{Name: "evil", Folder: true, Size: 5, ChunkSize: transfer.DefaultChunkSize,
			Chunks: []transfer.Hash{transfer.HashOf(data)}, Entries: entries}
		if _, err := transfer.DecodeManifest(m.Encode()); !errors.Is(err, transfer.ErrBadManifest) {
			t.Fatalf("%v decodes: %v", entries, err)
		}
	}
	if ents, _ := os.ReadDir(base); len(ents) != 0 {
		t.Fatalf("refused manifests wrote %v", ents)
	}

	src := makeTree(t)
	if err := os.Symlink("/etc", filepath.Join(src, "sub", "out")); err != nil {
		t.Fatal(err)
	}
	_, err := b.Transfer().ShareFolder(bg, src, "")
	if err == nil || !strings.Contains(err.Error(), "is a link") {
		t.Fatalf("a folder with a link shared: %v", err)
	}
}

// TestPackedFolderUnpacks: a shared folder read as one stream (Packed, as
// a relay's file drop seals it) is laid out again by UnpackFolder,
// identical; packed bytes that do not match the manifest lay out nothing
// (ErrBadChunk), and a folder whose file changed since it was shared
// cannot be read (ErrChanged).
func TestPackedFolderUnpacks(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	src := makeTree(t)
	m, err := a.Transfer().ShareFolder(t.Context(), src, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.Transfer().Packed(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	var packed bytes.Buffer
	_, err = packed.ReadFrom(r)
	r.Close()
	if err != nil || uint64(packed.Len()) != m.Size {
		t.Fatalf("packed %d of %d bytes: %v", packed.Len(), m.Size, err)
	}
	work := t.TempDir()
	file := filepath.Join(work, "packed")
	os.WriteFile(file, packed.Bytes(), 0o600)
	dir := filepath.Join(work, "out")
	os.Mkdir(dir, 0o700)
	got, err := transfer.UnpackFolder(m, file, dir)
	if err != nil {
		t.Fatal(err)
	}
	nodetest.SameFolder(t, src, got)

	bad := packed.Bytes()
	bad[len(bad)/2] ^= 1
	os.WriteFile(file, bad, 0o600)
	empty := filepath.Join(work, "empty")
	os.Mkdir(empty, 0o700)
	if _, err := transfer.UnpackFolder(m, file, empty); !errors.Is(err, transfer.ErrBadChunk) {
		t.Fatalf("bad bytes: %v, want ErrBadChunk", err)
	}
	if left, _ := os.ReadDir(empty); len(left) != 0 {
		t.Fatalf("bad bytes laid out %v", left)
	}

	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = a.Transfer().Packed(t.Context(), m)
	if err == nil {
		_, err = packed.ReadFrom(r)
		r.Close()
	}
	if !errors.Is(err, transfer.ErrChanged) {
		t.Fatalf("a changed folder read: %v, want ErrChanged", err)
	}
}
