package chat_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nodetest.IgnoredGoroutines()...)
}

var bg = context.Background()

func info(n *node.Node) peer.AddrInfo { return peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()} }

func contactState(t *testing.T, n *node.Node, p peer.ID) string {
	t.Helper()
	contacts, err := n.Chat().Contacts(bg, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range contacts {
		if c.PeerID == p {
			return c.State
		}
	}
	return ""
}

func TestFriendRequestAcceptAndMessage(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	name := "Alice"
	if _, err := a.Chat().SetProfile(bg, chat.ProfileUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	evA, evB := nodetest.Events(t, a), nodetest.Events(t, b)
	nodetest.Befriend(t, a, b)
	if got := contactState(t, b, a.ID()); got != chat.StateFriend {
		t.Fatalf("b sees a as %q", got)
	}
	// The request carried a's profile: b knows a's nickname.
	if name := b.Chat().PeerName(bg, a.ID()); !strings.EqualFold(name, "alice") {
		t.Fatalf("b calls a %q", name)
	}
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "hello b"})
	if err != nil {
		t.Fatal(err)
	}
	if m.State != chat.MsgQueued || m.ID == "" {
		t.Fatalf("sent %+v", m)
	}
	// Every client of a's sees it, not only the one that sent it.
	own := nodetest.WaitEventData(t, evA, chat.EventMessage, outgoing).(*chat.Message)
	// It is named from a's profile as it is now (not as first read).
	if own.ID != m.ID || !own.Outgoing || own.Text != "hello b" || own.To != b.ID() || own.Name != name {
		t.Fatalf("a's own event: %+v", own)
	}
	got := nodetest.WaitEventData(t, evB, chat.EventMessage, incoming).(*chat.Message)
	if got.ID != m.ID || got.Text != "hello b" || got.From != a.ID() || got.Kind != chat.KindText {
		t.Fatalf("received %+v", got)
	}
	// The sender learns it was delivered.
	waitState(t, a, m.ID, chat.MsgDelivered)
	// Reading marks it read on both sides.
	if n, err := b.Chat().MarkRead(bg, a.ID()); err != nil || n != 1 {
		t.Fatalf("mark read: %d %v", n, err)
	}
	waitState(t, a, m.ID, chat.MsgRead)
}

// incoming and outgoing tell a message event of a message received from
// one of this node's own, which every client sees too.
func incoming(d any) bool { return !d.(*chat.Message).Outgoing }
func outgoing(d any) bool { return d.(*chat.Message).Outgoing }

// waitState waits until message id has state in n's history.
func waitState(t *testing.T, n *node.Node, id, state string) {
	t.Helper()
	ch := nodetest.Events(t, n)
	if m, err := n.Chat().GetMessage(bg, id); err == nil && m.State == state {
		return
	}
	nodetest.WaitEventData(t, ch, chat.EventMessageState, func(d any) bool {
		e := d.(chat.StateEvent)
		if e.ID != id {
			return false
		}
		m, err := n.Chat().GetMessage(bg, id)
		return err == nil && m.State == state
	})
}

func TestDeclineBlockRemove(t *testing.T) {
	a, b, c := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	evA, evB := nodetest.Events(t, a), nodetest.Events(t, b)

	// Decline.
	aAsksBDeclines := func() {
		t.Helper()
		if _, err := a.Chat().AddFriend(bg, info(b), ""); err != nil {
			t.Fatal(err)
		}
		nodetest.WaitEventData(t, evB, chat.EventFriendRequest, nil)
		if _, err := b.Chat().Decline(bg, a.ID()); err != nil {
			t.Fatal(err)
		}
		nodetest.WaitEventData(t, evA, chat.EventFriendUpdate, func(d any) bool { return d.(chat.ContactEvent).State == chat.StateDeclined })
	}
	aAsksBDeclines()
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "x"}); !errors.Is(err, chat.ErrNotFriend) {
		t.Fatalf("send after decline: %v", err)
	}
	// Who declined shows: the decliner keeps when the request came.
	declinedBy := func(n *node.Node, p peer.ID) bool {
		c, err := n.Chat().Contact(bg, p)
		return err == nil && c.State == chat.StateDeclined && !c.Asked.IsZero()
	}
	if !declinedBy(b, a.ID()) || declinedBy(a, b.ID()) {
		t.Fatalf("b declined a's request: b says %v, a says %v", declinedBy(b, a.ID()), declinedBy(a, b.ID()))
	}
	// Also when b had asked a before: a friendship, ended, and a's new
	// request declined.
	if _, err := b.Chat().AddFriend(bg, info(a), ""); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evA, chat.EventFriendRequest, nil)
	if _, err := a.Chat().Accept(bg, b.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, chat.EventFriendUpdate, func(d any) bool { return d.(chat.ContactEvent).State == chat.StateFriend })
	if _, err := b.Chat().Remove(bg, a.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evA, chat.EventFriendUpdate, func(d any) bool { return d.(chat.ContactEvent).State == chat.StateRemoved })
	aAsksBDeclines()
	if !declinedBy(b, a.ID()) || declinedBy(a, b.ID()) {
		t.Fatalf("b declined a's second request: b says %v, a says %v", declinedBy(b, a.ID()), declinedBy(a, b.ID()))
	}

	// Remove works both ways.
	nodetest.Befriend(t, a, c)
	evC := nodetest.Events(t, c)
	if _, err := a.Chat().Remove(bg, c.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evC, chat.EventFriendUpdate, func(d any) bool { return d.(chat.ContactEvent).State == chat.StateRemoved })
	if _, err := c.Chat().Send(bg, a.ID(), chat.Draft{Text: "x"}); !errors.Is(err, chat.ErrNotFriend) {
		t.Fatalf("send after remove: %v", err)
	}

	// Block: both ways, and remembered across a restart.
	nodetest.Befriend(t, b, c)
	if _, err := b.Chat().Block(bg, c.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evC, chat.EventFriendUpdate, func(d any) bool {
		e := d.(chat.ContactEvent)
		return e.PeerID == b.ID() && e.State == chat.StateRemoved
	})
	// c asks again: b refuses the stream, so the request stays pending.
	if _, err := c.Chat().AddFriend(bg, info(b), "please"); err != nil {
		t.Fatal(err)
	}
	bHome := b.Home()
	listen := nodetest.ListenAddrs(b)
	b.Close()
	b = nodetest.Start(t, nodetest.Options{Home: bHome, Configure: func(cfg *node.Config) { cfg.Network.Listen = listen }})
	if got := contactState(t, b, c.ID()); got != chat.StateBlocked {
		t.Fatalf("after a restart b sees c as %q, want blocked", got)
	}
	if pending, _ := b.Chat().Contacts(bg, true); len(pending) != 0 {
		t.Fatalf("a blocked peer's request reached b: %+v", pending[0])
	}
}

func TestStrangerMessageRefused(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	evB := nodetest.Events(t, b)
	nodetest.Connect(t, a, b)
	// a is no friend of b: a raw DM stream gets a refusal, nothing stored.
	s, err := a.Host().NewStream(bg, b.ID(), chat.DMProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeRaw(t, s, rawMessage(t, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "buy now"))
	if code := readRefusal(t, s); code != chat.CodeNotFriends {
		t.Fatalf("refusal code %d, want %d", code, chat.CodeNotFriends)
	}
	page, err := b.Chat().History(bg, a.ID(), "", 10)
	if err != nil || len(page.Messages) != 0 {
		t.Fatalf("history with the stranger: %v %v", page, err)
	}
	select {
	case ev := <-evB:
		if ev.Type == chat.EventMessage {
			t.Fatalf("a stranger's message became an event: %+v", ev)
		}
	default:
	}
}

func TestThousandMessagesExactlyOnceInOrder(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	evB := nodetest.Events(t, b)
	const n = 1000
	var ids []string
	for i := range n {
		m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: fmt.Sprintf("message %04d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	seen := map[string]int{}
	for len(seen) < n {
		m := nodetest.WaitEventData(t, evB, chat.EventMessage, incoming).(*chat.Message)
		seen[m.ID]++
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("message %s arrived %d times", id, c)
		}
	}
	assertHistory(t, b, a.ID(), ids)
	waitState(t, a, ids[n-1], chat.MsgDelivered)
}

// assertHistory checks that n's conversation with p is exactly ids, in
// order, paging through it.
func assertHistory(t *testing.T, n *node.Node, p peer.ID, ids []string) {
	t.Helper()
	var all []*chat.Message
	before := ""
	for {
		page, err := n.Chat().History(bg, p, before, 100)
		if err != nil {
			t.Fatal(err)
		}
		all = append(page.Messages, all...)
		if !page.More {
			break
		}
		before = page.Messages[0].ID
	}
	if len(all) != len(ids) {
		t.Fatalf("history has %d messages, want %d", len(all), len(ids))
	}
	for i, m := range all {
		if m.ID != ids[i] {
			t.Fatalf("history[%d] = %s (%q), want %s", i, m.ID, m.Text, ids[i])
		}
	}
}

func TestReceiverOfflineThenBack(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	bHome, bListen := b.Home(), nodetest.ListenAddrs(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 20 {
		m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: fmt.Sprintf("while you were away %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	b = nodetest.Start(t, nodetest.Options{Home: bHome, Configure: func(c *node.Config) { c.Network.Listen = bListen }})
	waitState(t, a, ids[len(ids)-1], chat.MsgDelivered)
	assertHistory(t, b, a.ID(), ids)
}

func TestSenderRestartsWithQueuedOutbox(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	aHome, aListen := a.Home(), nodetest.ListenAddrs(a)
	bHome, bListen := b.Home(), nodetest.ListenAddrs(b)
	b.Close()
	var ids []string
	for i := range 10 {
		m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: fmt.Sprintf("queued %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	a.Close() // the outbox is all that is left of them
	b = nodetest.Start(t, nodetest.Options{Home: bHome, Configure: func(c *node.Config) { c.Network.Listen = bListen }})
	evB := nodetest.Events(t, b)
	a = nodetest.Start(t, nodetest.Options{Home: aHome, Configure: func(c *node.Config) { c.Network.Listen = aListen }})
	for range ids {
		nodetest.WaitEventData(t, evB, chat.EventMessage, incoming)
	}
	waitState(t, a, ids[len(ids)-1], chat.MsgDelivered)
	assertHistory(t, b, a.ID(), ids)
}

func TestClockSkewKeepsOrder(t *testing.T) {
	ahead := func() time.Time { return time.Now().Add(10 * time.Minute) }
	a := nodetest.Start(t, nodetest.Options{Clock: ahead})
	b := nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	evA, evB := nodetest.Events(t, a), nodetest.Events(t, b)
	m1, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "question from the future"})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, chat.EventMessage, incoming)
	m2, err := b.Chat().Send(bg, a.ID(), chat.Draft{Text: "answer", ReplyTo: m1.ID})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evA, chat.EventMessage, incoming)
	if !m2.Time.Before(m1.Time) {
		t.Fatalf("test setup: the answer's wall clock %v should be before the question's %v", m2.Time, m1.Time)
	}
	assertHistory(t, a, b.ID(), []string{m1.ID, m2.ID})
	assertHistory(t, b, a.ID(), []string{m1.ID, m2.ID})
}

func TestBadFramesAreRefused(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	for name, frame := range map[string][]byte{
		"oversized": binary.AppendUvarint(nil, chat.MaxDMFrame+1),
		"garbage":   append(binary.AppendUvarint(nil, 5), 0xff, 0xff, 0xff, 0xff, 0xff),
		"bad id":    rawMessage(t, "not-an-id", "x"),
		// A ULID, but not the one a's ID, b's and the stamps make.
		"chosen id": rawMessage(t, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x"),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := a.Host().NewStream(bg, b.ID(), chat.DMProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			writeRaw(t, s, frame)
			if code := readRefusal(t, s); code != chat.CodeBadFrame {
				t.Fatalf("refusal code %d, want %d", code, chat.CodeBadFrame)
			}
		})
	}
	// Both nodes still work.
	evB := nodetest.Events(t, b)
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "still here"}); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, chat.EventMessage, incoming)
	// Input the user gives is checked before it is stored.
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: string(make([]byte, chat.MaxTextBytes+1))}); !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("oversized text: %v", err)
	}
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Face: "nope"}); !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("unknown face: %v", err)
	}
}

func TestProfileAvatarAndPresence(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	evB := nodetest.Events(t, b)
	if _, err := a.Chat().SetProfile(bg, chat.ProfileUpdate{Avatar: []byte("hello, I am not an image")}); !errors.Is(err, chat.ErrNotImage) {
		t.Fatalf("avatar that is not an image: %v", err)
	}
	name, status := "A. Person", "on a train"
	p, err := a.Chat().SetProfile(bg, chat.ProfileUpdate{Name: &name, Status: &status, Avatar: testPNG(t, 800, 600)})
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(bytes.NewReader(p.Avatar))
	if err != nil || img.Bounds().Dx() != chat.AvatarSize || img.Bounds().Dy() != chat.AvatarSize {
		t.Fatalf("avatar: %v %v", img.Bounds(), err)
	}
	// The same again changes nothing, and makes no new version.
	if again, err := a.Chat().SetProfile(bg, chat.ProfileUpdate{Name: &name, Status: &status}); err != nil {
		t.Fatal(err)
	} else if again.Version != p.Version {
		t.Fatalf("the same profile again: version %d, was %d", again.Version, p.Version)
	}
	got := nodetest.WaitEventData(t, evB, chat.EventProfile, func(d any) bool { return d.(chat.ContactEvent).Version == p.Version }).(chat.ContactEvent)
	if got.Name != name {
		t.Fatalf("profile event %+v", got)
	}
	contacts, _ := b.Chat().Contacts(bg, false)
	if contacts[0].Profile == nil || contacts[0].Profile.Status != status || contacts[0].Profile.AvatarID != p.AvatarID || p.AvatarID == "" {
		t.Fatalf("b's copy of a's profile: %+v", contacts[0].Profile)
	}
	// b stores the avatar, under its hash.
	av, typ, err := b.Chat().Avatar(bg, p.AvatarID)
	if err != nil || !bytes.Equal(av, p.Avatar) || typ != "image/jpeg" {
		t.Fatalf("b's copy of a's avatar: %d bytes, %q, %v", len(av), typ, err)
	}
	if n := chat.StoredAvatars(b.Chat()); n != 1 {
		t.Fatalf("b stores %d avatars, want a's one", n)
	}
	if _, _, err := b.Chat().Avatar(bg, strings.Repeat("0", 64)); !errors.Is(err, chat.ErrNotContact) {
		t.Fatalf("an unknown avatar: %v", err)
	}
	// Presence: a goes away; b sees it go offline with a last-seen time.
	a.Close()
	off := nodetest.WaitEventData(t, evB, chat.EventPresence, func(d any) bool { return !d.(chat.PresenceEvent).Online }).(chat.PresenceEvent)
	if off.PeerID != a.ID() {
		t.Fatalf("presence %+v", off)
	}
	if b.Chat().Online(a.ID()) {
		t.Fatal("a still online")
	}
}

func TestPictureAndFace(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	evB := nodetest.Events(t, b)
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Picture: testPNG(t, 1000, 500)}); err != nil {
		t.Fatal(err)
	}
	pic := nodetest.WaitEventData(t, evB, chat.EventMessage, incoming).(*chat.Message)
	img, _, err := image.Decode(bytes.NewReader(pic.Thumbnail))
	if pic.Kind != chat.KindPicture || err != nil || img.Bounds().Dx() != chat.ThumbnailSize {
		t.Fatalf("picture: %+v %v", pic.Kind, err)
	}
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Face: "party"}); err != nil {
		t.Fatal(err)
	}
	if face := nodetest.WaitEventData(t, evB, chat.EventMessage, incoming).(*chat.Message); face.Face != "party" {
		t.Fatalf("face %+v", face)
	}
	hits, err := b.Chat().Search(bg, "party", "", 10)
	if err != nil || len(hits) != 1 {
		t.Fatalf("search: %v %v", hits, err)
	}
}

func testPNG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 99, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func rawMessage(t *testing.T, id, text string) []byte { return chat.RawMessageFrame(id, text) }

type rw interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
	SetDeadline(time.Time) error
}

func writeRaw(t *testing.T, s rw, b []byte) {
	t.Helper()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readRefusal(t *testing.T, s rw) uint32 {
	t.Helper()
	code, err := chat.ReadRefusal(s)
	if err != nil {
		t.Fatalf("no refusal: %v", err)
	}
	return code
}

// TestStrangerRequestsRateLimited: a stranger's friend requests beyond a
// few are refused with CodeRateLimited, and do not pile up.
func TestStrangerRequestsRateLimited(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, a, b)
	var codes []uint32
	for i := range 5 {
		s, err := a.Host().NewStream(bg, b.ID(), chat.ContactProtocol)
		if err != nil {
			t.Fatal(err)
		}
		writeRaw(t, s, chat.RawFriendRequest(fmt.Sprintf("please %d", i)))
		code, err := chat.ReadContactReply(s)
		s.Close()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		codes = append(codes, code)
	}
	if codes[0] != chat.CodeOK || codes[4] != chat.CodeRateLimited {
		t.Fatalf("reply codes %v: want the first accepted and the last rate-limited", codes)
	}
	pending, _ := b.Chat().Contacts(bg, true)
	if len(pending) != 1 {
		t.Fatalf("%d pending requests, want 1", len(pending))
	}
}

// TestBadMessageRefusedAlone: the valid messages before a bad one are
// stored and acked; the refusal names the bad one.
func TestBadMessageRefusedAlone(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	s, err := a.Host().NewStream(bg, b.ID(), chat.DMProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	frames, ids := chat.RawFrames(a.ID(), b.ID(), "good 1", "good 2", "")
	bad := ids[2]
	writeRaw(t, s, frames)
	acked, code, id, _, err := chat.ReadRefusalFull(s)
	if err != nil || code != chat.CodeBadFrame || id != bad {
		t.Fatalf("refusal: code %d id %q err %v", code, id, err)
	}
	if len(acked) != 2 {
		t.Fatalf("acked %v, want the two good messages", acked)
	}
	page, _ := b.Chat().History(bg, a.ID(), "", 10)
	if len(page.Messages) != 2 {
		t.Fatalf("stored %d messages, want 2", len(page.Messages))
	}
}

// TestDMWithAnotherMessagesIDRefused: a friend cannot send a direct
// message under the ID of another's message (here a group message), on
// a stream or through the mailbox: it is refused as a bad frame, and the
// ID still names the group message (GetMessage, history paging).
func TestDMWithAnotherMessagesIDRefused(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	c := nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, c, b)
	wb := nodetest.WatchGroup(t, b, gid)
	gm, err := a.GroupService().Send(bg, gid, chat.Draft{Text: "to the group"})
	if err != nil {
		t.Fatal(err)
	}
	wb.Wait(1, 30*time.Second)

	s, err := c.Host().NewStream(bg, b.ID(), chat.DMProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeRaw(t, s, rawMessage(t, gm.ID, "mine now"))
	acked, code, id, msg, err := chat.ReadRefusalFull(s)
	if err != nil || code != chat.CodeBadFrame || id != gm.ID || len(acked) != 0 {
		t.Fatalf("refusal: code %d id %q %q, acked %v, err %v", code, id, msg, acked, err)
	}
	if !strings.Contains(msg, "message ID "+gm.ID+" is not the one") {
		t.Fatalf("refusal message %q does not say what is wrong", msg)
	}
	// Through the mailbox: the letter is refused as a bad frame.
	if err := b.Chat().ReceiveParked(bg, c.ID(), [][]byte{chat.ParkedText(c.ID(), b.ID(), 7, "mine now", gm.ID)}); !errors.Is(err, chat.ErrBadFrame) {
		t.Fatalf("a parked message with a taken ID: %v, want a bad frame", err)
	}
	got, err := b.Chat().GetMessage(bg, gm.ID)
	if err != nil || got.Group != gid || got.From != a.ID() || got.Text != "to the group" {
		t.Fatalf("b's message %s: %+v %v, want a's group message", gm.ID, got, err)
	}
	if page, err := b.Chat().History(bg, c.ID(), "", 10); err != nil || len(page.Messages) != 0 {
		t.Fatalf("b's history with c: %+v %v, want empty", page, err)
	}
	if page, err := b.GroupService().History(bg, gid, gm.ID, 10); err != nil || len(page.Messages) != 0 || page.More {
		t.Fatalf("group history before %s: %+v %v", gm.ID, page, err)
	}
	// c's messages under their own IDs still go through, both ways.
	// A bad message costs a letter only itself: the good one beside it is
	// stored.
	parked := chat.ParkedText(c.ID(), b.ID(), 8, "parked properly", "")
	letter := [][]byte{chat.ParkedText(c.ID(), b.ID(), 9, "mine now", gm.ID), parked}
	if err := b.Chat().ReceiveParked(bg, c.ID(), letter); !errors.Is(err, chat.ErrBadFrame) {
		t.Fatalf("a letter with a bad message: %v, want a bad frame", err)
	}
	m, err := c.Chat().Send(bg, b.ID(), chat.Draft{Text: "sent properly"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, c, m.ID, chat.MsgDelivered)
	page, err := b.Chat().History(bg, c.ID(), "", 10)
	if err != nil || len(page.Messages) != 2 || page.Messages[0].ID != chat.ParkedID(parked) || page.Messages[1].ID != m.ID {
		t.Fatalf("b's history with c: %+v %v", page, err)
	}
}

// TestReceiptOnlyForOwnMessages: a friend can say it read what it was
// sent, not mark its own messages read on our side.
func TestReceiptOnlyForOwnMessages(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	evB := nodetest.Events(t, b)
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "from a"})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, chat.EventMessage, incoming)
	// a forges a receipt for its own message, on b's side.
	s, err := a.Host().NewStream(bg, b.ID(), chat.DMProtocol)
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, s, chat.RawReceipt(a.ID(), b.ID(), m.ID))
	s.CloseWrite()
	if acked, _, _, msg, _ := chat.ReadRefusalFull(s); len(acked) != 1 { // until EOF
		t.Fatalf("the receipt was not taken in (acked %v, refusal %q)", acked, msg)
	}
	s.Close()
	got, err := b.Chat().GetMessage(bg, m.ID)
	if err != nil || got.State != chat.MsgReceived {
		t.Fatalf("b's copy of a's message: %+v %v, want still received", got, err)
	}
}

// TestCloseWithAPeerThatStopsReading: a friend that accepts a stream and
// never reads it blocks the courier's writes; Close still returns at once.
func TestCloseWithAPeerThatStopsReading(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	hold := make(chan struct{})
	defer close(hold)
	opened := make(chan struct{}, 1)
	b.Host().SetStreamHandler(chat.DMProtocol, func(s network.Stream) {
		select {
		case opened <- struct{}{}:
		default:
		}
		<-hold // never read
		s.Reset()
	})
	big := strings.Repeat("x", chat.MaxTextBytes)
	for range 200 { // 12 MiB: far past any flow-control window
		if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: big}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatal("the courier never opened a stream")
	}
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a courier blocked in a write")
	}
}

// memMailbox stands in for the relay's mailbox: it holds what is parked,
// in memory, per recipient.
type memMailbox struct {
	mu     sync.Mutex
	held   map[peer.ID][][]byte
	parked chan struct{}
	down   atomic.Bool   // not Ready: a relay client logged in to none
	asked  chan struct{} // signalled at each Ready, when not nil
	relay  peer.ID       // what Park says holds the messages
	hold   chan struct{} // when not nil, Ready waits until it is closed
	// stall, when not nil, makes Park signal stalled and then wait until
	// stall is closed, whatever its context: a relay that does not
	// answer (until the client's I/O timeout).
	stall, stalled chan struct{}
}

func (m *memMailbox) Park(_ context.Context, p peer.ID, msgs [][]byte) (peer.ID, error) {
	if m.stall != nil {
		m.stalled <- struct{}{}
		<-m.stall
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held[p] = append(m.held[p], msgs...)
	select {
	case m.parked <- struct{}{}:
	default:
	}
	return m.relay, nil
}

func (m *memMailbox) Ready() bool {
	if m.hold != nil {
		<-m.hold
	}
	if m.asked != nil {
		select {
		case m.asked <- struct{}{}:
		default:
		}
	}
	return !m.down.Load()
}

func (m *memMailbox) take(p peer.ID) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.held[p]
	delete(m.held, p)
	return out
}

// waitHeld waits until the mailbox holds at least n messages for p.
func (m *memMailbox) waitHeld(t *testing.T, p peer.ID, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		m.mu.Lock()
		got := len(m.held[p])
		m.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-m.parked:
		case <-deadline:
			t.Fatalf("%d of %d messages parked within 60s", got, n)
		}
	}
}

// TestMailboxDownIsNotAsked: while the mailbox can take nothing (a relay
// client logged in to no relay), the courier does not hand it messages;
// once it can, it does.
func TestMailboxDownIsNotAsked(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	mb := &memMailbox{held: map[peer.ID][][]byte{}, parked: make(chan struct{}, 1), asked: make(chan struct{}, 1)}
	mb.down.Store(true)
	a.Chat().SetMailbox(mb, 0)
	b.Close()
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "for later"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mb.asked:
	case <-mb.parked:
		t.Fatal("parked while the mailbox could take nothing")
	case <-time.After(60 * time.Second):
		t.Fatal("the courier never asked whether the mailbox can take messages")
	}
	mb.mu.Lock()
	n := len(mb.held[b.ID()])
	mb.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d messages parked while the mailbox could take none", n)
	}
	mb.down.Store(false)
	mb.waitHeld(t, b.ID(), 1)
}

// TestMailboxPathExactlyOnce: messages to a friend who stays away are
// parked; the friend gets them from the mailbox, then the direct path
// comes back and delivers the same messages again: each is stored once and
// the sender learns they were delivered.
func TestMailboxPathExactlyOnce(t *testing.T) {
	// a cannot reach b until b has read its mailbox: else a's direct
	// path could deliver them while b starts, before its events are
	// watched, and the mailbox's copies would be nothing new.
	sb := nodetest.NewSwitchboard()
	a, b := nodetest.Start(t, nodetest.Options{Switchboard: sb}), nodetest.Start(t, nodetest.Options{Switchboard: sb})
	nodetest.Befriend(t, a, b)
	mb := &memMailbox{held: map[peer.ID][][]byte{}, parked: make(chan struct{}, 1)}
	a.Chat().SetMailbox(mb, 0)
	bHome, bListen := b.Home(), nodetest.ListenAddrs(b)
	sb.Split(t, []*node.Node{a}, []*node.Node{b})
	b.Close()
	var ids []string
	for i := range 5 {
		m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: fmt.Sprintf("parked %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	// Wait until all five are parked.
	mb.waitHeld(t, b.ID(), len(ids))
	// b comes back and first reads its mailbox.
	b = nodetest.Start(t, nodetest.Options{Home: bHome, Switchboard: sb, Configure: func(c *node.Config) { c.Network.Listen = bListen }})
	evB := nodetest.Events(t, b)
	if err := b.Chat().ReceiveParked(bg, a.ID(), mb.take(b.ID())); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for range ids {
		m := nodetest.WaitEventData(t, evB, chat.EventMessage, incoming).(*chat.Message)
		got[m.ID]++
	}
	// The direct path delivers them again; b stores none twice.
	sb.Heal(t, []*node.Node{a}, []*node.Node{b})
	waitState(t, a, ids[len(ids)-1], chat.MsgDelivered)
	assertHistory(t, b, a.ID(), ids)
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("message %s announced %d times", id, got[id])
		}
	}
	// A stranger cannot use the mailbox path.
	c := nodetest.Start(t, nodetest.Options{})
	if err := b.Chat().ReceiveParked(bg, c.ID(), nil); !errors.Is(err, chat.ErrNotFriend) {
		t.Fatalf("parked messages from a stranger: %v", err)
	}
}

// TestParkedOnceAcrossRestarts: what the mailbox holds is remembered, so
// a sender that restarts parks only what is new.
func TestParkedOnceAcrossRestarts(t *testing.T) {
	aHome := node.Home(t.TempDir())
	a, b := nodetest.Start(t, nodetest.Options{Home: aHome}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	mb := &memMailbox{held: map[peer.ID][][]byte{}, parked: make(chan struct{}, 1)}
	a.Chat().SetMailbox(mb, 0)
	b.Close()
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "first"}); err != nil {
		t.Fatal(err)
	}
	mb.waitHeld(t, b.ID(), 1)
	a.Close()
	a = nodetest.Start(t, nodetest.Options{Home: aHome})
	a.Chat().SetMailbox(mb, 0)
	second, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "second"})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the second is parked; by then the first would have been
	// parked again too, had it been forgotten.
	deadline := time.After(60 * time.Second)
	for {
		mb.mu.Lock()
		held := append([][]byte(nil), mb.held[b.ID()]...)
		mb.mu.Unlock()
		var ids []string
		for _, h := range held {
			ids = append(ids, chat.ParkedID(h))
		}
		if slices.Contains(ids, second.ID) {
			if len(ids) != 2 {
				t.Fatalf("the mailbox holds %v: the first message was parked again", ids)
			}
			return
		}
		select {
		case <-mb.parked:
		case <-deadline:
			t.Fatal("the second message was not parked within 60s")
		}
	}
}

// TestClockResumesAfterRestart: a node's clock is set back three hours
// while it is down; what it sends next still sorts after what it sent
// before, on both sides.
func TestClockResumesAfterRestart(t *testing.T) {
	ahead := func() time.Time { return time.Now().Add(3 * time.Hour) }
	a := nodetest.Start(t, nodetest.Options{Clock: ahead})
	b := nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	m1, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "before the clock went back"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, a, m1.ID, chat.MsgDelivered)
	home := a.Home()
	a.Close()
	a = nodetest.Start(t, nodetest.Options{Home: home})
	m2, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "after"})
	if err != nil {
		t.Fatal(err)
	}
	if m2.HLC <= m1.HLC {
		t.Fatalf("after a restart with the clock set back, a reading %x, not after %x", m2.HLC, m1.HLC)
	}
	waitState(t, a, m2.ID, chat.MsgDelivered)
	assertHistory(t, a, b.ID(), []string{m1.ID, m2.ID})
	assertHistory(t, b, a.ID(), []string{m1.ID, m2.ID})
}

// TestReceivedOnceAcrossRestart: a message comes once whatever path
// brings it again, before and after the receiver restarts, and one from
// before the newest stored (a mailbox delivers out of order) is still new.
func TestReceivedOnceAcrossRestart(t *testing.T) {
	bHome := node.Home(t.TempDir())
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{Home: bHome})
	nodetest.Befriend(t, a, b)
	text := func(hlc uint64) []byte { return chat.ParkedText(a.ID(), b.ID(), hlc, fmt.Sprintf("at %d", hlc), "") }
	// receive hands b the letter and waits for the message it announces
	// next: want, or a duplicate of an earlier one.
	receive := func(b *node.Node, letter [][]byte, want uint64) {
		t.Helper()
		ev := nodetest.Events(t, b)
		if err := b.Chat().ReceiveParked(bg, a.ID(), letter); err != nil {
			t.Fatal(err)
		}
		if m := nodetest.WaitEventData(t, ev, chat.EventMessage, incoming).(*chat.Message); m.HLC != want {
			t.Fatalf("announced the message at %d, want the one at %d", m.HLC, want)
		}
	}
	receive(b, [][]byte{text(1000)}, 1000)
	receive(b, [][]byte{text(1000), text(5)}, 5) // the newest again, and an older new one
	receive(b, [][]byte{text(5), text(1000), text(1001)}, 1001)
	bListen := nodetest.ListenAddrs(b)
	b.Close()
	b = nodetest.Start(t, nodetest.Options{Home: bHome, Configure: func(c *node.Config) { c.Network.Listen = bListen }})
	receive(b, [][]byte{text(1001), text(1000), text(7)}, 7)
	receive(b, [][]byte{text(1002)}, 1002)
}

// TestRemoveThenAskAgain: a friend removed and asked again at once ends
// with the request waiting on the other side, every time: the unfriend
// told first never arrives after the request and wipes it (two senders
// of a contact's notices, the removal's own and the courier, raced).
func TestRemoveThenAskAgain(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	t.Cleanup(func() {
		if t.Failed() {
			ca, _ := a.Chat().Contact(bg, b.ID())
			cb, _ := b.Chat().Contact(bg, a.ID())
			t.Logf("a sees b: %+v", ca)
			t.Logf("b sees a: %+v", cb)
		}
	})
	// Two rounds: b takes three requests a minute from one stranger
	// (Befriend's was one).
	for i := range 2 {
		if _, err := a.Chat().Remove(bg, b.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Chat().AddFriend(bg, info(b), fmt.Sprint("again ", i)); err != nil {
			t.Fatal(err)
		}
		// Once a owes b nothing, b holds the request, or (the unfriend
		// not told before the request replaced it) took it for a yes.
		nodetest.Eventually(t, 30*time.Second, "a tells b everything", func() bool {
			c, err := a.Chat().Contact(bg, b.ID())
			return err == nil && c.Owe == ""
		})
		got := contactState(t, b, a.ID())
		t.Logf("round %d: b sees a as %q", i, got)
		switch got {
		case chat.StatePendingIn:
			if _, err := b.Chat().Accept(bg, a.ID()); err != nil {
				t.Fatal(err)
			}
		case chat.StateFriend:
		default:
			t.Fatalf("round %d: b sees a as %q, want a request (or a friend)", i, got)
		}
		nodetest.Eventually(t, 30*time.Second, "friends again", func() bool {
			return contactState(t, a, b.ID()) == chat.StateFriend && contactState(t, b, a.ID()) == chat.StateFriend
		})
	}
}

// TestAskAgainWhileStreamOpen: a friend request made while the courier
// holds an idle DM stream to the peer (a message went a moment before)
// is delivered at once, not when the stream's idle time (30 s) ends, or
// never: the stream's loop took the kick and sent only messages.
func TestAskAgainWhileStreamOpen(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	evA := nodetest.Events(t, a)
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "before"})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evA, chat.EventMessageState, func(d any) bool {
		e := d.(chat.StateEvent)
		return e.ID == m.ID && e.State == chat.MsgDelivered
	})
	if _, err := b.Chat().Remove(bg, a.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 10*time.Second, "a hears it was removed", func() bool {
		return contactState(t, a, b.ID()) == chat.StateRemoved
	})
	if _, err := a.Chat().AddFriend(bg, info(b), "again"); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 10*time.Second, "b gets the request", func() bool {
		return contactState(t, b, a.ID()) == chat.StatePendingIn
	})
}
