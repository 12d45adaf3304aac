package group_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// watchGroup counts the messages of gid that n receives
// (nodetest.WatchGroup); a failed wait tells n's heads and, of each of
// others, its rejects and heads.
func watchGroup(t *testing.T, n *node.Node, gid string, others ...*node.Node) *nodetest.GroupWatch {
	w := nodetest.WatchGroup(t, n, gid)
	w.Diagnose = func() string {
		diag := ""
		for _, o := range others {
			diag += fmt.Sprintf("\n  %s: rejects %d, %s", o.ID(), group.Rejects(o.GroupService()), group.Heads(o.GroupService(), gid))
		}
		return fmt.Sprintf(" (%s)%s", group.Heads(n.GroupService(), gid), diag)
	}
	return w
}

// historyCount is the number of messages in a group's history.
func historyCount(t *testing.T, n *node.Node, gid string) int {
	t.Helper()
	total, before := 0, ""
	for {
		page, err := n.GroupService().History(bg, gid, before, 1000)
		if err != nil {
			t.Fatal(err)
		}
		total += len(page.Messages)
		if !page.More {
			return total
		}
		before = page.Messages[0].ID
	}
}

func TestGroupFiveNodesExactlyOnce(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 5)
	watches := make([]*nodetest.GroupWatch, len(nodes))
	for i, n := range nodes {
		watches[i] = watchGroup(t, n, gid, nodes...)
	}
	const each = 10
	for round := range each {
		for i, n := range nodes {
			if _, err := n.GroupService().Send(bg, gid, history.Draft{Text: fmt.Sprintf("%d from %d", round, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each kind reaches the group too.
	if _, err := nodes[1].GroupService().Send(bg, gid, history.Draft{Face: "party"}); err != nil {
		t.Fatal(err)
	}
	for i, w := range watches {
		want := (len(nodes)-1)*each + 1
		if i == 1 {
			want--
		}
		w.Wait(want, 60*time.Second)
	}
	for _, n := range nodes {
		if got := historyCount(t, n, gid); got != len(nodes)*each+1 {
			t.Fatalf("%s holds %d messages, want %d", n.ID(), got, len(nodes)*each+1)
		}
	}
	// The group history reads like a conversation.
	page, err := nodes[0].GroupService().History(bg, gid, "", 5)
	if err != nil || len(page.Messages) != 5 || !page.More || page.Messages[4].Group != gid {
		t.Fatalf("history page: %+v %v", page, err)
	}
	if n, err := nodes[0].GroupService().MarkRead(bg, gid); err != nil || n != (len(nodes)-1)*each+1 {
		t.Fatalf("mark read: %d %v", n, err)
	}
	checkScores(t, nodes)
}

func TestGroupBurstExactlyOnce(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 5)
	var watches []*nodetest.GroupWatch
	for _, n := range nodes[1:] {
		watches = append(watches, watchGroup(t, n, gid))
	}
	const burst = 2000
	sendTexts(t, nodes[0], gid, "burst", burst)
	for _, w := range watches {
		w.Wait(burst, 2*time.Minute)
	}
	for _, n := range nodes {
		if got := historyCount(t, n, gid); got != burst {
			t.Fatalf("%s holds %d messages, want %d", n.ID(), got, burst)
		}
	}
	checkScores(t, nodes)
}

func TestGroupJoinWithAdminOffline(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	admin, member := nodes[0], nodes[1]
	code, err := admin.GroupService().Invite(bg, gid, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	admin.Close()
	newcomer := nodetest.Start(t, nodetest.Options{})
	g, err := newcomer.GroupService().Join(bg, code)
	if err != nil {
		t.Fatalf("join with the admin offline: %v", err)
	}
	if g.ID != gid || g.Name != "crew" || g.Members != 3 || g.Role != group.RoleMember {
		t.Fatalf("joined %+v", g)
	}
	w := watchGroup(t, member, gid)
	nodetest.WaitMembers(t, []*node.Node{member, newcomer}, gid, 3)
	if _, err := newcomer.GroupService().Send(bg, gid, history.Draft{Text: "hi all"}); err != nil {
		t.Fatal(err)
	}
	w.Wait(1, 30*time.Second)

	// The invite was for one: the next holder is refused, clearly.
	late := nodetest.Start(t, nodetest.Options{})
	if _, err := late.GroupService().Join(bg, code); !errors.Is(err, group.ErrInviteUsedUp) {
		t.Fatalf("a used-up invite: %v", err)
	}
}

// A newcomer takes a head from the member that admits it only with the
// author's envelope it ends on: it starts where that member is, without
// the history before, and a member that claims more of an author than the
// author sent cannot have it drop what comes next.
func TestGroupJoinTakesOnlyProvenHeads(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	wa := watchGroup(t, a, gid)
	sendTexts(t, b, gid, "before the newcomers", 3)
	wa.Wait(3, 30*time.Second)
	// b is away, so that the newcomers are admitted by a.
	home, addrs := b.Home(), nodetest.ListenAddrs(b)
	b.Close()
	join := func() *node.Node {
		t.Helper()
		code, err := a.GroupService().Invite(bg, gid, 0, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		n := nodetest.Start(t, nodetest.Options{})
		if _, err := n.GroupService().Join(bg, code); err != nil {
			t.Fatal(err)
		}
		return n
	}
	c := join()
	if !group.Has(c.GroupService(), gid, b.ID(), 3) || group.Has(c.GroupService(), gid, b.ID(), 4) || historyCount(t, c, gid) != 0 {
		t.Fatalf("c, admitted by a truthful member, holds %s and %d messages; want b's 1 to 3 and none",
			group.Heads(c.GroupService(), gid), historyCount(t, c, gid))
	}
	group.ClaimHead(a.GroupService(), gid, b.ID(), 1<<20)
	d := join()
	if group.Has(d.GroupService(), gid, b.ID(), 4) {
		t.Fatalf("d took a's claim: %s", group.Heads(d.GroupService(), gid))
	}
	b = nodetest.Start(t, nodetest.Options{Home: home, Configure: func(cfg *node.Config) { cfg.Network.Listen = addrs }})
	for _, n := range []*node.Node{a, c, d} {
		nodetest.Connect(t, b, n)
	}
	nodetest.WaitMembers(t, []*node.Node{a, b, c, d}, gid, 4)
	if _, err := b.GroupService().Send(bg, gid, history.Draft{Text: "after the newcomers"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node.Node{c, d} {
		nodetest.Eventually(t, 30*time.Second, "a newcomer gets b's next message", func() bool {
			return group.Has(n.GroupService(), gid, b.ID(), 4)
		})
	}
}

func TestGroupInviteExpired(t *testing.T) {
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	admin := nodetest.Start(t, nodetest.Options{Clock: clock})
	g, err := admin.GroupService().Create(bg, "brief", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := admin.GroupService().Invite(bg, g.ID, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The joiner's clock says the invite is good; the admin's that it has
	// expired: the admin's word counts.
	skew.Store(int64(2 * time.Hour))
	b := nodetest.Start(t, nodetest.Options{})
	_, err = b.GroupService().Join(bg, code)
	if !errors.Is(err, group.ErrInviteExpired) {
		t.Fatalf("an expired invite: %v", err)
	}
	t.Log(err)
	// And a joiner whose own clock says so does not even ask.
	c := nodetest.Start(t, nodetest.Options{Clock: clock})
	if _, err := c.GroupService().Join(bg, code); !errors.Is(err, group.ErrInviteExpired) {
		t.Fatalf("an expired invite, by the joiner's clock: %v", err)
	}
	if _, err := c.GroupService().Join(bg, "mtg1garbage"); !errors.Is(err, group.ErrBadInvite) {
		t.Fatalf("a bad code: %v", err)
	}
}

// kickedOfThree makes a group of three, a (the admin), b and c, and has a
// kick c: it returns once c knows and b has the new epoch's key (before a's
// next message needs it).
func kickedOfThree(t *testing.T) (a, b, c *node.Node, gid string) {
	t.Helper()
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c = nodes[0], nodes[1], nodes[2]
	evC := nodetest.Events(t, c)
	e0 := epochOf(t, a, gid)
	if err := a.GroupService().Kick(bg, gid, c.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evC, group.EventUpdate, func(d any) bool {
		e := d.(group.UpdateEvent)
		return e.Op == group.OpRemove && e.Target == c.ID() && e.Status == group.StatusRemoved
	})
	waitEpoch(t, b, gid, e0+1)
	return a, b, c, gid
}

func TestGroupKick(t *testing.T) {
	a, b, c, gid := kickedOfThree(t)
	wb := watchGroup(t, b, gid)
	wc := watchGroup(t, c, gid)
	m, err := a.GroupService().Send(bg, gid, history.Draft{Text: "after c left"})
	if err != nil {
		t.Fatal(err)
	}
	wb.Wait(1, 30*time.Second)
	seq := group.Seq(a.GroupService(), gid, a.ID())
	after, _ := a.GroupService().Get(bg, gid) // the epoch the kick started (each add starts one too)
	if ep, err := group.TryDecrypt(bg, b.GroupService(), b.GroupService(), gid, a.ID(), seq); err != nil || ep != after.Epoch {
		t.Fatalf("b decrypts %s: epoch %d, %v", m.ID, ep, err)
	}
	if _, err := group.TryDecrypt(bg, b.GroupService(), c.GroupService(), gid, a.ID(), seq); err == nil {
		t.Fatal("the kicked member decrypts a message sent after its removal")
	}
	if _, err := c.GroupService().Send(bg, gid, history.Draft{Text: "still here?"}); !errors.Is(err, group.ErrNotMember) {
		t.Fatalf("the kicked member sends: %v", err)
	}
	if wc.Distinct() != 0 {
		t.Fatal("the kicked member received a message")
	}
	info, _ := c.GroupService().Get(bg, gid)
	if info.Status != group.StatusRemoved {
		t.Fatalf("c's standing: %+v", info)
	}
	members, _ := b.GroupService().Members(bg, gid)
	if len(members) != 2 {
		t.Fatalf("b sees %d members", len(members))
	}
}

// TestGroupKickedHearsNothing: a kicked member that goes back on the
// group's topic (a modified node could) gets none of the group's traffic
// from the members that applied its removal: they graylist it, so it is
// in none of their meshes and gets no gossip and no publications.
func TestGroupKickedHearsNothing(t *testing.T) {
	a, b, c, gid := kickedOfThree(t)
	reads := map[*node.Node]int64{}
	for _, n := range []*node.Node{a, b} {
		nodetest.Eventually(t, 10*time.Second, "the kicked member is graylisted", func() bool {
			return group.Graylisted(n.GroupService(), c.ID())
		})
		reads[n] = group.ScoreReads(n.GroupService())
	}
	// and out of their meshes: gossipsub prunes at its heartbeat (each
	// second, as the snapshots are taken), the first after that.
	for n, r := range reads {
		nodetest.Eventually(t, 10*time.Second, "a heartbeat since", func() bool {
			return group.ScoreReads(n.GroupService()) >= r+2
		})
	}
	topic, err := group.RawTopic(c.GroupService(), group.Topic(gid))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	// c is back on the topic and sees a and b there; they drop its
	// subscription (filter.go), and do not send to it.
	nodetest.Eventually(t, 10*time.Second, "c is back on the topic", func() bool {
		return len(topic.ListPeers()) == 2
	})
	for _, n := range []*node.Node{a, b} {
		if slices.Contains(group.RawTopicPeers(n.GroupService(), group.Topic(gid)), c.ID()) {
			t.Fatalf("%s took the removed member's subscription", n.ID())
		}
	}
	wa := watchGroup(t, a, gid)
	const sent = 20
	sendTexts(t, b, gid, "not for c", sent)
	wa.Wait(sent, 30*time.Second)
	// What a has, a forwarded; b published before a had it. Anything
	// either sent c has arrived by now, or is in c's queue.
	ctx, cancel := context.WithTimeout(bg, time.Second)
	defer cancel()
	if m, err := sub.Next(ctx); err == nil {
		t.Fatalf("the kicked member got the group's traffic from %s", m.ReceivedFrom)
	}
}

// sendTexts has n send count texts to a group: prefix and a number.
func sendTexts(t *testing.T, n *node.Node, gid, prefix string, count int) {
	t.Helper()
	for i := range count {
		if _, err := n.GroupService().Send(bg, gid, history.Draft{Text: fmt.Sprintf("%s %d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// epochOf is n's current key epoch of a group.
func epochOf(t *testing.T, n *node.Node, gid string) uint64 {
	t.Helper()
	g, err := n.GroupService().Get(bg, gid)
	if err != nil {
		t.Fatal(err)
	}
	return g.Epoch
}

// waitEpoch waits until n holds the key of epoch, and sends with it. An
// epoch may come only once an admin has waited out KeyWait for the key
// of another's (TestGroupKeylessEpochRekeyed); a fresh-clone CI run,
// loaded, once took more than the 15 s left of a 30 s deadline beside it.
func waitEpoch(t *testing.T, n *node.Node, gid string, epoch uint64) {
	t.Helper()
	ch := nodetest.Events(t, n)
	deadline := time.After(30*time.Second + group.KeyWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		g, err := n.GroupService().Get(bg, gid)
		if err != nil {
			t.Fatal(err)
		}
		if g.Epoch >= epoch {
			if _, err = n.GroupService().Send(bg, gid, history.Draft{Text: "key check"}); err == nil {
				return
			}
		}
		// A key arrives without an event: look again now and then too.
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: no key of epoch %d: %+v %v", n.ID(), epoch, g, err)
		}
	}
}

func TestGroupCatchUpAfterOffline(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	home := c.Home()
	addrs := nodetest.ListenAddrs(c)
	c.Close()
	wb := watchGroup(t, b, gid)
	const missed = 100
	sendTexts(t, a, gid, "while away", missed)
	wb.Wait(missed, 30*time.Second)
	c = nodetest.Start(t, nodetest.Options{Home: home, Configure: func(cfg *node.Config) { cfg.Network.Listen = addrs }})
	wc := watchGroup(t, c, gid)
	nodetest.Connect(t, c, a)
	nodetest.Connect(t, c, b)
	wc.Wait(missed, 30*time.Second)
	if got := historyCount(t, c, gid); got != missed {
		t.Fatalf("c holds %d, want %d", got, missed)
	}
}

// A head's record is written every 64 numbers, not with every message:
// a restart finds the envelopes stored past it, of others and its own.
func TestGroupHeadsSurviveRestart(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	author := a.ID()
	wb := watchGroup(t, b, gid)
	const sent = 70 // past the record at 64, short of the next
	sendTexts(t, a, gid, "before restart", sent)
	wb.Wait(sent, 30*time.Second)
	holds := func(n *node.Node, want uint64) {
		t.Helper()
		if !group.Has(n.GroupService(), gid, author, want) || group.Has(n.GroupService(), gid, author, want+1) {
			t.Fatalf("%s holds %s of %s, want 1 to %d", n.ID(), group.Heads(n.GroupService(), gid), author, want)
		}
	}
	restart := func(n *node.Node) func() *node.Node {
		home, addrs := n.Home(), nodetest.ListenAddrs(n)
		n.Close()
		return func() *node.Node {
			return nodetest.Start(t, nodetest.Options{Home: home, Configure: func(cfg *node.Config) { cfg.Network.Listen = addrs }})
		}
	}
	// a is away while b restarts: what b holds comes from its store alone.
	startA := restart(a)
	b = restart(b)()
	holds(b, sent)
	a = startA()
	holds(a, sent)
	// a's next message takes the next number, and reaches b once.
	wb = watchGroup(t, b, gid)
	nodetest.Connect(t, a, b)
	if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: "after restart"}); err != nil {
		t.Fatal(err)
	}
	wb.Wait(1, 30*time.Second)
	holds(b, sent+1)
	if got := historyCount(t, b, gid); got != sent+1 {
		t.Fatalf("b holds %d messages, want %d", got, sent+1)
	}
}

func TestGroupRejectsNonMembersAndForgedOps(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	stranger := nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, stranger, a)
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	wa := watchGroup(t, a, gid)

	before := group.Rejects(a.GroupService())
	if err := group.PublishTopic(ctx, stranger.GroupService(), gid, group.ForgeEnvelope(stranger.GroupService(), gid, "let me in")); err != nil {
		t.Fatal(err)
	}
	waitRejects(t, a, before+1)

	// b is a member, not an admin: its removal of c is forged authority,
	// and so is an op whose signature does not check.
	before = group.Rejects(a.GroupService())
	if err := group.PublishTopic(ctx, b.GroupService(), gid, group.ForgeOp(b.GroupService(), gid, group.OpRemove, c.ID(), false)); err != nil {
		t.Fatal(err)
	}
	waitRejects(t, a, before+1)
	before = group.Rejects(a.GroupService())
	if err := group.PublishTopic(ctx, stranger.GroupService(), gid, group.ForgeOp(b.GroupService(), gid, group.OpPromote, b.ID(), true)); err != nil {
		t.Fatal(err)
	}
	waitRejects(t, a, before+1)
	// An admin's op dated two hours ahead of everyone's clock would hold
	// every later op (and invite) behind it: set aside, not applied.
	if err := group.PublishTopic(ctx, a.GroupService(), gid, group.ForgeOpAt(a.GroupService(), gid, group.OpPromote, c.ID(), false, time.Now().Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, "b sets the future-dated op aside", func() bool { return group.Postponed(b.GroupService()) > 0 })

	for _, n := range nodes {
		members, _ := n.GroupService().Members(bg, gid)
		if len(members) != 3 {
			t.Fatalf("%s sees %d members after forged ops", n.ID(), len(members))
		}
		for _, m := range members {
			if (m.PeerID == b.ID() || m.PeerID == c.ID()) && m.Role != group.RoleMember {
				t.Fatal("a forged or future-dated promote took")
			}
		}
	}
	if wa.Distinct() != 0 {
		t.Fatal("a stored a non-member's message")
	}
	// The group still works.
	if _, err := c.GroupService().Send(bg, gid, history.Draft{Text: "still fine"}); err != nil {
		t.Fatal(err)
	}
	wa.Wait(1, 30*time.Second)
	// One reject is a stray in a race as far as a can tell: b, a member,
	// keeps its standing (and its mesh links).
	checkScores(t, nodes)
}

// TestGroupMessageIDsCannotBeTaken: member b publishes a message of its
// own that carries the ID of member a's message. Every member rejects it,
// whether it comes by gossip, from a mailbox or by pull, and a's message
// keeps its ID everywhere, at d too, which was away and is handed the
// forgery before anything else.
func TestGroupMessageIDsCannotBeTaken(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 4)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	evA := nodetest.Events(t, a)
	dHome, dID := d.Home(), d.ID()
	d.Close()
	nodetest.WaitPeerEvent(t, evA, node.EventPeerDisconnected, dID)

	wb, wc := watchGroup(t, b, gid), watchGroup(t, c, gid)
	m, err := a.GroupService().Send(bg, gid, history.Draft{Text: "the victim's words"})
	if err != nil {
		t.Fatal(err)
	}
	wb.Wait(1, 30*time.Second)
	wc.Wait(1, 30*time.Second)

	// b saw the ID on gossip and publishes its own message under it.
	rejA, rejC := group.Rejects(a.GroupService()), group.Rejects(c.GroupService())
	topic, env := group.ForgeMessage(b.GroupService(), gid, m.ID, "the attacker's words")
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := group.PublishTopic(ctx, b.GroupService(), gid, topic); err != nil {
		t.Fatal(err)
	}
	waitRejects(t, a, rejA+1)

	// d comes back; a mailbox hands it the forgery first, then it catches
	// up from the members, b included (which serves the forgery again).
	d = nodetest.Start(t, nodetest.Options{Home: dHome})
	wd := watchGroup(t, d, gid)
	if err := d.GroupService().ReceiveParked(bg, [][]byte{env}); err != nil {
		t.Fatal(err)
	}
	// (A pull that runs meanwhile may count a rejection too.)
	if got := group.Rejects(d.GroupService()); got < 1 || group.Has(d.GroupService(), gid, b.ID(), 1) {
		t.Fatalf("d rejected %d and holds %s: the mailbox's forgery was taken", got, group.Heads(d.GroupService(), gid))
	}
	for _, n := range []*node.Node{b, a, c} {
		if !d.Chat().Online(n.ID()) {
			nodetest.Connect(t, d, n)
		}
	}
	wd.Wait(1, 30*time.Second)
	waitRejects(t, d, 2) // the mailbox's copy, and b's on a pull

	// b's next message shows a gap where the forgery is to a member that
	// gossip did not bring it to: c pulls it from b and rejects it then.
	// Either way each member stores the new message and not the forgery.
	wa := watchGroup(t, a, gid)
	if _, err := b.GroupService().Send(bg, gid, history.Draft{Text: "b again"}); err != nil {
		t.Fatal(err)
	}
	wa.Wait(1, 30*time.Second)
	wc.Wait(2, 30*time.Second)
	wd.Wait(2, 30*time.Second)
	waitRejects(t, c, rejC+1)
	if !group.Has(d.GroupService(), gid, b.ID(), 2) || group.Has(d.GroupService(), gid, b.ID(), 1) {
		t.Fatalf("d holds of b: %s; want 2, not the forgery (1)", group.Heads(d.GroupService(), gid))
	}
	for _, n := range nodes[:3] {
		if got := historyCount(t, n, gid); got != 2 {
			t.Fatalf("%s holds %d group messages, want 2", n.ID(), got)
		}
	}
	for _, n := range []*node.Node{a, b, c, d} {
		got, err := n.Chat().GetMessage(bg, m.ID)
		if err != nil || got.From != a.ID() || got.Text != "the victim's words" || got.Group != gid {
			t.Fatalf("%s: message %s is %+v (%v), want a's", n.ID(), m.ID, got, err)
		}
		if hits, _ := n.GroupService().Search(bg, "attacker", gid, 10); len(hits) != 0 {
			t.Fatalf("%s stored the forgery: %+v", n.ID(), hits[0])
		}
	}
	if got := historyCount(t, d, gid); got != 2 {
		t.Fatalf("d holds %d group messages, want 2", got)
	}
}

// TestGroupGraylistsFlooders: a non-member that floods a group's topic
// with forged messages, and a member that floods it with messages that
// do not decrypt, pay for it with their score: the members graylist them
// within a handful of messages and drop what they send next without
// validating it, while the honest members keep their standing with each
// other and the group keeps working.
func TestGroupGraylistsFlooders(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	stranger := nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, stranger, a)
	wa, wc := watchGroup(t, a, gid), watchGroup(t, c, gid)

	forged := func(i int) []byte {
		return group.ForgeEnvelope(stranger.GroupService(), gid, fmt.Sprintf("let me in %d", i))
	}
	n := floodUntilGraylisted(t, stranger, a, gid, forged)
	t.Logf("a graylisted the stranger after %d forged messages", n)
	floodIgnored(t, stranger, a, gid, forged)

	// A member that sends messages sealed with a key of its own (they do
	// not decrypt). A member that only floods the mesh loses its mesh
	// links soon (score < 0) and with them its audience; this one goes
	// past the mesh, straight to the members, as a modified node could.
	group.LeaveTopic(b.GroupService(), gid)
	// Off it b stays, whatever pulls (that bring nothing new) it makes:
	// back on it, b would publish into a mesh that pruned it, reaching
	// nobody, and the flood would prove nothing.
	if err := group.Pull(bg, b.GroupService(), gid, a.ID()); err != nil {
		t.Fatal(err)
	}
	if group.Subscribed(b.GroupService(), gid) {
		t.Fatal("b is back on the group's topic after a pull that brought nothing new")
	}
	garbage := func(i int) []byte { return group.ForgeEnvelope(b.GroupService(), gid, fmt.Sprintf("garbage %d", i)) }
	n = floodUntilGraylisted(t, b, a, gid, garbage)
	t.Logf("a graylisted member b after %d undecryptable messages", n)
	nodetest.Eventually(t, 10*time.Second, "c graylists b", func() bool { return group.Graylisted(c.GroupService(), b.ID()) })
	floodIgnored(t, b, a, gid, garbage)

	// a and c still talk, and think well of each other.
	if _, err := c.GroupService().Send(bg, gid, history.Draft{Text: "still fine"}); err != nil {
		t.Fatal(err)
	}
	wa.Wait(1, 30*time.Second)
	if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: "indeed"}); err != nil {
		t.Fatal(err)
	}
	wc.Wait(1, 30*time.Second)
	checkScores(t, []*node.Node{a, c})
}

// floodUntilGraylisted has from publish invalid messages (bad(i)) on a
// group's topic, each once to rejected the one before, until to
// graylists from; it returns how many that took.
func floodUntilGraylisted(t *testing.T, from, to *node.Node, gid string, bad func(int) []byte) int {
	t.Helper()
	const most = 20
	for i := range most {
		if group.Graylisted(to.GroupService(), from.ID()) {
			return i
		}
		before := group.Rejects(to.GroupService())
		publishRaw(t, from, gid, bad(i))
		nodetest.Eventually(t, 10*time.Second, "a reject or the graylist", func() bool {
			return group.Rejects(to.GroupService()) > before || group.Graylisted(to.GroupService(), from.ID())
		})
	}
	score, _ := group.Score(to.GroupService(), from.ID())
	t.Fatalf("%s does not graylist %s after %d invalid messages (score %v)", to.ID(), from.ID(), most, score)
	return 0
}

// floodIgnored has from, graylisted by to, publish more invalid messages
// and checks that to validates none of them. To know that to has seen
// them all, from then leaves a probe topic: to handles a peer's RPCs in
// order, and a graylisted peer's subscriptions still count.
func floodIgnored(t *testing.T, from, to *node.Node, gid string, bad func(int) []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	probe := "/meshtalk/test/probe"
	pt, err := group.RawTopic(from.GroupService(), probe)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := pt.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 10*time.Second, "to sees from on the probe topic", func() bool {
		return slices.Contains(group.RawTopicPeers(to.GroupService(), probe), from.ID())
	})
	before := group.Rejects(to.GroupService())
	const more = 50
	for i := range more {
		publishRaw(t, from, gid, bad(1000+i))
	}
	// from's own copy of a message published after them: those went out
	// to to first.
	if err := pt.Publish(ctx, []byte("probe")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Next(ctx); err != nil {
		t.Fatal(err)
	}
	sub.Cancel()
	nodetest.Eventually(t, 10*time.Second, "to sees from leave the probe topic", func() bool {
		return !slices.Contains(group.RawTopicPeers(to.GroupService(), probe), from.ID())
	})
	if err := pt.Close(); err != nil {
		t.Fatal(err)
	}
	// One may have been on its way into validation as the score fell.
	if got := group.Rejects(to.GroupService()) - before; got > 1 {
		t.Fatalf("%s validated %d of %d messages from %s, which it graylists", to.ID(), got, more, from.ID())
	}
	if !group.Graylisted(to.GroupService(), from.ID()) {
		t.Fatalf("%s no longer graylists %s", to.ID(), from.ID())
	}
	// from published past the mesh, straight to to (had from been on the
	// topic, its mesh would have carried them, to nobody).
	if slices.Contains(group.RawTopicPeers(to.GroupService(), group.Topic(gid)), from.ID()) {
		t.Fatalf("%s is on the group's topic: its flood went to its mesh, not to %s", from.ID(), to.ID())
	}
}

func publishRaw(t *testing.T, from *node.Node, gid string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := group.PublishTopic(ctx, from.GroupService(), gid, data); err != nil {
		t.Fatal(err)
	}
}

// checkScores checks that no node holds anything against another: honest
// members are never penalised, however busy the group was.
func checkScores(t *testing.T, nodes []*node.Node) {
	t.Helper()
	for _, x := range nodes {
		for _, y := range nodes {
			if x == y {
				continue
			}
			nodetest.Eventually(t, 10*time.Second, "a score", func() bool {
				_, ok := group.Score(x.GroupService(), y.ID())
				return ok
			})
			if score, _ := group.Score(x.GroupService(), y.ID()); score < 0 {
				t.Errorf("%s scores the honest %s %v", x.ID(), y.ID(), score)
			}
		}
	}
}

func waitRejects(t *testing.T, n *node.Node, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for group.Rejects(n.GroupService()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s rejected %d, want %d", n.ID(), group.Rejects(n.GroupService()), want)
		}
		<-tick.C
	}
}

// groupMailbox stands in for the relay's mailbox.
type groupMailbox struct {
	mu     sync.Mutex
	held   map[peer.ID][][]byte
	parked chan struct{}
	down   atomic.Bool // not Ready: a relay client logged in to none
	// stall, when set, holds every ParkGroup until it is closed, whatever
	// its context (a relay that hangs), after a signal on stalled.
	stall, stalled chan struct{}
}

func (m *groupMailbox) Ready() bool { return !m.down.Load() }

func (m *groupMailbox) ParkGroup(_ context.Context, members []peer.ID, envs [][]byte) (map[peer.ID]peer.ID, error) {
	if m.stall != nil {
		select {
		case m.stalled <- struct{}{}:
		default:
		}
		<-m.stall
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	parked := map[peer.ID]peer.ID{}
	for _, p := range members {
		m.held[p] = append(m.held[p], envs...)
		parked[p] = p // the relay: any ID will do
	}
	// One signal an envelope: the node parks whatever waits at a moment
	// in one call.
	for range envs {
		m.parked <- struct{}{}
	}
	return parked, nil
}

func (m *groupMailbox) take(p peer.ID) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.held[p]
	delete(m.held, p)
	return out
}

// TestGroupMailboxSeam: messages parked for a member that is offline
// reach it once, whether the mailbox or catch-up brings them first; one
// sent while the mailbox cannot take it is not parked, and catch-up
// brings it.
func TestGroupMailboxSeam(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	mb := &groupMailbox{held: map[peer.ID][][]byte{}, parked: make(chan struct{}, 100)}
	a.GroupService().SetMailbox(mb)
	evA := nodetest.Events(t, a)
	home, bID := b.Home(), b.ID()
	b.Close()
	nodetest.WaitPeerEvent(t, evA, node.EventPeerDisconnected, bID)
	mb.down.Store(true)
	sendTexts(t, a, gid, "while the mailbox is down", 1)
	downSeq := group.Seq(a.GroupService(), gid, a.ID())
	mb.down.Store(false)
	const parked = 5
	sendTexts(t, a, gid, "parked", parked)
	for range parked {
		select {
		case <-mb.parked:
		case <-time.After(30 * time.Second):
			t.Fatal("not parked")
		}
	}
	held := mb.take(bID)
	if len(held) != parked {
		t.Fatalf("the mailbox holds %d for b, want %d", len(held), parked)
	}
	for _, e := range held {
		if group.ParkedSeq(e) == downSeq {
			t.Fatalf("message %d was parked while the mailbox could not take it", downSeq)
		}
	}
	b = nodetest.Start(t, nodetest.Options{Home: home})
	wb := watchGroup(t, b, gid)
	if err := b.GroupService().ReceiveLetter(bg, a.ID(), held); err != nil { // a stands for the relay
		t.Fatal(err)
	}
	wb.Wait(parked, 30*time.Second)
	// Catch-up from a brings the one message not parked, and nothing
	// twice.
	nodetest.Connect(t, b, a)
	if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: "after"}); err != nil {
		t.Fatal(err)
	}
	wb.Wait(parked+2, 30*time.Second)
	if got := historyCount(t, b, gid); got != parked+2 {
		t.Fatalf("b holds %d", got)
	}
	// Each message's trace says how it came: the parked ones through
	// the relay's mailbox, the others from a member.
	page, err := b.GroupService().History(bg, gid, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Messages {
		tr, err := b.Chat().Trace(bg, m.ID)
		if err != nil || len(tr.Hops) == 0 || tr.Hops[0].Event != history.HopReceived || tr.Hops[0].At.IsZero() {
			t.Fatalf("the trace of %q: %+v, %v", m.Text, tr, err)
		}
		if mailbox := strings.HasPrefix(m.Text, "parked"); mailbox != (tr.Hops[0].Path == history.PathMailbox && tr.Hops[0].Relay == a.ID()) {
			t.Errorf("%q came %+v", m.Text, tr.Hops[0])
		}
	}
}

// TestGroupAddRenameLeave: an admin adds a friend directly, renames the
// group (every member sees it), and a member who leaves gets a new epoch
// behind it.
func TestGroupAddRenameLeave(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	c := nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, c)
	evC := nodetest.Events(t, c)
	if _, err := a.GroupService().Add(bg, gid, c.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evC, group.EventUpdate, func(d any) bool { e := d.(group.UpdateEvent); return e.ID == gid && e.Op == "join" })
	if _, err := b.GroupService().Add(bg, gid, c.ID()); !errors.Is(err, group.ErrNotAdmin) {
		t.Fatalf("a member that is not an admin adds: %v", err)
	}
	evB := nodetest.Events(t, b)
	name := "crew two"
	if _, err := a.GroupService().Rename(bg, gid, &name, nil); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, group.EventUpdate, func(d any) bool { e := d.(group.UpdateEvent); return e.Op == group.OpRename && e.Name == name })
	nodetest.WaitEventData(t, evC, group.EventUpdate, func(d any) bool { e := d.(group.UpdateEvent); return e.Op == group.OpRename && e.Name == name })
	if info, err := c.GroupService().Get(bg, gid); err != nil || !strings.EqualFold(info.Name, "Crew Two") {
		t.Fatalf("the new name on c: %+v %v", info, err)
	}

	e0 := epochOf(t, b, gid)
	if err := c.GroupService().Leave(bg, gid); err != nil {
		t.Fatal(err)
	}
	// The admin starts a new epoch; b gets its key.
	waitEpoch(t, b, gid, e0+1)
	if info, _ := c.GroupService().Get(bg, gid); info.Status != group.StatusLeft {
		t.Fatalf("c after leaving: %+v", info)
	}
	if members, _ := a.GroupService().Members(bg, gid); len(members) != 2 {
		t.Fatalf("a sees %d members", len(members))
	}
}

// TestGroupKickedWhileAway: a member removed while offline learns it
// from the log when it comes back, and gets no key or message after.
func TestGroupKickedWhileAway(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, c := nodes[0], nodes[2]
	home, cID := c.Home(), c.ID()
	evA := nodetest.Events(t, a)
	c.Close()
	nodetest.WaitPeerEvent(t, evA, node.EventPeerDisconnected, cID)
	if err := a.GroupService().Kick(bg, gid, cID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: "without c"}); err != nil {
		t.Fatal(err)
	}
	c = nodetest.Start(t, nodetest.Options{Home: home})
	evC := nodetest.Events(t, c)
	wc := watchGroup(t, c, gid)
	nodetest.Connect(t, c, a)
	nodetest.WaitEventData(t, evC, group.EventUpdate, func(d any) bool {
		e := d.(group.UpdateEvent)
		return e.Op == group.OpRemove && e.Target == cID && e.Status == group.StatusRemoved
	})
	if wc.Distinct() != 0 {
		t.Fatal("the removed member got a message sent after its removal")
	}
}

// TestGroupLeaveLearnedFromTheLeaver: a member leaves while the others
// are away, so its publication reaches nobody; a member that comes back
// learns of the leave from the leaver itself.
func TestGroupLeaveLearnedFromTheLeaver(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	cHome := c.Home()
	a.Close()
	c.Close()
	if err := b.GroupService().Leave(bg, gid); err != nil {
		t.Fatal(err)
	}
	c = nodetest.Start(t, nodetest.Options{Home: cHome})
	nodetest.Connect(t, c, b)
	nodetest.Eventually(t, 30*time.Second, "C learns that B left", func() bool {
		members, err := c.GroupService().Members(bg, gid)
		if err != nil {
			return false
		}
		for _, m := range members {
			if m.PeerID == b.ID() {
				return false
			}
		}
		return true
	})
}

// TestGroupLeaveRekeyedWithoutAdmin: a member leaves while the only admin
// is away; another member starts the new epoch, and the leaver cannot read
// what is sent after.
func TestGroupLeaveRekeyedWithoutAdmin(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	evC := nodetest.Events(t, c)
	a.Close()
	nodetest.WaitPeerEvent(t, evC, node.EventPeerDisconnected, a.ID())
	e0 := epochOf(t, c, gid)
	if err := b.GroupService().Leave(bg, gid); err != nil {
		t.Fatal(err)
	}
	waitEpoch(t, c, gid, e0+1)
	if _, err := c.GroupService().Send(bg, gid, history.Draft{Text: "after b left"}); err != nil {
		t.Fatal(err)
	}
	seq := group.Seq(c.GroupService(), gid, c.ID())
	if _, err := group.TryDecrypt(bg, c.GroupService(), b.GroupService(), gid, c.ID(), seq); err == nil {
		t.Fatal("the member who left decrypts a message sent after it left")
	}
}

// TestGroupKeylessEpochRekeyed: an admin starts an epoch and keeps its
// key to itself; another admin starts the next one, and the group talks
// again.
func TestGroupKeylessEpochRekeyed(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	if _, err := a.GroupService().Promote(bg, gid, b.ID()); err != nil {
		t.Fatal(err)
	}
	// b forges its op on the log as b holds it: b, too, must hold the
	// promotion, or the op takes the promotion's place and is not b's
	// next.
	for _, n := range []*node.Node{b, c} {
		nodetest.Eventually(t, 30*time.Second, "b is an admin to "+n.ID().String(), func() bool {
			members, _ := n.GroupService().Members(bg, gid)
			for _, m := range members {
				if m.PeerID == b.ID() {
					return m.Role == group.RoleAdmin
				}
			}
			return false
		})
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	e0 := epochOf(t, c, gid)
	if err := group.PublishTopic(ctx, b.GroupService(), gid, group.ForgeOp(b.GroupService(), gid, group.OpRekey, "", false)); err != nil {
		t.Fatal(err)
	}
	// Epoch e0+1 is b's, keyless; a starts the next and hands c its key.
	waitEpoch(t, c, gid, e0+2)
}

// TestGroupGapPullDroppedOnceFilled: a pull that a gap asked for is not
// made when gossip has filled every gap by the time it is due; a member
// that still lacks a message pulls it (TestGroupBurstExactlyOnce).
func TestGroupGapPullDroppedOnceFilled(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	wb := watchGroup(t, b, gid)
	if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: "no gap"}); err != nil {
		t.Fatal(err)
	}
	wb.Wait(1, 30*time.Second)
	// The pulls that joining and connecting asked for are made first: a
	// gap pull due with one of them is not needless.
	nodetest.Eventually(t, 30*time.Second, "b's pulls made", func() bool { return group.PullsIdle(b.GroupService()) })
	pulled := group.Pulled(b.GroupService())
	group.GapPull(b.GroupService(), gid, a.ID())
	nodetest.Eventually(t, 10*time.Second, "the needless gap pull dropped", func() bool {
		return group.GapPullsDropped(b.GroupService()) == 1
	})
	if got := group.Pulled(b.GroupService()); got != pulled {
		t.Fatalf("%d messages pulled, want %d", got, pulled)
	}
}

// TestGroupParkTracePerMember: a group message parked for a member away
// says so in its trace, under that member, with the relay that holds it.
func TestGroupParkTracePerMember(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	mb := &groupMailbox{held: map[peer.ID][][]byte{}, parked: make(chan struct{}, 100)}
	a.GroupService().SetMailbox(mb)
	evA := nodetest.Events(t, a)
	bID := b.ID()
	b.Close()
	nodetest.WaitPeerEvent(t, evA, node.EventPeerDisconnected, bID)
	m, err := a.GroupService().Send(bg, gid, history.Draft{Text: "for b, parked"})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, "the parked hop", func() bool {
		tr, err := a.Chat().Trace(bg, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		hops := tr.Members[bID]
		return len(hops) == 1 && hops[0].Event == history.HopParked && hops[0].Relay == bID && hops[0].Peer == bID
	})
	// A clean stop finds nothing left in the park queue.
	if parked, left := a.GroupService().DrainParker(bg); parked != 0 || left != 0 {
		t.Fatalf("drain: %d parked, %d left", parked, left)
	}
}

// TestDrainParkerBoundedWhileAParkHangs: a clean stop drains the park
// queue within its bound even while a park hangs on the relay, and says
// what it left queued.
func TestDrainParkerBoundedWhileAParkHangs(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	mb := &groupMailbox{held: map[peer.ID][][]byte{}, parked: make(chan struct{}, 100),
		stall: make(chan struct{}), stalled: make(chan struct{}, 1)}
	t.Cleanup(func() { close(mb.stall) }) // before the nodes close
	a.GroupService().SetMailbox(mb)
	evA := nodetest.Events(t, a)
	bID := b.ID()
	b.Close()
	nodetest.WaitPeerEvent(t, evA, node.EventPeerDisconnected, bID)
	send := func(text string) {
		t.Helper()
		if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	send("stuck at the relay")
	select {
	case <-mb.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the parker did not park within 30s")
	}
	send("queued behind it")
	nodetest.Eventually(t, 10*time.Second, "the second message in the park queue", func() bool { return group.ParkQueued(a.GroupService()) == 1 })
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	type drained struct{ parked, left int }
	done := make(chan drained, 1)
	go func() { p, l := a.GroupService().DrainParker(ctx); done <- drained{p, l} }()
	select {
	case d := <-done:
		if d.parked != 0 || d.left != 1 {
			t.Fatalf("DrainParker: %d parked, %d left; want 0 and 1", d.parked, d.left)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DrainParker waited for the park that hangs, past its 300ms")
	}
}

// TestGroupLostTailRefresh: the last messages of an author that gossip
// lost, with nothing after them to show a gap and no connect or join to
// ask for a pull, arrive by the periodic refresh pull.
func TestGroupLostTailRefresh(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 2)
	a, b := nodes[0], nodes[1]
	wb := watchGroup(t, b, gid, a)
	if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: "heard"}); err != nil {
		t.Fatal(err)
	}
	wb.Wait(1, 30*time.Second)
	nodetest.Eventually(t, 30*time.Second, "b's pulls made", func() bool { return group.PullsIdle(b.GroupService()) })
	// b stops hearing the topic, as a member does whose mesh is
	// re-forming: what a publishes now reaches b by no gossip, and b
	// stays connected to a.
	group.LeaveTopic(b.GroupService(), gid)
	nodetest.Eventually(t, 30*time.Second, "b gone from a's topic", func() bool { return group.TopicPeers(a.GroupService(), gid) == 0 })
	for i := range 3 {
		if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: fmt.Sprintf("lost tail %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	group.SetRefresh(b.GroupService(), 200*time.Millisecond)
	wb.Wait(4, 30*time.Second)
}

// TestGroupThroughRelayOnly: two members that reach each other only
// through a relay (neither listens on anything: a relayed connection is
// libp2p's "limited" one, on which gossipsub opens no stream) hear each
// other's messages at once, forwarded, and not only by the refresh pull
// (off here) or a pull for a gap.
func TestGroupThroughRelayOnly(t *testing.T) {
	relay := nodetest.Start(t, nodetest.Options{Role: node.RoleRelay})
	relayAddr := nodetest.Addr(t, relay)
	hidden := func() *node.Node {
		n := nodetest.Start(t, nodetest.Options{Configure: func(c *node.Config) {
			c.Network.Listen = []string{}
			c.Discovery.Relays = []string{relayAddr}
			c.Discovery.Reachability = "private"
		}})
		nodetest.WaitAddrs(t, n.Host(), 30*time.Second, func(a ma.Multiaddr) bool { return strings.Contains(a.String(), "/p2p-circuit") })
		group.SetRefresh(n.GroupService(), -1)
		return n
	}
	a, b := hidden(), hidden()
	gid := nodetest.JoinGroup(t, []*node.Node{a, b}, "relayed")
	nodetest.WaitMembers(t, []*node.Node{a, b}, gid, 2)
	for _, n := range []*node.Node{a, b} {
		for _, c := range n.Host().Network().Conns() {
			if !c.Stat().Limited && c.RemotePeer() != relay.ID() {
				t.Fatalf("%s has an unlimited connection to %s: the members are not relayed", n.ID(), c.RemotePeer())
			}
		}
	}
	wa, wb := watchGroup(t, a, gid, b), watchGroup(t, b, gid, a)
	for i := range 3 {
		if _, err := a.GroupService().Send(bg, gid, history.Draft{Text: fmt.Sprintf("from a %d", i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.GroupService().Send(bg, gid, history.Draft{Text: fmt.Sprintf("from b %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	wb.Wait(3, 10*time.Second)
	wa.Wait(3, 10*time.Second)
	if p := group.Pulled(a.GroupService()) + group.Pulled(b.GroupService()); p != 0 {
		t.Fatalf("%d messages came by pull, want all by gossip", p)
	}
}
