package group_test

// Tests of issue 17 item 10: the op DAG heals forks. Members split by a
// partition (nodetest.Switchboard) act apart, then meet again.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// partitionedGroup starts n nodes on a switchboard in one group: the
// first creates it, the second is promoted to admin.
func partitionedGroup(t *testing.T, n int) ([]*node.Node, string, *nodetest.Switchboard) {
	t.Helper()
	sb := nodetest.NewSwitchboard()
	nodes := make([]*node.Node, n)
	for i := range nodes {
		nodes[i] = nodetest.Start(t, nodetest.Options{Switchboard: sb})
	}
	gid := nodetest.JoinGroup(t, nodes, "crew")
	nodetest.WaitMembers(t, nodes, gid, n)
	evs := make([]<-chan node.Event, n)
	for i, m := range nodes {
		evs[i] = nodetest.Events(t, m)
	}
	if _, err := nodes[0].GroupService().Promote(bg, gid, nodes[1].ID()); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs[1:] {
		nodetest.WaitEventData(t, ev, group.EventUpdate, func(d any) bool { return d.(group.UpdateEvent).Op == group.OpPromote })
	}
	return nodes, gid, sb
}

// memberIDs is who n holds as members of a group, sorted.
func memberIDs(n *node.Node, gid string) []peer.ID {
	ms, err := n.GroupService().Members(bg, gid)
	if err != nil {
		return nil
	}
	var out []peer.ID
	for _, m := range ms {
		out = append(out, m.PeerID)
	}
	slices.Sort(out)
	return out
}

// waitConverged waits until every node of in holds the members want, and
// all hold one epoch and its key (the same fingerprint) and the same ops.
func waitConverged(t *testing.T, in []*node.Node, gid string, want []*node.Node) {
	t.Helper()
	var ids []peer.ID
	for _, n := range want {
		ids = append(ids, n.ID())
	}
	slices.Sort(ids)
	describe := func() string {
		out := ""
		for _, n := range in {
			s := n.GroupService()
			out += fmt.Sprintf("\n  %s: members %d, key %s, ops %d, void %d", n.ID(), len(memberIDs(n, gid)), group.KeyPrint(s, gid), group.Ops(s, gid), group.Void(s, gid))
		}
		return out
	}
	ev := nodetest.Events(t, in[0])
	deadline := time.Now().Add(60 * time.Second)
	for {
		key := group.KeyPrint(in[0].GroupService(), gid)
		same := !strings.HasSuffix(key, ":none")
		for _, n := range in {
			s := n.GroupService()
			same = same && slices.Equal(memberIDs(n, gid), ids) && group.KeyPrint(s, gid) == key &&
				group.Ops(s, gid) == group.Ops(in[0].GroupService(), gid)
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the members did not converge in 60 s:%s", describe())
		}
		// The first node's events, or a look every half second: the
		// others change without it.
		select {
		case <-ev:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readableBy checks that a message author sends now reaches and opens at
// each of readers, and that none of outsiders can open it with any key
// it holds.
func readableBy(t *testing.T, author *node.Node, gid string, readers, outsiders []*node.Node) {
	t.Helper()
	evs := make([]<-chan node.Event, len(readers))
	for i, r := range readers {
		evs[i] = nodetest.Events(t, r)
	}
	m, err := author.GroupService().Send(bg, gid, history.Draft{Text: "after the merge"})
	if err != nil {
		t.Fatal(err)
	}
	// Gossip right after the heal may miss a peer whose mesh link is not
	// up yet (a lone message has no later one to show its loss): each
	// reader pulls from the author as well, as it would on its next
	// message.
	for i, r := range readers {
		if err := group.Pull(bg, r.GroupService(), gid, author.ID()); err != nil {
			t.Fatal(err)
		}
		nodetest.WaitEventData(t, evs[i], group.EventMessage, func(d any) bool { return d.(*history.Message).ID == m.ID })
	}
	seq := group.Seq(author.GroupService(), gid, author.ID())
	for _, o := range outsiders {
		if _, err := group.TryDecrypt(bg, author.GroupService(), o.GroupService(), gid, author.ID(), seq); err == nil {
			t.Fatalf("%s, no member, opens a message sent after the merge", o.ID())
		}
	}
}

// noPenalty checks that no node of in rejected anything since before
// (rejects by node; nil: not checked) and that each scores the others
// not below zero.
func noPenalty(t *testing.T, in []*node.Node, before map[peer.ID]int64) {
	t.Helper()
	for _, n := range in {
		if got := group.Rejects(n.GroupService()); before != nil && got != before[n.ID()] {
			t.Fatalf("%s rejected %d messages after the heal: a forwarder of the other branch was penalised", n.ID(), got-before[n.ID()])
		}
		// The scores are a snapshot a second old: a member that was
		// removed on this node's branch stood below zero until the merge.
		// A penalty for invalid messages lasts far longer (it decays over
		// ten minutes, scoreForget): a loaded machine gets a minute.
		for _, o := range in {
			nodetest.Eventually(t, 60*time.Second, fmt.Sprintf("%s scores %s at least 0", n.ID(), o.ID()), func() bool {
				score, ok := group.Score(n.GroupService(), o.ID())
				return !ok || score >= 0
			})
		}
	}
}

func rejectsOf(in []*node.Node) map[peer.ID]int64 {
	out := map[peer.ID]int64{}
	for _, n := range in {
		out[n.ID()] = group.Rejects(n.GroupService())
	}
	return out
}

// TestPartitionedAdminsConverge: two admins act while partitioned (a
// removes e on its side, b removes c on its), each side writes, then they
// meet: every member converges to the same members, epoch and key (b's
// epoch reached e, whom the order removed first, so a new one follows),
// a message sent then opens at every member and at neither removed one,
// and nobody was penalised for forwarding the other branch.
func TestPartitionedAdminsConverge(t *testing.T) {
	nodes, gid, sb := partitionedGroup(t, 5)
	a, b, c, d, e := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
	left, right := []*node.Node{a, c}, []*node.Node{b, d, e}
	sb.Split(t, left, right)
	if err := a.GroupService().Kick(bg, gid, e.ID()); err != nil {
		t.Fatal(err)
	}
	if err := b.GroupService().Kick(bg, gid, c.ID()); err != nil {
		t.Fatal(err)
	}
	// Each side writes in its epoch. Right after the split b's mesh may
	// be empty (its links were to a and c): gossipsub then hands a message
	// to nobody, and the heartbeat that grafts d and e leaves them out of
	// its gossip as mesh peers. A lone burst has no later message to show
	// its loss, so d pulls from b, as a member does on b's next message.
	wd := watchGroup(t, d, gid)
	sendTexts(t, b, gid, "right side", 2)
	if err := group.Pull(bg, d.GroupService(), gid, b.ID()); err != nil {
		t.Fatal(err)
	}
	wd.Wait(2, 60*time.Second)
	before := rejectsOf(nodes)
	sb.Heal(t, left, right)
	waitConverged(t, []*node.Node{a, b, d}, gid, []*node.Node{a, b, d})
	readableBy(t, a, gid, []*node.Node{b, d}, []*node.Node{c, e})
	noPenalty(t, []*node.Node{a, b, d}, before)
	for _, n := range []*node.Node{c, e} {
		nodetest.Eventually(t, 60*time.Second, "the removed member learns it", func() bool {
			info, err := n.GroupService().Get(bg, gid)
			return err == nil && info.Status == group.StatusRemoved
		})
	}
}

// TestRemovedAdminCannotUndoItsRemoval: while partitioned, a (the
// creator) removes b, and b removes a; after the heal a's removal stands
// at every member, whatever b's op's time: b's op is void, and the key
// is a's epoch's, which b never holds.
func TestRemovedAdminCannotUndoItsRemoval(t *testing.T) {
	nodes, gid, sb := partitionedGroup(t, 4)
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	left, right := []*node.Node{a, c}, []*node.Node{b, d}
	sb.Split(t, left, right)
	// b first, by the clock: time does not decide between admins.
	if err := b.GroupService().Kick(bg, gid, a.ID()); err != nil {
		t.Fatal(err)
	}
	if err := a.GroupService().Kick(bg, gid, b.ID()); err != nil {
		t.Fatal(err)
	}
	wc := watchGroup(t, c, gid)
	sendTexts(t, d, gid, "d on b's side", 1) // sealed with b's key: the forwarders are not penalised for it
	sendTexts(t, a, gid, "a on its side", 1)
	wc.Wait(1, 60*time.Second)
	before := rejectsOf(nodes)
	sb.Heal(t, left, right)
	waitConverged(t, []*node.Node{a, c, d}, gid, []*node.Node{a, c, d})
	for _, n := range []*node.Node{a, c, d} {
		if group.Void(n.GroupService(), gid) == 0 {
			t.Fatalf("%s holds no void op: b's removal of a counts", n.ID())
		}
	}
	nodetest.Eventually(t, 60*time.Second, "b learns it was removed", func() bool {
		info, err := b.GroupService().Get(bg, gid)
		return err == nil && info.Status == group.StatusRemoved
	})
	readableBy(t, c, gid, []*node.Node{a, d}, []*node.Node{b})
	noPenalty(t, []*node.Node{a, c, d}, before)
}

// TestEquivocatingAdminConverges: an admin hands two members two
// different rekeys on the same parents; once the members talk, every
// member holds both, in one order, with the same key, and thinks well of
// the others.
func TestEquivocatingAdminConverges(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, c, d := nodes[0], nodes[1], nodes[2]
	if err := group.Equivocate(bg, a.GroupService(), gid, [2]peer.ID{c.ID(), d.ID()}); err != nil {
		t.Fatal(err)
	}
	// c writes: d hears of c's branch by the message, and pulls it.
	sendTexts(t, c, gid, "c after the equivocation", 1)
	waitConverged(t, nodes, gid, nodes)
	readableBy(t, d, gid, []*node.Node{a, c}, nil)
	// c's message, sealed with the key of c's branch, may reach d before
	// d holds that branch: one reject then, which costs c less than its
	// standing as a member.
	noPenalty(t, nodes, nil)
}

// TestEnvelopeKeyHint: an envelope of a member sealed with another key of
// this node's epoch number, and named for it (the key hint), is what a
// branch this node has not heard of yet carries: the validator ignores it
// (and pulls), so that its forwarder pays nothing; so for one of a member
// this node's branch removed (the other may not have). One named for this
// node's key that does not open with it is junk: rejected; so is one of
// a peer that was never a member, whatever key it names.
func TestEnvelopeKeyHint(t *testing.T) {
	nodes, gid := nodetest.GroupOf(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	stranger := nodetest.Start(t, nodetest.Options{})
	if err := a.GroupService().Kick(bg, gid, c.ID()); err != nil {
		t.Fatal(err)
	}
	epoch := group.Epoch(a.GroupService(), gid)
	nodetest.Eventually(t, 30*time.Second, "b holds a's new epoch", func() bool {
		return group.KeyPrint(b.GroupService(), gid) == group.KeyPrint(a.GroupService(), gid)
	})
	removed := group.ForgeBranchEnvelopeAt(c.GroupService(), gid, epoch, "c on a branch that kept it")
	if got := group.Validate(a.GroupService(), gid, b.ID(), removed); got != pubsub.ValidationIgnore {
		t.Fatalf("an envelope of a removed member named for another key of the epoch: %v, want ignore", got)
	}
	forged := group.ForgeBranchEnvelopeAt(stranger.GroupService(), gid, epoch, "never a member")
	if got := group.Validate(a.GroupService(), gid, b.ID(), forged); got != pubsub.ValidationReject {
		t.Fatalf("an envelope of a stranger named for another key of the epoch: %v, want reject", got)
	}
	other := group.ForgeBranchEnvelope(b.GroupService(), gid, "sealed on a branch a has not heard of")
	if got := group.Validate(a.GroupService(), gid, b.ID(), other); got != pubsub.ValidationIgnore {
		t.Fatalf("an envelope named for another key of the epoch: %v, want ignore", got)
	}
	junk := group.ForgeEnvelope(b.GroupService(), gid, "junk")
	if got := group.Validate(a.GroupService(), gid, b.ID(), junk); got != pubsub.ValidationReject {
		t.Fatalf("an envelope named for the group's key that does not open: %v, want reject", got)
	}
}
