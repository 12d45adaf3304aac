package group_test

// Tests of issue 17's group items: what a removed member, a stranger, a
// newcomer and a backdating member can and cannot do.

import (
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestKickedMemberCannotWriteByMailbox: a kicked member seals a message
// with the old epoch's key it kept and deposits it in a member's mailbox;
// the remove op froze its head, so the member stores nothing.
func TestKickedMemberCannotWriteByMailbox(t *testing.T) {
	a, b, c, gid := kickedOfThree(t)
	env := group.ForgeOldEpochMessage(c.GroupService(), gid, 0, "still writing")
	seq := group.ParkedSeq(env)
	for _, n := range []*node.Node{a, b} {
		if err := n.GroupService().ReceiveParked(bg, [][]byte{env}); err != nil {
			t.Fatal(err)
		}
		if group.Has(n.GroupService(), gid, c.ID(), seq) {
			t.Fatalf("%s stored message %d that the kicked member sealed after its removal", n.ID(), seq)
		}
	}
}

// TestNoSealWithKeyOfDeparted: right after a member leaves, a member that
// sends does not seal with the key the leaver holds: it waits for the new
// epoch (the admin is away, so the rekey comes in turn, seconds later).
func TestNoSealWithKeyOfDeparted(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 4)
	nodes[0].Close() // the only admin: the rekey falls to the members in turn
	leaver, rest := nodes[1], nodes[2:]
	// The later in the rekey order sends: its turn comes last.
	sender := rest[0]
	if rest[1].ID() > sender.ID() {
		sender = rest[1]
	}
	ev := nodetest.Events(t, sender)
	if err := leaver.GroupService().Leave(bg, gid); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, ev, group.EventUpdate, func(d any) bool {
		e := d.(group.UpdateEvent)
		return e.Op == group.OpLeave && e.Actor == leaver.ID()
	})
	if _, err := sender.GroupService().Send(bg, gid, history.Draft{Text: "after the leave"}); err != nil {
		t.Fatal(err)
	}
	s := sender.GroupService()
	seq := group.Seq(s, gid, sender.ID())
	if ep := group.EnvelopeEpoch(group.StoredEnvelope(s, gid, sender.ID(), seq)); ep == 0 {
		t.Fatal("sealed with the key of epoch 0, which the member who left holds")
	}
}

var _ = time.Second
