package history

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// change is an edit (text set) or a delete of target by author, at hlc.
func change(author peer.ID, group, target string, hlc uint64, text string) *Change {
	kind := KindDelete
	if text != "" {
		kind = KindEdit
	}
	ms := int64(1_700_000_000_000) + int64(hlc)
	return &Change{Author: author, Group: group, Wire: Wire{ID: DMID(author, "x", ms, hlc), SentAtMS: ms, HLC: hlc,
		Content: Content{Kind: kind, Text: text, Target: target}}}
}

// apply applies c in a batch of its own.
func apply(t *testing.T, s *Store, c *Change) (*Message, error) {
	t.Helper()
	ctx := context.Background()
	b, err := s.ds.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Apply(ctx, b, c, nil)
	if err == nil {
		err = b.Commit(ctx)
	}
	return m, err
}

// TestChangesApplyOnceInAnyOrder: an edit sets the text and its time, a
// later edit wins whatever the order they come in, a duplicate changes
// nothing, a delete leaves a tombstone nothing changes after; only the
// author changes a message.
func TestChangesApplyOnceInAnyOrder(t *testing.T) {
	ctx := context.Background()
	a, b := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob")
	m := dm(a, b, 10, "hello", false)
	s := stored(t, Config{}, m)
	if got, err := apply(t, s, change(b, "", m.ID, 20, "forged")); !errors.Is(err, ErrNotAuthor) || got != nil {
		t.Fatalf("bob edits alice's message: %+v %v", got, err)
	}
	if got, err := apply(t, s, change(a, "g1", m.ID, 20, "wrong conversation")); !errors.Is(err, ErrNotAuthor) || got != nil {
		t.Fatalf("an edit from a group: %+v %v", got, err)
	}
	if got, err := apply(t, s, change(a, "", m.ID, 30, "second")); err != nil || got == nil || got.Text != "second" || got.EditedAt.IsZero() {
		t.Fatalf("edit: %+v %v", got, err)
	}
	if got, err := apply(t, s, change(a, "", m.ID, 20, "first")); err != nil || got != nil {
		t.Fatalf("an older edit after a newer one: %+v %v", got, err)
	}
	if got, err := apply(t, s, change(a, "", m.ID, 30, "second")); err != nil || got != nil {
		t.Fatalf("a duplicate: %+v %v", got, err)
	}
	if got, _ := s.Get(ctx, m.ID); got.Text != "second" || got.EditedAt.UnixMilli() != 1_700_000_000_030 {
		t.Fatalf("stored: %+v", got)
	}
	if got, err := apply(t, s, change(a, "", m.ID, 40, "")); err != nil || got == nil || !got.Deleted || got.Text != "" {
		t.Fatalf("delete: %+v %v", got, err)
	}
	if got, err := apply(t, s, change(a, "", m.ID, 50, "back")); err != nil || got != nil {
		t.Fatalf("an edit after the delete: %+v %v", got, err)
	}
	if got, _ := s.Get(ctx, m.ID); !got.Deleted || got.Text != "" {
		t.Fatalf("stored: %+v", got)
	}
	if found, _ := s.Search(ctx, "second", MsgsPrefix, 0); len(found) != 0 {
		t.Fatalf("search finds the deleted text: %+v", found)
	}
}

// TestChangeBeforeItsMessage: an edit that comes before its message is
// kept, across a restart of the store, and applied when the message is
// stored; a forged one waiting is dropped then.
func TestChangeBeforeItsMessage(t *testing.T) {
	ctx := context.Background()
	a, b := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob")
	m := dm(a, b, 10, "hello", false)
	s := stored(t, Config{})
	for _, c := range []*Change{change(a, "", m.ID, 20, "edited"), change(b, "", m.ID, 30, "forged"), change(a, "", m.ID, 20, "edited")} {
		if got, err := apply(t, s, c); err != nil || got != nil {
			t.Fatalf("a change before its message: %+v %v", got, err)
		}
	}
	s = New(s.ds, Config{}) // a restart
	batch, _ := s.ds.Batch(ctx)
	if err := s.Put(ctx, batch, m); err != nil {
		t.Fatal(err)
	}
	if err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, m.ID); err != nil || got.Text != "edited" || got.EditedAt.IsZero() {
		t.Fatalf("the message stored: %+v %v", got, err)
	}
	if n := count(t, s, "/changes/"); n != 0 {
		t.Fatalf("%d changes still wait", n)
	}
}

func count(t *testing.T, s *Store, prefix string) int {
	n := 0
	Scan(context.Background(), s.ds, query.Query{Prefix: prefix}, func(string, []byte) (bool, error) { n++; return true, nil })
	return n
}

// TestGroupReceipts: receipts are by member; a reader counts as
// delivered; a late delivered receipt undoes nothing.
func TestGroupReceipts(t *testing.T) {
	ctx := context.Background()
	a := peer.ID("\x00\x05alice")
	b, c := peerFrom(t, 1), peerFrom(t, 2)
	m := dm(a, "", 10, "hello", true)
	m.To, m.Group = "", "g1"
	s := stored(t, Config{})
	at := time.UnixMilli(1_700_000_000_000)
	batch, _ := s.ds.Batch(ctx)
	for _, r := range []struct {
		p    peer.ID
		what string
	}{{b, ReceiptDelivered}, {c, ReceiptRead}, {c, ReceiptDelivered}} {
		if err := s.PutReceipt(ctx, batch, m.ID, r.p, r.what, at); err != nil {
			t.Fatal(err)
		}
	}
	batch.Commit(ctx)
	if err := s.WithReceipts(ctx, m); err != nil || len(m.DeliveredBy) != 2 || len(m.ReadBy) != 1 || m.ReadBy[0].PeerID != c {
		t.Fatalf("receipts: %+v %+v %v", m.DeliveredBy, m.ReadBy, err)
	}
}

// peerFrom is a real peer ID (WithReceipts reads them back from keys).
func peerFrom(t *testing.T, seed byte) peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(bytesReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	p, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type bytesReader byte

func (r bytesReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
