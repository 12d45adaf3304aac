package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"image"
	"image/png"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// noisePNG is a PNG of random pixels: about 4 bytes a pixel.
func noisePNG(t *testing.T, side int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	rand.Read(img.Pix)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fileStates maps the downloads of n by file ID to their states: done or
// downloading (a file not fetched is not there).
func fileStates(t *testing.T, n *node.Node) map[string]string {
	t.Helper()
	ds, err := n.Transfer().Downloads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range ds {
		out[d.ID] = "downloading"
		if d.Done {
			out[d.ID] = "done"
		}
	}
	return out
}

// TestPictureAutoFetchBudget: a friend's picture originals are fetched by
// themselves within the day's budget for that author; past it they wait
// for a tap (file get). A node never fetches its own group pictures.
func TestPictureAutoFetchBudget(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	b := nodetest.Start(t, nodetest.Options{Configure: func(c *node.Config) {
		c.Files.PictureAutoFetchAuthorMiBPerDay = 1
	}})
	nodetest.Befriend(t, a, b)
	var ids []string
	for range 3 {
		m, err := a.SendMessage(context.Background(), b.ID().String(), node.Draft{Picture: noisePNG(t, 300)}) // ~360 KiB
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.File.ID)
	}
	nodetest.Eventually(t, 30*time.Second, "b has fetched the pictures within its budget", func() bool {
		st := fileStates(t, b)
		return st[ids[0]] == "done" && st[ids[1]] == "done"
	})
	// The third is past the budget: it stays available (a bounded look:
	// before the fix it was fetched within a second).
	watch := time.NewTicker(50 * time.Millisecond)
	defer watch.Stop()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); <-watch.C {
		if st, ok := fileStates(t, b)[ids[2]]; ok {
			t.Fatalf("a picture past the author's budget: %q, want not fetched", st)
		}
	}
	// A group picture of one's own is not fetched from oneself.
	gid := nodetest.JoinGroup(t, []*node.Node{a, b}, "crew")
	own, err := a.SendGroup(context.Background(), gid, node.Draft{Picture: noisePNG(t, 40)})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); <-watch.C {
		if st, ok := fileStates(t, a)[own.File.ID]; ok {
			t.Fatalf("a fetches its own group picture (%s)", st)
		}
	}
}
