package transfer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// TestPartialNotThroughSymlink: a link planted in a shared download
// folder where a partial file would go (its name was predictable) is not
// followed: the file it points to stays as it was, and the download
// arrives.
func TestPartialNotThroughSymlink(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	src := randomFile(t, 2<<20)
	m := offered(t, a, b, src)
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim.txt")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"." + m.Name + "." + m.Root().String()[:12] + ".partial", ".meshtalk-partial"} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Transfer().Download(bg, m, []peer.ID{a.ID()}, dir, nil)
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Fatalf("the file a planted link points to was written (%d bytes)", len(b))
	}
	if err != nil && !strings.Contains(err.Error(), "partial") {
		t.Fatal(err)
	}
	if err == nil {
		sameFile(t, src, got)
	}
}
