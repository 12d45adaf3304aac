package node_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// randomFileOf writes size random bytes to a new file.
func randomFileOf(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "film.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// homeBytes is the size of the files under a node's home.
func homeBytes(n *node.Node) int64 {
	var total int64
	filepath.Walk(string(n.Home()), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

// fileOf waits until n lists the file id and answers it.
func fileOf(t *testing.T, n *node.Node, id string, ok func(node.File) bool) node.File {
	t.Helper()
	var got, last node.File
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last seen: %+v", last)
		}
	})
	nodetest.Eventually(t, 90*time.Second, "file "+id, func() bool {
		files, err := n.Files(context.Background())
		for _, f := range files {
			if err == nil && f.ID == id {
				last = f
				if ok(f) {
					got = f
					return true
				}
			}
		}
		return false
	})
	return got
}

// TestSendFileInPlace: sending a file copies nothing into the sender's
// home, and the sender's file list shows what it served to the friend and
// when the friend had it all.
func TestSendFileInPlace(t *testing.T) {
	ctx := context.Background()
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	src := randomFileOf(t, 32<<20)
	before := homeBytes(a)
	sent, err := a.SendFile(ctx, node.FileSend{To: b.ID().String(), Path: src})
	if err != nil {
		t.Fatal(err)
	}
	if grew := homeBytes(a) - before; grew > 1<<20 {
		t.Fatalf("sending 32 MiB grew the sender's home by %d bytes", grew)
	}
	id := sent.Message.File.ID
	fileOf(t, b, id, func(node.File) bool { return true })
	if _, err := b.GetFile(ctx, id, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	fileOf(t, b, id, func(f node.File) bool { return f.State == "done" })
	f := fileOf(t, a, id, func(f node.File) bool { return len(f.Served) == 1 && f.Served[0].Finished != nil })
	if f.Served[0].Peer != b.ID() || f.BytesServed < uint64(sent.Size) || !f.Outgoing {
		t.Fatalf("the sender lists %+v", f)
	}
}

// TestGroupFileFromEveryMember: members of a group fetch a group's file
// from each other as well as from its sender, and every copy is
// identical. One member fetches it first; the three others then fetch at
// once, and take a good part of it from that member (and each other): the
// sender serves clearly less than the four copies it would serve alone.
// (How much less depends on who is quicker, which a loaded machine
// decides: the "at most twice" figure is BenchmarkSwarm's, not a test's.)
func TestGroupFileFromEveryMember(t *testing.T) {
	ctx := context.Background()
	nodes, gid := nodetest.GroupOf(t, 5)
	src := randomFileOf(t, 16<<20)
	m, err := nodes[0].SendGroup(ctx, gid, node.Draft{Path: src})
	if err != nil {
		t.Fatal(err)
	}
	id := m.File.ID
	get := func(n *node.Node) {
		fileOf(t, n, id, func(node.File) bool { return true })
		if _, err := n.GetFile(ctx, id, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	get(nodes[1])
	fileOf(t, nodes[1], id, func(f node.File) bool { return f.State == "done" })
	for _, n := range nodes[2:] {
		get(n)
	}
	want, _ := os.ReadFile(src)
	for _, n := range nodes[1:] {
		f := fileOf(t, n, id, func(f node.File) bool { return f.State == "done" || f.State == "failed" })
		got, err := os.ReadFile(f.Path)
		if f.State != "done" || err != nil || string(got) != string(want) {
			t.Fatalf("a member's copy: %+v %v", f, err)
		}
	}
	sender := fileOf(t, nodes[0], id, func(node.File) bool { return true })
	var others uint64
	for _, n := range nodes[1:] {
		others += fileOf(t, n, id, func(node.File) bool { return true }).BytesServed
	}
	t.Logf("the sender served %.2f× the file, the members %.2f×", float64(sender.BytesServed)/float64(m.File.Size), float64(others)/float64(m.File.Size))
	size := uint64(m.File.Size)
	if sender.BytesServed > 7*size/2 || others < size/2 {
		t.Fatalf("the sender served %d bytes of a %d-byte file (members %d)", sender.BytesServed, m.File.Size, others)
	}
}

// folderOf makes a folder to send: a file of size random bytes, a small
// file in a subfolder, and an empty folder.
func folderOf(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "photos")
	for _, d := range []string{"sub", "empty"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(randomFileOf(t, size), filepath.Join(dir, "film.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "note.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGroupFolder: a folder sent to a group is received by every member
// as a folder, identical, its empty folder kept, the members fetching
// from each other as well as from the sender.
func TestGroupFolder(t *testing.T) {
	ctx := context.Background()
	nodes, gid := nodetest.GroupOf(t, 3)
	src := folderOf(t, 8<<20)
	m, err := nodes[0].SendGroup(ctx, gid, node.Draft{Path: src})
	if err != nil {
		t.Fatal(err)
	}
	if m.File == nil {
		t.Fatal("the group's message offers no file")
	}
	id := m.File.ID
	for _, n := range nodes[1:] {
		fileOf(t, n, id, func(node.File) bool { return true })
		if _, err := n.GetFile(ctx, id, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes[1:] {
		f := fileOf(t, n, id, func(f node.File) bool { return f.State == "done" || f.State == "failed" })
		if f.State != "done" {
			t.Fatalf("a member's copy: %+v", f)
		}
		nodetest.SameFolder(t, src, f.Path)
	}
}
