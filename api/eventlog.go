package api

import (
	"context"
	"sync"

	"github.com/meshtalk/meshtalk/node"
)

// eventLogSize is how many recent events the API keeps for clients that
// reconnect: a web page that lost its stream for a moment resumes from
// the last event ID it saw instead of re-reading everything.
const eventLogSize = 1024

// numbered is an event with its ID in this run of the API.
type numbered struct {
	id uint64
	ev node.Event
}

// eventLog numbers the node's events (1, 2, ...) and keeps the last
// eventLogSize of them. Publishing never blocks: a subscriber that falls
// a whole buffer behind is cut off, as node.Events does.
type eventLog struct {
	mu     sync.Mutex
	ring   []numbered // the last events, oldest first
	next   uint64     // the ID the next event gets
	gapAt  uint64     // events before this ID may have been lost
	subs   map[chan numbered]struct{}
	closed bool
}

func newEventLog() *eventLog {
	return &eventLog{next: 1, subs: make(map[chan numbered]struct{})}
}

// follow copies the node's events into the log until ctx ends or the
// node stops. Should the log itself fall behind the node's hub and be cut
// off, it subscribes again and marks the gap: clients that were following
// are cut off too, and those that resume from before the gap are told to
// re-read state.
//
// The caller makes the first subscription (subscribeHub) before it serves
// anyone, so that no event published after a client subscribed is missed.
func (l *eventLog) follow(ctx context.Context, hub *node.Events, events <-chan node.Event, cancel func()) {
	defer l.close()
	for {
		stop := context.AfterFunc(ctx, cancel)
		n := 0
		for ev := range events {
			l.publish(ev)
			n++
		}
		stop()
		cancel()
		if ctx.Err() != nil || n == 0 {
			return // the hub closed: the node stopped
		}
		l.gap()
		events, cancel = subscribeHub(hub)
	}
}

// subscribeHub subscribes to the node's events with a big buffer: being
// cut off there costs every client a re-read.
func subscribeHub(hub *node.Events) (<-chan node.Event, func()) { return hub.Subscribe(4096) }

// gap records that events were lost at this point.
func (l *eventLog) gap() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gapAt = l.next
	for ch := range l.subs {
		delete(l.subs, ch)
		close(ch)
	}
}

func (l *eventLog) publish(ev node.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := numbered{id: l.next, ev: ev}
	l.next++
	if len(l.ring) == eventLogSize {
		copy(l.ring, l.ring[1:])
		l.ring = l.ring[:eventLogSize-1]
	}
	l.ring = append(l.ring, n)
	for ch := range l.subs {
		select {
		case ch <- n:
		default:
			delete(l.subs, ch)
			close(ch)
		}
	}
}

func (l *eventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for ch := range l.subs {
		delete(l.subs, ch)
		close(ch)
	}
}

// subscribe answers the events after ID after (0: none of the past) that
// the log still holds, a channel of those that come next, and whether the
// past is complete (false when events after after were already dropped:
// the client must re-read state). cancel ends the subscription.
func (l *eventLog) subscribe(after uint64, buffer int) (past []numbered, complete bool, ch <-chan numbered, cancel func()) {
	c := make(chan numbered, buffer)
	l.mu.Lock()
	defer l.mu.Unlock()
	complete = true
	if after > 0 {
		if after >= l.next {
			// An ID from an earlier run of the node.
			complete = false
		} else if (len(l.ring) > 0 && l.ring[0].id > after+1) || after < l.gapAt {
			complete = false
		}
		for _, n := range l.ring {
			if n.id > after && after < l.next {
				past = append(past, n)
			}
		}
	}
	if l.closed {
		close(c)
		return past, complete, c, func() {}
	}
	l.subs[c] = struct{}{}
	return past, complete, c, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.subs[c]; ok {
			delete(l.subs, c)
			close(c)
		}
	}
}
