package transfer_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
	"lukechampine.com/blake3"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
	"github.com/meshtalk/meshtalk/transfer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nodetest.IgnoredGoroutines()...)
}

var bg = context.Background()

// randomFile writes size random bytes to a file and returns its path.
func randomFile(t testing.TB, size int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "big file.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, int64(size)); err != nil {
		t.Fatal(err)
	}
	return p
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	ha, hb := fileHash(t, a), fileHash(t, b)
	if ha != hb {
		t.Fatalf("%s and %s differ", a, b)
	}
}

func fileHash(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := blake3.New(32, nil)
	io.Copy(h, f)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// offered imports a file on a and offers it to b.
func offered(t testing.TB, a, b *node.Node, path string) *transfer.Manifest {
	t.Helper()
	blobs, err := transfer.NewBlobs(a.Home().BlobsPath())
	if err != nil {
		t.Fatal(err)
	}
	m, err := blobs.Import(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Transfer().Offer(bg, m, b.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.Connect(t, b, a)
	return m
}

func TestTransferArrivesIdentical(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 200<<20)
	m := offered(t, a, b, src)
	if m.Name != "big file.bin" || m.Size != 200<<20 || len(m.Chunks) != 200 {
		t.Fatalf("manifest %s %d %d", m.Name, m.Size, len(m.Chunks))
	}
	dir := t.TempDir()
	var last transfer.Progress
	got, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, dir, func(p transfer.Progress) { last = p })
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(got) != "big file.bin" || last.Have != 200 || last.Bytes != m.Size {
		t.Fatalf("got %s, progress %+v", got, last)
	}
	sameFile(t, src, got)
	// Asking again answers the finished file.
	if again, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, dir, nil); err != nil || again != got {
		t.Fatalf("download again: %s %v", again, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".partial" {
			t.Fatalf("partial file left behind: %s", e.Name())
		}
	}
}

// TestNoOverwrite: a file of the same name in the destination stays; the
// download takes "name (1).ext".
func TestNoOverwrite(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	m := offered(t, a, b, randomFile(t, 2<<20))
	dir := t.TempDir()
	mine := filepath.Join(dir, "big file.bin")
	if err := os.WriteFile(mine, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(got) != "big file (1).bin" {
		t.Fatalf("downloaded to %s", got)
	}
	if b, _ := os.ReadFile(mine); string(b) != "mine" {
		t.Fatal("the existing file was overwritten")
	}
}

func TestNotOfferedIsRefused(t *testing.T) {
	a, b, c := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	m := offered(t, a, b, randomFile(t, 3<<20))
	nodetest.Connect(t, c, a)
	_, err := c.Transfer().Download(bg, m, []peer.ID{a.ID()}, t.TempDir(), nil)
	if !errors.Is(err, transfer.ErrNoSource) {
		t.Fatalf("a download that was never offered: %v", err)
	}
}

// TestResumeAfterStop: the receiver is stopped half-way, restarted, and
// completes, fetching again at most the chunks that were in flight.
func TestResumeAfterStop(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 64<<20)
	m := offered(t, a, b, src)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(bg)
	_, err := b.Transfer().Download(ctx, m, []peer.ID{a.ID()}, dir, func(p transfer.Progress) {
		if p.Have >= len(m.Chunks)/2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted download: %v", err)
	}
	home, listen := b.Home(), nodetest.ListenAddrs(b)
	b.Close()
	b = nodetest.Start(t, nodetest.Options{Home: home, Configure: func(c *node.Config) { c.Network.Listen = listen }})
	nodetest.Connect(t, b, a)
	first := -1
	got, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, dir, func(p transfer.Progress) {
		if first < 0 {
			first = p.Have
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, got)
	if refetched := len(m.Chunks)/2 - first; first < 0 || refetched > transfer.Streams {
		t.Fatalf("resumed with %d chunks of %d: %d fetched again, want at most %d", first, len(m.Chunks), refetched, transfer.Streams)
	}
}

// TestCorruptSourceIsDropped: one source serves bad chunks; the file still
// arrives correct from the good one, and the bad one is named.
func TestCorruptSourceIsDropped(t *testing.T) {
	good, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	evil := nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 24<<20)
	m := offered(t, good, b, src)
	// evil answers every request with chunks of the right size and the
	// wrong bytes.
	evil.Host().SetStreamHandler(transfer.Protocol, func(s network.Stream) {
		defer s.Close()
		r := bufio.NewReader(s)
		n, _ := binary.ReadUvarint(r)
		req := make([]byte, n)
		io.ReadFull(r, req)
		first, count := transfer.ParseRequestForTest(req)
		w := bufio.NewWriter(s)
		w.Write([]byte{0}) // Reply{code: 0}: an empty protobuf
		junk := make([]byte, transfer.DefaultChunkSize)
		for i := first; i < first+count; i++ {
			rand.Read(junk)
			w.Write(binary.AppendUvarint(nil, uint64(i)))
			w.Write(binary.AppendUvarint(nil, uint64(len(junk))))
			w.Write(junk)
		}
		w.Flush()
	})
	nodetest.Connect(t, b, evil)
	got, err := b.Transfer().Download(bg, m, []peer.ID{evil.ID(), good.ID()}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, got)

	// With only the evil source, the error says what it did.
	other := nodetest.Start(t, nodetest.Options{})
	m2 := offered(t, good, other, randomFile(t, 8<<20))
	nodetest.Connect(t, other, evil)
	_, err = other.Transfer().Download(bg, m2, []peer.ID{evil.ID()}, t.TempDir(), nil)
	if !errors.Is(err, transfer.ErrNoSource) || !bytes.Contains([]byte(err.Error()), []byte("do not match")) {
		t.Fatalf("only a bad source: %v", err)
	}
}

// TestChunkCutShortWhileServed: a chunk file cut short on the sender's
// disk while the sender writes that chunk to a stream costs nothing. The
// sender holds what it read; a mapping of the file would have died of
// SIGBUS as the transport read on (this test crashed the process so).
func TestChunkCutShortWhileServed(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	// Over TCP: a yamux stream's first window is 256 KiB, so a's write
	// of the 1 MiB chunk stops there until b reads on.
	src := randomFile(t, 2<<20)
	m := offeredOver(t, a, b, src, "tcp")
	st, err := b.Host().NewStream(bg, a.ID(), transfer.Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write(transfer.RequestFrameForTest(m.Root(), 0, 1)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(st)
	if n, err := binary.ReadUvarint(r); err != nil || n != 0 { // Reply{code: 0}
		t.Fatalf("reply: %d bytes, %v", n, err)
	}
	idx, _ := binary.ReadUvarint(r)
	n, err := binary.ReadUvarint(r)
	if err != nil || idx != 0 || n != transfer.DefaultChunkSize {
		t.Fatalf("chunk header: index %d, length %d, %v", idx, n, err)
	}
	chunk := make([]byte, n)
	if _, err := io.ReadFull(r, chunk[:1024]); err != nil {
		t.Fatal(err)
	}
	// The file is served where it lies (shared in place): cut it.
	if err := os.Truncate(src, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, chunk[1024:]); err != nil {
		t.Fatal(err)
	}
	if transfer.HashOf(chunk) != m.Chunks[0] {
		t.Fatal("the chunk served is not the one stored")
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":          "report.pdf",
		"../../etc/passwd":    "_.._etc_passwd",
		"..":                  "file",
		"":                    "file",
		"a\x00b\nc\x1b[31m":   "a_bc[31m",
		`C:\Windows\evil.exe`: "C:_Windows_evil.exe",
		".bashrc":             "bashrc",
		// Format characters reorder or hide what is shown: U+202E makes
		// "invoice\u202efdp.exe" read as "invoiceexe.pdf".
		"invoice\u202efdp.exe": "invoicefdp.exe",
		"a\u200bb\ufeff.txt":   "ab.txt",
		"\u2066x\u2069.sh":     "x.sh",
	} {
		if got := transfer.SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
	long := string(bytes.Repeat([]byte("é"), 200))
	if got := transfer.SafeName(long); len(got) > transfer.MaxNameBytes {
		t.Errorf("a long name stays %d bytes", len(got))
	}
	// A name of any length is cut once, not a rune at a time (a
	// picture's name comes from an API client, a dropped file's from a
	// peer).
	huge := strings.Repeat("é", 2000)
	var got string
	if allocs := testing.AllocsPerRun(3, func() { got = transfer.SafeName(huge) }); allocs > 2 {
		t.Errorf("SafeName of a %d-byte name allocates %v times", len(huge), allocs)
	}
	if got != strings.Repeat("é", transfer.MaxNameBytes/2) {
		t.Errorf("SafeName of a %d-byte name: %d bytes, %q...", len(huge), len(got), got[:10])
	}
}

func TestManifestLimits(t *testing.T) {
	for name, m := range map[string]*transfer.Manifest{
		"traversal":   {Name: "../x", Size: 1, ChunkSize: transfer.DefaultChunkSize, Chunks: make([]transfer.Hash, 1)},
		"chunk count": {Name: "x", Size: 10 << 20, ChunkSize: transfer.DefaultChunkSize, Chunks: make([]transfer.Hash, 3)},
		"tiny chunks": {Name: "x", Size: 10, ChunkSize: 10, Chunks: make([]transfer.Hash, 1)},
		"too many":    {Name: "x", Size: (transfer.MaxChunks + 1) * transfer.MinChunkSize, ChunkSize: transfer.MinChunkSize, Chunks: make([]transfer.Hash, transfer.MaxChunks+1)},
		"bad mime":    {Name: "x", Size: 1, MIME: "///", ChunkSize: transfer.DefaultChunkSize, Chunks: make([]transfer.Hash, 1)},
	} {
		if _, err := transfer.DecodeManifest(m.Encode()); !errors.Is(err, transfer.ErrBadManifest) {
			t.Errorf("%s: got %v, want ErrBadManifest", name, err)
		}
	}
}

// TestBackgroundResumesAfterRestart: a download started in the background
// and cut by a stop of the receiver completes by itself after its restart.
func TestBackgroundResumesAfterRestart(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 64<<20)
	m := offered(t, a, b, src)
	dir := t.TempDir()
	events, cancel := b.Events().Subscribe(4096)
	if err := b.Transfer().Start(m, []peer.ID{a.ID()}, dir); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEvent(t, events, transfer.EventProgress, func(ev node.Event) bool {
		p := ev.Data.(transfer.Event)
		// The first report comes before any chunk: the stop below cuts
		// the download early, wherever it is.
		return p.ID == m.ID() && p.Have < p.Chunks
	})
	cancel()
	home, listen := b.Home(), nodetest.ListenAddrs(b)
	b.Close()
	b = nodetest.Start(t, nodetest.Options{Home: home, Configure: func(c *node.Config) { c.Network.Listen = listen }})
	events, cancel = b.Events().Subscribe(4096)
	defer cancel()
	done := func() string {
		list, err := b.Transfer().Downloads(bg)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range list {
			if d.ID == m.ID() && d.Done {
				return d.Final
			}
		}
		return ""
	}
	path := done()
	if path == "" {
		ev := nodetest.WaitEvent(t, events, transfer.EventDone, func(ev node.Event) bool { return ev.Data.(transfer.Event).ID == m.ID() })
		path = ev.Data.(transfer.Event).Path
	}
	sameFile(t, src, path)
}

// TestFullDisk: a download into a folder whose disk fills up stops with a
// clear error and keeps what it verified; once there is room, it resumes
// and completes. It needs root to mount a small tmpfs, and skips without.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 10<<20)
	m := offered(t, a, b, src)
	_, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("download onto a full disk: %v, want 'no space left'", err)
	}
	// Room again: the same download resumes and completes.
	if out, err := exec.Command("mount", "-o", "remount,size=32m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	first := -1
	got, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, dir, func(p transfer.Progress) {
		if first < 0 {
			first = p.Have
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, got)
	if first <= 0 {
		t.Fatalf("the resumed download started from %d chunks: nothing was kept", first)
	}
}

// TestSenderRestartResumes: the sender stops while a background download
// runs; when it is back, the download completes by itself.
func TestSenderRestartResumes(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 64<<20)
	m := offered(t, a, b, src)
	events, cancel := b.Events().Subscribe(4096)
	defer cancel()
	if err := b.Transfer().Start(m, []peer.ID{a.ID()}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEvent(t, events, transfer.EventProgress, func(ev node.Event) bool {
		p := ev.Data.(transfer.Event)
		return p.ID == m.ID() && p.Have < p.Chunks
	})
	home, listen := a.Home(), nodetest.ListenAddrs(a)
	a.Close()
	a = nodetest.Start(t, nodetest.Options{Home: home, Configure: func(c *node.Config) { c.Network.Listen = listen }})
	ev := nodetest.WaitEvent(t, events, transfer.EventDone, func(ev node.Event) bool { return ev.Data.(transfer.Event).ID == m.ID() })
	sameFile(t, src, ev.Data.(transfer.Event).Path)
}
