package transfer_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
	"github.com/meshtalk/meshtalk/transfer"
)

// shared shares a file of a's where it lies and offers it to each of to.
func shared(t testing.TB, a *node.Node, path string, to ...*node.Node) *transfer.Manifest {
	t.Helper()
	m, err := a.Transfer().Share(bg, path, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range to {
		if err := a.Transfer().Offer(bg, m, b.ID()); err != nil {
			t.Fatal(err)
		}
		nodetest.Connect(t, b, a)
	}
	return m
}

// dirSize is the bytes of the files under dir.
func dirSize(t testing.TB, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// TestShareServesInPlace: a shared file is not copied into the sender's
// home, arrives identical, and the sender counts what it served and sees
// when the receiver finished.
func TestShareServesInPlace(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 64<<20)
	before := dirSize(t, string(a.Home()))
	m := shared(t, a, src, b)
	if grew := dirSize(t, string(a.Home())) - before; grew > 1<<20 {
		t.Fatalf("sharing 64 MiB grew the home by %d bytes", grew)
	}
	got, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, got)
	if grew := dirSize(t, string(a.Home())) - before; grew > 1<<20 {
		t.Fatalf("serving 64 MiB grew the home by %d bytes", grew)
	}
	var served []transfer.Served
	nodetest.Eventually(t, 10*time.Second, "the sender sees the receiver finish", func() bool {
		served, err = a.Transfer().Served(bg, m.ID())
		return err == nil && len(served) == 1 && served[0].Finished != nil
	})
	if served[0].Peer != b.ID() || served[0].Bytes < m.Size || served[0].Bytes > m.Size+m.Size/10 {
		t.Fatalf("served %+v for a file of %d bytes", served[0], m.Size)
	}
}

// TestChangedFileIsClearError: a shared file that is changed (even keeping
// its size and time), or removed, after the offer is a clear error to the
// receiver, and never wrong bytes.
func TestChangedFileIsClearError(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	for _, change := range []string{"same size and time", "appended", "removed"} {
		t.Run(change, func(t *testing.T) {
			b := nodetest.Start(t, nodetest.Options{})
			src := randomFile(t, 8<<20)
			m := shared(t, a, src, b)
			fi, _ := os.Stat(src)
			switch change {
			case "same size and time":
				f, _ := os.OpenFile(src, os.O_WRONLY, 0)
				f.WriteAt([]byte("changed"), 5<<20)
				f.Close()
				os.Chtimes(src, fi.ModTime(), fi.ModTime())
			case "appended":
				f, _ := os.OpenFile(src, os.O_WRONLY|os.O_APPEND, 0)
				f.WriteString("more")
				f.Close()
			case "removed":
				os.Remove(src)
			}
			dir := t.TempDir()
			_, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, dir, nil)
			if !errors.Is(err, transfer.ErrChanged) || !strings.Contains(err.Error(), "the sender's file changed; ask for it again") {
				t.Fatalf("download of a changed file: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				// Partial downloads are staged in a private folder.
				if e.Name() != transfer.StagingName && !strings.HasSuffix(e.Name(), ".partial") {
					t.Fatalf("a file of wrong bytes arrived: %s", e.Name())
				}
			}
		})
	}
}

// TestChangedFileStopsBackground: a background download of a changed
// file fails at once with the clear error (no retrying).
func TestChangedFileStopsBackground(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 4<<20)
	m := shared(t, a, src, b)
	os.Remove(src)
	events := nodetest.Events(t, b)
	if err := b.Transfer().Start(m, []peer.ID{a.ID()}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ev := nodetest.WaitEvent(t, events, transfer.EventFailed, func(ev node.Event) bool { return ev.Data.(transfer.Event).ID == m.ID() })
	if e := ev.Data.(transfer.Event).Error; !strings.Contains(e, "the sender's file changed; ask for it again") {
		t.Fatalf("failed with %q", e)
	}
}

// TestSwarm: members of a group that fetch the same file at once fetch
// most of it from each other: the sender serves at most twice the file,
// and every copy is identical.
func TestSwarm(t *testing.T) {
	const members = 5
	a := nodetest.Start(t, nodetest.Options{})
	var nodes []*node.Node
	for range members {
		nodes = append(nodes, nodetest.Start(t, nodetest.Options{}))
	}
	src := randomFile(t, 64<<20)
	m := shared(t, a, src, nodes...)
	for _, x := range nodes {
		for _, y := range nodes {
			if x != y {
				nodetest.Connect(t, x, y)
			}
		}
	}
	var wg sync.WaitGroup
	got := make([]string, members)
	errs := make([]error, members)
	for i, x := range nodes {
		sources := []peer.ID{a.ID()}
		for _, y := range nodes {
			if y != x {
				sources = append(sources, y.ID())
			}
		}
		wg.Go(func() {
			// A member that fetches the file offers it to the others:
			// what it has verified, it serves (node does this for a
			// group's file).
			if err := x.Transfer().OfferFetched(bg, m, sources[1:]); err != nil {
				errs[i] = err
				return
			}
			got[i], errs[i] = x.Transfer().Download(bg, m, sources, t.TempDir(), nil)
		})
	}
	wg.Wait()
	for i := range nodes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		sameFile(t, src, got[i])
	}
	served, err := a.Transfer().Served(bg, m.ID())
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, s := range served {
		total += s.Bytes
	}
	t.Logf("the sender served %.2f× the file to %d members", float64(total)/float64(m.Size), members)
	if total > 2*m.Size {
		t.Fatalf("the sender served %d bytes of a %d-byte file to %d members", total, m.Size, members)
	}
}

// TestUploadCap: a node with [files] upload_kib_per_second serves no
// faster than that: 3 MiB at 1 MiB/s (a burst of 1 MiB) take 2 s at
// least, and come whole.
func TestUploadCap(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{Configure: func(c *node.Config) { c.Files.UploadKiBPerSecond = 1 << 10 }})
	b := nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 3<<20)
	m := shared(t, a, src, b)
	start := time.Now()
	got, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("3 MiB at 1 MiB/s came in %v", d)
	}
	sameFile(t, src, got)
}
