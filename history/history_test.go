package history

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
)

// stored puts messages into a fresh store, each under the ID DMID (or
// GroupMessageID) makes, and returns the store.
func stored(t *testing.T, cfg Config, msgs ...*Message) *Store {
	t.Helper()
	s := New(copying{dssync.MutexWrap(datastore.NewMapDatastore())}, cfg)
	putAll(t, s, msgs...)
	return s
}

// copying copies what it is given, as the node's datastore (pebble)
// does: PutRecord reuses its buffers.
type copying struct{ datastore.Batching }

func (c copying) Put(ctx context.Context, k datastore.Key, v []byte) error {
	return c.Batching.Put(ctx, k, append([]byte(nil), v...))
}

func (c copying) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := c.Batching.Batch(ctx)
	return copyingBatch{b}, err
}

type copyingBatch struct{ datastore.Batch }

func (b copyingBatch) Put(ctx context.Context, k datastore.Key, v []byte) error {
	return b.Batch.Put(ctx, k, append([]byte(nil), v...))
}

func dm(from, to peer.ID, hlc uint64, text string, out bool) *Message {
	ms := int64(1_700_000_000_000) + int64(hlc)
	return &Message{ID: DMID(from, to, ms, hlc), From: from, To: to, Content: Content{Kind: KindText, Text: text},
		State: map[bool]string{true: MsgQueued, false: MsgReceived}[out], Time: time.UnixMilli(ms), HLC: hlc, Outgoing: out}
}

// TestStoreRoundTrip: what Put stores, Get and Page give back as it was,
// in conversation order, with its state; a group's history is apart from
// the direct conversations.
func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	a, b := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob")
	gid := make([]byte, 16)
	g := &Message{ID: GroupMessageID(gid, b, 1, 1_700_000_000_000), From: b, Group: "g1",
		Content: Content{Kind: KindFace, Face: "party"}, State: MsgReceived, Time: time.UnixMilli(1_700_000_000_000), HLC: 5}
	m1, m2, m3 := dm(a, b, 1, "hello", true), dm(b, a, 2, "hi there", false), dm(a, b, 3, "bye", true)
	pending := map[string]bool{m3.ID: true}
	s := stored(t, Config{Pending: func(_ context.Context, m *Message) (bool, error) { return pending[m.ID], nil }}, m3, g, m1, m2)

	got, err := s.Get(ctx, m2.ID)
	if err != nil || got.Text != m2.Text || got.From != b || got.To != a || got.HLC != 2 || got.State != MsgReceived || !got.Time.Equal(m2.Time) {
		t.Fatalf("Get: %+v %v", got, err)
	}
	page, err := s.Page(ctx, b.String(), "", 2)
	if err != nil || len(page.Messages) != 2 || !page.More || page.Messages[0].ID != m2.ID || page.Messages[1].ID != m3.ID {
		t.Fatalf("newest page: %+v %v", page, err)
	}
	// Out of the outbox (not pending): delivered; still in it: queued.
	if page.Messages[1].State != MsgQueued {
		t.Fatalf("a pending message reads %q", page.Messages[1].State)
	}
	page, err = s.Page(ctx, b.String(), m2.ID, 10)
	if err != nil || len(page.Messages) != 1 || page.More || page.Messages[0].ID != m1.ID || page.Messages[0].State != MsgDelivered {
		t.Fatalf("older page: %+v %v", page, err)
	}
	if _, err := s.Page(ctx, b.String(), "nope", 10); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("a page before an unknown ID: %v", err)
	}
	gp, err := s.Page(ctx, GroupConv("g1"), "", 10)
	if err != nil || len(gp.Messages) != 1 || gp.Messages[0].ID != g.ID || gp.Messages[0].Group != "g1" || gp.Messages[0].To != "" {
		t.Fatalf("group page: %+v %v", gp, err)
	}

	// Search: newest first, the face's name found too.
	found, err := s.Search(ctx, "H", MsgsPrefix, 0)
	if err != nil || len(found) != 2 || found[0].ID != m2.ID || found[1].ID != m1.ID {
		t.Fatalf("search: %+v %v", found, err)
	}
	if found, err := s.Search(ctx, "part", MsgPrefix(GroupConv("g1")), 0); err != nil || len(found) != 1 {
		t.Fatalf("search a face: %+v %v", found, err)
	}

	// MarkRead marks what was received, once.
	read, err := s.MarkRead(ctx, b.String())
	if err != nil || len(read) != 1 || read[0] != m2.ID {
		t.Fatalf("MarkRead: %v %v", read, err)
	}
	if read, err := s.MarkRead(ctx, b.String()); err != nil || len(read) != 0 {
		t.Fatalf("MarkRead again: %v %v", read, err)
	}
	if got, _ := s.Get(ctx, m2.ID); got.State != MsgRead {
		t.Fatalf("read message state %q", got.State)
	}
	if h, err := s.LastHLC(ctx, b.String()); err != nil || h != 3 {
		t.Fatalf("LastHLC: %d %v", h, err)
	}
}

// TestMessageJSON: a Message's JSON keeps its content's fields flat, the
// manifest out.
func TestMessageJSON(t *testing.T) {
	m := &Message{ID: "x", Content: Content{Kind: KindPicture, Thumbnail: []byte{1}, ThumbnailType: "image/png", Manifest: []byte{2}}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	json.Unmarshal(b, &fields)
	for _, k := range []string{"id", "kind", "thumbnail", "thumbnail_type", "state", "time", "hlc", "outgoing"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	for _, k := range []string{"Content", "Manifest", "manifest"} {
		if _, ok := fields[k]; ok {
			t.Errorf("%q in %s", k, b)
		}
	}
}

// TestSummary: a conversation's newest message (a reaction is not one)
// and its unread count, which counts every received message not marked
// read, a late one older than those read too.
func TestSummary(t *testing.T) {
	ctx := context.Background()
	a, b := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob")
	m1, m2, m3 := dm(b, a, 2, "one", false), dm(b, a, 3, "two", false), dm(a, b, 4, "mine", true)
	react := dm(b, a, 5, "", false)
	react.Content = Content{Kind: KindReaction, Text: "👍", ReactTo: m3.ID}
	s := stored(t, Config{}, m1, m2, m3, react)
	sum, err := s.Summary(ctx, b.String())
	if err != nil || sum.Last == nil || sum.Last.ID != m3.ID || sum.Unread != 3 {
		t.Fatalf("summary: %+v %v", sum, err)
	}
	if _, err := s.MarkRead(ctx, b.String()); err != nil {
		t.Fatal(err)
	}
	// A message that came late, older than those read.
	late := dm(b, a, 1, "late", false)
	b2, _ := s.ds.Batch(ctx)
	if err := s.Put(ctx, b2, late); err != nil {
		t.Fatal(err)
	}
	if err := b2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if sum, err = s.Summary(ctx, b.String()); err != nil || sum.Unread != 1 || sum.Last.ID != m3.ID {
		t.Fatalf("summary after read and a late message: %+v %v", sum, err)
	}
	if sum, err = s.Summary(ctx, "nobody"); err != nil || sum.Last != nil || sum.Unread != 0 {
		t.Fatalf("summary of an empty conversation: %+v %v", sum, err)
	}
}

// countingReads counts the entries its queries hand out.
type countingReads struct {
	datastore.Batching
	n *atomic.Int64
}

func (c countingReads) Query(ctx context.Context, q query.Query) (query.Results, error) {
	r, err := c.Batching.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	return query.ResultsFromIterator(q, query.Iterator{
		Next: func() (query.Result, bool) {
			res, ok := r.NextSync()
			if ok {
				c.n.Add(1)
			}
			return res, ok
		},
		Close: r.Close,
	}), nil
}

func putAll(t *testing.T, s *Store, msgs ...*Message) {
	t.Helper()
	ctx := context.Background()
	defer s.Writing()()
	b, err := s.ds.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := s.Put(ctx, b, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReadMark: once a conversation is read, Summary and MarkRead read
// only what came since (they read the whole history before: a second
// for 200,000 messages), a late message below the mark included, and
// the counts are those of reading everything.
func TestReadMark(t *testing.T) {
	ctx := context.Background()
	a, b := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob")
	var reads atomic.Int64
	s := New(countingReads{copying{dssync.MutexWrap(datastore.NewMapDatastore())}, &reads}, Config{})
	var msgs []*Message
	for i := range 1000 {
		msgs = append(msgs, dm(b, a, uint64(10+2*i), "hello", false))
	}
	putAll(t, s, msgs...)
	if sum, err := s.Summary(ctx, b.String()); err != nil || sum.Unread != 1000 {
		t.Fatalf("summary before any read: %+v %v", sum, err)
	}
	if read, err := s.MarkRead(ctx, b.String()); err != nil || len(read) != 1000 || read[0] != msgs[0].ID || read[999] != msgs[999].ID {
		t.Fatalf("MarkRead: %d read, %v", len(read), err)
	}
	// Two new messages, and one that came late, between two read ones.
	newer := []*Message{dm(b, a, 5000, "new", false), dm(a, b, 5001, "mine", true)}
	late := dm(b, a, 11, "late", false)
	putAll(t, s, append(newer, late)...)
	reads.Store(0)
	sum, err := s.Summary(ctx, b.String())
	if err != nil || sum.Unread != 2 || sum.Last.ID != newer[1].ID {
		t.Fatalf("summary after the read: %+v %v", sum, err)
	}
	if n := reads.Load(); n > 10 { // what they need, and a few read ahead
		t.Errorf("Summary read %d entries of a conversation read up to its last two messages", n)
	}
	reads.Store(0)
	read, err := s.MarkRead(ctx, b.String())
	if err != nil || !slices.Equal(read, []string{late.ID, newer[0].ID}) {
		t.Fatalf("MarkRead after the read: %v %v", read, err)
	}
	if n := reads.Load(); n > 10 { // what they need, and a few read ahead
		t.Errorf("MarkRead read %d entries of a conversation read up to its last two messages", n)
	}
	if m, err := s.Get(ctx, late.ID); err != nil || m.State != MsgRead {
		t.Fatalf("the late message after MarkRead: %+v %v", m, err)
	}
	if sum, err := s.Summary(ctx, b.String()); err != nil || sum.Unread != 0 {
		t.Fatalf("summary after the second read: %+v %v", sum, err)
	}
	if read, err := s.MarkRead(ctx, b.String()); err != nil || len(read) != 0 {
		t.Fatalf("MarkRead with nothing new: %v %v", read, err)
	}
	// A conversation read before read marks (its /read/ marks only) gets
	// one at its first Summary.
	c := peer.ID("\x00\x05carol")
	var old []*Message
	for i := range 100 {
		old = append(old, dm(c, a, uint64(10+i), "before marks", false))
	}
	putAll(t, s, old...)
	for _, m := range old {
		if err := s.ds.Put(ctx, ReadKey(m.ID), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, most := range []int64{1000, 10} {
		reads.Store(0)
		if sum, err := s.Summary(ctx, c.String()); err != nil || sum.Unread != 0 || sum.Last.ID != old[99].ID {
			t.Fatalf("summary %d of a conversation read before marks: %+v %v", i, sum, err)
		}
		if n := reads.Load(); n > most {
			t.Errorf("summary %d of a conversation read before marks read %d entries", i, n)
		}
	}
	// A store opened again reads its mark from the datastore.
	s2 := New(s.ds, Config{})
	putAll(t, s2, dm(b, a, 12, "later still", false))
	if sum, err := s2.Summary(ctx, b.String()); err != nil || sum.Unread != 1 {
		t.Fatalf("summary in a store opened again: %+v %v", sum, err)
	}
}

// TestMarkReadWaitsForWriters: a received message in a batch not yet
// committed, below the newest message, is not lost to a MarkRead that
// runs meanwhile: MarkRead waits for the writer (Writing), else it would
// write a mark above the message, which would then be neither read nor
// counted.
func TestMarkReadWaitsForWriters(t *testing.T) {
	ctx := context.Background()
	a, b := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob")
	newest := dm(b, a, 200, "newest", false)
	s := stored(t, Config{}, newest)
	slow := dm(b, a, 100, "stored meanwhile", false)
	release := s.Writing()
	batch, err := s.ds.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, batch, slow); err != nil {
		t.Fatal(err)
	}
	type result struct {
		read []string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		read, err := s.MarkRead(ctx, b.String())
		done <- result{read, err}
	}()
	// Until MarkRead, its conversation read, waits for the writer (a
	// reader can no longer take the lock), or has returned without.
	var r result
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
wait:
	for s.marksMu.TryRLock() {
		s.marksMu.RUnlock()
		select {
		case r = <-done: // no wait: the message is not in what it read
			break wait
		case <-tick.C:
		case <-deadline:
			t.Fatal("MarkRead neither returned nor waited for the writer")
		}
	}
	if err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	release()
	if r.read == nil && r.err == nil {
		r = <-done
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	sum, err := s.Summary(ctx, b.String())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.read, slow.ID) && sum.Unread != 1 {
		t.Fatalf("the message stored during MarkRead is neither read (%v) nor unread (%+v)", r.read, sum)
	}
}

// gatedGet, once armed, holds the first Get of key, after it has read
// its value, until release closes.
type gatedGet struct {
	datastore.Batching
	key              datastore.Key
	entered, release chan struct{}
	armed            atomic.Bool
}

func (g *gatedGet) Get(ctx context.Context, k datastore.Key) ([]byte, error) {
	v, err := g.Batching.Get(ctx, k)
	if k == g.key && g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	return v, err
}

// TestReadMarkNotStale: a Summary that read no mark while a MarkRead
// wrote one does not put the old mark back in the cache: a message that
// comes late afterwards is listed as late, and counted after a restart.
func TestReadMarkNotStale(t *testing.T) {
	ctx := context.Background()
	a, b := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob")
	base := copying{dssync.MutexWrap(datastore.NewMapDatastore())}
	gate := &gatedGet{Batching: base, key: readMarkKey(b.String()), entered: make(chan struct{}), release: make(chan struct{})}
	open := sync.OnceFunc(func() { close(gate.release) })
	defer open() // a failed test leaves no Summary waiting
	putAll(t, New(gate, Config{}), dm(b, a, 10, "read", false))
	s := New(gate, Config{}) // its cache empty: Summary reads the mark
	gate.armed.Store(true)
	summed := make(chan error, 1)
	go func() {
		_, err := s.Summary(ctx, b.String())
		summed <- err
	}()
	<-gate.entered // Summary read "no mark" and waits
	if read, err := s.MarkRead(ctx, b.String()); err != nil || len(read) != 1 {
		t.Fatalf("MarkRead: %v %v", read, err)
	}
	putAll(t, s, dm(b, a, 20, "new", false))
	open()
	if err := <-summed; err != nil {
		t.Fatal(err)
	}
	putAll(t, s, dm(b, a, 5, "late", false))
	if sum, err := New(base, Config{}).Summary(ctx, b.String()); err != nil || sum.Unread != 2 {
		t.Fatalf("after a restart: %+v %v, want the new and the late one unread", sum, err)
	}
}
