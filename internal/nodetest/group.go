package nodetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/node"
)

// GroupOf starts n nodes; the first creates a group and the others join
// it with one invite code. It returns once every node sees every member
// (WaitMembers).
func GroupOf(t testing.TB, n int) ([]*node.Node, string) {
	t.Helper()
	nodes := make([]*node.Node, n)
	for i := range nodes {
		nodes[i] = Start(t, Options{})
	}
	gid := JoinGroup(t, nodes, "crew")
	WaitMembers(t, nodes, gid, n)
	return nodes, gid
}

// JoinGroup has the first of nodes create a group called name and the
// others join it with one invite code, and returns the group's ID. The
// joins are done when it returns; the others may not know all members
// yet.
func JoinGroup(t testing.TB, nodes []*node.Node, name string) string {
	t.Helper()
	ctx := context.Background()
	g, err := nodes[0].GroupService().Create(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := nodes[0].GroupService().Invite(ctx, g.ID, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range nodes[1:] {
		if _, err := m.GroupService().Join(ctx, code); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	return g.ID
}

// WaitMembers waits until every node sees want members and its topic
// peers, so that gossip reaches everyone.
func WaitMembers(t testing.TB, nodes []*node.Node, gid string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		waitMembersOf(t, n, gid, want, deadline)
	}
	// Everyone connected to everyone: the keepers dial the members.
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b && !a.Chat().Online(b.ID()) {
				Connect(t, a, b)
			}
		}
	}
}

// waitMembersOf waits until n sees want members, looking again at each of
// its events; its subscription ends with the wait.
func waitMembersOf(t testing.TB, n *node.Node, gid string, want int, deadline time.Time) {
	t.Helper()
	ctx := context.Background()
	ch, cancel := n.Events().Subscribe(8192)
	defer cancel()
	timeout := time.After(time.Until(deadline))
	for {
		members, err := n.GroupService().Members(ctx, gid)
		if err != nil {
			t.Fatal(err)
		}
		if len(members) == want {
			return
		}
		select {
		case _, ok := <-ch:
			if !ok { // cut off for falling behind: a fresh subscription
				ch, cancel = n.Events().Subscribe(8192)
				defer cancel()
			}
		case <-timeout:
			t.Fatalf("%s sees %d members, want %d", n.ID(), len(members), want)
		}
	}
}

// GroupWatch counts the group messages a node announces, by ID, from the
// moment it is made.
type GroupWatch struct {
	// Diagnose, if set, adds to Wait's failure what the test can tell of
	// why messages are missing.
	Diagnose func() string

	gid   string
	t     testing.TB
	n     *node.Node
	mu    sync.Mutex
	seen  map[string]int
	dups  atomic.Int64
	count chan struct{}
	done  chan struct{}
}

// WatchGroup counts the messages of group gid that n receives (not those
// it sends) until the test ends.
func WatchGroup(t testing.TB, n *node.Node, gid string) *GroupWatch {
	ch, cancel := n.Events().Subscribe(1 << 16)
	w := &GroupWatch{gid: gid, t: t, n: n, seen: map[string]int{}, count: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range ch {
			if ev.Type != group.EventMessage {
				continue
			}
			m := ev.Data.(*history.Message)
			if m.Group != gid || m.Outgoing {
				continue
			}
			w.mu.Lock()
			w.seen[m.ID]++
			if w.seen[m.ID] > 1 {
				w.dups.Add(1)
			}
			w.mu.Unlock()
			select { // a wake-up: Wait counts seen itself
			case w.count <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// Wait waits until n distinct messages arrived (more fails the test, and
// so does a message announced twice).
func (w *GroupWatch) Wait(n int, timeout time.Duration) {
	w.t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		got := len(w.seen)
		w.mu.Unlock()
		if got >= n {
			if got > n {
				w.t.Fatalf("%s: %d group messages, want %d", w.n.ID(), got, n)
			}
			if d := w.dups.Load(); d > 0 {
				w.t.Fatalf("%s: %d messages announced twice", w.n.ID(), d)
			}
			return
		}
		select {
		case <-w.count:
		case <-deadline:
			diag := ""
			if w.Diagnose != nil {
				diag = w.Diagnose()
			}
			w.t.Fatalf("%s: %d of %d group messages within %v%s", w.n.ID(), got, n, timeout, diag)
		}
	}
}

// Distinct is the number of distinct messages so far.
func (w *GroupWatch) Distinct() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}
