package chat

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// nothing is a groupCommit result that carries nothing.
type nothing = struct{}

func noSync() error { return nil }

// groupCommit hands every item to write once, in order, in rounds that
// respect the caps, passes write's result and error to done, and ends when
// in closes.
func TestGroupCommitRounds(t *testing.T) {
	in := make(chan int, 2*maxRound+10)
	for i := range cap(in) {
		in <- i
	}
	close(in)
	var got []int
	var rounds [][]int
	fail := errors.New("disk full")
	groupCommit(context.Background(), in, func(int) int { return 1 },
		func(round []int) (int, error) {
			rounds = append(rounds, slices.Clone(round))
			if len(rounds) == 2 {
				return 2, fail
			}
			return len(rounds), nil
		},
		noSync,
		func(round []int, n int, err error) {
			if (n == 2) != errors.Is(err, fail) {
				t.Errorf("round %d: done got %v", n, err)
			}
			got = append(got, round...)
		})
	if len(got) != cap(in) || !slices.IsSorted(got) {
		t.Fatalf("got %d items (sorted %v), want %d in order", len(got), slices.IsSorted(got), cap(in))
	}
	for _, r := range rounds {
		if len(r) > maxRound {
			t.Fatalf("a round of %d items, over %d", len(r), maxRound)
		}
	}
	if len(rounds) != 3 {
		t.Fatalf("%d rounds for %d waiting items, want 3", len(rounds), cap(in))
	}
}

// A sync error reaches done for every round it covered.
func TestGroupCommitSyncError(t *testing.T) {
	in := make(chan int, 3)
	in <- 1
	in <- 2
	in <- 3
	close(in)
	fail := errors.New("sync failed")
	n := 0
	groupCommit(context.Background(), in, func(int) int { return 1 },
		func([]int) (nothing, error) { return nothing{}, nil },
		func() error { return fail },
		func(round []int, _ nothing, err error) {
			n += len(round)
			if !errors.Is(err, fail) {
				t.Errorf("done got %v, want the sync's error", err)
			}
		})
	if n != 3 {
		t.Fatalf("done saw %d items, want 3", n)
	}
}

// A round also ends at maxRoundBytes.
func TestGroupCommitBytes(t *testing.T) {
	in := make(chan int, 8)
	for range 8 {
		in <- maxRoundBytes / 2
	}
	close(in)
	n := 0
	groupCommit(context.Background(), in, func(b int) int { return b },
		func(round []int) (nothing, error) {
			if len(round) != 2 {
				t.Errorf("a round of %d items of half the byte cap, want 2", len(round))
			}
			n++
			return nothing{}, nil
		}, noSync, func([]int, nothing, error) {})
	if n != 4 {
		t.Fatalf("%d rounds, want 4", n)
	}
}

// A lone sender, answered before it sends again, is not held for items
// that do not come, though the round before it was bigger: each of its
// items is written and done alone.
func TestGroupCommitLoneSender(t *testing.T) {
	in := make(chan int, 10)
	for i := range 10 {
		in <- i
	}
	rounds := make(chan []int, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		groupCommit(context.Background(), in, func(int) int { return 1 },
			func([]int) (nothing, error) { return nothing{}, nil }, noSync,
			func(round []int, _ nothing, _ error) { rounds <- slices.Clone(round) })
	}()
	if r := <-rounds; len(r) != 10 {
		t.Fatalf("first round %v, want the 10 waiting items", r)
	}
	for i := 10; i < 20; i++ {
		in <- i
		select {
		case r := <-rounds:
			if len(r) != 1 || r[0] != i {
				t.Fatalf("round %v, want [%d]", r, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("item %d was held waiting for more", i)
		}
	}
	close(in)
	<-finished
}

// A round waits for the rest of the round before it by how many that
// was: a round of two holds the lone item after it for microseconds, a
// full round for the whole maxLinger.
func TestLinger(t *testing.T) {
	for _, c := range []struct {
		prev int
		want time.Duration
	}{{0, 0}, {1, lingerPerItem}, {2, 2 * lingerPerItem}, {50, 50 * lingerPerItem}, {maxRound, maxLinger}, {10 * maxRound, maxLinger}} {
		if got := linger(c.prev); got != c.want {
			t.Errorf("linger(%d) = %v, want %v", c.prev, got, c.want)
		}
	}
	if linger(2) > 100*time.Microsecond {
		t.Errorf("a round of two holds the next for %v", linger(2))
	}
}

// Closing ctx ends groupCommit though in stays open.
func TestGroupCommitStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan int)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		groupCommit(ctx, in, func(int) int { return 1 }, func([]int) (nothing, error) { return nothing{}, nil },
			noSync, func([]int, nothing, error) {})
	}()
	in <- 1
	cancel()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("groupCommit did not stop with its context")
	}
}

// A round is synced while the round before it is still being handed to
// done: done wakes every sender of its round, and the next sync does not
// wait for that. Rounds still reach done in order.
func TestGroupCommitSyncsWhileDone(t *testing.T) {
	in := make(chan int)
	syncs := make(chan struct{}, 8)
	release := make(chan struct{})
	// A failed wait leaves no groupCommit behind: the first round's done
	// goes on, and in closes.
	releaseOnce, closeIn := sync.OnceFunc(func() { close(release) }), sync.OnceFunc(func() { close(in) })
	defer func() { releaseOnce(); closeIn() }()
	var got []int
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		groupCommit(context.Background(), in, func(int) int { return 1 },
			func(round []int) (nothing, error) { return nothing{}, nil },
			func() error { syncs <- struct{}{}; return nil },
			func(round []int, _ nothing, _ error) {
				if round[0] == 1 {
					<-release // done of the first round is slow
				}
				got = append(got, round...)
			})
	}()
	deadline := time.After(10 * time.Second)
	in <- 1
	select {
	case <-syncs:
	case <-deadline:
		t.Fatal("the first round was not synced")
	}
	in <- 2
	select {
	case <-syncs:
	case <-deadline:
		t.Fatal("the second round waited for the first one's done to be synced")
	}
	releaseOnce()
	closeIn()
	<-finished
	if !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("done got %v, want [1 2]", got)
	}
}
