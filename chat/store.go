package chat

// The chat datastore, in the namespace node gives the service (/chat):
//
//	/schema                              "1"
//	/profile                             this node's own Profile (JSON)
//	/contacts/<peer ID>                  Contact (JSON)
//	/msgs/<peer ID>/<hlc %016x>/<msg ID> Message (JSON): the conversation, in order
//	/msgid/<msg ID>                      "<peer ID>/<hlc %016x>": index for dedup and lookup
//	/outbox/<peer ID>/<hlc %016x>/<msg ID> wireMessage (JSON): sent, not yet acked
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
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
)

const schemaVersion = "1"

var (
	keySchema  = datastore.NewKey("/schema")
	keyProfile = datastore.NewKey("/profile")
)

func contactKey(p peer.ID) datastore.Key { return datastore.NewKey("/contacts/" + p.String()) }
func msgKey(p peer.ID, hlc uint64, id string) datastore.Key {
	return datastore.NewKey(fmt.Sprintf("/msgs/%s/%016x/%s", p, hlc, id))
}
func msgPrefix(p peer.ID) string       { return "/msgs/" + p.String() + "/" }
func msgIDKey(id string) datastore.Key { return datastore.NewKey("/msgid/" + id) }
func outboxKey(p peer.ID, hlc uint64, id string) datastore.Key {
	return datastore.NewKey(fmt.Sprintf("/outbox/%s/%016x/%s", p, hlc, id))
}
func outboxPrefix(p peer.ID) string { return "/outbox/" + p.String() + "/" }

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
	To            peer.ID   `json:"to"`
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

// queryJSON calls fn with each value under prefix, in key order; limit 0
// means all. fn returns false to stop.
func queryJSON[T any](ctx context.Context, ds datastore.Read, q query.Query, fn func(key string, v *T) bool) error {
	res, err := ds.Query(ctx, q)
	if err != nil {
		return err
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return r.Error
		}
		var v T
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return fmt.Errorf("chat: stored %s is damaged: %w", r.Key, err)
		}
		if !fn(r.Key, &v) {
			return nil
		}
	}
	return nil
}

// keyID is the last element of a key.
func keyID(k string) string { return k[strings.LastIndexByte(k, '/')+1:] }
