package transfer

import (
	"bufio"
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshtalk/meshtalk/transfer/pb"
)

// FuzzDecodeManifest: no input panics or allocates past the limits, and a
// manifest that decodes encodes back to the same root.
func FuzzDecodeManifest(f *testing.F) {
	m := &Manifest{Name: "photo.jpg", Size: 3<<20 + 5, MIME: "image/jpeg", ChunkSize: DefaultChunkSize, Chunks: make([]Hash, 4)}
	for i := range m.Chunks {
		m.Chunks[i][0] = byte(i)
	}
	f.Add(m.Encode())
	f.Add([]byte{})
	folder := &Manifest{Name: "photos", Size: 70<<10 + 5, ChunkSize: MinChunkSize, Chunks: make([]Hash, 2), Folder: true,
		Entries: []Entry{{Path: "a", Dir: true}, {Path: "a/b.jpg", Size: 70 << 10}, {Path: "c", Size: 5}, {Path: "empty", Dir: true}}}
	f.Add(folder.Encode())
	folder.Entries[1].Path = "../b.jpg"
	f.Add(folder.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		again, err := DecodeManifest(got.Encode())
		if err != nil || again.Root() != got.Root() {
			t.Fatalf("a valid manifest does not round-trip: %v", err)
		}
	})
}

// FuzzChunkFrame feeds the receiver's chunk reader.
func FuzzChunkFrame(f *testing.F) {
	var b bytes.Buffer
	b.Write(appendChunkHeader(nil, 3, 5))
	b.WriteString("hello")
	f.Add(b.Bytes(), 3, 5)
	// A chunk that cannot be served: length 0, then a Reply.
	var gone bytes.Buffer
	gone.Write(appendChunkHeader(nil, 3, 0))
	writeFrame(&gone, &pb.Reply{Code: CodeChanged, Message: "changed"})
	f.Add(gone.Bytes(), 3, 5)
	f.Fuzz(func(t *testing.T, in []byte, index, n int) {
		if index < 0 || n < 0 || n > 1<<16 {
			return
		}
		buf := make([]byte, 1<<16)
		r := bytes.NewReader(in)
		data, err := readChunk(bufio.NewReader(r), r, index, n, buf)
		if err == nil && len(data) != n {
			t.Fatalf("read %d bytes, want %d", len(data), n)
		}
		if err != nil && !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrChanged) && !errors.Is(err, errMissing) && !strings.Contains(err.Error(), "refused") {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// FuzzHaveBits: any have bitmap from a peer unpacks to exactly n chunks,
// and packs back to the bits it had for them.
func FuzzHaveBits(f *testing.F) {
	f.Add(haveBits([]bool{true, false, true, true, false, false, false, false, true}), 9)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > MaxChunks {
			return
		}
		have := haveFromBits(b, n)
		if len(have) != n {
			t.Fatalf("%d chunks, want %d", len(have), n)
		}
		back := haveBits(have)
		for i := range have {
			if have[i] != (back[i/8]&(1<<(i%8)) != 0) {
				t.Fatalf("bit %d does not round-trip", i)
			}
		}
	})
}

// FuzzCheckPath: a path inside a folder that passes the check stays inside
// it on this system, whatever it holds.
func FuzzCheckPath(f *testing.F) {
	for _, p := range []string{"a", "a/b c.txt", ".hidden/x", "../x", "/etc/passwd", "a/../../x", "a//b", `a\b`, "a\u202eb", "C:/x", "a/./b", "NUL"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkPath(p) != nil {
			return
		}
		joined := filepath.Join("/base/folder", filepath.FromSlash(p))
		if !strings.HasPrefix(joined, "/base/folder/") || !filepath.IsLocal(p) {
			t.Fatalf("%q passes but lands at %s", p, joined)
		}
		for part := range strings.SplitSeq(p, "/") {
			if part == ".." || part == "." || part == "" || cleanName(part) != part {
				t.Fatalf("%q passes with part %q", p, part)
			}
		}
	})
}
