// Package lifecycle runs the goroutines and stream handlers of one
// long-lived service so that the service's Close stops every one of them.
//
// A service makes one Group in its constructor, starts each goroutine with
// Go and wraps each stream handler with Handler; its Close removes its
// stream handlers and then calls the Group's Close, which cancels the
// Group's context, resets the streams being handled and waits. Once Close
// has begun nothing new starts: a wait group must not grow while someone
// waits on it.
package lifecycle

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
)

// Group is the goroutines of one service. The zero Group is not usable;
// make one with New.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

// New returns a running Group. Its context is not derived from a
// constructor's context: a service lives until its Close, not until the
// call that made it returns.
func New() *Group {
	g := &Group{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g
}

// Context is cancelled when Close begins. Goroutines started with Go
// return when it is.
func (g *Group) Context() context.Context { return g.ctx }

// Closing reports whether Close has begun.
func (g *Group) Closing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// Go runs f in a goroutine that Close waits for. It reports false, and
// runs nothing, once Close has begun.
func (g *Group) Go(f func()) bool {
	if !g.Enter() {
		return false
	}
	go func() {
		defer g.Leave()
		f()
	}()
	return true
}

// Watch hands each event of sub to f, in a goroutine that Close waits
// for, until Close begins or sub ends; then it closes sub. It reports
// false, and closes sub at once, once Close has begun. f runs on one
// goroutine, one event at a time, and must not block for long: an event
// bus waits for a subscriber that does not read.
func (g *Group) Watch(sub event.Subscription, f func(any)) bool {
	ok := g.Go(func() {
		defer sub.Close()
		for {
			select {
			case <-g.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				f(e)
			}
		}
	})
	if !ok {
		sub.Close()
	}
	return ok
}

// Enter counts the caller's own goroutine as one that Close waits for,
// until it calls Leave; false (and nothing to leave) once Close has begun.
// It is for work that must start synchronously, such as a download whose
// caller wants its first error.
func (g *Group) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	return true
}

// Leave ends what Enter began.
func (g *Group) Leave() { g.wg.Done() }

// Handler wraps a stream handler so that Close waits for it and resets
// its stream; a stream that arrives once Close has begun is reset at once.
func (g *Group) Handler(h network.StreamHandler) network.StreamHandler {
	return func(st network.Stream) {
		if !g.Enter() {
			st.Reset()
			return
		}
		defer g.Leave()
		stop := context.AfterFunc(g.ctx, func() { st.Reset() })
		defer stop()
		h(st)
	}
}

// Close cancels the context, stops new goroutines from starting and waits
// for those running. It is idempotent and safe to call concurrently; every
// call returns once all of them have stopped.
func (g *Group) Close() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}
