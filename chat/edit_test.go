package chat_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestDMEditAndDelete: the author's edit and delete for everyone reach
// the friend's copy (and its events); the friend cannot change the
// author's message; a local delete sends nothing.
func TestDMEditAndDelete(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	evB := nodetest.Events(t, b)
	m1, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "helo"})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "oops"})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, chat.EventMessage, func(d any) bool { return d.(*chat.Message).ID == m2.ID })

	edited, err := a.Chat().Edit(bg, m1.ID, "hello")
	if err != nil || edited.Text != "hello" || edited.EditedAt.IsZero() {
		t.Fatalf("edit: %+v %v", edited, err)
	}
	got := nodetest.WaitEventData(t, evB, chat.EventMessageEdited, nil).(*chat.Message)
	if got.ID != m1.ID || got.Text != "hello" || got.EditedAt.IsZero() {
		t.Fatalf("b's edited copy: %+v", got)
	}
	if _, err := a.Chat().Delete(bg, m2.ID); err != nil {
		t.Fatal(err)
	}
	got = nodetest.WaitEventData(t, evB, chat.EventMessageDeleted, nil).(*chat.Message)
	if got.ID != m2.ID || !got.Deleted || got.Text != "" {
		t.Fatalf("b's deleted copy: %+v", got)
	}
	if mine, _ := a.Chat().GetMessage(bg, m2.ID); !mine.Deleted {
		t.Fatalf("a's own copy: %+v", mine)
	}
	// Only the author.
	if _, err := b.Chat().Edit(bg, m1.ID, "mine now"); !errors.Is(err, chat.ErrNotAuthor) {
		t.Fatalf("b edits a's message: %v", err)
	}
	if _, err := a.Chat().Edit(bg, m2.ID, "back"); !errors.Is(err, chat.ErrDeleted) {
		t.Fatalf("an edit of a deleted message: %v", err)
	}
	// Deleted on b only.
	if _, err := b.Chat().DeleteLocal(bg, m1.ID); err != nil {
		t.Fatal(err)
	}
	if mine, _ := a.Chat().GetMessage(bg, m1.ID); mine.Deleted || mine.Text != "hello" {
		t.Fatalf("a's copy after b's local delete: %+v", mine)
	}
	if page, _ := b.Chat().History(bg, a.ID(), "", 10); len(page.Messages) != 2 || !page.Messages[0].Deleted {
		t.Fatalf("b's history: %+v", page)
	}
	// A message not delivered yet goes out from its record: deleted here
	// only, it would reach b deleted, so only a delete for everyone is
	// taken.
	b.Close()
	queued, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "to b, away"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Chat().DeleteLocal(bg, queued.ID); !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("a local delete of a queued message: %v", err)
	}
	if m, err := a.Chat().Delete(bg, queued.ID); err != nil || !m.Deleted {
		t.Fatalf("a delete for everyone of a queued message: %+v %v", m, err)
	}
}

// TestDMChangeOnceInAnyOrder: a change that comes again (a mailbox and
// the direct path, before and after a restart) changes nothing twice and
// is announced once; one that comes before its message is applied when
// the message comes, across a restart; a forged one changes nothing.
func TestDMChangeOnceInAnyOrder(t *testing.T) {
	bHome := node.Home(t.TempDir())
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{Home: bHome})
	nodetest.Befriend(t, a, b)
	msg := func(hlc uint64, text string) []byte { return chat.ParkedText(a.ID(), b.ID(), hlc, text, "") }
	m10, m20 := chat.ParkedID(msg(10, "")), chat.ParkedID(msg(20, ""))
	edit := chat.ParkedChange(a.ID(), b.ID(), 11, m10, "ten, edited")
	// deliver hands b a letter, then a sentinel message, and returns the
	// types of the message.* events before the sentinel's.
	sentinel := uint64(100)
	deliver := func(b *node.Node, letter ...[]byte) []string {
		t.Helper()
		ev := nodetest.Events(t, b)
		sentinel++
		s := msg(sentinel, "sentinel")
		if err := b.Chat().ReceiveParked(bg, a.ID(), append(letter, s)); err != nil {
			t.Fatal(err)
		}
		var types []string
		for e := range ev {
			if e.Type == chat.EventMessage && e.Data.(*chat.Message).ID == chat.ParkedID(s) {
				return types
			}
			if strings.HasPrefix(e.Type, "message.") {
				types = append(types, e.Type)
			}
		}
		t.Fatal("events ended")
		return nil
	}
	if got := deliver(b, msg(10, "ten"), edit); len(got) != 1 || got[0] != chat.EventMessage {
		t.Fatalf("message and edit in one letter: events %v", got)
	}
	if m, _ := b.Chat().GetMessage(bg, m10); m.Text != "ten, edited" {
		t.Fatalf("b's copy: %+v", m)
	}
	if got := deliver(b, edit, msg(10, "ten")); len(got) != 0 {
		t.Fatalf("both again: events %v", got)
	}
	// The edit of the message at 20 comes first, alone; b restarts.
	if got := deliver(b, chat.ParkedChange(a.ID(), b.ID(), 21, m20, "twenty, edited")); len(got) != 0 {
		t.Fatalf("an edit before its message: events %v", got)
	}
	bListen := nodetest.ListenAddrs(b)
	b.Close()
	b = nodetest.Start(t, nodetest.Options{Home: bHome, Configure: func(c *node.Config) { c.Network.Listen = bListen }})
	if got := deliver(b, edit, msg(20, "twenty")); len(got) != 1 {
		t.Fatalf("after the restart: events %v", got)
	}
	if m, _ := b.Chat().GetMessage(bg, m20); m.Text != "twenty, edited" || m.EditedAt.IsZero() {
		t.Fatalf("b's copy of the message at 20: %+v", m)
	}
	// b's own message, "edited" by a: refused, nothing changes.
	mine, err := b.Chat().Send(bg, a.ID(), chat.Draft{Text: "b's own"})
	if err != nil {
		t.Fatal(err)
	}
	deliver(b, chat.ParkedChange(a.ID(), b.ID(), 30, mine.ID, "forged"), chat.ParkedChange(a.ID(), b.ID(), 31, mine.ID, ""))
	if m, _ := b.Chat().GetMessage(bg, mine.ID); m.Text != "b's own" || m.Deleted || !m.EditedAt.IsZero() {
		t.Fatalf("b's own message after a's forged changes: %+v", m)
	}
}
