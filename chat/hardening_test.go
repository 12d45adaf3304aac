package chat_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

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

// contactFrame sends one raw contact-protocol frame from h to n and
// returns the reply code.
func contactFrame(t *testing.T, h host.Host, n *node.Node, frame []byte) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, n.ID(), chat.ContactProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeRaw(t, s, frame)
	code, err := chat.ReadContactReply(s)
	if err != nil {
		t.Fatalf("contact reply: %v", err)
	}
	return code
}

func avatarBytes(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 100<<10) }

// TestStrangerAvatarNotStored: a stranger's friend requests, accepted or
// refused as rate-limited, write nothing to disk for their avatars; the
// one request that waits keeps its avatar in memory, and it is stored
// when the request is accepted.
func TestStrangerAvatarNotStored(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, a, b)
	limited := 0
	for i := range 20 {
		if contactFrame(t, a.Host(), b, chat.RawFriendRequestAvatar(fmt.Sprint("please ", i), avatarBytes(i))) == chat.CodeRateLimited {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("no request was rate-limited")
	}
	if n := blobFiles(t, b); n != 0 {
		t.Fatalf("%d blobs on disk after a stranger's requests, want 0", n)
	}
	if n := chat.StoredAvatars(b.Chat()); n != 0 {
		t.Fatalf("%d avatars stored for a stranger, want 0", n)
	}
	c, err := b.Chat().Contact(bg, a.ID())
	if err != nil || c.Profile == nil || c.Profile.AvatarID == "" {
		t.Fatalf("the pending request: %+v %v", c, err)
	}
	if _, _, err := b.Chat().Avatar(bg, c.Profile.AvatarID); err != nil {
		t.Fatalf("the pending request's avatar is not shown: %v", err)
	}
	if _, err := b.Chat().Accept(bg, a.ID()); err != nil {
		t.Fatal(err)
	}
	if n := chat.StoredAvatars(b.Chat()); n != 1 {
		t.Fatalf("%d avatars stored after the accept, want 1", n)
	}
	if _, _, err := b.Chat().Avatar(bg, c.Profile.AvatarID); err != nil {
		t.Fatalf("the friend's avatar: %v", err)
	}
}

// TestUnaskedResponseAvatarNotStored: a friend response from a peer this
// node never asked stores nothing.
func TestUnaskedResponseAvatarNotStored(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, a, b)
	for i := range 5 {
		contactFrame(t, a.Host(), b, chat.RawFriendResponseAvatar(true, avatarBytes(i)))
	}
	if n := blobFiles(t, b) + chat.StoredAvatars(b.Chat()); n != 0 {
		t.Fatalf("%d avatars stored from unasked responses, want 0", n)
	}
	if c, _ := b.Chat().Contact(bg, a.ID()); c != nil && c.State != "" {
		t.Fatalf("an unasked response made a contact: %+v", c)
	}
}

// bareHost is a libp2p host of its own identity, connected to n.
func bareHost(t *testing.T, n *node.Node) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(bg, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestAcceptOwedAgainWhileOnItsWay: a friend asks again (it lost our
// friendship) while this node's accept of its first request is still on
// its way; the accept that answers the second request is sent too. The
// first one's delivery cleared it once, being the same notice, and the
// friend waited as pending_out for good: TestRemoveThenAskAgain met
// that now and then, since Befriend returns once a has b's accept,
// before b hears that a took it.
func TestAcceptOwedAgainWhileOnItsWay(t *testing.T) {
	b := nodetest.Start(t, nodetest.Options{})
	h := bareHost(t, b)
	kinds := make(chan string, 8)
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	var held atomic.Bool
	h.SetStreamHandler(chat.ContactProtocol, func(s network.Stream) {
		defer s.Close()
		kind, err := chat.ReadContactKind(s)
		if err != nil {
			s.Reset()
			return
		}
		kinds <- kind
		if kind == "response" && held.CompareAndSwap(false, true) {
			<-hold // the first accept's answer waits
		}
		s.Write(chat.RawContactReply(chat.CodeOK))
	})
	nextKind := func(what string) {
		t.Helper()
		select {
		case kind := <-kinds:
			if kind != "response" {
				t.Fatalf("%s: got a %s, want a response", what, kind)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: nothing within 15s", what)
		}
	}
	if code := contactFrame(t, h, b, chat.RawFriendRequest("hi")); code != chat.CodeOK {
		t.Fatalf("the request: code %d", code)
	}
	if _, err := b.Chat().Accept(bg, h.ID()); err != nil {
		t.Fatal(err)
	}
	nextKind("b's accept")
	if code := contactFrame(t, h, b, chat.RawFriendRequest("again")); code != chat.CodeOK {
		t.Fatalf("the request again: code %d", code)
	}
	release()
	nextKind("b's accept of the request again")
}

// TestPendingRequestsCappedAndExpire: requests waiting for an answer are
// bounded in all (a further stranger is refused), and one older than the
// limit makes room.
func TestPendingRequestsCappedAndExpire(t *testing.T) {
	var skew atomic.Int64
	b := nodetest.Start(t, nodetest.Options{Clock: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	const max = 5
	chat.SetPendingLimit(b.Chat(), max)
	for i := range max {
		if code := contactFrame(t, bareHost(t, b), b, chat.RawFriendRequest(fmt.Sprint("hi ", i))); code != chat.CodeOK {
			t.Fatalf("request %d: code %d", i, code)
		}
	}
	if code := contactFrame(t, bareHost(t, b), b, chat.RawFriendRequest("one too many")); code != chat.CodeRateLimited {
		t.Fatalf("request past the cap: code %d, want rate-limited", code)
	}
	if pending, _ := b.Chat().Contacts(bg, true); len(pending) != max {
		t.Fatalf("%d pending, want %d", len(pending), max)
	}
	skew.Store(int64(chat.PendingRequestTTL + time.Hour))
	if code := contactFrame(t, bareHost(t, b), b, chat.RawFriendRequest("later")); code != chat.CodeOK {
		t.Fatalf("request after the others expired: code %d", code)
	}
	if pending, _ := b.Chat().Contacts(bg, true); len(pending) != 1 {
		t.Fatalf("%d pending after expiry, want 1", len(pending))
	}
}

// TestUnreferencedAvatarsCollected: a friend's replaced avatar is deleted.
func TestUnreferencedAvatarsCollected(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	evB := nodetest.Events(t, b)
	var last *chat.Profile
	for i := range 3 {
		p, err := a.Chat().SetProfile(bg, chat.ProfileUpdate{Avatar: testPNG(t, 40+i, 40)})
		if err != nil {
			t.Fatal(err)
		}
		nodetest.WaitEventData(t, evB, chat.EventProfile, func(d any) bool { return d.(chat.ContactEvent).Version == p.Version })
		last = p
	}
	if n := blobFiles(t, b) + chat.StoredAvatars(b.Chat()); n != 1 {
		t.Fatalf("b keeps %d avatars of a, want 1", n)
	}
	if n := blobFiles(t, a) + chat.StoredAvatars(a.Chat()); n != 1 {
		t.Fatalf("a keeps %d own avatars, want 1", n)
	}
	if _, _, err := b.Chat().Avatar(bg, last.AvatarID); err != nil {
		t.Fatal(err)
	}
}

// TestStrangerLargeFrameRefused: a stranger cannot make the node wait for
// (and hold memory for) a contact frame larger than a friend request.
func TestStrangerLargeFrameRefused(t *testing.T) {
	b := nodetest.Start(t, nodetest.Options{})
	h := bareHost(t, b)
	s, err := h.NewStream(bg, b.ID(), chat.ContactProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	start := time.Now()
	s.Write(binary.AppendUvarint(nil, chat.MaxContactFrame))
	s.SetReadDeadline(time.Now().Add(20 * time.Second))
	io.Copy(io.Discard, s)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a stranger's %d-byte frame claim was answered after %v", chat.MaxContactFrame, d)
	}
}
