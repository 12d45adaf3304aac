package api

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
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
	// The loop above may have published another test.first after the one
	// it saw: a marker after all of them gives the base ID (l.next, read
	// now, could come before that one is logged; it failed so under load).
	hub.Publish(node.Event{Type: "test.base"})
	var base uint64
	for base == 0 {
		select {
		case n := <-live:
			if n.ev.Type == "test.base" {
				base = n.id
			}
		case <-deadline:
			t.Fatal("the marker did not reach the log")
		}
	}
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

// TestEventStreamResume: over HTTP, events carry IDs and a reconnect with
// Last-Event-ID replays the ones missed, then goes on live.
func TestEventStreamResume(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	s, err := New(context.Background(), n, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, copied, stop := s.events.subscribe(0, 16)
	defer stop()
	for _, typ := range []string{"test.one", "test.two", "test.three"} {
		n.Events().Publish(node.Event{Type: typ})
	}
	// The log has them once its follower copied them.
	for range 3 {
		select {
		case <-copied:
		case <-time.After(10 * time.Second):
			t.Fatal("the event log did not get the events")
		}
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	req.Header.Set("Last-Event-ID", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var got []string
	for len(got) < 4 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if strings.HasPrefix(line, "id: ") || strings.HasPrefix(line, "event: ") {
			got = append(got, strings.TrimSpace(line))
		}
		if len(got) == 4 {
			break
		}
	}
	want := []string{"id: 2", "event: test.two", "id: 3", "event: test.three"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("resumed stream %v, want %v", got, want)
	}
	// Then live.
	n.Events().Publish(node.Event{Type: "test.four"})
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(line) == "id: 4" {
			break
		}
	}
	// An ID from another run asks the client to re-read.
	req.Header.Set("Last-Event-ID", "999")
	resp2, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	r2 := bufio.NewReader(resp2.Body)
	r2.ReadString('\n')
	r2.ReadString('\n')
	if line, _ := r2.ReadString('\n'); strings.TrimSpace(line) != "event: reset" {
		t.Fatalf("a stale ID got %q, want event: reset", line)
	}
}
