package node

import (
	"sync"
	"time"
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
