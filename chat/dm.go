package chat

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/chat/pb"
	"github.com/meshtalk/meshtalk/history"
	historypb "github.com/meshtalk/meshtalk/history/pb"
)

// Timing of the DM protocol.
const (
	// dmIdle closes a courier's stream after this long with nothing to
	// send and nothing in flight.
	dmIdle = 30 * time.Second
	// dmAckTimeout resets a stream whose oldest message waits this long
	// for its ack; the courier reconnects and resends.
	dmAckTimeout = 30 * time.Second
	// dmReadIdle ends a receiving stream that stays silent this long.
	dmReadIdle = 5 * time.Minute
)

// Send stores a message to friend p durably in the outbox and returns it
// (state queued); a courier delivers it when p is reachable, across
// restarts of either side, until p acks it.
func (s *Service) Send(ctx context.Context, p peer.ID, d Draft) (*Message, error) {
	if p == s.h.ID() {
		return nil, fmt.Errorf("%w: a message to yourself has no one to go to", ErrSelf)
	}
	switch friend, err := s.isFriend(ctx, p); {
	case err != nil:
		return nil, err
	case !friend:
		return nil, fmt.Errorf("%w: %s (send a friend request with `meshtalk friend add`)", ErrNotFriend, p)
	}
	content, err := d.Content()
	if err != nil {
		return nil, err
	}
	return s.enqueue(ctx, p, wireMessage{Content: content}, true)
}

// enqueue stores a message in the outbox (and in the history when shown
// is set), durably, and wakes the courier. It validates first, then hands
// the message to the committer, which stamps it and stores it together
// with whatever else is being sent at the moment.
func (s *Service) enqueue(ctx context.Context, p peer.ID, w wireMessage, shown bool) (*Message, error) {
	// A placeholder ID passes the check; the committer sets the real one.
	probe := w
	probe.ID = "00000000000000000000000000"
	if err := checkWire(&probe); err != nil {
		return nil, fmt.Errorf("chat: %w message: %s", ErrInvalid, strings.TrimPrefix(err.Error(), ErrBadFrame.Error()+": "))
	}
	return s.commit(ctx, &sendReq{p: p, w: w, shown: shown})
}

// commit hands req to the committer and waits until it is stored.
func (s *Service) commit(ctx context.Context, req *sendReq) (*Message, error) {
	req.done = make(chan error, 1)
	select {
	case s.sends <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, ErrClosed
	}
	select {
	case err := <-req.done:
		if err != nil {
			return nil, err
		}
		return req.m, nil
	case <-s.ctx.Done():
		return nil, ErrClosed
	}
}

// sendReq is one message on its way into the outbox.
type sendReq struct {
	p     peer.ID
	w     wireMessage
	shown bool
	// local is a record of this node's own (a call): stored in the
	// history only, never sent; incoming: it is p's (From p).
	local, incoming bool
	m               *Message // set by the committer
	done            chan error
}

// runCommitter stores outgoing messages, by group commit: the sends
// waiting at a moment are stamped in the order they are stored, so that a
// conversation's clock order is its outbox order, and written under one
// sync; their senders are answered once it is done. The couriers get them
// as soon as they are written, so that the peer stores them while this
// node syncs: what is acknowledged, to the user by Send and to this node
// by the peer's ack, is still synced first, and an ack that comes before
// the sync settles what the same log syncs before it.
func (s *Service) runCommitter() {
	groupCommit(s.ctx, s.sends, func(r *sendReq) int { return r.w.Size() },
		func(reqs []*sendReq) (struct{}, error) {
			if err := s.commitSends(reqs); err != nil {
				return struct{}{}, err
			}
			for _, r := range reqs {
				if !r.local {
					s.courierFor(r.p).push(&r.w, s.relaySaysAway(r.p))
				}
			}
			return struct{}{}, nil
		},
		func() error { return s.sync(s.ctx) },
		func(reqs []*sendReq, _ struct{}, err error) {
			// Copies, taken before the senders have their answers:
			// a sender's caller may change its message (node.present).
			var shown []Message
			for _, r := range reqs {
				if err == nil && r.shown && !r.local {
					if shown == nil {
						shown = make([]Message, 0, len(reqs))
					}
					shown = append(shown, *r.m)
				}
				r.done <- err
			}
			if len(shown) > 0 {
				select {
				case s.sent <- shown:
				case <-s.ctx.Done():
				}
			}
		})
}

// runAnnouncer publishes the messages this node sent, each round as the
// committer has it stored, so that every client of this node sees a
// message sent, not only the one that sent it (a local record: LogCall),
// and the committer's next round does not wait for the events.
func (s *Service) runAnnouncer() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case round := <-s.sent:
			for i := range round {
				s.publish(EventMessage, &round[i])
			}
		}
	}
}

func (s *Service) commitSends(reqs []*sendReq) (err error) {
	ctx := s.ctx
	// An incoming call's record is a received message (putLocal):
	// history.Store.Put.
	if slices.ContainsFunc(reqs, func(r *sendReq) bool { return r.local && r.incoming }) {
		defer s.hist.Writing()()
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	// What the round entered in the outbox's marks, taken back unless
	// the round is committed.
	var undo []func()
	defer func() {
		if err != nil {
			for _, u := range slices.Backward(undo) {
				u()
			}
		}
	}()
	for _, r := range reqs {
		now := s.cfg.Now()
		w := &r.w
		w.SentAtMS, w.HLC = now.UnixMilli(), s.clk.Now()
		if w.ID = history.DMID(s.h.ID(), r.p, w.SentAtMS, w.HLC); w.ID == "" {
			return fmt.Errorf("chat: the clock reads %v, which no message ID can hold", now)
		}
		r.m = &Message{ID: w.ID, From: s.h.ID(), To: r.p, Content: w.Content, State: MsgQueued,
			Time: time.UnixMilli(w.SentAtMS), HLC: w.HLC, Outgoing: true, File: fileInfo(w.Manifest)}
		if r.local {
			if err := s.putLocal(ctx, b, r); err != nil {
				return err
			}
			continue
		}
		// A message shown in the history is stored once: the history
		// record is its outbox entry (outbox.go).
		var wb []byte
		if !r.shown {
			if wb, err = proto.Marshal(w.ToWire()); err != nil {
				return err
			}
		}
		u, err := s.enterOutbox(ctx, b, r.p, w, r.shown, wb)
		if err != nil {
			return err
		}
		if err := s.applyOwn(ctx, b, w); err != nil {
			return err
		}
		undo = append(undo, u)
		if r.shown {
			if err := s.hist.Put(ctx, b, r.m); err != nil {
				return err
			}
		}
	}
	// The round's last reading is its highest: the clock resumes above
	// it after a restart. What is stored is a ceiling a lease above it,
	// so that only a round that passes the ceiling writes it: about one
	// round a second, not every round.
	ceil := s.clockCeil
	if n := len(reqs); n > 0 && reqs[n-1].w.HLC > ceil {
		ceil = reqs[n-1].w.HLC + clockLease
		if err := b.Put(ctx, keyClock, binary.BigEndian.AppendUint64(nil, ceil)); err != nil {
			return err
		}
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	s.clockCeil = ceil
	return nil
}

// clockLease is how far above a round's reading the stored clock is:
// one second of the clock's wall-clock part. A restart resumes there, at
// most that far ahead of the wall clock, which only orders messages.
var clockLease = history.Physical(time.UnixMilli(1000))

// courier delivers everything owed to one contact: contact notices, the
// profile, and the outbox, over one DM stream at a time.
type courier struct {
	p    peer.ID
	wake chan struct{}

	// The courier's parker parks beside the delivering, which may wait
	// on a dial for seconds: parkWake wakes it; it parks when parkDue
	// (the park timer fired) or a relay says p is away.
	parkWake chan struct{}
	parkDue  atomic.Bool
	// parking is the one park at a time, held over the relay's answer
	// (up to its I/O timeout): acquired with a context, so that a stop
	// bounded by park_on_stop does not wait out a park that hangs.
	// parkedMu guards parked, only ever briefly.
	parking  *semaphore.Weighted
	parkedMu sync.Mutex
	parked   map[string]bool // IDs handed to the mailbox

	mu sync.Mutex
	// queue is what was enqueued since the courier last read the
	// outbox: the messages of the committer's requests, not copies (a
	// copy was a tenth of what a DM allocated).
	queue []*wireMessage
	// away is what was enqueued while a relay said p was away, until
	// the parker takes it: parked even if the direct path (p on the LAN)
	// has it acked by then, so that "parked at once" does not depend on
	// which of the two paths is quicker.
	away []*wireMessage

	// contactDue: the contact record has something to send (our newer
	// profile) that an open stream's loop must not leave until it idles.
	contactDue atomic.Bool
	// contactMu is held while the contact record's notices are sent
	// (deliverContactOf): one sender at a time, each reading the record
	// as it is then, so that a notice gone stale (an unfriend, when a new
	// request followed it) never arrives after the one that replaced it.
	contactMu sync.Mutex
}

// push queues w for delivery; away: a relay says p is away, so w is
// parked too, at once.
func (c *courier) push(w *wireMessage, away bool) {
	c.mu.Lock()
	c.queue = append(c.queue, w)
	if away {
		c.away = append(c.away, w)
	}
	c.mu.Unlock()
	c.kick()
}

// takeAway returns what was pushed while a relay said p was away.
func (c *courier) takeAway() []*wireMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	away := c.away
	c.away = nil
	return away
}

func (c *courier) hasParked() bool {
	c.parkedMu.Lock()
	defer c.parkedMu.Unlock()
	return len(c.parked) > 0
}

func (c *courier) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.kickPark()
}

func (c *courier) kickPark() {
	select {
	case c.parkWake <- struct{}{}:
	default:
	}
}

func (c *courier) take() []*wireMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	// The next take is likely as large: room for it now, not growth by
	// copying, up to a round's worth (an idle courier keeps no burst's
	// worth).
	if len(q) > 0 {
		c.queue = make([]*wireMessage, 0, min(len(q), maxRound))
	}
	return q
}

// courierFor returns p's courier, starting it if needed.
func (s *Service) courierFor(p peer.ID) *courier {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.couriers[p]
	if !ok {
		c = &courier{p: p, wake: make(chan struct{}, 1), parkWake: make(chan struct{}, 1), parking: semaphore.NewWeighted(1), parked: map[string]bool{}}
		s.couriers[p] = c
		s.run.Go(func() { s.runCourier(c) })
		s.run.Go(func() { s.runParker(c) })
	}
	return c
}

// kick wakes p's courier.
func (s *Service) kick(p peer.ID) { s.courierFor(p).kick() }

// kickContact wakes p's courier to deliver what its contact record owes
// (a request, an answer, an unfriend, our profile), also while it holds
// a stream open for messages: every change to a contact record kicks
// with it (a plain kick there went to the stream's loop, which sends
// messages only, and the request waited for the next reconnection).
func (s *Service) kickContact(p peer.ID) {
	c := s.courierFor(p)
	c.contactDue.Store(true)
	c.kick()
}

// runCourier loops until the service closes: deliver, then wait for new
// work, a reconnection, or the backoff after a failure. Parking in the
// friend's relay mailbox runs beside it (runParker): at once when a relay
// says the friend is away, else when the park timer (park_after, from
// the first failed attempt, whatever the backoff) fires; from then on
// until a delivery succeeds, whatever is queued is parked as soon as it
// is stored.
func (s *Service) runCourier(c *courier) {
	failures := 0
	var parkTimer <-chan time.Time // running from the first failure
	for {
		if c.parkDue.Load() {
			// Parking may have failed (no relay logged in yet): each
			// attempt tries again.
			c.kickPark()
		}
		start := s.cfg.Now()
		err := s.deliver(c)
		var retry <-chan time.Time
		if err != nil {
			if failures == 0 {
				// Unreachable since the first failed attempt began: a
				// dial to a peer that is gone can take seconds to fail.
				_, after := s.mailbox()
				parkTimer = s.cfg.After(max(after-s.cfg.Now().Sub(start), 0))
			}
			failures++
			d := min(time.Second<<min(failures, 8), 5*time.Minute)
			s.log.Debug("delivery postponed", "peer", c.p, "retry_in", d, "err", err)
			retry = s.cfg.After(d)
		} else {
			failures, parkTimer = 0, nil
			c.parkDue.Store(false)
			if c.hasParked() {
				// Everything is delivered: what the mailbox held is
				// settled.
				s.unpark(c)
			}
		}
	wait:
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-c.wake:
				break wait
			case <-retry:
				break wait
			case <-parkTimer:
				parkTimer = nil
				c.parkDue.Store(true)
				c.kickPark()
			}
		}
	}
}

// runParker parks c's outbox when woken and parking is due, until the
// service closes.
func (s *Service) runParker(c *courier) {
	s.loadParked(c)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-c.parkWake:
		}
		if c.parkDue.Load() || s.relaySaysAway(c.p) {
			s.parkReady(s.ctx, c)
		}
	}
}

// Mailbox is the path through a relay for a friend who stays unreachable:
// the relay's offline mailbox (node gives the relay client, so that chat
// never imports relay). The courier parks there what it cannot deliver
// directly; the mailbox hands what it holds for this node to
// ReceiveLetter. Delivery stays exactly-once whichever path delivers: the
// receiver drops a message it already has by ID, and the direct path keeps
// trying until the friend acks, or a delivery receipt says the friend
// took it from the mailbox, which settles the outbox.
type Mailbox interface {
	// Park stores encoded messages (chat/pb Message) for p and returns once
	// the mailbox holds them durably, with the relay that holds them.
	Park(ctx context.Context, p peer.ID, msgs [][]byte) (relay peer.ID, err error)
	// Ready reports whether the mailbox can take messages now (a relay
	// client logged in to no relay cannot): while it cannot, the messages
	// wait in the outbox for the friend, and for the mailbox.
	Ready() bool
}

// SetMailbox routes messages for a friend unreachable for parkAfter
// through m (nil: direct delivery only).
func (s *Service) SetMailbox(m Mailbox, parkAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mb, s.parkAfter = m, parkAfter
}

func (s *Service) mailbox() (Mailbox, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb, s.parkAfter
}

// parkReady parks c's outbox when the mailbox can take it; it returns how
// many messages it parked now.
func (s *Service) parkReady(ctx context.Context, c *courier) (int, error) {
	// What a mailbox that cannot take it now misses is still in the
	// outbox, unless delivered meanwhile.
	away := c.takeAway()
	mb, _ := s.mailbox()
	if mb == nil || !mb.Ready() {
		return 0, ErrNoMailbox
	}
	return s.park(ctx, c, mb, away)
}

// ErrNoMailbox: no relay mailbox can take messages now.
var ErrNoMailbox = errors.New("chat: no relay mailbox to park in (not logged in to a relay)")

// park hands the outbox messages not parked yet to the mailbox, with
// those of away that are no longer in the outbox (acked directly since
// they were pushed), and returns how many.
func (s *Service) park(ctx context.Context, c *courier, mb Mailbox, away []*wireMessage) (int, error) {
	if err := c.parking.Acquire(ctx, 1); err != nil {
		return 0, err
	}
	defer c.parking.Release(1)
	pending, err := s.outbox(ctx, c.p)
	if err != nil {
		return 0, err
	}
	pending = withAway(pending, away)
	var msgs [][]byte
	var ids, shown []string
	c.parkedMu.Lock()
	pending = slices.DeleteFunc(pending, func(w wireMessage) bool { return c.parked[w.ID] })
	c.parkedMu.Unlock()
	for _, w := range pending {
		b, err := proto.Marshal(w.ToWire())
		if err != nil {
			continue
		}
		msgs = append(msgs, b)
		ids = append(ids, w.ID)
		if w.Shown() {
			shown = append(shown, w.ID)
		}
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	relay, err := mb.Park(ctx, c.p, msgs)
	if err != nil {
		s.log.Info("mailbox", "peer", c.p, "err", err)
		return 0, err
	}
	// Remembered across restarts, so that a restart does not park (and
	// spend the friend's quota on) the same messages again; the trace's
	// parked hop rides in the same batch.
	pstr := history.PeerString(c.p)
	hop := history.Hop{Event: history.HopParked, At: s.cfg.Now(), Relay: relay}
	if b, err := s.ds.Batch(ctx); err == nil {
		for _, id := range ids {
			b.Put(ctx, parkedKey(pstr, id), nil)
			history.PutHop(ctx, b, id, hop)
		}
		b.Commit(ctx)
	}
	c.parkedMu.Lock()
	for _, id := range ids {
		c.parked[id] = true
	}
	c.parkedMu.Unlock()
	for _, id := range shown {
		s.publish(EventMessageState, StateEvent{ID: id, PeerID: c.p, State: MsgQueued, ParkedOn: relay})
	}
	s.log.Debug("parked", "peer", c.p, "relay", relay, "messages", len(ids))
	return len(ids), nil
}

// withAway adds to pending, in clock order, the messages of away that
// it lacks.
func withAway(pending []wireMessage, away []*wireMessage) []wireMessage {
	if len(away) == 0 {
		return pending
	}
	in := make(map[string]bool, len(pending))
	for _, w := range pending {
		in[w.ID] = true
	}
	for _, w := range away {
		if !in[w.ID] {
			pending = append(pending, *w)
		}
	}
	slices.SortStableFunc(pending, byClock)
	return pending
}

// byClock orders messages by their clock readings: a conversation's
// order.
func byClock(a, b wireMessage) int { return cmp.Compare(a.HLC, b.HLC) }

// unpark forgets what was parked for c.p.
func (s *Service) unpark(c *courier) {
	if c.parking.Acquire(s.ctx, 1) != nil {
		return
	}
	defer c.parking.Release(1)
	c.parkedMu.Lock()
	defer c.parkedMu.Unlock()
	pstr := history.PeerString(c.p)
	if b, err := s.ds.Batch(s.ctx); err == nil {
		for id := range c.parked {
			b.Delete(s.ctx, parkedKey(pstr, id))
		}
		b.Commit(s.ctx)
	}
	clear(c.parked)
}

// loadParked reads which outbox messages for c.p the mailbox holds.
func (s *Service) loadParked(c *courier) {
	if c.parking.Acquire(s.ctx, 1) != nil {
		return
	}
	defer c.parking.Release(1)
	c.parkedMu.Lock()
	defer c.parkedMu.Unlock()
	res, err := s.ds.Query(s.ctx, query.Query{Prefix: parkedPrefix(history.PeerString(c.p)), KeysOnly: true})
	if err != nil {
		return
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error == nil {
			c.parked[datastore.RawKey(r.Key).BaseNamespace()] = true
		}
	}
}

// ParkReport is what ParkAll did.
type ParkReport struct {
	// Parked is how many messages (receipts included) it parked now.
	Parked int `json:"parked"`
	// Queued is how many stayed in the outbox without a mailbox copy,
	// by friend.
	Queued map[peer.ID]int `json:"queued,omitempty"`
}

// ParkAll parks everything still in an outbox and not in a mailbox yet,
// for every friend (a clean stop: the friends get it from the relay
// whether or not the direct path would have). It returns when done or
// when ctx ends, saying what stayed queued.
func (s *Service) ParkAll(ctx context.Context) ParkReport {
	s.mu.Lock()
	cs := make([]*courier, 0, len(s.couriers))
	for _, c := range s.couriers {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	rep := ParkReport{Queued: map[peer.ID]int{}}
	for _, c := range cs {
		if ctx.Err() == nil {
			n, _ := s.parkReady(ctx, c)
			rep.Parked += n
		}
		pending, err := s.outbox(context.WithoutCancel(ctx), c.p)
		if err != nil {
			continue
		}
		c.parkedMu.Lock()
		for _, w := range pending {
			if !c.parked[w.ID] {
				rep.Queued[c.p]++
			}
		}
		c.parkedMu.Unlock()
	}
	return rep
}

// ReceiveParked is ReceiveLetter from a mailbox whose relay is not known.
func (s *Service) ReceiveParked(ctx context.Context, p peer.ID, msgs [][]byte) error {
	return s.ReceiveLetter(ctx, "", p, msgs)
}

// ReceiveLetter takes messages from friend p that relay's mailbox held
// (the mailbox has checked that p sent them). They are stored like
// messages that come directly, once each, and announced; a bad one is
// dropped (the error says which), not the others. Then p gets a delivery
// receipt for them, through the same outbox (and so parked if p is away):
// p learns they were delivered even if the two are never online together.
func (s *Service) ReceiveLetter(ctx context.Context, relay, p peer.ID, msgs [][]byte) error {
	switch friend, err := s.isFriend(ctx, p); {
	case err != nil:
		return err
	case !friend:
		return fmt.Errorf("%w: %s", ErrNotFriend, p)
	}
	// A bad message costs only itself: the others of the letter are
	// stored, and the error (ErrBadFrame) names what was dropped.
	var batch []wireMessage
	var bad []error
	for _, b := range msgs {
		var pm historypb.Message
		if err := proto.Unmarshal(b, &pm); err != nil {
			bad = append(bad, fmt.Errorf("%w: %v", ErrBadFrame, err))
			continue
		}
		m, err := messageFromWire(&pm)
		if err == nil {
			err = checkDMID(p, s.h.ID(), m)
		}
		if err != nil {
			bad = append(bad, err)
			continue
		}
		batch = append(batch, m)
	}
	if len(batch) > 0 {
		via := &history.Hop{Event: history.HopReceived, At: s.cfg.Now(), Path: history.PathMailbox, Relay: relay}
		r, err := s.store(p, batch, via)
		if err != nil {
			return err
		}
		s.announce(p, r)
		if err := s.confirmDelivery(ctx, p, batch); err != nil {
			return err
		}
	}
	return errors.Join(bad...)
}

// confirmDelivery queues a delivery receipt to p for the messages of
// batch (every one, new or not: a letter fetched again after a crash is
// confirmed again). Receipts get none.
func (s *Service) confirmDelivery(ctx context.Context, p peer.ID, batch []wireMessage) error {
	var refs []string
	for _, m := range batch {
		if m.Kind != KindReceipt && m.Kind != KindDelivered {
			refs = append(refs, m.ID)
		}
	}
	for len(refs) > 0 {
		k := min(len(refs), maxRefs)
		if _, err := s.enqueue(ctx, p, wireMessage{Content: history.Content{Kind: KindDelivered}, Refs: refs[:k]}, false); err != nil {
			return err
		}
		refs = refs[k:]
	}
	return nil
}

// takeDelivered settles the messages that p's delivery receipts in batch
// name, and which are still in the outbox: p fetched them from a mailbox.
// A message delivered already (a resend after a restart was acked before
// the receipt came) gets the fetched hop in its trace all the same. The
// writes are unsynced: the sync that follows (the receiving round's, or
// store's) covers them.
func (s *Service) takeDelivered(p peer.ID, batch []wireMessage) {
	var done []*wireMessage
	var late []string // delivered already
	var fetched map[string]time.Time
	for _, wm := range batch {
		if wm.Kind != KindDelivered {
			continue
		}
		if wm.Text == history.ReceiptFetched {
			s.takeFetched(p, wm)
			continue
		}
		ids, err := s.receiptRefs(s.ctx, p, wm.Refs)
		if err != nil {
			continue
		}
		for _, id := range ids {
			m, err := s.hist.Get(s.ctx, id)
			switch {
			case err != nil:
				continue
			case m.State == MsgQueued:
				done = append(done, &wireMessage{ID: id, HLC: m.HLC})
			case (m.State == MsgDelivered || m.State == MsgRead) && !s.hasFetchedHop(id):
				late = append(late, id)
			default:
				continue
			}
			if fetched == nil {
				fetched = map[string]time.Time{}
			}
			fetched[id] = time.UnixMilli(wm.SentAtMS)
		}
	}
	s.putHops("a delivery receipt", late, func(id string) history.Hop {
		return history.Hop{Event: history.HopFetched, At: fetched[id], Path: history.PathMailbox}
	})
	if len(done) == 0 {
		return
	}
	now := s.cfg.Now()
	s.settle(p, done, MsgDelivered, "", func(m *wireMessage) []history.Hop {
		return []history.Hop{history.Delivered(history.Hop{Event: history.HopFetched, At: fetched[m.ID], Path: history.PathMailbox}, now)}
	})
	s.kick(p) // an empty outbox unparks
}

// hasFetchedHop says whether message id's trace says it was fetched from
// a mailbox: in its delivered record, or on its own.
func (s *Service) hasFetchedHop(id string) bool {
	if h := s.hist.Hop(s.ctx, id, history.HopDelivered); h != nil && h.Prev != nil && h.Prev.Event == history.HopFetched {
		return true
	}
	return s.hist.Hop(s.ctx, id, history.HopFetched) != nil
}

// putHops writes hop(id), a hop of its own, of each message of ids in
// one batch, unsynced: the sync of the receiving round that brought the
// receipt saying so covers it. A failure is logged under what.
func (s *Service) putHops(what string, ids []string, hop func(id string) history.Hop) {
	if len(ids) == 0 {
		return
	}
	b, err := s.ds.Batch(s.ctx)
	for _, id := range ids {
		if err != nil {
			break
		}
		err = history.PutHop(s.ctx, b, id, hop(id))
	}
	if err == nil {
		err = b.Commit(s.ctx)
	}
	if err != nil {
		s.log.Warn(what, "err", err)
	}
}

// deliverContactOf sends what this node owes p's contact record as it is
// now (see deliverContact), and returns the record as it is then (nil:
// none).
func (s *Service) deliverContactOf(p peer.ID) (*Contact, error) {
	c := s.courierFor(p)
	c.contactMu.Lock()
	defer c.contactMu.Unlock()
	ct, err := s.contact(s.ctx, p)
	if err != nil || ct == nil {
		return nil, err
	}
	return ct, s.deliverContact(s.ctx, ct)
}

// deliver sends what is owed to c.p. A nil error means nothing is left.
func (s *Service) deliver(c *courier) error {
	c.contactDue.Store(false) // delivered below
	ct, err := s.deliverContactOf(c.p)
	if err != nil || ct == nil {
		return err
	}
	if ct.State != StateFriend {
		return nil
	}
	return s.flushOutbox(c)
}

// flushOutbox sends the outbox over one stream, pipelined, and keeps the
// stream while messages keep coming; it returns when the outbox is empty
// and the stream idle, or on an error.
func (s *Service) flushOutbox(c *courier) error {
	c.take() // everything queued so far is in the outbox read below
	pending, err := s.outbox(s.ctx, c.p)
	if err != nil || len(pending) == 0 {
		return err
	}
	ctx := network.WithAllowLimitedConn(s.ctx, "chat")
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := s.h.NewStream(dctx, c.p, DMProtocol)
	cancel()
	if err != nil {
		return fmt.Errorf("chat: reach %s: %w", c.p, err)
	}
	defer st.Close()

	// Closing the service resets the stream, so that no write blocked on
	// a peer that stopped reading holds Close up.
	stop := context.AfterFunc(s.ctx, func() { st.Reset() })
	defer stop()

	f := &flush{s: s, c: c, st: st, w: bufio.NewWriterSize(st, 64<<10),
		inflight: map[string]*wireMessage{}, sentAt: map[string]time.Time{}, results: make(chan flushResult, 64)}
	f.path, f.relay = s.cfg.Path(st.Conn())
	go f.readAcks()
	defer f.end()
	if err := f.send(pointers(pending)); err != nil {
		return err
	}
	return f.loop()
}

// flush is one stream of a courier's: the messages written and not yet
// acked, shared by the writing loop and the reader of acks.
type flush struct {
	s  *Service
	c  *courier
	st network.Stream
	w  *bufio.Writer

	path  string  // the stream's path (direct, hole-punched, relayed)
	relay peer.ID // the relay of a relayed path

	mu       sync.Mutex
	inflight map[string]*wireMessage // the queued messages themselves
	sentAt   map[string]time.Time    // when each in flight was written
	order    []string                // inflight IDs in the order written
	since    time.Time               // when the oldest unacked message was written

	// results tells the loop how the stream goes; readerDone is set once
	// the reader has sent its last result.
	results    chan flushResult
	readerDone bool
}

// flushResult is what the reader saw: an ack (zero), a refusal or an
// error (the reader's last).
type flushResult struct {
	refusal *pb.Refusal
	err     error
}

// readAcks records acks itself, so that storing them runs beside the
// writing, until the stream ends or the peer refuses a message.
func (f *flush) readAcks() {
	r := bufio.NewReader(f.st)
	for {
		var fr pb.DMFrame
		if err := readFrame(r, MaxDMFrame, &fr); err != nil {
			f.results <- flushResult{err: err}
			return
		}
		switch body := fr.Body.(type) {
		case *pb.DMFrame_Ack:
			done, sent := f.ack(body.Ack.GetIds())
			f.s.acked(f.c.p, done, f.hops(sent))
			select {
			case f.results <- flushResult{}:
			default: // the loop only needs to know something happened
			}
		case *pb.DMFrame_Refusal:
			f.results <- flushResult{refusal: body.Refusal}
			return
		}
	}
}

// ack takes the acked messages out of flight and returns them, with
// when each was written.
func (f *flush) ack(ids []string) ([]*wireMessage, map[string]time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	done := make([]*wireMessage, 0, len(ids))
	sent := make(map[string]time.Time, len(ids))
	for _, id := range ids {
		if m, ok := f.inflight[id]; ok {
			done = append(done, m)
			sent[id] = f.sentAt[id]
			delete(f.inflight, id)
			delete(f.sentAt, id)
		}
	}
	// The ack timeout runs from the oldest message still unacked.
	for len(f.order) > 0 {
		if _, ok := f.inflight[f.order[0]]; ok {
			break
		}
		f.order = f.order[1:]
	}
	if len(done) > 0 {
		f.since = time.Now()
	}
	return done, sent
}

// hops is the trace of messages acked now: sent over this stream's
// path, and delivered, in one record.
func (f *flush) hops(sent map[string]time.Time) func(*wireMessage) []history.Hop {
	now := f.s.cfg.Now()
	// One slice serves every message: settle stores a message's hops
	// before it asks for the next one's.
	one := make([]history.Hop, 1)
	return func(m *wireMessage) []history.Hop {
		one[0] = history.Delivered(history.Hop{Event: history.HopSent, At: sent[m.ID], Path: f.path, Relay: f.relay}, now)
		return one
	}
}

// end resets the stream, which ends the reader, and drains the reader so
// that it can exit.
func (f *flush) end() {
	f.st.Reset()
	for !f.readerDone {
		if r := <-f.results; r.err != nil || r.refusal != nil {
			f.readerDone = true
		}
	}
}

// pointers points at the messages of msgs.
func pointers(msgs []wireMessage) []*wireMessage {
	out := make([]*wireMessage, len(msgs))
	for i := range msgs {
		out[i] = &msgs[i]
	}
	return out
}

// send writes the messages not in flight yet.
func (f *flush) send(msgs []*wireMessage) error {
	sent := f.enter(msgs)
	if len(sent) == 0 {
		return nil
	}
	// A peer that stops reading fails the write instead of blocking it.
	f.st.SetWriteDeadline(time.Now().Add(dmAckTimeout))
	// One frame serves every message: writeFrame keeps none of it.
	var pm historypb.Message
	fr := &pb.DMFrame{Body: &pb.DMFrame_Message{Message: &pm}}
	for _, m := range sent {
		m.FillWire(&pm)
		if err := writeFrame(f.w, fr); err != nil {
			return err
		}
	}
	if err := f.w.Flush(); err != nil {
		return err
	}
	// "sent" lasts a round trip: announced, not stored (the history
	// says queued until the ack, which is what a restart would resend).
	for _, m := range sent {
		if m.Shown() {
			f.s.publish(EventMessageState, StateEvent{ID: m.ID, PeerID: f.c.p, State: MsgSent})
		}
	}
	return nil
}

// enter puts the messages not in flight yet in flight and returns them.
func (f *flush) enter(msgs []*wireMessage) []*wireMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	sent := make([]*wireMessage, 0, len(msgs))
	for _, m := range msgs {
		if _, ok := f.inflight[m.ID]; ok {
			continue
		}
		if len(f.inflight) == 0 {
			f.since = time.Now()
		}
		f.inflight[m.ID] = m
		f.sentAt[m.ID] = f.s.cfg.Now()
		f.order = append(f.order, m.ID)
		sent = append(sent, m)
	}
	return sent
}

// state is how many messages are in flight, and since when the oldest.
func (f *flush) state() (int, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inflight), f.since
}

// inFlight lists the messages in flight.
func (f *flush) inFlight() []*wireMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []*wireMessage
	for _, m := range f.inflight {
		all = append(all, m)
	}
	return all
}

// loop sends what the courier is given while the stream lasts: until the
// stream is idle with nothing in flight, an ack is overdue, the peer
// refuses a message, or the service closes.
func (f *flush) loop() error {
	idle := time.NewTimer(dmIdle)
	defer idle.Stop()
	for {
		var ackWait <-chan time.Time
		if n, since := f.state(); n > 0 {
			ackWait = time.After(time.Until(since.Add(dmAckTimeout)))
		}
		select {
		case <-f.s.ctx.Done():
			return ErrClosed
		case <-f.c.wake:
			if err := f.send(f.c.take()); err != nil {
				return err
			}
			if f.c.contactDue.Swap(false) {
				if _, err := f.s.deliverContactOf(f.c.p); err != nil {
					return err
				}
			}
		case r := <-f.results:
			f.readerDone = r.err != nil || r.refusal != nil
			switch {
			case r.refusal != nil:
				return f.s.refused(f.c.p, r.refusal, f.inFlight)
			case r.err != nil:
				return r.err
			}
			if n, _ := f.state(); n == 0 {
				idle.Reset(dmIdle)
			}
		case <-ackWait:
			return fmt.Errorf("chat: %s did not ack within %v", f.c.p, dmAckTimeout)
		case <-idle.C:
			if n, _ := f.state(); n == 0 {
				return nil
			}
			idle.Reset(dmIdle)
		}
	}
}

// refused settles a refusal. Not friends on their side: every message in
// flight fails for good. A bad message: that one fails, and the courier
// resends the rest on a new stream.
func (s *Service) refused(p peer.ID, r *pb.Refusal, inflight func() []*wireMessage) error {
	var failed []*wireMessage
	switch {
	case r.GetCode() == CodeNotFriends:
		failed = inflight()
	case r.GetId() != "":
		for _, m := range inflight() {
			if m.ID == r.GetId() {
				failed = append(failed, m)
			}
		}
	}
	s.settle(p, failed, MsgFailed, r.GetMessage(), nil)
	return fmt.Errorf("%w: %s", ErrRefused, r.GetMessage())
}

// outbox reads p's unacked messages in order: the /outbox/ entries and
// the messages above the conversation's acked mark (outbox.go).
func (s *Service) outbox(ctx context.Context, p peer.ID) ([]wireMessage, error) {
	var out []wireMessage
	err := history.Scan(ctx, s.ds, query.Query{Prefix: outboxPrefix(history.PeerString(p)), Orders: []query.Order{query.OrderByKey{}}},
		func(key string, value []byte) (bool, error) {
			var w wireMessage
			if len(value) == 0 {
				// The message is in the history under the same suffix.
				b, err := s.ds.Get(ctx, datastore.RawKey(history.MsgsPrefix+strings.TrimPrefix(key, "/outbox/")))
				if err != nil {
					return false, fmt.Errorf("chat: outbox entry %s without its message: %w", key, err)
				}
				m, err := s.hist.Decode(key, b)
				if err != nil {
					return false, err
				}
				w = wireMessage{ID: m.ID, SentAtMS: m.Time.UnixMilli(), HLC: m.HLC, Content: m.Content}
			} else {
				var pm historypb.Message
				if err := proto.Unmarshal(value, &pm); err != nil {
					return false, fmt.Errorf("chat: stored %s is damaged: %w", key, err)
				}
				w = history.WireFromPB(&pm)
			}
			if err := checkWire(&w); err != nil {
				return false, fmt.Errorf("chat: stored %s is damaged: %w", key, err)
			}
			out = append(out, w)
			return true, nil
		})
	if err != nil {
		return nil, err
	}
	above, err := s.pendingAbove(ctx, p)
	if err != nil || len(above) == 0 {
		return out, err
	}
	out = append(out, above...)
	slices.SortStableFunc(out, byClock)
	return out, nil
}

// acked records delivered messages: out of the outbox, which is what
// makes them delivered in the history (history.Store.WithState). Losing
// this write to a crash only means a resend, which the peer acks again
// without storing twice.
func (s *Service) acked(p peer.ID, msgs []*wireMessage, hops func(*wireMessage) []history.Hop) {
	if len(msgs) > 0 {
		s.settle(p, msgs, MsgDelivered, "", hops)
	}
}

// settle takes messages to p out of the outbox, delivered or failed, in
// one batch, and announces each change (receipts have no state). A
// delivered message is one out of the outbox in no other state
// (history.Store.WithState); a failed one also gets its reason. hops
// (nil: none) is the trace each message's settling adds, in the same
// batch.
func (s *Service) settle(p peer.ID, msgs []*wireMessage, state, reason string, hops func(*wireMessage) []history.Hop) {
	b, err := s.ds.Batch(s.ctx)
	if err != nil {
		return
	}
	done, err := s.settleWrites(s.ctx, b, p, msgs, state, reason, hops)
	if err != nil {
		s.log.Error("message state", "err", err)
		return
	}
	err = b.Commit(s.ctx)
	done(err == nil)
	if err != nil {
		s.log.Error("message state", "err", err)
		return
	}
	for _, m := range msgs {
		if m.Shown() {
			s.publish(EventMessageState, StateEvent{ID: m.ID, PeerID: p, State: state})
		}
	}
}

// handleDM receives direct messages: each is stored durably before it is
// acked, once, whatever the number of retries.
func (s *Service) handleDM(st network.Stream) {
	defer st.Close()
	from := st.Conn().RemotePeer()
	c, ok := s.admit(s.ctx, st)
	if !ok {
		return
	}
	if c == nil || c.State != StateFriend {
		refuse(st, CodeNotFriends, "not friends", "")
		return
	}
	// A reader decodes frames while this goroutine stores and acks them,
	// so that whatever arrives during one disk sync is stored under the
	// next (groupCommit). The reader closes items when the stream ends;
	// end says how.
	var end struct {
		refusal error  // the frame that ended it was bad
		badID   string // the ID of the bad message, when known
	}
	items := make(chan wireMessage, maxRound)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(items)
		r := bufio.NewReaderSize(st, 64<<10)
		var f pb.DMFrame // decoding resets it; what is kept is copied out
		for {
			st.SetReadDeadline(time.Now().Add(dmReadIdle))
			if err := readFrame(r, MaxDMFrame, &f); err != nil {
				if errors.Is(err, ErrBadFrame) || errors.Is(err, ErrFrameTooLarge) {
					end.refusal = err
				}
				return
			}
			pm := f.GetMessage()
			if pm == nil {
				continue
			}
			m, err := messageFromWire(pm)
			if err == nil {
				err = checkDMID(from, s.h.ID(), m)
			}
			if err != nil {
				end.refusal, end.badID = err, pm.GetId()
				return
			}
			select {
			case items <- m:
			case <-stop:
				return
			}
		}
	}()
	w := bufio.NewWriter(st)
	kind, relay := s.cfg.Path(st.Conn())
	var failed, stranger atomic.Bool
	groupCommit(s.ctx, items, func(m wireMessage) int { return m.Size() },
		func(round []wireMessage) (received, error) {
			if failed.Load() || stranger.Load() {
				return received{}, errSkipped
			}
			// Friendship is checked again for every round: a peer blocked
			// or removed while its stream is open gets no further.
			if friend, err := s.isFriend(s.ctx, from); err != nil || !friend {
				stranger.Store(true)
				return received{}, ErrNotFriend
			}
			s.takeDelivered(from, round)
			via := &history.Hop{Event: history.HopReceived, At: s.cfg.Now(), Path: kind, Relay: relay}
			return s.write(from, round, via)
		},
		func() error { return s.sync(s.ctx) },
		func(round []wireMessage, r received, err error) {
			switch {
			case errors.Is(err, errSkipped):
				return
			case errors.Is(err, ErrNotFriend):
				// The refusal ends the stream; the reader stops.
				refuse(st, CodeNotFriends, "not friends", "")
				st.Close()
				return
			case err == nil:
				err = s.ack(st, w, round)
				s.announce(from, r)
			}
			if err != nil {
				failed.Store(true)
				st.Reset() // the reader stops
			}
		})
	if s.ctx.Err() != nil || failed.Load() || stranger.Load() {
		return
	}
	// The reader closed items: end is settled.
	if end.refusal != nil {
		s.log.Info("refused a DM frame", "peer", from, "err", end.refusal)
		refuse(st, CodeBadFrame, end.refusal.Error(), end.badID)
	}
}

// received is what a round of a DM stream brought: the new messages, the
// IDs that receipts marked read, and the messages edits and deletes
// changed.
type received struct {
	fresh   []*Message
	read    []string
	changed []*Message
}

// errSkipped is a round that a stream ending in error leaves unstored.
var errSkipped = errors.New("chat: skipped")

// ack acks a round that is durably stored.
func (s *Service) ack(st network.Stream, w *bufio.Writer, round []wireMessage) error {
	ids := make([]string, 0, len(round))
	for _, m := range round {
		ids = append(ids, m.ID)
	}
	// A peer that stops reading its acks does not hold this goroutine.
	st.SetWriteDeadline(time.Now().Add(dmAckTimeout))
	err := writeFrame(w, &pb.DMFrame{Body: &pb.DMFrame_Ack{Ack: &pb.Ack{Ids: ids}}})
	if err == nil {
		err = w.Flush()
	}
	return err
}

func refuse(st network.Stream, code uint32, msg, id string) {
	st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	writeFrame(st, &pb.DMFrame{Body: &pb.DMFrame_Refusal{Refusal: &pb.Refusal{Code: code, Message: msg, Id: id}}})
}

// announce publishes received messages, read receipts and changes.
func (s *Service) announce(from peer.ID, r received) {
	for _, m := range r.fresh {
		s.publish(EventMessage, m)
	}
	for _, id := range r.read {
		s.publish(EventMessageState, StateEvent{ID: id, PeerID: from, State: MsgRead})
	}
	for _, m := range r.changed {
		s.publishChange(m)
	}
}

// store stores the new messages of batch from a friend, and the receipts,
// durably; it returns what they brought. via is how the batch arrived.
func (s *Service) store(from peer.ID, batch []wireMessage, via *history.Hop) (received, error) {
	s.takeDelivered(from, batch)
	r, err := s.write(from, batch, via)
	if err != nil {
		return received{}, err
	}
	if err := s.sync(s.ctx); err != nil {
		return received{}, err
	}
	return r, nil
}

// write is store without the sync (and without the delivery receipts:
// takeDelivered); via is how the batch arrived.
func (s *Service) write(from peer.ID, batch []wireMessage, via *history.Hop) (r received, err error) {
	ctx := s.ctx
	mark, err := s.receivedMark(ctx, from)
	if err != nil {
		return received{}, err
	}
	// One writer per peer at a time: two streams from the same peer (a
	// reconnection while the old one drains) must not both find a message
	// new and both store it.
	mark.mu.Lock()
	defer mark.mu.Unlock()
	defer s.hist.Writing()() // until the batch is committed: history.Store.Put
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return received{}, err
	}
	seen := make(map[string]bool, len(batch))
	high := mark.hlc
	for _, wm := range batch {
		s.clk.Observe(wm.HLC)
		if seen[wm.ID] {
			continue
		}
		seen[wm.ID] = true
		if wm.Kind == KindDelivered {
			continue // takeDelivered's
		}
		if wm.Kind == KindReceipt {
			ids, err := s.receiptRefs(ctx, from, wm.Refs)
			if err != nil {
				return received{}, err
			}
			for _, id := range ids {
				if err := b.Put(ctx, history.ReadKey(id), history.ReadStamp(time.UnixMilli(wm.SentAtMS))); err != nil {
					return received{}, err
				}
			}
			r.read = append(r.read, ids...)
			continue
		}
		if wm.Kind == KindEdit || wm.Kind == KindDelete {
			if err := s.applyChange(ctx, b, from, wm, r.fresh, &r.changed); err != nil {
				return received{}, err
			}
			continue
		}
		// A message's ID derives from its clock reading, and a peer's
		// readings only grow: one above every reading stored from this
		// peer is new without a lookup. Only a resend, or a message that
		// a mailbox delivered out of order, is looked up.
		if wm.HLC <= mark.hlc {
			has, err := s.ds.Has(ctx, history.IDKey(wm.ID))
			if err != nil {
				return received{}, err
			}
			if has {
				continue // a resend: ack it again, store it once
			}
		}
		m := &Message{ID: wm.ID, From: from, To: s.h.ID(), Content: wm.Content,
			State: MsgReceived, Time: time.UnixMilli(wm.SentAtMS), HLC: wm.HLC, File: fileInfo(wm.Manifest), Via: via}
		if err := s.hist.Put(ctx, b, m); err != nil {
			return received{}, err
		}
		high = max(high, wm.HLC)
		r.fresh = append(r.fresh, m)
	}
	if err := b.Commit(ctx); err != nil {
		return received{}, err
	}
	mark.hlc = high
	return r, nil
}

// receivedMark is at least the highest clock reading of a message stored
// from a peer: the conversation's latest reading, read once, then the
// highest stored since.
type receivedMark struct {
	mu   sync.Mutex
	hlc  uint64
	once sync.Once
	err  error
}

func (s *Service) receivedMark(ctx context.Context, p peer.ID) (*receivedMark, error) {
	mark := loadOrNew[receivedMark](&s.received, p)
	mark.once.Do(func() { mark.hlc, mark.err = s.lastHLC(ctx, p) })
	if mark.err != nil {
		// Not cached: the next message tries again.
		s.received.CompareAndDelete(p, mark)
		return nil, mark.err
	}
	return mark, nil
}

// receiptRefs keeps the IDs of a receipt from p that name messages this
// node sent to p: a peer can only say it read what it was sent.
func (s *Service) receiptRefs(ctx context.Context, p peer.ID, refs []string) ([]string, error) {
	var out []string
	for _, id := range refs {
		loc, err := s.ds.Get(ctx, history.IDKey(id))
		if errors.Is(err, datastore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		b, err := s.ds.Get(ctx, datastore.RawKey("/msgs/"+string(loc)+"/"+id))
		if err != nil {
			continue
		}
		m, err := s.hist.Decode(id, b)
		if err != nil || !m.Outgoing || m.To != p {
			continue
		}
		out = append(out, id)
	}
	return out, nil
}

// lastHLC is the clock reading of the latest message with p (0: none).
func (s *Service) lastHLC(ctx context.Context, p peer.ID) (uint64, error) {
	return s.hist.LastHLC(ctx, history.PeerString(p))
}

// History returns up to limit messages with p, older than the message
// before (empty: the newest), in conversation order.
func (s *Service) History(ctx context.Context, p peer.ID, before string, limit int) (*HistoryPage, error) {
	return s.hist.Page(ctx, p.String(), before, limit)
}

// Search finds messages whose text contains text (case-insensitive), with
// p only when p is not empty; newest first, at most limit. It keeps only
// the best limit matches while it scans, whatever the history's size.
func (s *Service) Search(ctx context.Context, text string, p peer.ID, limit int) ([]*Message, error) {
	prefix := history.MsgsPrefix
	if p != "" {
		prefix = history.MsgPrefix(history.PeerString(p))
	}
	return s.hist.Search(ctx, text, prefix, limit)
}

// Summary is the newest message of the conversation with p and how many
// of its messages are unread.
func (s *Service) Summary(ctx context.Context, p peer.ID) (*history.Summary, error) {
	return s.hist.Summary(ctx, history.PeerString(p))
}

// MarkRead marks every received message from p read and, when read
// receipts are on, tells p. It returns how many it marked.
func (s *Service) MarkRead(ctx context.Context, p peer.ID) (int, error) {
	refs, err := s.hist.MarkRead(ctx, history.PeerString(p))
	if err != nil || len(refs) == 0 {
		return 0, err
	}
	n := len(refs)
	if s.cfg.ReadReceipts {
		c, err := s.contact(ctx, p)
		if err == nil && c != nil && c.State == StateFriend {
			for len(refs) > 0 {
				k := min(len(refs), maxRefs)
				if _, err := s.enqueue(ctx, p, wireMessage{Content: history.Content{Kind: KindReceipt}, Refs: refs[:k]}, false); err != nil {
					return 0, err
				}
				refs = refs[k:]
			}
		}
	}
	return n, s.sync(ctx)
}

// GetMessage returns one message by ID, direct or of a group.
func (s *Service) GetMessage(ctx context.Context, id string) (*Message, error) {
	return s.hist.Get(ctx, id)
}

// MessageIDs lists up to max IDs of stored messages, direct or of a
// group, that start with prefix.
func (s *Service) MessageIDs(ctx context.Context, prefix string, max int) ([]string, error) {
	return s.hist.IDsWithPrefix(ctx, prefix, max)
}

// Trace returns message id, direct or of a group, with how it travelled.
func (s *Service) Trace(ctx context.Context, id string) (*history.Trace, error) {
	return s.hist.Trace(ctx, id)
}

// FileOffers lists the file messages of every conversation, and the
// pictures (whose originals are offered files), newest first.
func (s *Service) FileOffers(ctx context.Context) ([]*Message, error) {
	return s.hist.FileMessages(ctx)
}
