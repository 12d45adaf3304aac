package chat

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history"
)

// A message shown in the history is its own outbox entry: the acked
// mark of its conversation (ackedKey) says up to where every message
// sent to the peer is settled, so that a send writes only the message
// (its record and ID index) and an ack round one key, not a key per
// message put on send and deleted on ack.
//
// The mark holds two clock readings: base, one below the first message
// sent under it, and hlc, the mark itself. A message sent to the peer,
// in the history, above base:
//   - at or below hlc is settled: delivered, or failed (its /state/);
//   - above hlc is in the outbox, unless its /state/ says otherwise (a
//     message acked while one before it waits, or a failed one).
//
// Messages at or below base (sent before the mark existed) and messages
// not in the history (receipts) have /outbox/ entries, deleted once
// settled. A conversation without a mark has only /outbox/ entries.

// ackedKey is the acked mark of the conversation with a peer.
func ackedKey(pstr string) datastore.Key { return datastore.RawKey("/acked/" + pstr) }

// ackedMark is one conversation's acked mark, and the messages above it
// still in the outbox.
type ackedMark struct {
	// settling is held from a settle's writes to its commit; mu guards
	// the fields.
	settling sync.Mutex
	mu       sync.Mutex
	stored   bool   // the mark is in the datastore (or in the batch being committed)
	base     uint64 // below it, the outbox is /outbox/ entries
	hlc      uint64 // the mark: settled up to here
	top      uint64 // the highest reading sent above base
	pending  []outMsg

	once sync.Once
	err  error
}

// outMsg is a message above the mark, in the outbox.
type outMsg struct {
	hlc uint64
	id  string
}

// entry reports whether m, sent to the peer, has an /outbox/ entry.
func (a *ackedMark) entry(m *wireMessage) bool {
	return !m.Shown() || !a.stored || m.HLC <= a.base
}

// has reports whether an outgoing message above base is in the outbox.
func (a *ackedMark) has(hlc uint64, id string) bool {
	i, ok := findOut(a.pending, hlc)
	return ok && a.pending[i].id == id
}

// findOut finds a clock reading in pending (in order).
func findOut(pending []outMsg, hlc uint64) (int, bool) {
	return slices.BinarySearchFunc(pending, hlc, func(o outMsg, h uint64) int { return cmp.Compare(o.hlc, h) })
}

// remove takes a message out of pending and returns the mark that
// follows: below the first message still pending, else the highest sent.
func (a *ackedMark) remove(hlc uint64, id string) uint64 {
	switch i, ok := findOut(a.pending, hlc); {
	case !ok || a.pending[i].id != id:
	case i == 0:
		a.pending = a.pending[1:] // the usual: acks come in order
	default:
		a.pending = slices.Delete(a.pending, i, i+1)
	}
	if len(a.pending) > 0 {
		return max(a.hlc, a.pending[0].hlc-1)
	}
	return max(a.hlc, a.top)
}

func (a *ackedMark) value() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, a.base), a.hlc)
}

// ackedMark returns p's mark, read once from the datastore with the
// messages above it.
func (s *Service) ackedMark(ctx context.Context, p peer.ID) (*ackedMark, error) {
	a := loadOrNew[ackedMark](&s.ackedMarks, p)
	a.once.Do(func() { a.err = s.loadAckedMark(ctx, p, a) })
	if a.err != nil {
		// Not cached: the next use tries again.
		s.ackedMarks.CompareAndDelete(p, a)
		return nil, a.err
	}
	return a, nil
}

func (s *Service) loadAckedMark(ctx context.Context, p peer.ID, a *ackedMark) error {
	pstr := history.PeerString(p)
	b, err := s.ds.Get(ctx, ackedKey(pstr))
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		return nil
	case err != nil:
		return err
	case len(b) != 16:
		return fmt.Errorf("chat: stored %s is damaged", ackedKey(pstr))
	}
	a.stored, a.base, a.hlc = true, binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	a.top = a.hlc
	// The outbox above the mark: the conversation's newest messages,
	// read from its end down to the mark.
	err = s.scanAbove(ctx, pstr, a.hlc, func(hlc uint64, id string, m *Message) error {
		if !m.Outgoing {
			return nil
		}
		a.top = max(a.top, hlc)
		if _, err := s.ds.Get(ctx, history.StateKey(id)); err == nil {
			return nil // settled out of order
		} else if !errors.Is(err, datastore.ErrNotFound) {
			return err
		}
		a.pending = append(a.pending, outMsg{hlc, id})
		return nil
	})
	slices.Reverse(a.pending)
	return err
}

// scanAbove calls fn with the messages of conversation pstr above clock
// reading low, newest first.
func (s *Service) scanAbove(ctx context.Context, pstr string, low uint64, fn func(hlc uint64, id string, m *Message) error) error {
	q := query.Query{Prefix: history.MsgPrefix(pstr), Orders: []query.Order{query.OrderByKeyDescending{}}}
	return history.Scan(ctx, s.ds, q, func(key string, value []byte) (bool, error) {
		hlc, id, ok := history.ParseMsgKey(key)
		if !ok {
			return false, fmt.Errorf("chat: stored key %s is damaged", key)
		}
		if hlc <= low {
			return false, nil
		}
		m, err := s.hist.Decode(key, value)
		if err != nil {
			return false, err
		}
		return true, fn(hlc, id, m)
	})
}

// pendingAbove reads the messages of p's outbox above its mark, oldest
// first.
func (s *Service) pendingAbove(ctx context.Context, p peer.ID) ([]wireMessage, error) {
	a, err := s.ackedMark(ctx, p)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.pending) == 0 {
		a.mu.Unlock()
		return nil, nil
	}
	want := slices.Clone(a.pending)
	a.mu.Unlock()
	var out []wireMessage
	err = s.scanAbove(ctx, history.PeerString(p), want[0].hlc-1, func(hlc uint64, id string, m *Message) error {
		if i, ok := findOut(want, hlc); !ok || want[i].id != id || !m.Outgoing {
			return nil
		}
		w := wireMessage{ID: m.ID, SentAtMS: m.Time.UnixMilli(), HLC: m.HLC, Content: m.Content}
		if err := checkWire(&w); err != nil {
			return fmt.Errorf("chat: stored %s is damaged: %w", id, err)
		}
		out = append(out, w)
		return nil
	})
	slices.Reverse(out)
	return out, err
}

// pending reports whether an outgoing direct message is still in the
// outbox (the history's Config.Pending), the history having found no
// other state for it.
func (s *Service) pending(ctx context.Context, m *Message) (bool, error) {
	a, err := s.ackedMark(ctx, m.To)
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	w := wireMessage{ID: m.ID, HLC: m.HLC, Content: m.Content}
	entry, has := a.entry(&w), a.has(m.HLC, m.ID)
	a.mu.Unlock()
	if entry {
		return s.ds.Has(ctx, outboxKey(history.PeerString(m.To), m.HLC, m.ID))
	}
	return has, nil
}

// settleWrites writes into b what settles msgs to p (state delivered or
// failed) and returns what to do once b is committed. It holds p's
// settling until then, so that marks are committed in order; sends to p
// go on meanwhile. hops (nil: none) gives a message's trace records,
// which are written before hops is called again (it may reuse its
// slice).
func (s *Service) settleWrites(ctx context.Context, b datastore.Batch, p peer.ID, msgs []*wireMessage, state, reason string, hops func(*wireMessage) []history.Hop) (done func(committed bool), err error) {
	a, err := s.ackedMark(ctx, p)
	if err != nil {
		return nil, err
	}
	a.settling.Lock()
	a.mu.Lock()
	old := a.hlc
	removed := make([]outMsg, 0, len(msgs))
	undo := func() {
		a.hlc = old
		a.pending = insertOut(a.pending, removed...)
	}
	err = a.settle(ctx, b, history.PeerString(p), msgs, state, reason, hops, &removed)
	if err != nil {
		undo()
	}
	a.mu.Unlock()
	if err != nil {
		a.settling.Unlock()
		return nil, err
	}
	return func(committed bool) {
		if !committed {
			a.mu.Lock()
			undo()
			a.mu.Unlock()
		}
		a.settling.Unlock()
	}, nil
}

// settle writes into b what settles msgs (a.mu held), and takes those
// above the mark out of pending (into removed).
func (a *ackedMark) settle(ctx context.Context, b datastore.Batch, pstr string, msgs []*wireMessage, state, reason string, hops func(*wireMessage) []history.Hop, removed *[]outMsg) error {
	hlc := a.hlc
	for _, m := range msgs {
		if a.entry(m) {
			if err := b.Delete(ctx, outboxKey(pstr, m.HLC, m.ID)); err != nil {
				return err
			}
		} else if a.has(m.HLC, m.ID) {
			hlc = a.remove(m.HLC, m.ID)
			*removed = append(*removed, outMsg{m.HLC, m.ID})
			if state == MsgDelivered && m.HLC > hlc {
				// Acked while a message before it waits: the mark
				// cannot pass it yet.
				if err := b.Put(ctx, history.StateKey(m.ID), []byte(MsgDelivered)); err != nil {
					return err
				}
			}
		}
		if !m.Shown() {
			continue
		}
		if hops != nil {
			for _, h := range hops(m) {
				if err := history.PutHop(ctx, b, m.ID, h); err != nil {
					return err
				}
			}
		}
		if state == MsgFailed {
			if err := b.Put(ctx, history.StateKey(m.ID), []byte(MsgFailed+":"+reason)); err != nil {
				return err
			}
		}
	}
	if hlc == a.hlc {
		return nil
	}
	a.hlc = hlc
	return b.Put(ctx, ackedKey(pstr), a.value())
}

// insertOut puts messages back into pending, in order.
func insertOut(pending []outMsg, msgs ...outMsg) []outMsg {
	for _, o := range msgs {
		if i, ok := findOut(pending, o.hlc); !ok {
			pending = slices.Insert(pending, i, o)
		}
	}
	return pending
}

// enterOutbox records in b that m, just stamped, is in p's outbox: an
// /outbox/ entry, or, for a message in the history, nothing beside the
// message (the mark, the first time). undo takes it back if b is not
// committed.
func (s *Service) enterOutbox(ctx context.Context, b datastore.Batch, p peer.ID, w *wireMessage, shown bool, wb []byte) (undo func(), err error) {
	pstr := history.PeerString(p)
	if !shown {
		return func() {}, b.Put(ctx, outboxKey(pstr, w.HLC, w.ID), wb)
	}
	a, err := s.ackedMark(ctx, p)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	first := !a.stored
	if first {
		// Everything sent before is in /outbox/ entries: the clock
		// reads above all of it.
		a.stored, a.base, a.hlc, a.top = true, w.HLC-1, w.HLC-1, w.HLC-1
		if err := b.Put(ctx, ackedKey(pstr), a.value()); err != nil {
			a.stored = false
			return nil, err
		}
	}
	if w.HLC <= a.top {
		return nil, fmt.Errorf("chat: clock reading %d is not above %d, the last sent to %s", w.HLC, a.top, p)
	}
	oldTop := a.top
	a.pending = append(a.pending, outMsg{w.HLC, w.ID})
	a.top = w.HLC
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if i, ok := findOut(a.pending, w.HLC); ok {
			a.pending = slices.Delete(a.pending, i, i+1)
		}
		a.top = oldTop
		if first {
			a.stored = false
		}
	}, nil
}
