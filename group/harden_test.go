package group_test

// Tests of issue 17's group items: what a removed member, a stranger, a
// newcomer and a backdating member can and cannot do.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

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
	// The epoch before the kick's, whose key c holds.
	env := group.ForgeOldEpochMessage(c.GroupService(), gid, epochOf(t, c, gid)-1, "still writing")
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
	e0 := epochOf(t, sender, gid)
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
	if ep := group.EnvelopeEpoch(group.StoredEnvelope(s, gid, sender.ID(), seq)); ep <= e0 {
		t.Fatalf("sealed with the key of epoch %d, which the member who left holds", ep)
	}
}

// TestRemovedMemberCannotRejoinWithOldInvite: a member removed comes back
// only by an admin's explicit add, not with the invite it joined by.
func TestRemovedMemberCannotRejoinWithOldInvite(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	code, err := a.GroupService().Invite(bg, gid, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := nodetest.Start(t, nodetest.Options{})
	if _, err := c.GroupService().Join(bg, code); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitMembers(t, []*node.Node{a, b, c}, gid, 3)
	evC := nodetest.Events(t, c)
	if err := a.GroupService().Kick(bg, gid, c.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evC, group.EventUpdate, func(d any) bool {
		e := d.(group.UpdateEvent)
		return e.Op == group.OpRemove && e.Target == c.ID()
	})
	if _, err := c.GroupService().Join(bg, code); !errors.Is(err, group.ErrRemoved) {
		t.Fatalf("the removed member rejoins with its old invite: %v", err)
	}
	nodetest.WaitMembers(t, []*node.Node{a, b}, gid, 2)
	// An admin's explicit add brings it back.
	nodetest.Befriend(t, a, c)
	if _, err := a.GroupService().Add(bg, gid, c.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitMembers(t, []*node.Node{a, b, c}, gid, 3)
}

// TestRevokedInviteRefused: an admin withdraws an invite (a signed op);
// every member refuses it from then on, whoever is asked.
func TestRevokedInviteRefused(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	code, err := a.GroupService().Invite(bg, gid, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	evB := nodetest.Events(t, b)
	if err := a.GroupService().RevokeInvite(bg, gid, code); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, group.EventUpdate, func(d any) bool {
		return d.(group.UpdateEvent).Op == group.OpRevoke
	})
	a.Close() // b is asked, and b knows
	c := nodetest.Start(t, nodetest.Options{})
	if _, err := c.GroupService().Join(bg, code); !errors.Is(err, group.ErrInviteRevoked) {
		t.Fatalf("a revoked invite: %v", err)
	}
	// Only an admin revokes.
	if err := b.GroupService().RevokeInvite(bg, gid, code); !errors.Is(err, group.ErrNotAdmin) {
		t.Fatalf("a member revokes: %v", err)
	}
}

// TestInvitesListed: an admin lists the invites it made, newest first,
// each with how many joined with it and whether it still admits anyone;
// a member who made none lists none.
func TestInvitesListed(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	gs := a.GroupService()
	invite := func(uses uint32, ttl time.Duration) string {
		t.Helper()
		code, err := gs.Invite(bg, gid, uses, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	usedUp, open, revoked, expired := invite(1, time.Hour), invite(0, time.Hour), invite(0, time.Hour), invite(0, time.Nanosecond)
	if err := gs.RevokeInvite(bg, gid, revoked); err != nil {
		t.Fatal(err)
	}
	c := nodetest.Start(t, nodetest.Options{})
	if _, err := c.GroupService().Join(bg, usedUp); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitMembers(t, []*node.Node{a, b, c}, gid, 3)

	list, err := gs.Invites(bg, gid)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		code, state string
		used        uint32
	}{{expired, group.InviteExpired, 0}, {revoked, group.InviteRevoked, 0}, {open, group.InviteOpen, 0}, {usedUp, group.InviteUsedUp, 1}}
	// Then the invite b joined with (nodetest.GroupOf's, for any number).
	if len(list) != len(want)+1 {
		t.Fatalf("%d invites listed, want %d", len(list), len(want)+1)
	}
	if first := list[len(want)]; first.State != group.InviteOpen || first.Uses != 0 || first.Used != 1 {
		t.Errorf("the invite b joined with: %s, %d of %d joined", first.State, first.Used, first.Uses)
	}
	for i, w := range want {
		id, _ := group.InviteID(w.code)
		if got := list[i]; got.Code != w.code || got.ID != id || got.State != w.state || got.Used != w.used {
			t.Errorf("invite %d: %s, %s, %d joined; want %s, %s, %d", i, got.ID, got.State, got.Used, id, w.state, w.used)
		}
	}
	if l, err := b.GroupService().Invites(bg, gid); err != nil || len(l) != 0 {
		t.Fatalf("b made no invite and lists %d (%v)", len(l), err)
	}
}

// TestBackdatedAddWithExpiredInviteIgnored: no op happened since an
// invite expired, and a member admits someone with it, dating the add
// before the expiry; the others check the add against their own clocks
// and do not take it.
func TestBackdatedAddWithExpiredInviteIgnored(t *testing.T) {
	var skew atomic.Int64
	skew.Store(int64(-3 * time.Hour))
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	nodes := make([]*node.Node, 3)
	for i := range nodes {
		nodes[i] = nodetest.Start(t, nodetest.Options{Clock: clock})
	}
	a, m, b := nodes[0], nodes[1], nodes[2]
	// The group's log ends three hours ago; the invite expired two hours
	// ago.
	gid := nodetest.JoinGroup(t, nodes, "crew")
	nodetest.WaitMembers(t, nodes, gid, 3)
	code, err := a.GroupService().Invite(bg, gid, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	skew.Store(0)
	stranger := nodetest.Start(t, nodetest.Options{})
	before := group.Ops(b.GroupService(), gid)
	forged := group.ForgeInviteAdd(m.GroupService(), gid, code, stranger.ID(), time.Now().Add(-150*time.Minute))
	if err := group.PublishTopic(bg, m.GroupService(), gid, forged); err != nil {
		t.Fatal(err)
	}
	// A later op of a's shows b has had time to take the forged one.
	evB := nodetest.Events(t, b)
	name := "crew two"
	if _, err := a.GroupService().Rename(bg, gid, &name, nil); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, group.EventUpdate, func(d any) bool {
		e := d.(group.UpdateEvent)
		return e.Op == group.OpRename || (e.Op == group.OpAdd && e.Target == stranger.ID())
	})
	if members, _ := b.GroupService().Members(bg, gid); len(members) != 3 {
		t.Fatalf("b took a backdated add with an expired invite: %d members (ops %d, then %d)", len(members), before, group.Ops(b.GroupService(), gid))
	}
}

// kept reports whether n holds a connection to p for its groups or
// friends (discovery's keep-alive protects it).
func kept(n *node.Node, p peer.ID) bool {
	return n.Host().ConnManager().IsProtected(p, "meshtalk-keep")
}

// TestPushedMembersOnlyFromLog: a join answer or a push that names
// peers the signed log does not make members has none of them kept
// connected.
func TestPushedMembersOnlyFromLog(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a := nodes[0]
	stranger := nodetest.Start(t, nodetest.Options{})
	group.KeepPushed(a.GroupService(), gid, []peer.AddrInfo{{ID: stranger.ID(), Addrs: stranger.Host().Addrs()}})
	if kept(a, stranger.ID()) {
		t.Fatal("a keeps a peer connected that a pushed member list named and the log does not")
	}
}

// TestRemovedMemberNotKept: once a member is removed, the members stop
// holding a connection to it.
func TestRemovedMemberNotKept(t *testing.T) {
	a, b, c, _ := kickedOfThree(t)
	for _, n := range []*node.Node{a, b} {
		if !kept(n, a.ID()) && !kept(n, b.ID()) {
			t.Fatalf("%s keeps no member: the test cannot tell", n.ID())
		}
		nodetest.Eventually(t, 5*time.Second, "the removed member is no longer kept", func() bool { return !kept(n, c.ID()) })
	}
}

// TestStrangerGetsNoGroupTraffic: a stranger connected to the members
// subscribes to a group's topic (its ID leaked, say); the members admit
// only members to the topic's mesh and gossip, so it receives nothing.
func TestStrangerGetsNoGroupTraffic(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	// A plain libp2p host with gossipsub as it comes, unsigned messages
	// allowed (as the group topics carry).
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, stop := context.WithCancel(bg)
	t.Cleanup(stop)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := h.Connect(bg, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	topic, err := ps.Join(group.Topic(gid))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	// The stranger's subscription has reached the members when it sees
	// theirs: the announcements cross.
	nodetest.Eventually(t, 10*time.Second, "the stranger sees the members on the topic", func() bool {
		return len(topic.ListPeers()) == len(nodes)
	})
	w := watchGroup(t, nodes[2], gid)
	const sent = 30
	sendTexts(t, nodes[0], gid, "members only", sent)
	sendTexts(t, nodes[1], gid, "members only too", sent)
	w.Wait(2*sent, 30*time.Second)
	rctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	if m, err := sub.Next(rctx); err == nil {
		t.Fatalf("the stranger got the group's traffic from %s", m.ReceivedFrom)
	}
}

// TestNewcomerReadsNothingSentBeforeItsAdd: a member that joins is served
// nothing sent before its add, however it asks, and cannot open the
// envelopes the join answer proves the heads with.
func TestNewcomerReadsNothingSentBeforeItsAdd(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	wb := watchGroup(t, b, gid)
	const before = 5
	sendTexts(t, a, gid, "before c", before)
	wb.Wait(before, 30*time.Second)
	code, err := a.GroupService().Invite(bg, gid, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// What each had sent before c came (messages, and the receipts that
	// go on in the background).
	sentBefore := map[peer.ID]uint64{}
	for _, n := range nodes {
		sentBefore[n.ID()] = group.Seq(n.GroupService(), gid, n.ID())
	}
	seq := group.Seq(a.GroupService(), gid, a.ID())
	c := nodetest.Start(t, nodetest.Options{})
	if _, err := c.GroupService().Join(bg, code); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitMembers(t, []*node.Node{a, b, c}, gid, 3)
	served, err := group.PullEverything(bg, c.GroupService(), gid, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	for author, seqs := range served {
		for _, s := range seqs {
			if s <= sentBefore[author] {
				t.Fatalf("b served the newcomer %s's message %d, sent before its add (served %v)", author, s, served)
			}
		}
	}
	if _, err := group.TryDecrypt(bg, a.GroupService(), c.GroupService(), gid, a.ID(), seq); err == nil {
		t.Fatal("the newcomer opens a message sent before its add")
	}
}

// TestForkedOpIgnoredNotRejected: an admin's op that follows another op
// at the index before than the one a member holds (a fork: two admins
// appended at once) is ignored, not rejected: whoever forwards it is not
// penalised for the fork.
func TestForkedOpIgnoredNotRejected(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	before := group.Rejects(b.GroupService())
	if err := group.PublishTopic(ctx, a.GroupService(), gid, group.ForgeForkedOp(a.GroupService(), gid, group.OpPromote, nodes[2].ID())); err != nil {
		t.Fatal(err)
	}
	// A valid op after it shows b has seen the forked one.
	evB := nodetest.Events(t, b)
	if _, err := a.GroupService().Promote(bg, gid, b.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, group.EventUpdate, func(d any) bool { return d.(group.UpdateEvent).Op == group.OpPromote })
	if got := group.Rejects(b.GroupService()); got != before {
		t.Fatalf("b rejected %d messages: an op that only follows another parent counts as invalid", got-before)
	}
	if score, _ := group.Score(b.GroupService(), a.ID()); score < 0 {
		t.Fatalf("a's score at b fell to %v", score)
	}
}

// TestGroupStateMigratedToSchema3: a state stored before schema 3 (a
// linear log by index; before 2 no frozen heads, no removed members
// either) is rebuilt from the log at start, its ops stored by hash.
func TestGroupStateMigratedToSchema3(t *testing.T) {
	a, _, c, gid := kickedOfThree(t)
	group.DowngradeState(a.GroupService(), gid)
	if removed, schema := group.Removed(a.GroupService(), gid, c.ID()); removed || schema != 0 {
		t.Fatalf("downgraded: removed %v, schema %d", removed, schema)
	}
	home, addrs := a.Home(), nodetest.ListenAddrs(a)
	a.Close()
	a = nodetest.Start(t, nodetest.Options{Home: home, Configure: func(cfg *node.Config) { cfg.Network.Listen = addrs }})
	if removed, schema := group.Removed(a.GroupService(), gid, c.ID()); !removed || schema != 3 {
		t.Fatalf("after the restart: removed %v, schema %d", removed, schema)
	}
	if info, err := a.GroupService().Get(bg, gid); err != nil || info.Status != group.StatusMember || info.Members != 2 {
		t.Fatalf("after the migration: %+v %v", info, err)
	}
	// The keys stayed: a still writes.
	if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: "after the migration"}); err != nil {
		t.Fatal(err)
	}
}

// TestForwardOnlyFromMembers: a forward (what a member hands a member
// it reaches only through a relay) is refused from a stranger, and one
// that carries a message the topic validator rejects is refused and
// counted, its message not stored.
func TestForwardOnlyFromMembers(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	stranger := nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, stranger, a)
	junk := group.ForgeEnvelope(stranger.GroupService(), gid, "let me in")
	if err := group.Forward(stranger.GroupService(), a.ID(), gid, junk); err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("a stranger's forward: got %v, want refused as not a member", err)
	}
	before := group.Rejects(a.GroupService())
	junk = group.ForgeEnvelope(b.GroupService(), gid, "sealed with a key of b's own")
	if err := group.Forward(b.GroupService(), a.ID(), gid, junk); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("a member's junk forward: got %v, want refused as rejected", err)
	}
	if got := group.Rejects(a.GroupService()) - before; got != 1 {
		t.Fatalf("a counted %d rejects, want 1", got)
	}
	if n := historyCount(t, a, gid); n != 0 {
		t.Fatalf("a holds %d messages, want none", n)
	}
}
