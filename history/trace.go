package history

// A message's trace: how it travelled, hop by hop, each with its time.
//
// Nothing here costs a sync of its own: every hop rides on a write that
// happens anyway.
//
//	queued     an outgoing message's record (its time)
//	sent       /trace/<msg ID>/sent, written with the ack that settles it
//	           (the path of the stream it went over)
//	parked     /trace/<msg ID>/parked[/<member>], written with the parked
//	           mark (the relay that holds it)
//	fetched    /trace/<msg ID>/fetched: the recipient took it out of a
//	           mailbox (its delivery receipt says when)
//	delivered  /trace/<msg ID>/delivered, written with the outbox delete
//	           that makes it delivered (an ack, or a delivery receipt)
//	read       the /read/<msg ID> mark; its value, when it has one, is the
//	           time (8 bytes, big-endian unix ms)
//	file-fetched /trace/<msg ID>/file-fetched: the recipient fetched the
//	           file a dropped file's offer offers (its ReceiptFetched
//	           says when), written with the receiving round
//	received   a received message's record (StoredMessage.via): the path of
//	           the stream, or "mailbox" and the relay it came from
//
// A group message's hops about one member carry the member's peer ID and
// sit under the member's key (/trace/<msg ID>/<event>/<member>): the per
// member list of hops. Its delivered and read hops per member come from
// the group receipts (/rcpt/..., changes.go), and its sent hop is its
// own time (it is published right after it is stored): no write of
// their own.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/history/pb"
)

// Hop events.
const (
	HopQueued    = "queued"
	HopSent      = "sent"
	HopParked    = "parked"
	HopFetched   = "fetched"
	HopDelivered = "delivered"
	HopRead      = "read"
	HopReceived  = "received"
	// HopFileFetched: the recipient fetched the dropped file the message
	// offers (its ReceiptFetched says when).
	HopFileFetched = "file-fetched"
)

// PathMailbox is the path of a message that came through a relay's
// mailbox.
const PathMailbox = "mailbox"

// Hop is one step of a message's trace.
type Hop struct {
	Event string    `json:"event"`
	At    time.Time `json:"at"`
	// Path is the connection's path (direct, hole-punched, relayed via
	// ...), or "mailbox".
	Path string `json:"path,omitempty"`
	// Relay is the relay of a relayed path, or the mailbox's.
	Relay peer.ID `json:"relay,omitempty"`
	// Peer is the group member the hop is about.
	Peer peer.ID `json:"peer,omitempty"`
	// Prev is the step before a delivered hop (sent or fetched, with its
	// path), stored with it in one record and shown as a hop of its own.
	Prev *Hop `json:"-"`
}

// Delivered is the delivered hop at at that follows prev: one record.
func Delivered(prev Hop, at time.Time) Hop {
	return Hop{Event: HopDelivered, At: at, Prev: &prev}
}

// unfold is h as the hops it stands for: the step stored with a
// delivered hop, then the hop.
func (h Hop) unfold() []Hop {
	if h.Prev == nil {
		return []Hop{h}
	}
	prev := *h.Prev
	h.Prev = nil
	return []Hop{prev, h}
}

// Trace is what this node knows of how a message travelled.
type Trace struct {
	Message *Message `json:"message"`
	// Hops are the message's own, oldest first.
	Hops []Hop `json:"hops"`
	// Members are a group message's hops per member, by peer ID.
	Members ByPeer[[]Hop] `json:"members,omitempty"`
	// Names are the members' names (the node fills them).
	Names ByPeer[string] `json:"names,omitempty"`
}

// ByPeer is a map by peer ID whose JSON keys are peer IDs in their
// text form (encoding/json would write a peer.ID key's raw bytes: it is
// a string).
type ByPeer[V any] map[peer.ID]V

// MarshalJSON writes the map with peer IDs in their text form.
func (m ByPeer[V]) MarshalJSON() ([]byte, error) {
	out := make(map[string]V, len(m))
	for p, v := range m {
		out[p.String()] = v
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads a map written by MarshalJSON.
func (m *ByPeer[V]) UnmarshalJSON(b []byte) error {
	var in map[string]V
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*m = make(ByPeer[V], len(in))
	for k, v := range in {
		p, err := peer.Decode(k)
		if err != nil {
			return fmt.Errorf("history: a key %q that is no peer ID: %w", k, err)
		}
		(*m)[p] = v
	}
	return nil
}

// fill sets w (reset) to h.
func (h *Hop) fill(w *pb.Hop) {
	w.Event, w.AtMs, w.Path, w.Relay, w.Peer = h.Event, h.At.UnixMilli(), h.Path, []byte(h.Relay), []byte(h.Peer)
	if p := h.Prev; p != nil {
		// The step before keeps the path and relay of the record.
		w.PrevEvent, w.PrevAtMs, w.Path, w.Relay = p.Event, p.At.UnixMilli(), p.Path, []byte(p.Relay)
	}
}

func hopFromWire(w *pb.Hop) *Hop {
	if w == nil {
		return nil
	}
	h := &Hop{Event: w.GetEvent(), At: time.UnixMilli(w.GetAtMs()), Path: w.GetPath()}
	if id, err := peer.IDFromBytes(w.GetRelay()); err == nil {
		h.Relay = id
	}
	if id, err := peer.IDFromBytes(w.GetPeer()); err == nil {
		h.Peer = id
	}
	if e := w.GetPrevEvent(); e != "" {
		h.Prev = &Hop{Event: e, At: time.UnixMilli(w.GetPrevAtMs()), Path: h.Path, Relay: h.Relay}
		h.Path, h.Relay = "", ""
	}
	return h
}

// TraceKey is where hop event of a message is kept (member: the group
// member it is about, or "").
func TraceKey(id, event string, member peer.ID) datastore.Key {
	k := "/trace/" + id + "/" + event
	if member != "" {
		k += "/" + member.String()
	}
	return datastore.RawKey(k)
}

// PutHop writes a hop of message id into w (a batch that is being
// written anyway).
func PutHop(ctx context.Context, w datastore.Write, id string, h Hop) error {
	r := hopBufs.Get().(*hopBuf)
	defer func() {
		proto.Reset(&r.hop)
		hopBufs.Put(r)
	}()
	h.fill(&r.hop)
	b, err := proto.MarshalOptions{}.MarshalAppend(r.buf[:0], &r.hop)
	if err != nil {
		return err
	}
	r.buf = b
	return w.Put(ctx, TraceKey(id, h.Event, h.Peer), b)
}

// hopBuf is what PutHop encodes a hop with; the datastore copies what
// it is given (see recordBufs).
type hopBuf struct {
	hop pb.Hop
	buf []byte
}

var hopBufs = sync.Pool{New: func() any { return new(hopBuf) }}

// ReadStamp is the value of a /read/ mark made at t.
func ReadStamp(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixMilli())) }

// hop reads one stored hop (nil: none).
func (s *Store) hop(ctx context.Context, id, event string) *Hop {
	b, err := s.ds.Get(ctx, TraceKey(id, event, ""))
	if err != nil {
		return nil
	}
	var w pb.Hop
	if proto.Unmarshal(b, &w) != nil {
		return nil
	}
	return hopFromWire(&w)
}

// Hop is message id's stored hop event (nil: none), of the message as
// a whole.
func (s *Store) Hop(ctx context.Context, id, event string) *Hop { return s.hop(ctx, id, event) }

// Trace returns message id with its trace.
func (s *Store) Trace(ctx context.Context, id string) (*Trace, error) {
	m, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	t := &Trace{Message: m}
	if m.Outgoing {
		t.Hops = append(t.Hops, Hop{Event: HopQueued, At: m.Time})
	} else if m.Via != nil {
		t.Hops = append(t.Hops, *m.Via)
	}
	err = Scan(ctx, s.ds, query.Query{Prefix: "/trace/" + id + "/"}, func(key string, v []byte) (bool, error) {
		var w pb.Hop
		if proto.Unmarshal(v, &w) != nil {
			return true, nil
		}
		h := hopFromWire(&w)
		if h.Peer != "" {
			if t.Members == nil {
				t.Members = ByPeer[[]Hop]{}
			}
			t.Members[h.Peer] = append(t.Members[h.Peer], h.unfold()...)
		} else {
			t.Hops = append(t.Hops, h.unfold()...)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if m.Group != "" {
		if err := s.memberHops(ctx, t); err != nil {
			return nil, err
		}
	}
	if v, err := s.ds.Get(ctx, ReadKey(id)); err == nil {
		h := Hop{Event: HopRead}
		if len(v) == 8 {
			h.At = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
		}
		t.Hops = append(t.Hops, h)
	}
	byTime := func(hs []Hop) {
		// A hop of unknown time (a read mark from before times were
		// kept) goes last.
		sort.SliceStable(hs, func(i, j int) bool {
			return !hs[i].At.IsZero() && (hs[j].At.IsZero() || hs[i].At.Before(hs[j].At))
		})
	}
	byTime(t.Hops)
	for _, hs := range t.Members {
		byTime(hs)
	}
	return t, nil
}

// memberHops adds to a group message's trace what its receipts say:
// when each member (its author aside) stored it and read it, and, for
// this node's own message, that it was sent (published right after it
// was stored: its own time).
func (s *Store) memberHops(ctx context.Context, t *Trace) error {
	m := t.Message
	if m.Outgoing {
		t.Hops = append(t.Hops, Hop{Event: HopSent, At: m.Time})
	}
	r := *m
	if err := s.WithReceipts(ctx, &r); err != nil {
		return err
	}
	add := func(rs []MemberReceipt, event string) {
		for _, x := range rs {
			if x.PeerID == m.From {
				continue
			}
			if t.Members == nil {
				t.Members = ByPeer[[]Hop]{}
			}
			t.Members[x.PeerID] = append(t.Members[x.PeerID], Hop{Event: event, At: x.At, Peer: x.PeerID})
		}
	}
	add(r.DeliveredBy, HopDelivered)
	add(r.ReadBy, HopRead)
	return nil
}

// deliveryTime sets m.DeliveryMS from its delivered hop, or from a
// fetched hop of its own when that is earlier: the friend took the
// message out of a mailbox before a resend's ack delivered it again.
func (s *Store) deliveryTime(ctx context.Context, m *Message) {
	h := s.hop(ctx, m.ID, HopDelivered)
	if f := s.hop(ctx, m.ID, HopFetched); f != nil && (h == nil || f.At.Before(h.At)) {
		h = f
	}
	if h != nil {
		m.DeliveryMS = max(h.At.Sub(m.Time).Milliseconds(), 0)
	}
}
