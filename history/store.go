package history

// The history's keys, in the datastore namespace node gives chat and
// groups (/chat), beside the keys of chat/store.go and group/service.go:
//
//	/msgs/<conversation>/<hlc %016x>/<msg ID> pb.StoredMessage: the conversation, in order;
//	                                     the conversation is a peer ID (direct
//	                                     messages) or g:<group ID> (a group's)
//	/msgid/<msg ID>                      "<conversation>/<hlc %016x>": index for dedup and lookup
//	/state/<msg ID>                      "failed:<reason>", or "delivered" (a direct
//	                                     message acked while one sent before it
//	                                     waits: chat's acked mark cannot pass it)
//	/read/<msg ID>                       the time it was read (8 bytes, big-endian unix
//	                                     ms; "" before 2026-12-07 for a message read here):
//	                                     the message was read (by the peer, or here)
//	/trace/<msg ID>/<event>[/<member>]   pb.Hop: a step of the message's trace (trace.go)
//	/readmark/<conversation>             the conversation's read mark (8 bytes, big-endian
//	                                     clock reading): MarkRead read every received
//	                                     message at or below it when it wrote it
//	/files/..., /filesindexed             the index of file messages: see files.go
//	/late/<conversation>/<hlc %016x>/<msg ID>
//	                                     "": a received message stored at or below
//	                                     the read mark (it came late), unread until
//	                                     MarkRead, which deletes the entry
//	/changes/..., /rcpt/...              edits and deletes that came before their
//	                                     message, and group receipts: see changes.go
//
// A message's state is read, else the /state value, else the state in its
// record (queued, received), where a queued direct message no longer in
// chat's outbox was delivered (Config.Pending). Each is written without
// reading the others, so an ack that comes after a read receipt cannot
// undo it.
//
// Unread counts go by the read mark: the received messages above it
// without a /read/ mark, and the /late/ entries. Summary and MarkRead
// read the conversation above the mark only, not its whole history (a
// conversation of 200,000 messages took a second for each). A message
// stored while MarkRead reads would be missed if its place were below the
// mark MarkRead then writes, so a writer that stores received messages
// holds Writing until its batch is committed, and MarkRead waits for it.
//
// HLC readings are fixed-width hex, so keys sort in conversation order.

import (
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
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

// MsgsPrefix is the prefix of every conversation's messages.
const MsgsPrefix = "/msgs/"

// MsgKey is the key of a message's record.
func MsgKey(conv string, hlc uint64, id string) datastore.Key {
	return datastore.RawKey(ConvKey(MsgsPrefix, conv, hlc, id))
}

// MsgLoc is the /msgid/ value of a message: its place,
// "<conversation>/<hlc %016x>", made as the bytes it is stored as.
func MsgLoc(conv string, hlc uint64) []byte {
	return appendHLC(append(append(make([]byte, 0, len(conv)+17), conv...), '/'), hlc)
}

// recordAt reads and decodes message id's record at loc, a MsgLoc (what
// the /msgid/ index and the file index hold).
func (s *Store) recordAt(ctx context.Context, loc []byte, id string) (*Message, error) {
	key := locKey(loc, id)
	b, err := s.ds.Get(ctx, datastore.RawKey(key))
	if err != nil {
		return nil, err
	}
	return s.Decode(key, b)
}

// locKey is the key of message id's record at loc.
func locKey(loc []byte, id string) string { return MsgsPrefix + string(loc) + "/" + id }

// MsgPrefix is the prefix of one conversation's messages.
func MsgPrefix(conv string) string { return MsgsPrefix + conv + "/" }

// IDKey is the /msgid/ index entry of a message ID.
func IDKey(id string) datastore.Key { return datastore.RawKey("/msgid/" + id) }

// StateKey holds a message's state when it failed.
func StateKey(id string) datastore.Key { return datastore.RawKey("/state/" + id) }

// ReadKey marks a message read.
func ReadKey(id string) datastore.Key { return datastore.RawKey("/read/" + id) }

// readMarkKey holds a conversation's read mark.
func readMarkKey(conv string) datastore.Key { return datastore.RawKey("/readmark/" + conv) }

// lateKey lists a received message that came below the read mark.
func lateKey(conv string, hlc uint64, id string) datastore.Key {
	return datastore.RawKey(ConvKey("/late/", conv, hlc, id))
}

// latePrefix is the prefix of a conversation's /late/ entries.
func latePrefix(conv string) string { return "/late/" + conv + "/" }

// GroupConv is the conversation of a group's history.
func GroupConv(id string) string { return "g:" + id }

// ConvKey is prefix + "<conversation>/<hlc %016x>" [+ "/" + id]: a place in
// a conversation's order (Sprintf was a tenth of storing a message).
func ConvKey(prefix, conv string, hlc uint64, id string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(conv) + 18 + len(id))
	b.WriteString(prefix)
	b.WriteString(conv)
	b.WriteByte('/')
	var hex [16]byte
	b.Write(appendHLC(hex[:0], hlc))
	if id != "" {
		b.WriteByte('/')
		b.WriteString(id)
	}
	return b.String()
}

// appendHLC appends a clock reading as 16 hex digits, which sort as the
// readings do.
func appendHLC(b []byte, hlc uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, "0123456789abcdef"[hlc>>shift&0xf])
	}
	return b
}

// ParseMsgKey reads the clock reading and message ID at the end of a
// message's key (MsgKey).
func ParseMsgKey(key string) (hlc uint64, id string, ok bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 17 || key[i-17] != '/' {
		return 0, "", false
	}
	for _, c := range []byte(key[i-16 : i]) {
		switch {
		case '0' <= c && c <= '9':
			hlc = hlc<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			hlc = hlc<<4 | uint64(c-'a'+10)
		default:
			return 0, "", false
		}
	}
	return hlc, key[i+1:], true
}

// Config holds what a Store needs from its user.
type Config struct {
	// FileInfo summarises an offered file's manifest (nil when there is
	// none or it is bad); nil leaves Message.File empty.
	FileInfo func(manifest []byte) *FileInfo
	// Pending reports whether an outgoing direct message is still to be
	// delivered (in chat's outbox); nil: none is.
	Pending func(ctx context.Context, m *Message) (bool, error)
}

// Store is the stored messages of every conversation, in the datastore it
// is given (the /chat namespace).
type Store struct {
	ds       datastore.Batching
	cfg      Config
	waiting  waiting    // changes.go
	forgetMu sync.Mutex // one Forget at a time

	// marksMu: writers of received messages hold it shared (Writing),
	// MarkRead alone. written counts the writers done: MarkRead reads the
	// conversation before it takes marksMu, and again under it only if
	// a writer was done meanwhile. readMarks caches each conversation's
	// read mark (string -> uint64; 0: none).
	marksMu   sync.RWMutex
	written   atomic.Int64
	readMarks sync.Map

	files filesIndex // files.go
}

// New returns the history in ds. ds, and every datastore.Write handed
// to Put, PutRecord and PutHop, must copy the values it is given before
// Put returns (pebble does; go-datastore's basic batch, under a
// MapDatastore, keeps them until Commit): their encoding buffers are
// pooled and serve the next record.
func New(ds datastore.Batching, cfg Config) *Store { return &Store{ds: ds, cfg: cfg} }

// PeerString is p's string form, cached for the whole process: base58
// takes microseconds, and the hot paths (a message's keys, the name of
// its author in an event) ask for it for every message. The cache holds
// at most maxPeerStrings peers and starts over when full: a node names
// every peer that connects to it (node.Status), not only friends.
func PeerString(p peer.ID) string {
	if v, ok := peerStrings.Load(p); ok {
		return v.(string)
	}
	v := p.String()
	if peerStringsN.Add(1) > maxPeerStrings {
		peerStrings.Clear()
		peerStringsN.Store(1)
	}
	peerStrings.Store(p, v)
	return v
}

const maxPeerStrings = 4096

var (
	peerStrings  sync.Map // peer.ID -> its string form
	peerStringsN atomic.Int64
)

// Conv is the conversation a message belongs to.
func (s *Store) Conv(m *Message) string {
	if m.Group != "" {
		return GroupConv(m.Group)
	}
	return PeerString(m.PeerOf())
}

// FileInfo summarises a manifest (see Config.FileInfo).
func (s *Store) FileInfo(manifest []byte) *FileInfo {
	if s.cfg.FileInfo == nil || len(manifest) == 0 {
		return nil
	}
	return s.cfg.FileInfo(manifest)
}

// Put writes m's record and its /msgid/ index entry into w, with the
// edits and deletes that came before it applied (changes.go). A received
// message that comes at or below its conversation's read mark is listed
// under /late/ too: the caller holds Writing from this Put until w is
// committed.
func (s *Store) Put(ctx context.Context, w datastore.Write, m *Message) error {
	if s.hasWaiting(ctx, m.ID) {
		if err := s.applyWaiting(ctx, w, m); err != nil {
			return err
		}
	}
	if err := s.PutRecord(ctx, w, m); err != nil {
		return err
	}
	conv := s.Conv(m)
	if offersFile(m) {
		if err := w.Put(ctx, fileKey(m.HLC, m.ID), MsgLoc(conv, m.HLC)); err != nil {
			return err
		}
	}
	if !m.Outgoing && m.State == MsgReceived {
		mark, err := s.readMark(ctx, conv)
		if err != nil {
			return err
		}
		if mark > 0 && m.HLC <= mark {
			if err := w.Put(ctx, lateKey(conv, m.HLC, m.ID), nil); err != nil {
				return err
			}
		}
	}
	return w.Put(ctx, IDKey(m.ID), MsgLoc(conv, m.HLC))
}

// Writing is held by a writer that stores received messages (Put), from
// its first Put into a batch until the batch is committed: MarkRead waits
// for it, so that no message is stored below the read mark it writes
// without a /late/ entry. It returns the release, which may be called
// more than once. A writer must not call it again while holding it.
func (s *Store) Writing() (release func()) {
	s.marksMu.RLock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.written.Add(1)
			s.marksMu.RUnlock()
		})
	}
}

// putReadMark writes conversation conv's read mark, mark, into w (readMark
// reads it).
func putReadMark(ctx context.Context, w datastore.Write, conv string, mark uint64) error {
	return w.Put(ctx, readMarkKey(conv), binary.BigEndian.AppendUint64(nil, mark))
}

// readMark is conversation conv's read mark (0: none yet).
func (s *Store) readMark(ctx context.Context, conv string) (uint64, error) {
	if v, ok := s.readMarks.Load(conv); ok {
		return v.(uint64), nil
	}
	var mark uint64
	switch b, err := s.ds.Get(ctx, readMarkKey(conv)); {
	case errors.Is(err, datastore.ErrNotFound):
	case err != nil:
		return 0, err
	case len(b) != 8:
		return 0, fmt.Errorf("history: stored %s is damaged", readMarkKey(conv))
	default:
		mark = binary.BigEndian.Uint64(b)
	}
	// A MarkRead may have stored a newer mark meanwhile: it wins.
	v, _ := s.readMarks.LoadOrStore(conv, mark)
	return v.(uint64), nil
}

// PutRecord writes m's record under its conversation key, as protobuf
// (JSON spent a tenth of a send escaping the text).
func (s *Store) PutRecord(ctx context.Context, w datastore.Write, m *Message) error {
	r := recordBufs.Get().(*recordBuf)
	defer func() {
		// The messages point into m: cleared before they are pooled.
		proto.Reset(&r.msg)
		proto.Reset(&r.rec)
		proto.Reset(&r.via)
		recordBufs.Put(r)
	}()
	wm := &r.msg
	wm.Id, wm.SentAtMs, wm.Hlc = m.ID, m.Time.UnixMilli(), m.HLC
	m.Content.fill(wm)
	rec := &r.rec
	rec.Message, rec.Outgoing, rec.State, rec.Group = wm, m.Outgoing, m.State, m.Group
	rec.From, rec.To = append(r.from[:0], m.From...), append(r.to[:0], m.To...)
	r.from, r.to = rec.From, rec.To
	if m.Via != nil {
		m.Via.fill(&r.via)
		rec.Via = &r.via
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(r.buf[:0], rec)
	if err != nil {
		return err
	}
	r.buf = b
	return w.Put(ctx, MsgKey(s.Conv(m), m.HLC, m.ID), b)
}

// recordBuf is what PutRecord encodes a record with.
type recordBuf struct {
	msg      pb.Message
	rec      pb.StoredMessage
	via      pb.Hop
	from, to []byte
	buf      []byte
}

// recordBufs are PutRecord's buffers: the node's datastore (pebble)
// copies what a put or a batch is given, so a record's buffer and its
// protobuf messages serve the next one (a fresh buffer for every message
// was 3% of the CPU under load, the messages a tenth of what a DM
// allocated on both sides).
var recordBufs = sync.Pool{New: func() any { return new(recordBuf) }}

// Decode reads a message's record (key names it in errors).
func (s *Store) Decode(key string, b []byte) (*Message, error) {
	var rec pb.StoredMessage
	if err := proto.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("history: stored %s is damaged: %w", key, err)
	}
	w := rec.GetMessage()
	from, err1 := peer.IDFromBytes(rec.GetFrom())
	to, err2 := peer.IDFromBytes(rec.GetTo())
	if rec.GetGroup() != "" && len(rec.GetTo()) == 0 {
		to, err2 = "", nil
	}
	if w == nil || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("history: stored %s is damaged", key)
	}
	return &Message{ID: w.GetId(), From: from, To: to, Content: contentFromWire(w),
		State: rec.GetState(), Time: time.UnixMilli(w.GetSentAtMs()), HLC: w.GetHlc(), Outgoing: rec.GetOutgoing(),
		File: s.FileInfo(w.GetFile()), Group: rec.GetGroup(), Via: hopFromWire(rec.GetVia())}, nil
}

// Query scans stored messages.
func (s *Store) Query(ctx context.Context, q query.Query, fn func(key string, m *Message) bool) error {
	return Scan(ctx, s.ds, q, func(key string, b []byte) (bool, error) {
		m, err := s.Decode(key, b)
		if err != nil {
			return false, err
		}
		return fn(key, m), nil
	})
}

// Has reports whether the history holds a message ID.
func (s *Store) Has(ctx context.Context, id string) (bool, error) { return s.ds.Has(ctx, IDKey(id)) }

// WithState puts the current state into a message read from its record.
func (s *Store) WithState(ctx context.Context, m *Message) *Message {
	if ok, _ := s.ds.Has(ctx, ReadKey(m.ID)); ok {
		m.State = MsgRead
	} else if v, err := s.ds.Get(ctx, StateKey(m.ID)); err == nil {
		m.State, m.Error, _ = strings.Cut(string(v), ":")
	} else if m.State == MsgQueued && m.Outgoing && m.Group == "" && s.cfg.Pending != nil {
		// Out of the outbox, without another state: acked.
		if pending, err := s.cfg.Pending(ctx, m); err == nil && !pending {
			m.State = MsgDelivered
		}
	}
	switch {
	case m.Outgoing && m.Group == "" && (m.State == MsgDelivered || m.State == MsgRead):
		s.deliveryTime(ctx, m)
	case m.Outgoing && m.Group == "" && m.State == MsgQueued:
		if h := s.hop(ctx, m.ID, HopParked); h != nil {
			m.ParkedOn = h.Relay
		}
	}
	return m
}

// LastHLC is the clock reading of the latest message of a conversation
// (0: none).
func (s *Store) LastHLC(ctx context.Context, conv string) (uint64, error) {
	var h uint64
	err := Scan(ctx, s.ds, query.Query{Prefix: MsgPrefix(conv), Orders: []query.Order{query.OrderByKeyDescending{}}, Limit: 1, KeysOnly: true},
		func(key string, _ []byte) (bool, error) {
			h, _, _ = ParseMsgKey(key)
			return false, nil
		})
	return h, err
}

// Page is one page of a conversation, oldest first.
type Page struct {
	Messages []*Message `json:"messages"`
	// More: older messages exist (ask again with Before = Messages[0].ID).
	More bool `json:"more"`
}

// Page returns up to limit messages of conversation conv, older than the
// message before (empty: the newest), in conversation order.
func (s *Store) Page(ctx context.Context, conv string, before string, limit int) (*Page, error) {
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	q := query.Query{Prefix: MsgPrefix(conv), Orders: []query.Order{query.OrderByKeyDescending{}}}
	var beforeKey string
	if before != "" {
		loc, err := s.ds.Get(ctx, IDKey(before))
		if err != nil {
			return nil, fmt.Errorf("%w: no message %q", ErrNoMessage, before)
		}
		beforeKey = locKey(loc, before)
	}
	page := &Page{Messages: []*Message{}}
	err := s.Query(ctx, q, func(key string, m *Message) bool {
		if beforeKey != "" && key >= beforeKey {
			return true
		}
		if len(page.Messages) == limit {
			page.More = true
			return false
		}
		page.Messages = append(page.Messages, s.WithState(ctx, m))
		return true
	})
	if err != nil {
		return nil, err
	}
	// Newest first from the query; a page reads oldest first.
	for i, j := 0, len(page.Messages)-1; i < j; i, j = i+1, j-1 {
		page.Messages[i], page.Messages[j] = page.Messages[j], page.Messages[i]
	}
	return page, nil
}

// Search finds messages under prefix (MsgsPrefix: all; MsgPrefix: one
// conversation) whose text contains text (case-insensitive); newest
// first, at most limit (0: 100). It keeps only the best limit matches
// while it scans, whatever the history's size.
func (s *Store) Search(ctx context.Context, text, prefix string, limit int) ([]*Message, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	needle := strings.ToLower(text)
	best := &byHLC{}
	err := s.Query(ctx, query.Query{Prefix: prefix}, func(_ string, m *Message) bool {
		if !strings.Contains(strings.ToLower(m.Text), needle) && (m.Face == "" || !strings.Contains(m.Face, needle)) {
			return true
		}
		if best.Len() < limit {
			heap.Push(best, m)
		} else if m.HLC > (*best)[0].HLC {
			(*best)[0] = m
			heap.Fix(best, 0)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Message, best.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = s.WithState(ctx, heap.Pop(best).(*Message))
	}
	return out, nil
}

// byHLC is a min-heap of messages by clock reading.
type byHLC []*Message

func (h byHLC) Len() int           { return len(h) }
func (h byHLC) Less(i, j int) bool { return h[i].HLC < h[j].HLC }
func (h byHLC) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *byHLC) Push(x any)        { *h = append(*h, x.(*Message)) }
func (h *byHLC) Pop() any {
	old := *h
	m := old[len(old)-1]
	*h = old[:len(old)-1]
	return m
}

// MarkRead marks every received message of conversation conv read,
// unsynced, and returns their IDs: those above the read mark and those
// that came late below it. The read mark moves up to the conversation's
// newest message. It reads the conversation first with the writers of
// received messages going on, then holds them off (Writing) while it
// writes, reading again only if one of them was done meanwhile: the first
// MarkRead of a conversation without a mark reads all of it, and must not
// stop every conversation's receiving that long.
func (s *Store) MarkRead(ctx context.Context, conv string) ([]string, error) {
	before := s.written.Load()
	p, err := s.readPlan(ctx, conv)
	if err != nil {
		return nil, err
	}
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	if mark, err := s.readMark(ctx, conv); err != nil {
		return nil, err
	} else if s.written.Load() != before || mark != p.mark {
		if p, err = s.readPlan(ctx, conv); err != nil {
			return nil, err
		}
	}
	if len(p.read) == 0 && len(p.late) == 0 && p.top == p.mark {
		return nil, nil
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return nil, err
	}
	// The mark says when: the trace's read hop.
	stamp := ReadStamp(time.Now())
	for _, id := range p.read {
		if err := b.Put(ctx, ReadKey(id), stamp); err != nil {
			return nil, err
		}
	}
	for _, k := range p.late {
		if err := b.Delete(ctx, datastore.RawKey(k)); err != nil {
			return nil, err
		}
	}
	if p.top > p.mark {
		if err := putReadMark(ctx, b, conv, p.top); err != nil {
			return nil, err
		}
	}
	if err := b.Commit(ctx); err != nil {
		return nil, err
	}
	s.readMarks.Store(conv, p.top)
	return p.read, nil
}

// readPlan is what MarkRead writes: the mark it read the conversation
// above and the newest reading there, the /late/ entries, and the IDs to
// mark read (the late ones, then those above the mark in conversation
// order).
type readPlan struct {
	mark, top uint64
	late      []string
	read      []string
}

func (s *Store) readPlan(ctx context.Context, conv string) (*readPlan, error) {
	mark, late, err := s.markAndLate(ctx, conv)
	if err != nil {
		return nil, err
	}
	p := &readPlan{mark: mark, top: mark, late: late, read: make([]string, 0, len(late))}
	for _, k := range late {
		if _, id, ok := ParseMsgKey(k); ok {
			p.read = append(p.read, id)
		}
	}
	above := len(p.read)
	err = s.Query(ctx, query.Query{Prefix: MsgPrefix(conv), Orders: []query.Order{query.OrderByKeyDescending{}}}, func(_ string, m *Message) bool {
		if m.HLC <= mark {
			return false
		}
		p.top = max(p.top, m.HLC)
		if s.unread(ctx, m) {
			p.read = append(p.read, m.ID)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(p.read[above:]) // in conversation order, after the late ones
	return p, nil
}

// markAndLate reads conversation conv's read mark and the keys of its
// /late/ entries.
func (s *Store) markAndLate(ctx context.Context, conv string) (mark uint64, late []string, err error) {
	if mark, err = s.readMark(ctx, conv); err != nil {
		return 0, nil, err
	}
	err = Scan(ctx, s.ds, query.Query{Prefix: latePrefix(conv), KeysOnly: true}, func(key string, _ []byte) (bool, error) {
		late = append(late, key)
		return true, nil
	})
	return mark, late, err
}

// unread reports whether m, as stored, is a received message without a
// read mark: what MarkRead marks and Summary counts. (A received
// message's state is only ever changed by that mark.)
func (s *Store) unread(ctx context.Context, m *Message) bool {
	if m.Outgoing || m.State != MsgReceived {
		return false
	}
	read, _ := s.ds.Has(ctx, ReadKey(m.ID))
	return !read
}

// Summary is what a conversation list shows of a conversation.
type Summary struct {
	// Last is the newest message that shows as a message (not a
	// reaction); nil when there is none.
	Last *Message
	// Unread counts the received messages not marked read (MarkRead
	// marks them).
	Unread int
}

// Summary reads conversation conv's newest message and how many of its
// received messages are unread: those above the read mark without a
// /read/ mark, and the late ones (a message that came late, older than
// messages already read, still counts). It reads the conversation down
// to the read mark, and on only as far as its newest message that is
// not a reaction. A conversation with nothing unread and no read mark
// yet (a store from before read marks, where nothing marked it since)
// gets one, so that only its first Summary reads it whole.
func (s *Store) Summary(ctx context.Context, conv string) (*Summary, error) {
	before := s.written.Load()
	mark, late, err := s.markAndLate(ctx, conv)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Unread: len(late)}
	var top uint64
	err = s.Query(ctx, query.Query{Prefix: MsgPrefix(conv), Orders: []query.Order{query.OrderByKeyDescending{}}}, func(_ string, m *Message) bool {
		if m.HLC <= mark && sum.Last != nil {
			return false
		}
		top = max(top, m.HLC)
		if sum.Last == nil && m.Kind != KindReaction {
			sum.Last = s.WithState(ctx, m)
		}
		if m.HLC > mark && s.unread(ctx, m) {
			sum.Unread++
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if mark == 0 && sum.Unread == 0 && top > 0 {
		if err := s.markAllRead(ctx, conv, top, before); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// markAllRead writes conversation conv's read mark at top, its newest
// reading, which Summary read with nothing unread below it, unless a
// writer of received messages was done since Summary began (written was
// before then; the next Summary tries again) or a mark is there now.
func (s *Store) markAllRead(ctx context.Context, conv string, top uint64, before int64) error {
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	if s.written.Load() != before {
		return nil
	}
	if mark, err := s.readMark(ctx, conv); err != nil || mark != 0 {
		return err
	}
	if err := putReadMark(ctx, s.ds, conv, top); err != nil {
		return err
	}
	s.readMarks.Store(conv, top)
	return nil
}

// Get returns one message by ID.
func (s *Store) Get(ctx context.Context, id string) (*Message, error) {
	loc, err := s.ds.Get(ctx, IDKey(id))
	if err != nil {
		return nil, fmt.Errorf("%w: no message %q", ErrNoMessage, id)
	}
	m, err := s.recordAt(ctx, loc, id)
	if err != nil {
		return nil, err
	}
	return s.WithState(ctx, m), nil
}

// IDsWithPrefix lists up to max message IDs that start with prefix, in
// order. Datastore prefixes match whole key segments, so it reads the
// index's keys (never the records) and filters them.
func (s *Store) IDsWithPrefix(ctx context.Context, prefix string, max int) ([]string, error) {
	var out []string
	q := query.Query{Prefix: "/msgid/", KeysOnly: true, Filters: []query.Filter{query.FilterKeyPrefix{Prefix: "/msgid/" + prefix}}}
	err := Scan(ctx, s.ds, q, func(key string, _ []byte) (bool, error) {
		out = append(out, strings.TrimPrefix(key, "/msgid/"))
		return len(out) < max, nil
	})
	return out, err
}

// GetJSON reads a JSON value.
func GetJSON(ctx context.Context, ds datastore.Read, k datastore.Key, v any) error {
	b, err := ds.Get(ctx, k)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("history: stored %s is damaged: %w", k, err)
	}
	return nil
}

// PutJSON writes a JSON value.
func PutJSON(ctx context.Context, ds datastore.Write, k datastore.Key, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return ds.Put(ctx, k, b)
}

// Scan calls fn with each entry that q selects, in q's order, until fn
// returns false or an error.
func Scan(ctx context.Context, ds datastore.Read, q query.Query, fn func(key string, value []byte) (bool, error)) error {
	res, err := ds.Query(ctx, q)
	if err != nil {
		return err
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return r.Error
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		more, err := fn(r.Key, r.Value)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// QueryJSON scans JSON values.
func QueryJSON[T any](ctx context.Context, ds datastore.Read, q query.Query, fn func(key string, v *T) bool) error {
	return Scan(ctx, ds, q, func(key string, b []byte) (bool, error) {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return false, fmt.Errorf("history: stored %s is damaged: %w", key, err)
		}
		return fn(key, &v), nil
	})
}
