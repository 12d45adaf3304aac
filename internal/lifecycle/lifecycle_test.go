package lifecycle

import (
	"sync/atomic"
	"testing"
	"time"
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
