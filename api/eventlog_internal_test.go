package api

import (
	"context"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/node"
)

func TestEventLogResume(t *testing.T) {
	hub := node.NewEvents()
	l := newEventLog()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	events, unsubscribe := subscribeHub(hub)
	go func() { l.follow(ctx, hub, events, unsubscribe); close(done) }()
	defer func() { cancel(); <-done }()
	_, _, live, stop := l.subscribe(0, 16)
	defer stop()
	// follow subscribes in its goroutine: publish until the first arrives.
	deadline := time.After(5 * time.Second)
	for first := false; !first; {
		hub.Publish(node.Event{Type: "test.first"})
		select {
		case n := <-live:
			first = n.ev.Type == "test.first"
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatal("no event reached the log")
		}
	}
	base := l.next - 1
	for _, typ := range []string{"a", "b", "c"} {
		hub.Publish(node.Event{Type: typ})
	}
	for got := 0; got < 3; {
		select {
		case <-live:
			got++
		case <-deadline:
			t.Fatal("events did not reach the log")
		}
	}
	past, complete, _, stop2 := l.subscribe(base+1, 16)
	defer stop2()
	if !complete || len(past) != 2 || past[0].ev.Type != "b" || past[1].ev.Type != "c" || past[0].id != base+2 {
		t.Fatalf("resume after %d: complete %v, %d events %+v; want b and c", base+1, complete, len(past), past)
	}
	if _, complete, _, stop3 := l.subscribe(base+1000, 16); complete {
		t.Fatal("an ID this run never sent resumed as complete")
	} else {
		stop3()
	}
	for range eventLogSize + 5 {
		l.publish(node.Event{Type: "x"})
	}
	if past, complete, _, stop4 := l.subscribe(base+1, 16); complete || len(past) != eventLogSize {
		t.Fatalf("resume from a dropped ID: complete %v, %d events; want incomplete, %d", complete, len(past), eventLogSize)
	} else {
		stop4()
	}
}
