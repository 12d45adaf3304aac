package transfer

import (
	"path"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/transfer/pb"
)

// TestRateMeter: the rate follows the bytes over time, and the time left
// is what remains at that rate.
func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1000, 0)
	m.add(0, 100<<20, t0)
	if _, r, eta := m.read(); r != 0 || eta != 0 {
		t.Fatalf("no rate before a second sample: %v %v", r, eta)
	}
	m.add(1<<20, 100<<20, t0.Add(100*time.Millisecond)) // too soon: not a sample
	m.add(10<<20, 100<<20, t0.Add(time.Second))
	b, r, eta := m.read()
	if b != 10<<20 || r != 10<<20 || eta != 9 {
		t.Fatalf("after 10 MiB in 1s: bytes %d, rate %v, eta %v", b, r, eta)
	}
	m.add(30<<20, 100<<20, t0.Add(2*time.Second)) // 20 MiB/s now
	if _, r, _ := m.read(); r <= 10<<20 || r >= 20<<20 {
		t.Fatalf("the rate does not move towards 20 MiB/s: %v", r)
	}
}

// TestChunkSizeFor: small files keep 1 MiB chunks; big ones get bigger
// chunks, so their manifests stay small.
func TestChunkSizeFor(t *testing.T) {
	for _, c := range []struct {
		size int64
		want uint32
	}{{0, 1 << 20}, {4 << 30, 1 << 20}, {4<<30 + 1, 2 << 20}, {12 << 30, 4 << 20}, {40 << 30, 4 << 20}} {
		if got := chunkSizeFor(c.size); got != c.want {
			t.Errorf("%d bytes: chunk size %d, want %d", c.size, got, c.want)
		}
	}
}

// TestFolderManifestOldReceiver: a folder's manifest carries version 2
// and a name that a node from before folders refuses as not a plain file
// name (its check: path.Base(name) == name), so it never takes a folder
// for a file; a version from the future is a clear error here.
func TestFolderManifestOldReceiver(t *testing.T) {
	m := &Manifest{Name: "photos", Folder: true, Size: 5, ChunkSize: DefaultChunkSize, Chunks: make([]Hash, 1),
		Entries: []Entry{{Path: "a", Size: 5}}}
	var w pb.Manifest
	if err := proto.Unmarshal(m.Encode(), &w); err != nil {
		t.Fatal(err)
	}
	if w.GetVersion() != 2 || path.Base(w.GetName()) == w.GetName() {
		t.Fatalf("wire form: version %d, name %q", w.GetVersion(), w.GetName())
	}
	w.Version = 3
	b, _ := proto.Marshal(&w)
	if _, err := DecodeManifest(b); err == nil || !strings.Contains(err.Error(), "newer than this meshtalk") {
		t.Fatalf("version 3: %v", err)
	}
}
