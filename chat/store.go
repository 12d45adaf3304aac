package chat

// The chat datastore, in the namespace node gives the service (/chat):
//
//	/schema                              "1"
//	/clock                               the latest clock reading of a direct message
//	                                     sent (8 bytes, big-endian): it resumes there
//	/profile                             this node's own Profile (JSON)
//	/contacts/<peer ID>                  Contact (JSON)
//	/msgs/<peer ID>/<hlc %016x>/<msg ID> pb.StoredMessage: the conversation, in order
//	/msgid/<msg ID>                      "<peer ID>/<hlc %016x>": index for dedup and lookup
//	/outbox/<peer ID>/<hlc %016x>/<msg ID> not yet acked: empty for a message in the
//	                                     history (same key suffix under /msgs/), else
//	                                     pb.Message (protobuf; receipts)
//	/state/<msg ID>                      "failed:<reason>" (or, written before
//	                                     2026-11-26, "delivered")
//	/read/<msg ID>                       "": the message was read (by the peer, or here)
//	/received/<peer ID>                  the highest clock reading of a message stored
//	                                     from the peer (8 bytes, big-endian)
//	/parked/<peer ID>/<msg ID>           "": an outbox message the relay mailbox holds
//	                                     too (gone once the outbox is empty)
//	/groups/..., /grouplist/...          groups: see group.go; a group's history is
//	                                     under /msgs/g:<group ID>/
//
// A message's state is read, else the /state value, else the state in its
// record (queued, received), where a queued message no longer in the outbox
// was delivered. Each is written without reading the others,
// so an ack that comes after a read receipt cannot undo it.
//
// HLC readings are fixed-width hex, so keys sort in conversation order.
// What is acknowledged (to the user by Send, to a peer by an ack or a
// contact reply) is synced to disk first.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/chat/pb"
	"github.com/meshtalk/meshtalk/transfer"
)

const schemaVersion = "1"

var (
	keySchema  = datastore.NewKey("/schema")
	keyClock   = datastore.NewKey("/clock")
	keyProfile = datastore.NewKey("/profile")
)

// Keys take a peer ID in its string form: base58 is costly on the hot
// path, so callers convert once.
func contactKey(p peer.ID) datastore.Key { return datastore.NewKey("/contacts/" + p.String()) }
func msgKey(ps string, hlc uint64, id string) datastore.Key {
	return datastore.RawKey(convKey("/msgs/", ps, hlc, id))
}
func msgLoc(ps string, hlc uint64) string { return convKey("", ps, hlc, "") }
func msgPrefix(ps string) string          { return "/msgs/" + ps + "/" }
func msgIDKey(id string) datastore.Key    { return datastore.RawKey("/msgid/" + id) }
func stateKey(id string) datastore.Key    { return datastore.RawKey("/state/" + id) }
func readKey(id string) datastore.Key     { return datastore.RawKey("/read/" + id) }
func receivedKey(ps string) datastore.Key { return datastore.RawKey("/received/" + ps) }
func outboxKey(ps string, hlc uint64, id string) datastore.Key {
	return datastore.RawKey(convKey("/outbox/", ps, hlc, id))
}
func outboxPrefix(ps string) string { return "/outbox/" + ps + "/" }

// convKey is prefix + "<conversation>/<hlc %016x>" [+ "/" + id]: a place in
// a conversation's order (Sprintf was a tenth of storing a message).
func convKey(prefix, conv string, hlc uint64, id string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(conv) + 18 + len(id))
	b.WriteString(prefix)
	b.WriteString(conv)
	b.WriteByte('/')
	var hex [16]byte
	for i := 15; i >= 0; i-- {
		hex[i] = "0123456789abcdef"[hlc&0xf]
		hlc >>= 4
	}
	b.Write(hex[:])
	if id != "" {
		b.WriteByte('/')
		b.WriteString(id)
	}
	return b.String()
}
func parkedKey(ps, id string) datastore.Key {
	return datastore.RawKey("/parked/" + ps + "/" + id)
}
func parkedPrefix(ps string) string { return "/parked/" + ps + "/" }

// Contact states.
const (
	StatePendingOut = "pending_out" // we asked; no answer yet
	StatePendingIn  = "pending_in"  // they asked; we have not answered
	StateFriend     = "friend"
	StateDeclined   = "declined"
	StateBlocked    = "blocked"
	StateRemoved    = "removed"
)

// What a node still owes a contact (Contact.Owe).
const (
	oweRequest  = "request"
	oweAccept   = "accept"
	oweDecline  = "decline"
	oweUnfriend = "unfriend"
)

// Contact is what this node knows of one other person.
type Contact struct {
	PeerID  peer.ID  `json:"peer_id"`
	State   string   `json:"state"`
	Message string   `json:"message,omitempty"` // the friend request's text
	Profile *Profile `json:"profile,omitempty"` // theirs
	Addrs   []string `json:"addrs,omitempty"`
	// Owe is a request or answer not yet delivered to them.
	Owe string `json:"owe,omitempty"`
	// ProfileSent is the version of our profile they have.
	ProfileSent uint64    `json:"profile_sent"`
	Since       time.Time `json:"since"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
}

// Message states.
const (
	MsgQueued    = "queued"    // stored, not yet written to the peer
	MsgSent      = "sent"      // written to the peer, not yet acked
	MsgDelivered = "delivered" // acked: stored on the peer
	MsgRead      = "read"      // the peer read it
	MsgFailed    = "failed"    // the peer refused it
	MsgReceived  = "received"  // from the peer, not yet read here
)

// Message is one entry of a conversation, sent or received.
type Message struct {
	ID            string    `json:"id"`
	From          peer.ID   `json:"from"`
	To            peer.ID   `json:"to,omitempty"` // empty for a group message
	Kind          string    `json:"kind"`
	Text          string    `json:"text,omitempty"`
	Face          string    `json:"face,omitempty"`
	Thumbnail     []byte    `json:"thumbnail,omitempty"`
	ThumbnailType string    `json:"thumbnail_type,omitempty"`
	ReplyTo       string    `json:"reply_to,omitempty"`
	ReactTo       string    `json:"react_to,omitempty"`
	State         string    `json:"state"`
	Time          time.Time `json:"time"` // the sender's clock
	HLC           uint64    `json:"hlc"`
	Outgoing      bool      `json:"outgoing"`
	Error         string    `json:"error,omitempty"`
	// Group is the group ID of a group message (To is then empty).
	Group string `json:"group,omitempty"`
	// File describes an offered file (kind "file"); Manifest is its
	// manifest, for transfer.
	File     *FileInfo `json:"file,omitempty"`
	Manifest []byte    `json:"-"`
}

// FileInfo is what a file offer shows before the file is fetched.
type FileInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Size uint64 `json:"size"`
	MIME string `json:"mime"`
}

// fileInfo summarises a manifest (nil when there is none or it is bad).
func fileInfo(manifest []byte) *FileInfo {
	if len(manifest) == 0 {
		return nil
	}
	m, err := transfer.DecodeManifest(manifest)
	if err != nil {
		return nil
	}
	return &FileInfo{ID: m.ID(), Name: m.Name, Size: m.Size, MIME: m.MIME}
}

// peerOf is the other side of the conversation a message belongs to.
func (m *Message) peerOf() peer.ID {
	if m.Outgoing {
		return m.To
	}
	return m.From
}

func getJSON(ctx context.Context, ds datastore.Read, k datastore.Key, v any) error {
	b, err := ds.Get(ctx, k)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("chat: stored %s is damaged: %w", k, err)
	}
	return nil
}

func putJSON(ctx context.Context, ds datastore.Write, k datastore.Key, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return ds.Put(ctx, k, b)
}

// checkSchema writes the schema version on first use and refuses a store
// written by a newer meshtalk.
func checkSchema(ctx context.Context, ds datastore.Datastore) error {
	b, err := ds.Get(ctx, keySchema)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		return ds.Put(ctx, keySchema, []byte(schemaVersion))
	case err != nil:
		return err
	case string(b) != schemaVersion:
		return fmt.Errorf("chat: the datastore has schema %q; this meshtalk knows %q: update meshtalk", b, schemaVersion)
	}
	return nil
}

// scan calls fn with each entry that q selects, in q's order, until fn
// returns false or an error.
func scan(ctx context.Context, ds datastore.Read, q query.Query, fn func(key string, value []byte) (bool, error)) error {
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

// queryJSON scans JSON values.
func queryJSON[T any](ctx context.Context, ds datastore.Read, q query.Query, fn func(key string, v *T) bool) error {
	return scan(ctx, ds, q, func(key string, b []byte) (bool, error) {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return false, fmt.Errorf("chat: stored %s is damaged: %w", key, err)
		}
		return fn(key, &v), nil
	})
}

// peerString is p's string form, cached: base58 is costly on the hot path.
func (s *Service) peerString(p peer.ID) string {
	if v, ok := s.peerStrings.Load(p); ok {
		return v.(string)
	}
	v := p.String()
	s.peerStrings.Store(p, v)
	return v
}

// putMessage stores m under its conversation key, as protobuf (JSON spent
// a tenth of a send escaping the text).
func (s *Service) putMessage(ctx context.Context, w datastore.Write, m *Message) error {
	rec := &pb.StoredMessage{
		Message: &pb.Message{Id: m.ID, SentAtMs: m.Time.UnixMilli(), Hlc: m.HLC, Kind: m.Kind, Text: m.Text, Face: m.Face,
			Thumbnail: m.Thumbnail, ThumbnailType: m.ThumbnailType, ReplyTo: m.ReplyTo, ReactTo: m.ReactTo, File: m.Manifest},
		From: []byte(m.From), To: []byte(m.To), Outgoing: m.Outgoing, State: m.State, Group: m.Group,
	}
	buf := recordBufs.Get().(*[]byte)
	defer recordBufs.Put(buf)
	b, err := proto.MarshalOptions{}.MarshalAppend((*buf)[:0], rec)
	if err != nil {
		return err
	}
	*buf = b
	conv := groupConv(m.Group)
	if m.Group == "" {
		conv = s.peerString(m.peerOf())
	}
	return w.Put(ctx, msgKey(conv, m.HLC, m.ID), b)
}

// recordBufs are putMessage's buffers: the node's datastore (pebble)
// copies what a put or a batch is given, so a record's buffer serves the
// next one (a fresh one for every message was 3% of the CPU under load).
var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

func decodeMessage(key string, b []byte) (*Message, error) {
	var rec pb.StoredMessage
	if err := proto.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("chat: stored %s is damaged: %w", key, err)
	}
	w := rec.GetMessage()
	from, err1 := peer.IDFromBytes(rec.GetFrom())
	to, err2 := peer.IDFromBytes(rec.GetTo())
	if rec.GetGroup() != "" && len(rec.GetTo()) == 0 {
		to, err2 = "", nil
	}
	if w == nil || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("chat: stored %s is damaged", key)
	}
	return &Message{ID: w.GetId(), From: from, To: to, Kind: w.GetKind(), Text: w.GetText(), Face: w.GetFace(),
		Thumbnail: w.GetThumbnail(), ThumbnailType: w.GetThumbnailType(), ReplyTo: w.GetReplyTo(), ReactTo: w.GetReactTo(),
		State: rec.GetState(), Time: time.UnixMilli(w.GetSentAtMs()), HLC: w.GetHlc(), Outgoing: rec.GetOutgoing(),
		Manifest: w.GetFile(), File: fileInfo(w.GetFile()), Group: rec.GetGroup()}, nil
}

// queryMessages scans stored messages.
func queryMessages(ctx context.Context, ds datastore.Read, q query.Query, fn func(key string, m *Message) bool) error {
	return scan(ctx, ds, q, func(key string, b []byte) (bool, error) {
		m, err := decodeMessage(key, b)
		if err != nil {
			return false, err
		}
		return fn(key, m), nil
	})
}
