package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestUseCasesByRole: a relay has no chat and no accounts of its own; a
// personal node answers no operator's request.
func TestUseCasesByRole(t *testing.T) {
	ctx := context.Background()
	relay := nodetest.Start(t, nodetest.Options{Role: node.RoleRelay})
	if _, err := relay.Friends(ctx, false); !errors.Is(err, node.ErrNoChat) {
		t.Errorf("friends on a relay: %v, want ErrNoChat", err)
	}
	if _, err := relay.SendFile(ctx, node.FileSend{To: "x", Path: "/nonexistent"}); !errors.Is(err, node.ErrNoChat) {
		t.Errorf("send a file from a relay: %v, want ErrNoChat", err)
	}
	if _, err := relay.Lookup(ctx, "bob", ""); !errors.Is(err, node.ErrNoAccounts) {
		t.Errorf("lookup on a relay: %v, want ErrNoAccounts", err)
	}
	if _, err := relay.RelayStats(); err != nil {
		t.Errorf("stats on a relay: %v", err)
	}
	personal := nodetest.Start(t, nodetest.Options{})
	if _, err := personal.RelayUsers(); !errors.Is(err, node.ErrNotRelay) {
		t.Errorf("users on a personal node: %v, want ErrNotRelay", err)
	}
	if _, err := personal.Search(ctx, "", "", 0); !errors.Is(err, node.ErrBadRequest) {
		t.Errorf("search for nothing: %v, want ErrBadRequest", err)
	}
	// A name no one has names nothing; a broken address is bad input.
	if err := personal.Ping(ctx, node.PingOptions{Peer: "nobody"}, nil); !errors.Is(err, node.ErrNotContact) {
		t.Errorf("ping nobody: %v, want ErrNotContact", err)
	}
	if err := personal.Ping(ctx, node.PingOptions{Peer: "/ip4/127.0.0.1"}, nil); !errors.Is(err, node.ErrBadRequest) {
		t.Errorf("ping a multiaddr without /p2p/: %v, want ErrBadRequest", err)
	}
}

// TestSendFileToOnlineFriend: a friend who is online (and no relay) gets
// the file offered directly; the answer carries the message and the
// file's name and size in one shape.
func TestSendFileToOnlineFriend(t *testing.T) {
	ctx := context.Background()
	a := nodetest.Start(t, nodetest.Options{})
	b := nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("twelve bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	sent, err := a.SendFile(ctx, node.FileSend{To: b.ID().String(), Path: path, Message: "notes"})
	if err != nil {
		t.Fatal(err)
	}
	if sent.Dropped || sent.Message == nil || sent.Message.Kind != node.KindFile || sent.To != b.ID().String() ||
		sent.Name != "notes.txt" || sent.Size != 12 {
		t.Fatalf("sent %+v", sent)
	}
	var shape map[string]any
	b2, _ := json.Marshal(sent)
	if err := json.Unmarshal(b2, &shape); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "kind", "file", "state", "dropped", "to", "name", "size"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("the answer has no %q: %s", k, b2)
		}
	}
	files, err := a.Files(ctx)
	if err != nil || len(files) != 1 || files[0].State != "offered" || files[0].ID != sent.Message.File.ID {
		t.Fatalf("files %+v, %v", files, err)
	}
	if _, err := b.GetFile(ctx, "no-such-file", t.TempDir()); !errors.Is(err, node.ErrNoFile) {
		t.Errorf("get a file never offered: %v, want ErrNoFile", err)
	}
}

// TestConversations: the chat list's lines, each with its newest message
// and the unread count from the history's read marks, which MarkRead
// clears; a group's conversation too.
func TestConversations(t *testing.T) {
	ctx := context.Background()
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	events := nodetest.Events(t, a)
	for _, text := range []string{"one", "two", "three"} {
		if _, err := b.SendMessage(ctx, a.ID().String(), node.Draft{Text: text}); err != nil {
			t.Fatal(err)
		}
		nodetest.WaitEvent(t, events, "message.received", func(ev node.Event) bool {
			m, ok := ev.Data.(*node.Message)
			return ok && m.Text == text
		})
	}
	g, err := a.CreateGroup(ctx, "Hikers", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SendGroup(ctx, g.ID, node.Draft{Text: "hello group"}); err != nil {
		t.Fatal(err)
	}
	byID := func() map[string]*node.Conversation {
		cs, err := a.Conversations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*node.Conversation{}
		for _, c := range cs {
			out[c.ID] = c
		}
		return out
	}
	cs := byID()
	if c := cs[b.ID().String()]; c == nil || c.Group || c.Unread != 3 || c.Last == nil || c.Last.Text != "three" || c.Last.Name == "" {
		t.Fatalf("Bob's conversation: %+v", c)
	}
	if c := cs[g.ID]; c == nil || !c.Group || c.Unread != 0 || c.Last == nil || c.Last.Text != "hello group" {
		t.Fatalf("the group's conversation: %+v", c)
	}
	if _, err := a.MarkRead(ctx, b.ID().String()); err != nil {
		t.Fatal(err)
	}
	if c := byID()[b.ID().String()]; c == nil || c.Unread != 0 {
		t.Fatalf("Bob's conversation once read: %+v", c)
	}
}

// TestProfileWhileStreamOpen: a profile change reaches a friend at once
// while the DM stream to them is open (it idles for 30 s after a message),
// not when the stream ends.
func TestProfileWhileStreamOpen(t *testing.T) {
	ctx := context.Background()
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	events := nodetest.Events(t, a)
	if _, err := b.SendMessage(ctx, a.ID().String(), node.Draft{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEvent(t, events, "message.received", nil)
	name := "Bobby"
	if _, err := b.SetProfile(ctx, node.ProfileUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 20*time.Second, "the new name at the friend's node", func() bool {
		f, err := a.FriendShow(ctx, b.ID().String())
		return err == nil && f.Profile != nil && f.Profile.Name == name
	})
}
