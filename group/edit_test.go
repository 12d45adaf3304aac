package group_test

import (
	"errors"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestGroupEditAndDelete: the author's edit and delete reach every
// member, once; another member's are refused, locally and (forged) on
// the others' side; a member that was away gets them by pull, after the
// message.
func TestGroupEditAndDelete(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	evB, evC := nodetest.Events(t, b), nodetest.Events(t, c)
	m1, err := a.GroupService().Send(bg, gid, history.Draft{Text: "helo"})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := a.GroupService().Send(bg, gid, history.Draft{Text: "oops"})
	if err != nil {
		t.Fatal(err)
	}
	// Both messages, in whatever order they come (gossip, a forward or a
	// pull may bring either first): an edit that comes before its
	// message is applied when the message comes, which announces the
	// message as edited and no edit.
	for _, ev := range []<-chan node.Event{evB, evC} {
		got := map[string]bool{}
		nodetest.WaitEventData(t, ev, group.EventMessage, func(d any) bool {
			got[d.(*history.Message).ID] = true
			return got[m1.ID] && got[m2.ID]
		})
	}
	if got, err := a.GroupService().Edit(bg, gid, m1.ID, "hello"); err != nil || got.Text != "hello" || got.EditedAt.IsZero() {
		t.Fatalf("edit: %+v %v", got, err)
	}
	if _, err := a.GroupService().Delete(bg, gid, m2.ID); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []<-chan node.Event{evB, evC} {
		// Gossip may bring the two in either order.
		var edited, deleted *history.Message
		deadline := time.After(30 * time.Second)
		for edited == nil || deleted == nil {
			select {
			case e := <-ev:
				switch e.Type {
				case group.EventMessageEdited:
					edited = e.Data.(*history.Message)
				case group.EventMessageDeleted:
					deleted = e.Data.(*history.Message)
				}
			case <-deadline:
				t.Fatalf("edited %+v, deleted %+v within 30 s", edited, deleted)
			}
		}
		if edited.ID != m1.ID || edited.Text != "hello" {
			t.Fatalf("edited: %+v", edited)
		}
		if deleted.ID != m2.ID || !deleted.Deleted || deleted.Text != "" {
			t.Fatalf("deleted: %+v", deleted)
		}
	}
	// Only the author: b's own node refuses, and a forged edit from b
	// changes nothing on a's or c's side.
	if _, err := b.GroupService().Edit(bg, gid, m1.ID, "mine"); !errors.Is(err, history.ErrNotAuthor) {
		t.Fatalf("b edits a's message: %v", err)
	}
	if err := group.SendChange(bg, b.GroupService(), gid, m1.ID, "forged"); err != nil {
		t.Fatal(err)
	}
	sentinel, err := b.GroupService().Send(bg, gid, history.Draft{Text: "after the forgery"})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evC, group.EventMessage, func(d any) bool { return d.(*history.Message).ID == sentinel.ID })
	for _, n := range []*node.Node{a, c} {
		if got, _ := n.Chat().GetMessage(bg, m1.ID); got.Text != "hello" {
			t.Fatalf("%s's copy after the forged edit: %+v", n.ID(), got)
		}
	}
	// c is away while a edits again; it gets the edit by pull, once.
	home, cID := c.Home(), c.ID()
	evA := nodetest.Events(t, a)
	c.Close()
	nodetest.WaitPeerEvent(t, evA, node.EventPeerDisconnected, cID)
	if _, err := a.GroupService().Edit(bg, gid, m1.ID, "hello again"); err != nil {
		t.Fatal(err)
	}
	c = nodetest.Start(t, nodetest.Options{Home: home})
	nodetest.Connect(t, c, a)
	nodetest.Eventually(t, 30*time.Second, "c has the second edit", func() bool {
		got, _ := c.Chat().GetMessage(bg, m1.ID)
		return got.Text == "hello again"
	})
	page, err := c.GroupService().History(bg, gid, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	shown := 0
	for _, m := range page.Messages {
		if m.Kind == history.KindEdit || m.Kind == history.KindDelete || m.Kind == history.KindReceipt {
			t.Fatalf("a change shown as a message: %+v", m)
		}
		shown++
	}
	if shown != 3 {
		t.Fatalf("c's history holds %d messages, want 3", shown)
	}
}

// TestGroupReceipts: in a group of three, the two members who receive
// a message tell the author they stored it, and, once they read it,
// that they read it: the author's page says delivered 2 of 2, then read
// by 1, then by 2, per member.
func TestGroupReceipts(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	m, err := a.GroupService().Send(bg, gid, history.Draft{Text: "read me"})
	if err != nil {
		t.Fatal(err)
	}
	own := func() *history.Message {
		page, err := a.GroupService().History(bg, gid, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range page.Messages {
			if got.ID == m.ID {
				return got
			}
		}
		t.Fatal("a's message is not in its history")
		return nil
	}
	nodetest.Eventually(t, 30*time.Second, "delivered to 2 of 2", func() bool { return len(own().DeliveredBy) == 2 })
	if got := own(); got.Recipients != 2 || got.State != history.MsgDelivered || len(got.ReadBy) != 0 {
		t.Fatalf("a's message: %+v", got)
	}
	nodetest.Eventually(t, 30*time.Second, "b has the message", func() bool { _, err := b.Chat().GetMessage(bg, m.ID); return err == nil })
	if n, err := b.GroupService().MarkRead(bg, gid); err != nil || n != 1 {
		t.Fatalf("b marks read: %d %v", n, err)
	}
	nodetest.Eventually(t, 30*time.Second, "read by b", func() bool { return len(own().ReadBy) == 1 })
	if got := own(); got.ReadBy[0].PeerID != b.ID() || got.State != history.MsgDelivered {
		t.Fatalf("a's message read by one: %+v", got)
	}
	nodetest.Eventually(t, 30*time.Second, "c has the message", func() bool { _, err := c.Chat().GetMessage(bg, m.ID); return err == nil })
	if _, err := c.GroupService().MarkRead(bg, gid); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, "read by 2 of 2", func() bool { return own().State == history.MsgRead })
	// A message's receipts are its author's: b keeps none of a's.
	if page, err := b.GroupService().History(bg, gid, "", 10); err != nil || len(page.Messages) == 0 || len(page.Messages[len(page.Messages)-1].ReadBy) != 0 {
		t.Fatalf("b's page of a's message: %+v %v", page, err)
	}
	// The author's trace: sent, then per member delivered and read, each
	// member with its name.
	tr, err := a.MessageInfo(bg, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !hasHop(tr.Hops, history.HopSent) {
		t.Fatalf("no sent hop: %+v", tr.Hops)
	}
	for _, p := range []*node.Node{b, c} {
		hops := tr.Members[p.ID()]
		if len(hops) < 2 || !hasHop(hops, history.HopDelivered) || hops[len(hops)-1].Event != history.HopRead || hops[len(hops)-1].At.IsZero() {
			t.Fatalf("member %s's hops: %+v", p.ID(), hops)
		}
		if tr.Names[p.ID()] == "" {
			t.Fatalf("member %s has no name: %v", p.ID(), tr.Names)
		}
	}
	if _, ok := tr.Members[a.ID()]; ok {
		t.Fatalf("the author is among the members: %+v", tr.Members)
	}
}

func hasHop(hops []history.Hop, event string) bool {
	for _, h := range hops {
		if h.Event == event {
			return true
		}
	}
	return false
}

// TestGroupEditBeforeItsMessage: an edit that a mailbox hands over
// before its message waits for it, across a restart, and the message
// comes edited; the edit again changes nothing.
func TestGroupEditBeforeItsMessage(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	home := b.Home()
	evA := nodetest.Events(t, a)
	b.Close()
	nodetest.WaitPeerEvent(t, evA, node.EventPeerDisconnected, b.ID())
	m, err := a.GroupService().Send(bg, gid, history.Draft{Text: "helo"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.GroupService().Edit(bg, gid, m.ID, "hello"); err != nil {
		t.Fatal(err)
	}
	seq := group.Seq(a.GroupService(), gid, a.ID())
	msg, edit := group.StoredEnvelope(a.GroupService(), gid, a.ID(), seq-1), group.StoredEnvelope(a.GroupService(), gid, a.ID(), seq)
	a.Close()
	b = nodetest.Start(t, nodetest.Options{Home: home})
	if err := b.GroupService().ReceiveParked(bg, [][]byte{edit}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Chat().GetMessage(bg, m.ID); err == nil {
		t.Fatal("b has the message before it came")
	}
	b.Close()
	b = nodetest.Start(t, nodetest.Options{Home: home})
	evB := nodetest.Events(t, b)
	if err := b.GroupService().ReceiveParked(bg, [][]byte{msg, edit}); err != nil {
		t.Fatal(err)
	}
	got := nodetest.WaitEventData(t, evB, group.EventMessage, nil).(*history.Message)
	if got.ID != m.ID || got.Text != "hello" || got.EditedAt.IsZero() {
		t.Fatalf("the message came as %+v", got)
	}
	if stored, _ := b.Chat().GetMessage(bg, m.ID); stored.Text != "hello" {
		t.Fatalf("b's copy: %+v", stored)
	}
}
