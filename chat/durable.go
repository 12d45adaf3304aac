package chat

import (
	"context"
	"time"
)

// A round that has fewer items than the round before it waits for the
// rest, lingerPerItem for each item of that round, at most maxLinger:
// under load the senders a sync answered come back spread over a
// millisecond or two (each is scheduled in turn beside the streams, the
// couriers and the store), and a round cut at 500 µs split them over two
// syncs. BenchmarkDM pipelined, in turns on 2 cores: 0.0167 syncs a
// message at a fixed 500 µs, 0.0105 at 2 ms, and 3-6% more messages a
// second over 26 pairs (7 pairs: 42.6-51.0% of raw libp2p, 3 of 7 under
// 45%, against 46.3-53.0%), though a single run swings by more than that
// on this shared machine. Scaling by the round keeps a round of two, a
// message and a receipt say, from holding the lone message after it for
// the whole 2 ms; the one-at-a-time p99 was the same either way.
const (
	lingerPerItem = 10 * time.Microsecond
	maxLinger     = 2 * time.Millisecond
)

// linger is how long a round waits for more items after the round before
// it had prev.
func linger(prev int) time.Duration { return min(maxLinger, time.Duration(prev)*lingerPerItem) }

// A round of a group commit is full at maxRound items or maxRoundBytes
// of message bytes.
const (
	maxRound      = 256
	maxRoundBytes = 4 << 20
)

// groupCommit is how the chat service makes what it acknowledges durable:
// the outbox (Send) and every receiving DM stream (handleDM) use it. It
// gathers the items that arrive on in into rounds and hands each round to
// write, which writes it in one batch without syncing. A second goroutine
// syncs whatever rounds are written under one sync, and a third hands
// each synced round to done, in order, with write's result and error, or
// the sync's error. A round is written while the one before it syncs, and
// a sync starts while the rounds of the one before are handed to done:
// done wakes each sender of a round, and waking the 180 senders of a
// round under load took 0.6-0.8 ms, which the next sync waited for
// (BenchmarkDM pipelined, 3 pairs in turns on a quiet machine: 47,000-
// 48,900 messages a second against 44,100-46,900). groupCommit returns
// once in is closed and every round is done, or ctx is done.
//
// A sync is costly next to a write, so a round waits for as many items as
// the round before it had, for at most linger of that many: the senders
// that the last sync answered are then on their way back, and one sync
// covers all of them instead of splitting them over two. A lone sender,
// once its round was one item, never waits.
func groupCommit[T, R any](ctx context.Context, in <-chan T, size func(T) int,
	write func([]T) (R, error), sync func() error, done func([]T, R, error)) {
	toSync := make(chan written[T, R], 4)
	// Rounds done with come back to be filled again: a round of 256
	// received messages grown by appending was a twelfth of what a DM
	// allocated. done must not keep its round.
	spare := make(chan []T, 8)
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		syncRounds(toSync, sync, done, spare)
	}()
	defer func() {
		close(toSync)
		<-synced
	}()

	prev := 0
	timer := time.NewTimer(maxLinger)
	timer.Stop()
	for {
		var first T
		select {
		case <-ctx.Done():
			return
		case item, ok := <-in:
			if !ok {
				return
			}
			first = item
		}
		var round []T
		select {
		case round = <-spare:
		default:
			round = make([]T, 0, max(prev, 1))
		}
		round, bytes := append(round, first), size(first)
		open, lingering := true, false
		full := func() bool { return len(round) >= maxRound || bytes >= maxRoundBytes }
	gather:
		for !full() {
			var next T
			select {
			case next, open = <-in:
			default:
				if len(round) >= prev {
					break gather
				}
				if !lingering {
					lingering = true
					timer.Reset(linger(prev))
				}
				select {
				case next, open = <-in:
				case <-timer.C:
					break gather
				}
			}
			if !open {
				break gather
			}
			round = append(round, next)
			bytes += size(next)
		}
		timer.Stop()
		result, err := write(round)
		toSync <- written[T, R]{round, result, err}
		prev = len(round)
		if !open {
			return
		}
	}
}

// written is a round of a group commit, written and not yet synced, with
// what write returned.
type written[T, R any] struct {
	round  []T
	result R
	err    error
}

// syncRounds syncs the rounds that come on toSync, all that are written
// by then under one sync, and hands each synced round to done, in order,
// on a goroutine of its own, so that the next sync does not wait for
// done; then it gives the round back on spare. It returns once toSync is
// closed and every round is done.
func syncRounds[T, R any](toSync <-chan written[T, R], sync func() error, done func([]T, R, error), spare chan<- []T) {
	toDone := make(chan []written[T, R], 4)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for ws := range toDone {
			for _, w := range ws {
				done(w.round, w.result, w.err)
				clear(w.round) // it holds no item for the garbage collector
				select {
				case spare <- w.round[:0]:
				default:
				}
			}
		}
	}()
	defer func() {
		close(toDone)
		<-finished
	}()
	for w := range toSync {
		ws := []written[T, R]{w}
	more:
		for {
			select {
			case w, ok := <-toSync:
				if !ok {
					break more
				}
				ws = append(ws, w)
			default:
				break more
			}
		}
		err := sync()
		for i := range ws {
			if ws[i].err == nil {
				ws[i].err = err
			}
		}
		toDone <- ws
	}
}
