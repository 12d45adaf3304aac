package chat

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history"
)

// A dropped file's fetched receipt: the recipient, once it fetched from
// a relay's file drop the file a message offers, sends the sender a
// delivery receipt (KindDelivered) of text history.ReceiptFetched with
// the offer's ID, through the outbox (parked in the sender's mailbox
// when the sender is away). The sender keeps it as the offer's
// file-fetched hop.

// ConfirmFetched tells p that this node fetched the dropped file that
// p's message id offers.
func (s *Service) ConfirmFetched(ctx context.Context, p peer.ID, id string) error {
	w := wireMessage{Content: history.Content{Kind: KindDelivered, Text: history.ReceiptFetched}, Refs: []string{id}}
	_, err := s.enqueue(ctx, p, w, false)
	return err
}

// FileFetched is when the recipient of this node's message id, which
// offers a dropped file, said it fetched the file.
func (s *Service) FileFetched(ctx context.Context, id string) (time.Time, bool) {
	h := s.hist.Hop(ctx, id, history.HopFileFetched)
	if h == nil {
		return time.Time{}, false
	}
	return h.At, true
}

// takeFetched records p's fetched receipt wm on the messages it names
// that this node sent p, the first time. The write is unsynced: the
// sync that follows, before the ack, covers it (as takeDelivered's).
func (s *Service) takeFetched(p peer.ID, wm wireMessage) {
	ids, err := s.receiptRefs(s.ctx, p, wm.Refs)
	if err != nil {
		return
	}
	ids = slices.DeleteFunc(ids, func(id string) bool {
		has, _ := s.ds.Has(s.ctx, history.TraceKey(id, history.HopFileFetched, ""))
		return has
	})
	s.putHops("a fetched receipt", ids, func(string) history.Hop {
		return history.Hop{Event: history.HopFileFetched, At: time.UnixMilli(wm.SentAtMS)}
	})
}
