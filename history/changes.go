package history

// Edits, deletes and group receipts: what changes a stored message after
// it was stored. Their keys, beside those of store.go:
//
//	/changes/<target ID>/<change ID>     pb.StoredMessage (message: the edit or delete,
//	                                     from: its author, group): a change that came
//	                                     before its target; applied when the target
//	                                     is stored (Put), then deleted
//	/rcpt/<msg ID>/<member>/delivered    8 bytes, big-endian: when the member said it
//	/rcpt/<msg ID>/<member>/read         stored, or read, a group message (ms)
//
// A change is applied to its target's record, in place: an edit sets the
// text, EditedAt and EditHLC; a delete leaves a tombstone (Deleted, with
// text, face, thumbnail and file gone). Only the target's author may
// change it, in the conversation it belongs to (a direct message's by the
// friend who sent it, a group message's by the verified author in that
// group); anything else is refused (ErrNotAuthor) and changes nothing.
// Applying is idempotent and order-free: an edit applies only over an
// older edit (by clock reading), nothing changes a deleted message, and a
// change whose target has not come yet (a pull or a mailbox brings them
// out of order) is kept and applied when it comes. So a change that
// arrives twice, or before its message, ends the same as one that
// arrives once, in order.
//
// Receipts are written without reading: two keys per member, so a
// delivered receipt that comes after the read one undoes nothing.

import (
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
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/history/pb"
)

// Errors of changes.
var (
	// ErrNotAuthor refuses an edit or delete of a message by anyone but
	// its author.
	ErrNotAuthor = errors.New("history: only its author may edit or delete a message")
	// ErrNotEditable refuses an edit of a message without text of its
	// own (a face, a reaction).
	ErrNotEditable = errors.New("history: this kind of message cannot be edited (delete it instead)")
	// ErrDeleted refuses an edit of a deleted message.
	ErrDeleted = errors.New("history: the message was deleted")
	// ErrTooManyWaiting drops a change whose message has not come while
	// maxWaiting others wait.
	ErrTooManyWaiting = errors.New("history: too many changes wait for their messages")
)

// Refused reports whether err refuses a change for good (not a storage
// failure): the receiver drops it, a retry would change nothing.
func Refused(err error) bool {
	return errors.Is(err, ErrNotAuthor) || errors.Is(err, ErrNotEditable) || errors.Is(err, ErrTooManyWaiting)
}

// Events of changes (chat's and group's).
const (
	// EventEdited: a message was edited. Data: *Message, as it now is.
	EventEdited = "message.edited"
	// EventDeleted: a message was deleted. Data: *Message (a tombstone).
	EventDeleted = "message.deleted"
)

// maxWaiting bounds the changes kept for targets that have not come.
const maxWaiting = 4096

// Change is an edit or a delete (Wire kind edit or delete) as it came:
// from Author, in Group ("": a direct message).
type Change struct {
	Author peer.ID
	Group  string
	Wire
}

func changesPrefix(target string) string { return "/changes/" + target + "/" }

func rcptKey(id string, member peer.ID, what string) datastore.Key {
	return datastore.RawKey("/rcpt/" + id + "/" + member.String() + "/" + what)
}

// waiting is the changes kept for targets not stored yet, by target: a
// copy of /changes/ in memory, so that storing a message costs one map
// lookup (and a change and its target in one batch find each other).
type waiting struct {
	once sync.Once
	mu   sync.Mutex
	by   map[string][]*Change
	n    atomic.Int64 // changes in by: the hot path reads only this
	err  error
}

// waitingChanges reads /changes/ once.
func (s *Store) waitingChanges(ctx context.Context) (*waiting, error) {
	w := &s.waiting
	w.once.Do(func() {
		w.by = map[string][]*Change{}
		w.err = Scan(context.WithoutCancel(ctx), s.ds, query.Query{Prefix: "/changes/"}, func(key string, b []byte) (bool, error) {
			c, err := decodeChange(key, b)
			if err != nil {
				return false, err
			}
			w.by[c.Target] = append(w.by[c.Target], c)
			w.n.Add(1)
			return true, nil
		})
	})
	return w, w.err
}

func decodeChange(key string, b []byte) (*Change, error) {
	var rec pb.StoredMessage
	if err := proto.Unmarshal(b, &rec); err != nil || rec.GetMessage() == nil {
		return nil, fmt.Errorf("history: stored %s is damaged", key)
	}
	author, err := peer.IDFromBytes(rec.GetFrom())
	if err != nil {
		return nil, fmt.Errorf("history: stored %s is damaged", key)
	}
	return &Change{Author: author, Group: rec.GetGroup(), Wire: WireFromPB(rec.GetMessage())}, nil
}

// Apply applies a change (checked by its protocol) to its target, in w:
// it returns the target as it now is, nil when nothing changed (an edit
// older than the target's, a target deleted already, a target not here
// yet, whose change is kept). inBatch finds a message put in w and not
// committed yet (nil: none). A change that is not its author's, or an
// edit of a message without text, is refused: ErrNotAuthor,
// ErrNotEditable (nothing is written).
func (s *Store) Apply(ctx context.Context, w datastore.Write, c *Change, inBatch func(id string) *Message) (*Message, error) {
	var t *Message
	if inBatch != nil {
		t = inBatch(c.Target)
	}
	if t == nil {
		var err error
		if t, err = s.record(ctx, c.Target); errors.Is(err, ErrNoMessage) {
			return nil, s.keep(ctx, w, c)
		} else if err != nil {
			return nil, err
		}
	}
	changed, err := applyTo(t, c)
	if err != nil || !changed {
		return nil, err
	}
	return t, s.PutRecord(ctx, w, t)
}

// record reads a message's record as stored (without its state).
func (s *Store) record(ctx context.Context, id string) (*Message, error) {
	loc, err := s.ds.Get(ctx, IDKey(id))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, fmt.Errorf("%w: no message %q", ErrNoMessage, id)
	}
	if err != nil {
		return nil, err
	}
	return s.recordAt(ctx, loc, id)
}

// CheckChange says whether c would be refused on t (ErrNotAuthor,
// ErrNotEditable, ErrDeleted for an edit): what a sender checks before
// it sends one.
func CheckChange(t *Message, c *Change) error {
	probe := *t
	_, err := applyTo(&probe, c)
	if err == nil && t.Deleted {
		err = ErrDeleted
	}
	return err
}

// applyTo changes t as c says; it reports whether t changed.
func applyTo(t *Message, c *Change) (bool, error) {
	if t.From != c.Author || t.Group != c.Group {
		return false, fmt.Errorf("%w (%s is someone else's)", ErrNotAuthor, t.ID)
	}
	if c.Kind == KindEdit && (t.Kind == KindFace || t.Kind == KindReaction) {
		return false, fmt.Errorf("%w: %s is a %s", ErrNotEditable, t.ID, t.Kind)
	}
	if t.Deleted || c.HLC <= t.EditHLC {
		return false, nil // a later change is in already
	}
	t.EditHLC = c.HLC
	if c.Kind == KindEdit {
		t.Text, t.EditedAt = c.Text, c.SentAt()
		return true, nil
	}
	tombstone(t)
	return true, nil
}

// tombstone removes what a message says.
func tombstone(m *Message) {
	m.Deleted = true
	m.Text, m.Face, m.Thumbnail, m.ThumbnailType, m.Manifest, m.File = "", "", nil, "", nil, nil
}

// Forget deletes a message on this node only: a tombstone, committed
// (not synced). It returns the message as it now is.
func (s *Store) Forget(ctx context.Context, id string) (*Message, error) {
	s.forgetMu.Lock()
	defer s.forgetMu.Unlock()
	t, err := s.record(ctx, id)
	if err != nil {
		return nil, err
	}
	// The outbox sends a direct message from its record: deleted here
	// before it went out, it would reach the friend deleted.
	if t.Outgoing && t.Group == "" && s.cfg.Pending != nil {
		if pending, err := s.cfg.Pending(ctx, t); err != nil {
			return nil, err
		} else if pending {
			return nil, fmt.Errorf("history: %w delete: %s is not delivered yet; delete it for everyone, or once it is delivered", ErrInvalid, id)
		}
	}
	if !t.Deleted {
		tombstone(t)
		if err := s.PutRecord(ctx, s.ds, t); err != nil {
			return nil, err
		}
	}
	return s.WithState(ctx, t), nil
}

// keep stores a change whose target has not come.
func (s *Store) keep(ctx context.Context, w datastore.Write, c *Change) error {
	wt, err := s.waitingChanges(ctx)
	if err != nil {
		return err
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	for _, k := range wt.by[c.Target] {
		if k.ID == c.ID {
			return nil
		}
	}
	if n := wt.n.Load(); n >= maxWaiting {
		return fmt.Errorf("%w (%d); %s dropped", ErrTooManyWaiting, n, c.ID)
	}
	rec := &pb.StoredMessage{Message: c.ToWire(), From: []byte(c.Author), Group: c.Group}
	b, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	if err := w.Put(ctx, datastore.RawKey(changesPrefix(c.Target)+c.ID), b); err != nil {
		return err
	}
	wt.by[c.Target] = append(wt.by[c.Target], c)
	wt.n.Add(1)
	return nil
}

// applyWaiting applies to m, which is being stored, the changes that
// came before it, and deletes them. One not from m's author is dropped.
func (s *Store) applyWaiting(ctx context.Context, w datastore.Write, m *Message) error {
	wt, err := s.waitingChanges(ctx)
	if err != nil {
		return err
	}
	wt.mu.Lock()
	cs := wt.by[m.ID]
	delete(wt.by, m.ID)
	wt.n.Add(-int64(len(cs)))
	wt.mu.Unlock()
	slices.SortFunc(cs, func(a, b *Change) int { return cmp.Compare(a.HLC, b.HLC) })
	for _, c := range cs {
		applyTo(m, c) // a forged one changes nothing
		if err := w.Delete(ctx, datastore.RawKey(changesPrefix(m.ID)+c.ID)); err != nil {
			return err
		}
	}
	return nil
}

// hasWaiting reports whether changes wait for message id.
func (s *Store) hasWaiting(ctx context.Context, id string) bool {
	wt, err := s.waitingChanges(ctx)
	if err != nil || wt.n.Load() == 0 {
		return false
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return len(wt.by[id]) > 0
}

// InConv reports whether stored message id belongs to conversation conv.
func (s *Store) InConv(ctx context.Context, id, conv string) (bool, error) {
	loc, err := s.ds.Get(ctx, IDKey(id))
	if errors.Is(err, datastore.ErrNotFound) {
		return false, nil
	}
	return err == nil && strings.HasPrefix(string(loc), conv+"/"), err
}

// PutReceipt records what member said of group message id: what is
// ReceiptDelivered or ReceiptRead.
func (s *Store) PutReceipt(ctx context.Context, w datastore.Write, id string, member peer.ID, what string, at time.Time) error {
	return w.Put(ctx, rcptKey(id, member, what), binary.BigEndian.AppendUint64(nil, uint64(at.UnixMilli())))
}

// WithReceipts fills a group message's DeliveredBy and ReadBy, by peer
// ID; a reader is among those it was delivered to.
func (s *Store) WithReceipts(ctx context.Context, m *Message) error {
	if m.Group == "" {
		return nil
	}
	delivered := map[peer.ID]time.Time{}
	var read []MemberReceipt
	err := Scan(ctx, s.ds, query.Query{Prefix: "/rcpt/" + m.ID + "/"}, func(key string, b []byte) (bool, error) {
		parts := strings.Split(key, "/") // "", rcpt, id, member, what
		if len(parts) != 5 || len(b) != 8 {
			return true, nil
		}
		p, err := peer.Decode(parts[3])
		if err != nil {
			return true, nil
		}
		at := time.UnixMilli(int64(binary.BigEndian.Uint64(b)))
		if parts[4] == ReceiptRead {
			read = append(read, MemberReceipt{PeerID: p, At: at})
		}
		if d, ok := delivered[p]; !ok || at.Before(d) {
			delivered[p] = at
		}
		return true, nil
	})
	m.DeliveredBy, m.ReadBy = nil, read
	for p, at := range delivered {
		m.DeliveredBy = append(m.DeliveredBy, MemberReceipt{PeerID: p, At: at})
	}
	byPeer := func(a, b MemberReceipt) int { return strings.Compare(string(a.PeerID), string(b.PeerID)) }
	slices.SortFunc(m.DeliveredBy, byPeer)
	slices.SortFunc(m.ReadBy, byPeer)
	return err
}
