package chat

// Edits and deletes of direct messages. An edit or a delete for everyone
// is a message of kind edit or delete (history.Content.Target: the
// message it changes) that goes through the outbox like any message:
// stored, then delivered exactly once by the courier, directly or through
// the mailbox. The sender applies it to its own copy in the same batch
// that puts it in the outbox (applyOwn), so its history and the outbox
// never disagree; a message still in the outbox goes out as it now is.
// The receiver applies it to its copy (applyChange), only when the
// friend who sent it wrote the message (history.Store.Apply), and acks
// it either way: a refused change is dropped, not retried. A delete for
// this node only (DeleteLocal) sends nothing.

import (
	"context"
	"fmt"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history"
)

// Kinds of changes, and their events.
const (
	KindEdit   = history.KindEdit
	KindDelete = history.KindDelete
	// EventMessageEdited and EventMessageDeleted: a message was edited
	// or deleted, here or by its author. Data: *Message, as it now is.
	EventMessageEdited  = history.EventEdited
	EventMessageDeleted = history.EventDeleted
)

// Errors of changes (history's).
var (
	ErrNotAuthor   = history.ErrNotAuthor
	ErrNotEditable = history.ErrNotEditable
	ErrDeleted     = history.ErrDeleted
)

// Edit changes the text of a direct message this node sent: here at
// once, and on the friend's side when the edit is delivered. It returns
// the message as edited.
func (s *Service) Edit(ctx context.Context, id, text string) (*Message, error) {
	return s.change(ctx, id, history.Content{Kind: KindEdit, Text: text, Target: id})
}

// Delete deletes a direct message this node sent, for everyone: here at
// once (a tombstone), and on the friend's side when the delete is
// delivered.
func (s *Service) Delete(ctx context.Context, id string) (*Message, error) {
	return s.change(ctx, id, history.Content{Kind: KindDelete, Target: id})
}

// change checks and sends an edit or a delete of message id.
func (s *Service) change(ctx context.Context, id string, c history.Content) (*Message, error) {
	t, err := s.hist.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Group != "" {
		return nil, fmt.Errorf("chat: %w: %s is a group message", ErrInvalid, id)
	}
	if err := history.CheckChange(t, &history.Change{Author: s.h.ID(), Wire: wireMessage{Content: c}}); err != nil {
		return nil, err
	}
	ct, err := s.contact(ctx, t.To)
	if err != nil {
		return nil, err
	}
	if ct == nil || ct.State != StateFriend {
		return nil, fmt.Errorf("%w: %s (only a friend's copy can be changed)", ErrNotFriend, t.To)
	}
	if _, err := s.enqueue(ctx, t.To, wireMessage{Content: c}, false); err != nil {
		return nil, err
	}
	m, err := s.hist.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	s.publishChange(m)
	return m, nil
}

// DeleteLocal deletes a message, direct or of a group, on this node only
// (a tombstone: what it said is gone, its place in the conversation
// stays, so that it never comes back as new). Nothing is sent.
func (s *Service) DeleteLocal(ctx context.Context, id string) (*Message, error) {
	m, err := s.hist.Forget(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	s.publishChange(m)
	return m, nil
}

// applyOwn applies an edit or a delete this node sends to its own copy,
// in the batch that puts it in the outbox (the committer's).
func (s *Service) applyOwn(ctx context.Context, b datastore.Write, w *wireMessage) error {
	if w.Kind != KindEdit && w.Kind != KindDelete {
		return nil
	}
	_, err := s.hist.Apply(ctx, b, &history.Change{Author: s.h.ID(), Wire: *w}, nil)
	if history.Refused(err) {
		// Checked before it was queued: only a race (a delete here at the
		// same moment) gets here, and the change is simply moot.
		s.log.Info("own change refused", "id", w.ID, "err", err)
		return nil
	}
	return err
}

// applyChange applies an edit or a delete from a friend, in the batch of
// its round; fresh is what the round stored before it. A change the
// friend may not make is dropped (and acked with the round).
func (s *Service) applyChange(ctx context.Context, b datastore.Write, from peer.ID, w wireMessage, fresh []*Message, changed *[]*Message) error {
	inRound := func(id string) *Message {
		for _, m := range fresh {
			if m.ID == id {
				return m
			}
		}
		return nil
	}
	m, err := s.hist.Apply(ctx, b, &history.Change{Author: from, Wire: w}, inRound)
	switch {
	case history.Refused(err):
		s.log.Info("refused a change", "peer", from, "id", w.ID, "target", w.Target, "err", err)
		return nil
	case err != nil:
		return err
	}
	if m != nil && inRound(m.ID) == nil {
		*changed = append(*changed, m)
	}
	return nil
}

// publishChange announces a changed message.
func (s *Service) publishChange(m *Message) {
	typ := EventMessageEdited
	if m.Deleted {
		typ = EventMessageDeleted
	}
	s.publish(typ, m)
}
