package node

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/group"
)

// Event is one entry of the node's event stream (the local API serves it
// at /api/v1/events). Type names are dotted, "<area>.<what>"; Data is
// JSON-encodable and its shape is fixed per type (docs/api.md).
type Event struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Data any       `json:"data,omitempty"`
}

// Event types published by the node itself.
const (
	EventPeerConnected    = "peer.connected"
	EventPeerDisconnected = "peer.disconnected"
	EventReachability     = "node.reachability"
)

// ReachabilityEventData is the Data of node.reachability events.
type ReachabilityEventData struct {
	// Reachability is "public", "private" or "unknown".
	Reachability string `json:"reachability"`
}

// PeerEventData is the Data of peer.* events.
type PeerEventData struct {
	PeerID string `json:"peer_id"`
}

// Events fans events out to subscribers. Publishing never blocks: a
// subscriber that falls a whole buffer behind is cut off (its channel is
// closed) so that it can reconnect and re-read state, rather than silently
// miss events or hold the node up.
type Events struct {
	mu     sync.Mutex
	subs   map[chan Event]struct{}
	closed bool
}

// NewEvents returns an empty hub.
func NewEvents() *Events { return &Events{subs: make(map[chan Event]struct{})} }

// Subscribe returns a channel of events published from now on, and a
// function that ends the subscription. The channel is closed when the
// subscription ends, overflows or the hub closes.
func (e *Events) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		close(ch)
		return ch, func() {}
	}
	e.subs[ch] = struct{}{}
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.subs[ch]; ok {
			delete(e.subs, ch)
			close(ch)
		}
	}
}

// Watched reports whether anyone subscribes: an event nobody watches
// need not be made.
func (e *Events) Watched() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs) > 0
}

// Publish sends ev to every subscriber. A zero Time is set to now.
func (e *Events) Publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
			delete(e.subs, ch)
			close(ch)
		}
	}
}

// Close ends every subscription.
func (e *Events) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for ch := range e.subs {
		delete(e.subs, ch)
		close(ch)
	}
}

// emit is the one way a service's event reaches the node: every service's
// configuration has it as its Emit. It publishes the event on the event
// stream and hands the events that the node itself acts on to
// runReactions, so that a service never waits for the node's reaction.
func (n *Node) emit(typ string, data any) {
	if n.events.Watched() {
		// Names cost lookups: only for someone watching.
		n.events.Publish(Event{Type: typ, Data: n.named(typ, data)})
	}
	switch typ {
	// A group message's event is message.received too (group.EventMessage),
	// with a *history.Message (chat.Message): a group's pictures are
	// fetched like a friend's. This node's own messages need nothing.
	case chat.EventMessage:
		if m, _ := data.(*chat.Message); m != nil && !m.Outgoing {
			n.react.push(Event{Type: typ, Data: data})
		}
	case chat.EventFriendUpdate, chat.EventFriendRequest, group.EventUpdate:
		n.react.push(Event{Type: typ, Data: data})
	}
}

// named is an event's data as the event stream shows it: a message with
// its author's name and quote (a copy: the service's stays as it is), a
// friend's event with the friend's name beside the peer ID.
func (n *Node) named(typ string, data any) any {
	if !n.running.Load() {
		return data
	}
	ctx := context.Background()
	switch d := data.(type) {
	case *chat.Message:
		m := *d
		return n.present(ctx, &m)
	case chat.ContactEvent:
		if d.Name == "" {
			d.Name = n.NameOf(ctx, d.PeerID)
		}
		return d
	case chat.PresenceEvent:
		d.Name = n.NameOf(ctx, d.PeerID)
		return d
	}
	return data
}

// runReactions does what the node does on an event of its services: it
// fetches a received picture's original, tells the relays who its
// friends are, notes when a dropped file was delivered, and tells the
// sender of a dropped file that came before its offer that it is here.
func (n *Node) runReactions(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.react.wake:
		}
		for _, ev := range n.react.take() {
			switch ev.Type {
			case chat.EventMessage:
				m := ev.Data.(*chat.Message)
				n.autoFetch(m)
				if m.File != nil && !m.Outgoing && m.Group == "" {
					n.tellFetched(ctx, m.File.ID, m.From)
				}
			case chat.EventFriendUpdate, group.EventUpdate:
				// Who may leave mail on the relays follows friends and
				// group members.
				n.syncAllowList()
			case chat.EventFriendRequest:
				n.learnUserName(ctx, ev.Data.(chat.ContactEvent).PeerID)
			}
		}
	}
}

// reactions is an unbounded queue of events for runReactions: a burst of
// messages must neither block the service that emits them nor be dropped.
type reactions struct {
	mu   sync.Mutex
	q    []Event
	wake chan struct{} // made by New, capacity 1
}

func (r *reactions) push(ev Event) {
	r.mu.Lock()
	r.q = append(r.q, ev)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *reactions) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.q
	r.q = nil
	return q
}

// learnUserName asks the relays for the username of a peer that asked to
// be a friend, so that it can be answered by that name (friend accept
// NAME) and shown by it. Not knowing it is no error.
func (n *Node) learnUserName(ctx context.Context, p peer.ID) {
	if n.relayc == nil || !n.relayc.Ready() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n.relayc.Lookup(ctx, p.String(), "")
}
