package chat

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history"
)

// KindCall is a call in a conversation (history.KindCall).
const KindCall = history.KindCall

// LogCall writes a call with friend p into the conversation: text says
// how it went ("call, 3:12", "missed call"); incoming is a call p made.
// The record is this node's own: stored (durably, when LogCall returns)
// and shown, never sent. It is published as a message.received event.
func (s *Service) LogCall(ctx context.Context, p peer.ID, incoming bool, text string) (*Message, error) {
	if text == "" || len(text) > history.MaxCallText || !utf8.ValidString(text) {
		return nil, fmt.Errorf("chat: %w call record: %q", ErrInvalid, text)
	}
	w := wireMessage{Content: history.Content{Kind: KindCall, Text: text}}
	m, err := s.commit(ctx, &sendReq{p: p, w: w, shown: true, local: true, incoming: incoming})
	if err != nil {
		return nil, err
	}
	s.publish(EventMessage, m)
	return m, nil
}

// putLocal stores a local record (commitSends has stamped r.m): an
// incoming call is p's, unread, like a message of p's; this node's own
// call is outgoing and settled: no outbox entry, and its /state/ says
// delivered, so that a restart, which takes the outgoing messages above
// the conversation's acked mark for the outbox (outbox.go), never sends
// it.
func (s *Service) putLocal(ctx context.Context, b datastore.Batch, r *sendReq) error {
	if r.incoming {
		r.m.From, r.m.To, r.m.Outgoing, r.m.State = r.p, s.h.ID(), false, MsgReceived
	} else if err := b.Put(ctx, history.StateKey(r.m.ID), []byte(MsgDelivered)); err != nil {
		return err
	}
	return s.hist.Put(ctx, b, r.m)
}
