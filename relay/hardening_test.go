package relay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
	"github.com/meshtalk/meshtalk/relay"
)

// TestDepositOnlyFromAllowed: a logged-in stranger cannot fill a user's
// mailbox; a friend (on the user's allow-list) can.
func TestDepositOnlyFromAllowed(t *testing.T) {
	r, a, b := friendsOnRelay(t, "", "")
	c := startUser(t, r, "")
	register(t, c, r, "carol")
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	err := c.RelayClient().Deposit(ctx, b.ID(), relay.KindDM, [][]byte{[]byte("spam")})
	if !errors.Is(err, relay.ErrNotAllowed) {
		t.Fatalf("a stranger's deposit: %v, want ErrNotAllowed", err)
	}
	nodetest.Eventually(t, 20*time.Second, "a friend's deposit is taken", func() bool {
		return a.RelayClient().Deposit(ctx, b.ID(), relay.KindDM, [][]byte{[]byte("hello")}) == nil
	})
	if got := r.RelayServer().Stats().MailboxItems; got > 1 {
		t.Fatalf("the relay holds %d items, want at most the friend's", got)
	}
}

// TestRegistrationRateLimited: one address registers a few accounts, then
// is refused for a while.
func TestRegistrationRateLimited(t *testing.T) {
	r := startRelay(t, "", nil, func(c *node.RelayConfig) { c.RegistrationsPerIPPerHour = 3 })
	refused := 0
	for i := range 5 {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		cl, err := nodetest.RegisterBareClient(ctx, h, peer.AddrInfo{ID: r.ID(), Addrs: r.Host().Addrs()}, "user"+string(rune('a'+i)))
		cancel()
		if cl != nil {
			defer cl.Close()
		}
		switch {
		case errors.Is(err, relay.ErrQuota):
			refused++
		case err != nil:
			t.Fatalf("register %d: %v", i, err)
		}
	}
	if refused != 2 {
		t.Fatalf("%d of 5 registrations refused, want 2", refused)
	}
}

// blobFiles counts the files in n's blob store.
func blobFiles(t *testing.T, n *node.Node) int {
	t.Helper()
	count := 0
	filepath.WalkDir(n.Home().BlobsPath(), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			count++
		}
		return nil
	})
	return count
}

// TestFailedDropKeepsOwnBlobs: a friend drops, unsealed, a file whose
// chunks b holds itself in its blob store (as it holds its pictures and
// avatars; files it sends are shared in place); the drop fails to open,
// and b gives it up without deleting its own chunks.
func TestFailedDropKeepsOwnBlobs(t *testing.T) {
	r, a, b := friendsOnRelay(t, "", "")
	path := filepath.Join(t.TempDir(), "shared.bin")
	data := bytes.Repeat([]byte("mine, and public "), 20000)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Transfer().Import(path, "shared.bin"); err != nil {
		t.Fatal(err)
	}
	own := blobFiles(t, b)
	if own == 0 {
		t.Fatal("b holds no chunks of the file it imported")
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	nodetest.Eventually(t, 20*time.Second, "a's drop is taken (once b's relay allows a)", func() bool {
		err := a.RelayClient().DropUnsealedForTest(ctx, b.ID(), path)
		if err != nil && !errors.Is(err, relay.ErrNotAllowed) {
			t.Fatal(err)
		}
		return err == nil
	})
	nodetest.Eventually(t, 30*time.Second, "b gives the bad drop up", func() bool {
		return b.RelayClient().PendingDrops() == 0 && r.RelayServer().Stats().MailboxItems == 0
	})
	nodetest.Eventually(t, 10*time.Second, "b's fetch is over", func() bool { return b.RelayClient().PendingDrops() == 0 })
	if got := blobFiles(t, b); got != own {
		t.Fatalf("b holds %d chunks after the failed drop, want its own %d", got, own)
	}
}

// TestFailedDropFreesQuota: a drop whose fetch fails holds none of the
// quota, and its record expires within the hour; the recipient refuses a
// drop that does not open, and the relay deletes it.
func TestFailedDropFreesQuota(t *testing.T) {
	clk := &clock{}
	r := startRelay(t, "", clk, func(c *node.RelayConfig) { c.DropMaxMiB = 1 })
	a, b := startUser(t, r, ""), startUser(t, r, "")
	register(t, a, r, "alice")
	register(t, b, r, "bob")
	nodetest.Befriend(t, a, b)
	waitAllowed(t, r, a, b)
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		data := make([]byte, 700<<10)
		rand.Read(data)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	err := a.RelayClient().DropBrokenForTest(ctx, b.ID(), write("broken.bin"), func(chunk string) {
		os.WriteFile(filepath.Join(a.Home().BlobsPath(), chunk[:2], chunk), make([]byte, 700<<10), 0o600)
	})
	if err == nil {
		t.Fatal("a drop of damaged chunks was taken")
	}
	if _, err := a.RelayClient().DropFile(ctx, b.ID(), write("good.bin"), ""); err != nil {
		t.Fatalf("a drop after a failed one: %v", err)
	}
	if got := relay.DropRecords(r.RelayServer()); got != 2 {
		t.Fatalf("%d drop records, want the failed and the good one", got)
	}
	clk.advance(2 * time.Hour)
	r.RelayServer().SweepNow()
	if got := relay.DropRecords(r.RelayServer()); got > 1 {
		t.Fatalf("%d drop records two hours on, want the failed one gone", got)
	}
}

// TestBadDropRefusedAtRelay: a drop that does not open is refused by its
// recipient, and the relay deletes it at once.
func TestBadDropRefusedAtRelay(t *testing.T) {
	r, a, b := friendsOnRelay(t, "", "")
	path := filepath.Join(t.TempDir(), "not-sealed.bin")
	os.WriteFile(path, []byte("not a sealed file"), 0o600)
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := a.RelayClient().DropUnsealedForTest(ctx, b.ID(), path); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, "the relay deletes the refused drop", func() bool {
		return b.RelayClient().PendingDrops() == 0 && relay.DropRecords(r.RelayServer()) == 0
	})
}

// TestDropRequestHasDeadline: a relay that never answers a drop does not
// hold the sender's call for ever.
func TestDropRequestHasDeadline(t *testing.T) {
	a := nodetest.Start(t, nodetest.Options{})
	mute, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	hold := make(chan struct{})
	defer close(hold)
	mute.SetStreamHandler(relay.MailboxProtocol, func(s network.Stream) {
		defer s.Reset()
		<-hold // reads nothing, answers nothing
	})
	if err := a.Host().Connect(bg, peer.AddrInfo{ID: mute.ID(), Addrs: mute.Addrs()}); err != nil {
		t.Fatal(err)
	}
	a.RelayClient().SetDropWaitForTest(2 * time.Second)
	path := filepath.Join(t.TempDir(), "f.bin")
	os.WriteFile(path, []byte("a small file"), 0o600)
	done := make(chan error, 1)
	go func() { done <- a.RelayClient().DropOnForTest(bg, mute.ID(), a.ID(), path) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a drop nobody answered succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the drop request is still waiting after 20s")
	}
}

// TestDroppedFileSyncedBeforeDone: the folder of a dropped file is synced
// once the file is linked there, before the relay is told to delete its
// copy.
func TestDroppedFileSyncedBeforeDone(t *testing.T) {
	r, a, b := friendsOnRelay(t, "", "")
	var mu sync.Mutex
	var synced []int // drop records the relay held at each sync
	b.RelayClient().SetSyncDirForTest(func(dir string) error {
		mu.Lock()
		defer mu.Unlock()
		synced = append(synced, relay.DropRecords(r.RelayServer()))
		return nil
	})
	src := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(src, []byte("the notes"), 0o600)
	if _, err := a.RelayClient().DropFile(bg, b.ID(), src, ""); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, "the relay deletes the drop", func() bool {
		return relay.DropRecords(r.RelayServer()) == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(synced) == 0 || synced[0] != 1 {
		t.Fatalf("syncs of the drop folder, with the drop records the relay held then: %v; want one while it held the drop", synced)
	}
}

// claimFrame opens p on n from a bare host, sends a frame length of size
// and no body, and reports how long n took to answer or end the stream.
func claimFrame(t *testing.T, n *node.Node, p protocol.ID, size uint64) time.Duration {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Connect(bg, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(bg, n.ID(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	start := time.Now()
	s.Write(binary.AppendUvarint(nil, size))
	s.SetReadDeadline(time.Now().Add(20 * time.Second))
	io.Copy(io.Discard, s)
	return time.Since(start)
}

// TestUnauthorisedLargeFrameRefused: a peer that has not logged in cannot
// make the relay wait for (and hold memory for) a large frame.
func TestUnauthorisedLargeFrameRefused(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	for _, c := range []struct {
		p    protocol.ID
		size uint64
	}{{relay.MailboxProtocol, relay.MaxMailboxFrame}, {relay.AccountProtocol, relay.MaxAccountFrame}} {
		if d := claimFrame(t, r, c.p, c.size); d > 5*time.Second {
			t.Errorf("%s: a stranger's %d-byte frame claim was answered after %v", c.p, c.size, d)
		}
	}
}

// TestDropCannotStandForAnotherFriendsFile: a file ID is a hash of the
// file, which another friend may know. Carol drops her own bytes for Bob
// under the ID of the file Alice offered him: Bob receives Carol's drop as
// hers, and Alice's offer stays Alice's file, not Carol's bytes (before,
// the drop was recorded by file ID alone and stood for Alice's file).
func TestDropCannotStandForAnotherFriendsFile(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	u := usersOnRelay(t, r, "alice", "bob", "carol")
	a, b, c := u[0], u[1], u[2]
	nodetest.Befriend(t, a, b)
	nodetest.Befriend(t, c, b)
	waitAllowed(t, r, c, b)

	dir := t.TempDir()
	orig, spoof := filepath.Join(dir, "contract.pdf"), filepath.Join(dir, "spoof.pdf")
	os.WriteFile(orig, []byte("the real contract"), 0o600)
	os.WriteFile(spoof, []byte("a forged contract"), 0o600)
	sent, err := a.SendFile(bg, node.FileSend{To: b.ID().String(), Path: orig})
	if err != nil {
		t.Fatal(err)
	}
	id := sent.Message.File.ID
	nodetest.Eventually(t, 30*time.Second, "bob has alice's offer", func() bool {
		fs, _ := b.Files(bg)
		for _, f := range fs {
			if f.ID == id && f.From == a.ID() {
				return true
			}
		}
		return false
	})

	ev, cancel := b.Events().Subscribe(64)
	defer cancel()
	if _, err := c.RelayClient().DropFile(bg, b.ID(), spoof, id); err != nil {
		t.Fatal(err)
	}
	got := nodetest.WaitEvent(t, ev, node.EventFileDropped, nil).Data.(node.FileDroppedData)
	if got.From != c.ID() {
		t.Fatalf("dropped: %+v", got)
	}
	files, err := b.Files(bg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.ID != id || f.From != a.ID() {
			continue
		}
		if f.Path == got.Path {
			t.Fatalf("alice's offer stands for carol's drop: %+v", f)
		}
		if f.State == "done" {
			if got, _ := os.ReadFile(f.Path); string(got) != "the real contract" {
				t.Fatalf("alice's offer, done, holds %q", got)
			}
		}
	}
}

// TestFolderDropMustBeItsMessagesFolder: a folder-drop letter whose folder
// is not the file its letter names is refused: its sender cannot tie
// another folder to a message.
func TestFolderDropMustBeItsMessagesFolder(t *testing.T) {
	homeB := node.Home(t.TempDir())
	r, a, b := friendsOnRelay(t, "", homeB)
	b.Close()
	src := filepath.Join(t.TempDir(), "photos")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.jpg"), []byte("not the photo you asked for"), 0o644)
	other := strings.Repeat("ab", 32) // the ID of another folder
	if err := a.RelayClient().DropFolderNamedForTest(bg, b.ID(), src, other); err != nil {
		t.Fatal(err)
	}
	b = startUser(t, r, homeB)
	// b refuses the letter and tells the relay to delete the drop.
	nodetest.Eventually(t, 30*time.Second, "the relay deletes the refused drop", func() bool {
		s := r.RelayServer().Stats()
		return s.DropFiles == 0 && s.MailboxItems == 0
	})
	if n := b.RelayClient().PendingDrops(); n != 0 {
		t.Fatalf("b fetches %d drops", n)
	}
	if files, _ := os.ReadDir(b.Home().DownloadsPath()); len(files) != 0 {
		t.Fatalf("downloads: %v", files)
	}
}
