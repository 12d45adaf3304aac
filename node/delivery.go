package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history"
)

// MessageTrace is how a message travelled: its hops, and a group
// message's hops per member (history/trace.go).
type MessageTrace = history.Trace

// Hop is one step of a message's trace.
type Hop = history.Hop

// MessageInfo returns message id (direct or of a group) with its trace,
// and the name of each member it has hops of.
func (n *Node) MessageInfo(ctx context.Context, id string) (*MessageTrace, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	if id, err = n.ResolveMessage(ctx, id); err != nil {
		return nil, err
	}
	t, err := c.Trace(ctx, id)
	if err != nil {
		return nil, err
	}
	// A group message's state is its members' receipts, as in its
	// history.
	if t.Message.Group != "" && n.groups != nil {
		if err := n.groups.WithReceipts(ctx, t.Message); err != nil {
			return nil, err
		}
	}
	for p := range t.Members {
		if t.Names == nil {
			t.Names = history.ByPeer[string]{}
		}
		t.Names[p] = n.NameOf(ctx, p)
	}
	return t, nil
}

// StopReport is what a clean stop parked in relay mailboxes before the
// node went down, and what stayed queued.
type StopReport struct {
	// Parked is how many direct messages and receipts were parked now.
	Parked int `json:"parked"`
	// GroupParked is how many group messages were parked now.
	GroupParked int `json:"group_parked"`
	// Queued is what stayed queued without a mailbox copy, by friend.
	Queued map[peer.ID]int `json:"queued,omitempty"`
	// GroupQueued is how many group messages stayed in the park queue.
	GroupQueued int `json:"group_queued,omitempty"`
	// TimedOut: [chat] park_on_stop ran out first.
	TimedOut bool `json:"timed_out,omitempty"`
	// Relay: the node is a relay, which has no messages of its own to
	// park (what its mailboxes hold stays there).
	Relay bool `json:"relay,omitempty"`
}

// String says it in a sentence, for the log and the stop output.
func (r StopReport) String() string {
	if r.Relay {
		return "a relay: its mailboxes and file drops keep what they hold"
	}
	s := fmt.Sprintf("parked %d direct and %d group messages for friends away", r.Parked, r.GroupParked)
	queued := 0
	for _, q := range r.Queued {
		queued += q
	}
	if queued > 0 || r.GroupQueued > 0 {
		s += fmt.Sprintf("; still queued: %d direct (for %d friend(s)) and %d group messages", queued, len(r.Queued), r.GroupQueued)
		if r.TimedOut {
			s += " (park_on_stop ran out)"
		}
	}
	return s
}

// ParkOnStop deposits everything still queued for friends and group
// members away in their relay mailboxes, bounded by [chat] park_on_stop:
// the first step of a clean stop (Close does not do it, so that a test
// or an embedding program chooses). It says what it parked and what
// stayed queued; the node keeps running.
// Only the first call parks; later ones return its report.
func (n *Node) ParkOnStop(ctx context.Context) StopReport {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	if n.stopped != nil {
		return *n.stopped
	}
	r := n.parkOnStop(ctx)
	n.stopped = &r
	return r
}

// Stop parks what is queued (ParkOnStop) and asks whoever runs the node
// to stop it (RequestStop): `meshtalk stop`, of a personal node or a
// relay.
func (n *Node) Stop(ctx context.Context) (*StopReport, error) {
	r := n.ParkOnStop(ctx)
	n.RequestStop()
	return &r, nil
}

func (n *Node) parkOnStop(ctx context.Context) StopReport {
	r := StopReport{Relay: n.role == RoleRelay}
	if n.chat == nil {
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.Chat.ParkOnStop))
	defer cancel()
	r.GroupParked, r.GroupQueued = n.groups.DrainParker(ctx)
	cr := n.chat.ParkAll(ctx)
	r.Parked = cr.Parked
	if len(cr.Queued) > 0 {
		r.Queued = cr.Queued
	}
	r.TimedOut = ctx.Err() != nil
	n.log.Info("parked on stop", "parked", r.Parked, "group_parked", r.GroupParked,
		"queued", len(r.Queued), "group_queued", r.GroupQueued, "timed_out", r.TimedOut)
	return r
}

// RequestStop asks whoever runs the node (meshtalk run) to stop it
// cleanly: StopRequested is closed.
func (n *Node) RequestStop() {
	n.stopOnce.Do(func() { close(n.stopReq) })
}

// StopRequested is closed once a stop was requested through the API.
func (n *Node) StopRequested() <-chan struct{} { return n.stopReq }
