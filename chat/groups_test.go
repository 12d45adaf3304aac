package chat_test

// Groups for the chat tests that need a group's messages (groups are
// package group's; their own tests are there).

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// groupWatch counts the group messages a node announces, by ID, from the
// moment it is made.
type groupWatch struct {
	gid   string
	t     *testing.T
	n     *node.Node
	mu    sync.Mutex
	seen  map[string]int
	dups  atomic.Int64
	count chan struct{}
	stop  func()
	done  chan struct{}
}

func watchGroup(t *testing.T, n *node.Node, gid string) *groupWatch {
	ch, cancel := n.Events().Subscribe(1 << 16)
	w := &groupWatch{gid: gid, t: t, n: n, seen: map[string]int{}, count: make(chan struct{}, 1<<16), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range ch {
			if ev.Type != chat.EventMessage {
				continue
			}
			m := ev.Data.(*chat.Message)
			if m.Group != gid || m.Outgoing {
				continue
			}
			w.mu.Lock()
			w.seen[m.ID]++
			if w.seen[m.ID] > 1 {
				w.dups.Add(1)
			}
			w.mu.Unlock()
			w.count <- struct{}{}
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// wait waits until n distinct messages arrived (more fails the test).
func (w *groupWatch) wait(n int, timeout time.Duration) {
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
			w.t.Fatalf("%s: %d of %d group messages within %v", w.n.ID(), got, n, timeout)
		}
	}
}

// groupOf starts n nodes, the first creates a group and the others join
// it with one invite code.
func groupOf(t *testing.T, n int) ([]*node.Node, string) {
	t.Helper()
	nodes := make([]*node.Node, n)
	for i := range nodes {
		nodes[i] = nodetest.Start(t, nodetest.Options{})
	}
	g, err := nodes[0].GroupService().Create(bg, "crew", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := nodes[0].GroupService().Invite(bg, g.ID, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range nodes[1:] {
		if _, err := m.GroupService().Join(bg, code); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	waitMembers(t, nodes, g.ID, n)
	return nodes, g.ID
}

// waitMembers waits until every node sees want members and its topic
// peers, so that gossip reaches everyone.
func waitMembers(t *testing.T, nodes []*node.Node, gid string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		ch := events(t, n)
		for {
			members, err := n.GroupService().Members(bg, gid)
			if err != nil {
				t.Fatal(err)
			}
			if len(members) == want {
				break
			}
			select {
			case <-ch:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%s sees %d members, want %d", n.ID(), len(members), want)
			}
		}
	}
	// Everyone connected to everyone: the keepers dial the members.
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b && !a.Chat().Online(b.ID()) {
				nodetest.Connect(t, a, b)
			}
		}
	}
}
