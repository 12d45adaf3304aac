package relay_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestFolderDrop: a folder sent to a friend who is away goes through the
// relay's file drop, sealed, and the friend, back, receives it as a
// folder: every file identical, its empty folder kept; the relay then
// deletes it.
func TestFolderDrop(t *testing.T) {
	homeB := node.Home(t.TempDir())
	r, a, b := friendsOnRelay(t, "", homeB)
	b.Close()
	src := filepath.Join(t.TempDir(), "photos")
	for _, d := range []string{"sub", "empty"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 2<<20+321)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "sub", "film.bin"), big, 0o644)
	os.WriteFile(filepath.Join(src, "note.txt"), []byte("see you"), 0o644)

	sent, err := a.SendFile(bg, node.FileSend{To: b.ID().String(), Path: src, Drop: true})
	if err != nil || !sent.Dropped {
		t.Fatalf("send: %+v %v", sent, err)
	}
	if stats := r.RelayServer().Stats(); stats.DropFiles != 1 || stats.DropBytes < int64(len(big)) {
		t.Fatalf("relay after the drop: %+v", stats)
	}
	b = startUser(t, r, homeB)
	var got node.File
	nodetest.Eventually(t, 60*time.Second, "b has the folder", func() bool {
		fs, _ := b.Files(bg)
		for _, f := range fs {
			if f.ID == sent.Message.File.ID && f.State == "done" {
				got = f
				return true
			}
		}
		return false
	})
	nodetest.SameFolder(t, src, got.Path)
	nodetest.Eventually(t, 30*time.Second, "the relay deletes the drop", func() bool {
		return r.RelayServer().Stats().DropFiles == 0
	})
}
