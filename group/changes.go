package group

// Edits, deletes and receipts of group messages. Each is a group message
// of its own kind (history.KindEdit, KindDelete, KindReceipt): sealed,
// signed and numbered by its author like any, so it travels every path a
// message does (gossip, pull, the relay mailbox), exactly once by
// (author, seq); it is never shown as a message.
//
//   - An edit or a delete changes its target (history.Store.Apply): only
//     when its verified author wrote the target, in this group. One that
//     comes before its target is kept until the target comes.
//   - A receipt says that its author stored (text "delivered") or read
//     ("read") the messages its refs name. A member sends one delivered
//     receipt per group for what it stored during Config.ReceiptDelay
//     (longer in a group of more than receiptMembers: receiptPeriod),
//     and one read receipt per MarkRead (with Config.ReadReceipts); each
//     names at most history.MaxRefs messages. The author of a message
//     keeps what they say of it, by member (history.Store.PutReceipt),
//     and its page shows them (delivered_by, read_by); the other
//     members pass receipts on and keep none (every member storing
//     every member's receipt of every message cut a 50-member group's
//     highest rate by three quarters).
//
// A crash can lose the delivered receipts gathered and not sent yet
// (they are kept in memory): a member that reads the message later still
// counts, a reader having stored it.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/meshtalk/meshtalk/history"
)

// Events of changes.
const (
	// EventMessageEdited, EventMessageDeleted: a group message was edited
	// or deleted. Data: *history.Message, as it now is.
	EventMessageEdited  = history.EventEdited
	EventMessageDeleted = history.EventDeleted
	// EventReceipt: a member said it stored or read messages of a group.
	// Data: ReceiptEvent.
	EventReceipt = "group.receipt"
)

// ReceiptEvent is the data of group.receipt.
type ReceiptEvent struct {
	Group  string `json:"group"`
	PeerID string `json:"peer_id"`
	// State is "delivered" or "read".
	State string   `json:"state"`
	IDs   []string `json:"ids"`
}

// Edit changes the text of a message this node sent to group id, for
// every member.
func (gs *Service) Edit(ctx context.Context, id, msg, text string) (*history.Message, error) {
	return gs.change(ctx, id, history.Content{Kind: history.KindEdit, Text: text, Target: msg})
}

// Delete deletes a message this node sent to group id, for every
// member: a tombstone stays in its place.
func (gs *Service) Delete(ctx context.Context, id, msg string) (*history.Message, error) {
	return gs.change(ctx, id, history.Content{Kind: history.KindDelete, Target: msg})
}

func (gs *Service) change(ctx context.Context, id string, c history.Content) (*history.Message, error) {
	g, err := gs.member(id)
	if err != nil {
		return nil, err
	}
	t, err := gs.hist.Get(ctx, c.Target)
	if err != nil {
		return nil, err
	}
	if err := history.CheckChange(t, &history.Change{Author: gs.self, Group: g.id, Wire: history.Wire{Content: c}}); err != nil {
		return nil, err
	}
	w := history.Wire{Content: c}
	probe := w
	probe.ID = "00000000000000000000000000"
	if err := probe.Check(checkManifest); err != nil {
		return nil, fmt.Errorf("group: %w %s: %s", ErrInvalid, c.Kind, err)
	}
	if _, err := gs.sendWire(ctx, g, w); err != nil {
		return nil, err
	}
	return gs.hist.Get(ctx, c.Target)
}

// applyOwn applies this node's own change or receipt (w, stamped) in
// b; nil: a receipt, or nothing changed.
func (gs *Service) applyOwn(ctx context.Context, b datastore.Write, g *group, w history.Wire) (*history.Message, error) {
	if w.Kind == history.KindReceipt {
		return nil, nil // the messages' authors keep it (storeReceipt)
	}
	m, err := gs.hist.Apply(ctx, b, &history.Change{Author: gs.self, Group: g.id, Wire: w}, nil)
	if history.Refused(err) {
		gs.log.Info("own change refused", "group", g.id, "id", w.ID, "err", err)
		return nil, nil
	}
	return m, err
}

// changeNews is what the edits, deletes and receipts of a batch did.
type changeNews struct {
	changed  []*history.Message
	receipts []ReceiptEvent
}

// storeChange applies an edit, a delete or a receipt from another member
// in b; fresh is what the batch stored before it. One its author may not
// make is dropped.
func (gs *Service) storeChange(ctx context.Context, b datastore.Write, it *ingestItem, fresh []*history.Message, news *changeNews) error {
	inBatch := func(id string) *history.Message {
		for _, m := range fresh {
			if m.ID == id && m.Group == it.g.id {
				return m
			}
		}
		return nil
	}
	author := it.env.Author
	if it.w.Kind == history.KindReceipt {
		return gs.storeReceipt(ctx, b, it, news)
	}
	m, err := gs.hist.Apply(ctx, b, &history.Change{Author: author, Group: it.g.id, Wire: it.w}, inBatch)
	switch {
	case history.Refused(err):
		gs.log.Info("refused a change", "group", it.g.id, "author", author, "id", it.w.ID, "target", it.w.Target, "err", err)
		return nil
	case err != nil:
		return err
	}
	if m != nil && inBatch(m.ID) == nil && !slices.Contains(news.changed, m) {
		news.changed = append(news.changed, m)
	}
	return nil
}

// storeReceipt records a member's receipt for the messages it names
// that this node sent to the group: a message's receipts are its
// author's to count (every member gets every receipt, and storing all of
// them cost every member a write per member and message).
func (gs *Service) storeReceipt(ctx context.Context, b datastore.Write, it *ingestItem, news *changeNews) error {
	what := it.w.Text
	if what == "" {
		what = history.ReceiptRead
	}
	ev := ReceiptEvent{Group: it.g.id, PeerID: it.env.Author.String(), State: what}
	for _, id := range it.w.Refs {
		mine, err := gs.sentHere(ctx, it.g.id, id)
		if err != nil {
			return err
		}
		if !mine {
			continue
		}
		if err := gs.hist.PutReceipt(ctx, b, id, it.env.Author, what, it.w.SentAt()); err != nil {
			return err
		}
		ev.IDs = append(ev.IDs, id)
	}
	if len(ev.IDs) > 0 {
		news.receipts = append(news.receipts, ev)
	}
	return nil
}

// ownIDs holds the IDs of the messages this node sent since a time, at
// most maxOwnIDs of them: when full it starts again from now, and the
// messages from before are looked up.
type ownIDs struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	since time.Time
}

const maxOwnIDs = 1 << 16

func (o *ownIDs) add(id string, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ids == nil || len(o.ids) >= maxOwnIDs {
		if o.ids != nil {
			o.since = now
		}
		o.ids = map[string]struct{}{}
	}
	o.ids[id] = struct{}{}
}

// has says whether id is one of them, and whether it is older than all
// of them (so it may be one from before, to look up).
func (o *ownIDs) has(id string, at time.Time) (mine, before bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, mine = o.ids[id]
	return mine, at.Before(o.since)
}

// sentHere reports whether id is a message this node sent to group gid:
// one sent lately is in own; an older one (its ID carries its time) is
// looked up.
func (gs *Service) sentHere(ctx context.Context, gid, id string) (bool, error) {
	at, ok := history.IDTime(id)
	if !ok {
		return false, nil
	}
	mine, before := gs.own.has(id, at)
	if mine || !before {
		return mine, nil
	}
	in, err := gs.hist.InConv(ctx, id, history.GroupConv(gid))
	if err != nil || !in {
		return false, err
	}
	m, err := gs.hist.Get(ctx, id)
	if errors.Is(err, history.ErrNoMessage) {
		return false, nil
	}
	return err == nil && m.From == gs.self, err
}

// announceChanges emits what a stored batch changed, and gathers the
// delivered receipts of its fresh messages.
func (gs *Service) announceChanges(fresh []*history.Message, news changeNews) {
	for _, m := range news.changed {
		gs.emitChange(m)
	}
	for _, ev := range news.receipts {
		gs.emit(EventReceipt, ev)
	}
	if gs.cfg.ReceiptDelay < 0 {
		return
	}
	for _, m := range fresh {
		if !m.Outgoing {
			gs.receipts.add(m.Group, m.ID, func() time.Duration { return gs.receiptPeriod(m.Group) })
		}
	}
}

// emitChange announces a changed message.
func (gs *Service) emitChange(m *history.Message) {
	typ := EventMessageEdited
	if m.Deleted {
		typ = EventMessageDeleted
	}
	gs.emit(typ, m)
}

// receiptQueue gathers the IDs of messages stored, by group, for the
// next delivered receipts, and when each group's are due.
type receiptQueue struct {
	mu   sync.Mutex
	ids  map[string][]string
	due  map[string]time.Time
	wake chan struct{}
}

// add queues id for group's next receipt; period (called only when the
// group has none due) is how long it gathers from now.
func (q *receiptQueue) add(group, id string, period func() time.Duration) {
	q.mu.Lock()
	if q.ids == nil {
		q.ids, q.due = map[string][]string{}, map[string]time.Time{}
	}
	if _, ok := q.due[group]; !ok {
		q.due[group] = time.Now().Add(period())
	}
	q.ids[group] = append(q.ids[group], id)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the IDs of the groups due at now, and when the next group
// is due (zero: none).
func (q *receiptQueue) take(now time.Time) (ids map[string][]string, next time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for g, at := range q.due {
		if at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		if ids == nil {
			ids = map[string][]string{}
		}
		ids[g] = q.ids[g]
		delete(q.ids, g)
		delete(q.due, g)
	}
	return ids, next
}

// receiptMembers is the group size up to which a member gathers its
// delivered receipts for ReceiptDelay; a larger group's members gather
// for longer, in proportion, so that a group sees about receiptMembers
// receipts per ReceiptDelay whatever its size: every member checks every
// receipt, and fifty members each sending one a second, all at about the
// same moment (they store the same messages at the same time), held the
// group's messages up behind the burst (at 100 msg/s the p50 went from
// 8-30 ms to 278 ms, and the highest rate from 800 to 400 msg/s).
const receiptMembers = 10

// receiptPeriod is how long this node gathers group g's delivered
// receipts: ReceiptDelay, scaled with the group's size, and put off by up
// to half of that at random, so that the members' receipts do not come at
// one moment.
func (gs *Service) receiptPeriod(g string) time.Duration {
	d := gs.cfg.ReceiptDelay
	if d == 0 {
		d = DefaultReceiptDelay
	}
	if gr, err := gs.find(g); err == nil {
		d = scaledReceiptDelay(d, len(gr.state().Members))
	}
	return d + rand.N(d/2+1)
}

// scaledReceiptDelay is delay for a group of members.
func scaledReceiptDelay(delay time.Duration, members int) time.Duration {
	return delay * time.Duration(max(1, members/receiptMembers))
}

// runReceipts sends the delivered receipts: once a group's messages were
// stored, it waits its receiptPeriod for more, then sends its receipt.
func (gs *Service) runReceipts() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-gs.ctx.Done():
			return
		case <-gs.receipts.wake:
		case <-timer.C:
		}
		due, next := gs.receipts.take(time.Now())
		for id, ids := range due {
			g, err := gs.member(id)
			if err != nil {
				continue
			}
			if err := gs.sendReceipts(gs.ctx, g, history.ReceiptDelivered, ids); err != nil {
				gs.log.Info("delivered receipts", "group", id, "err", err)
			}
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
}

// sendReceipts tells group g that this node stored or read messages
// (what), in receipts of at most history.MaxRefs IDs.
func (gs *Service) sendReceipts(ctx context.Context, g *group, what string, ids []string) error {
	for len(ids) > 0 {
		k := min(len(ids), history.MaxRefs)
		w := history.Wire{Content: history.Content{Kind: history.KindReceipt, Text: what}, Refs: ids[:k]}
		if _, err := gs.sendWire(ctx, g, w); err != nil {
			return err
		}
		ids = ids[k:]
	}
	return nil
}

// WithReceipts fills a group message's receipts from the members it is
// for (its author's own do not count), how many those are now, and, for
// this node's own message, its state: delivered once every one of them
// stored it, read once every one read it.
func (gs *Service) WithReceipts(ctx context.Context, m *history.Message) error {
	if err := gs.hist.WithReceipts(ctx, m); err != nil {
		return err
	}
	notAuthor := func(r history.MemberReceipt) bool { return r.PeerID == m.From }
	m.DeliveredBy = slices.DeleteFunc(m.DeliveredBy, notAuthor)
	m.ReadBy = slices.DeleteFunc(m.ReadBy, notAuthor)
	m.Delivered, m.Read = len(m.DeliveredBy), len(m.ReadBy)
	g := gs.get(m.Group)
	if g == nil {
		return nil
	}
	st := g.state()
	m.Recipients = len(st.Members)
	if st.isMember(m.From) {
		m.Recipients--
	}
	if !m.Outgoing || m.Deleted || m.Recipients == 0 || m.State != history.MsgSent {
		return nil
	}
	switch {
	case len(m.ReadBy) >= m.Recipients:
		m.State = history.MsgRead
	case len(m.DeliveredBy) >= m.Recipients:
		m.State = history.MsgDelivered
	}
	return nil
}
