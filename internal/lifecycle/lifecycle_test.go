package lifecycle

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

func TestCloseWaitsAndRefuses(t *testing.T) {
	g := New()
	started := make(chan struct{})
	var done atomic.Bool
	if !g.Go(func() {
		close(started)
		<-g.Context().Done()
		done.Store(true)
	}) {
		t.Fatal("Go refused before Close")
	}
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("goroutine did not start")
	}
	g.Close()
	if !done.Load() {
		t.Fatal("Close returned before the goroutine ended")
	}
	if g.Go(func() { t.Error("ran after Close") }) {
		t.Fatal("Go accepted after Close")
	}
	if g.Enter() {
		t.Fatal("Enter accepted after Close")
	}
	if !g.Closing() {
		t.Fatal("Closing is false after Close")
	}
	g.Close() // idempotent
}

func TestWatch(t *testing.T) {
	bus := eventbus.NewBus()
	em, err := bus.Emitter(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	sub, err := bus.Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		t.Fatal(err)
	}
	g := New()
	got := make(chan network.Reachability, 1)
	if !g.Watch(sub, func(e any) { got <- e.(event.EvtLocalReachabilityChanged).Reachability }) {
		t.Fatal("Watch refused before Close")
	}
	if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityPublic}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r != network.ReachabilityPublic {
			t.Fatalf("got %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event did not arrive")
	}
	g.Close()
	if _, open := <-sub.Out(); open {
		t.Fatal("the subscription is open after Close")
	}

	late, err := bus.Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		t.Fatal(err)
	}
	if g.Watch(late, func(any) { t.Error("ran after Close") }) {
		t.Fatal("Watch accepted after Close")
	}
	if _, open := <-late.Out(); open {
		t.Fatal("a refused subscription is left open")
	}
}
