package chat

// The chat datastore, in the namespace node gives the service (/chat):
//
//	/schema                              "2" ("1" before the acked marks: opening
//	                                     such a store moves it to "2", which needs
//	                                     no rewrite; a meshtalk that knows only "1"
//	                                     refuses it, as it would take the messages
//	                                     above a mark for delivered)
//	/clock                               at or above every clock reading of a direct
//	                                     message sent (8 bytes, big-endian): it resumes
//	                                     there; written a second's lease ahead, when a
//	                                     reading passes it (before 2026-12-06: the latest)
//	/profile                             this node's own Profile (JSON)
//	/contacts/<peer ID>                  Contact (JSON)
//	/avatars/<hash>                      an avatar's bytes (avatars.go)
//	/outbox/<peer ID>/<hlc %016x>/<msg ID> not yet acked, and not in the history
//	                                     above the acked mark: history/pb Message
//	                                     (protobuf; receipts), or empty for a message
//	                                     in the history (same key suffix under /msgs/)
//	                                     sent before the conversation had a mark
//	/acked/<peer ID>                     the acked mark: base and mark, two clock
//	                                     readings (8 bytes each, big-endian); the
//	                                     messages in the history to the peer above
//	                                     base are in the outbox above the mark,
//	                                     unless their /state/ settled them: see
//	                                     outbox.go
//	/received/<peer ID>                  no longer written (until 2026-12-06: the
//	                                     highest clock reading stored from the peer;
//	                                     the conversation's latest reading bounds it)
//	/parked/<peer ID>/<msg ID>           "": an outbox message the relay mailbox holds
//	                                     too (gone once the outbox is empty)
//	/msgs/..., /msgid/..., /state/..., /read/..., /readmark/..., /late/...,
//	/files/..., /filesindexed
//	                                     the history of every conversation: see
//	                                     history/store.go
//	/groups/..., /grouplist/...          groups: see group/service.go; a group's
//	                                     history is under /msgs/g:<group ID>/
//
// A queued direct message no longer in the outbox was delivered (pending
// is the history's Config.Pending; a message settled above the mark, while
// one before it waited, has /state/ "delivered").
//
// What is acknowledged (to the user by Send, to a peer by an ack or a
// contact reply) is synced to disk first.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/transfer"
)

const schemaVersion = "2"

var (
	keySchema  = datastore.NewKey("/schema")
	keyClock   = datastore.NewKey("/clock")
	keyProfile = datastore.NewKey("/profile")
)

// Keys take a peer ID in its string form: base58 is costly on the hot
// path, so callers convert once.
func contactKey(p peer.ID) datastore.Key { return datastore.NewKey("/contacts/" + p.String()) }
func outboxKey(pstr string, hlc uint64, id string) datastore.Key {
	return datastore.RawKey(history.ConvKey("/outbox/", pstr, hlc, id))
}
func outboxPrefix(pstr string) string { return "/outbox/" + pstr + "/" }

func parkedKey(pstr, id string) datastore.Key {
	return datastore.RawKey("/parked/" + pstr + "/" + id)
}
func parkedPrefix(pstr string) string { return "/parked/" + pstr + "/" }

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
	// OweN counts the notices owed (owe), so that a delivery clears only
	// the one it sent.
	OweN uint64 `json:"owe_n,omitempty"`
	// ProfileSent is the version of our profile they have.
	ProfileSent uint64    `json:"profile_sent"`
	Since       time.Time `json:"since"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	// Asked is when their friend request came (pending_in; kept when
	// this node declines it, so that a declined contact with Asked is
	// one this node declined, and one without declined this node's); a
	// request expires pendingRequestTTL after it.
	Asked time.Time `json:"asked,omitzero"`
}

// owe records that notice is owed to c ("": nothing). Each notice owed
// is counted, the same one owed again too: an accept on its way when a
// new request came, which that accept did not answer, is owed again, and
// its delivery must not clear the one owed since.
func (c *Contact) owe(notice string) {
	c.Owe = notice
	if notice != "" {
		c.OweN++
	}
}

// The messages of chat's conversations are history's.
type (
	// Message is one entry of a conversation, sent or received.
	Message = history.Message
	// FileInfo is what a file offer shows before the file is fetched.
	FileInfo = history.FileInfo
	// HistoryPage is one page of a conversation, oldest first.
	HistoryPage = history.Page
	// Draft is a message to send.
	Draft = history.Draft
)

// Message kinds and states (history's).
const (
	KindText      = history.KindText
	KindFace      = history.KindFace
	KindPicture   = history.KindPicture
	KindReply     = history.KindReply
	KindReaction  = history.KindReaction
	KindReceipt   = history.KindReceipt
	KindFile      = history.KindFile
	KindDelivered = history.KindDelivered

	MsgQueued    = history.MsgQueued
	MsgSent      = history.MsgSent
	MsgDelivered = history.MsgDelivered
	MsgRead      = history.MsgRead
	MsgFailed    = history.MsgFailed
	MsgReceived  = history.MsgReceived
)

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

// checkManifest checks an offered file's manifest.
func checkManifest(b []byte) error {
	_, err := transfer.DecodeManifest(b)
	return err
}

// checkSchema writes the schema version on first use, moves a store of
// schema 1 to 2 (whose outbox reads schema 1's as it is) and refuses a
// store written by a newer meshtalk.
func checkSchema(ctx context.Context, ds datastore.Datastore) error {
	b, err := ds.Get(ctx, keySchema)
	switch {
	case errors.Is(err, datastore.ErrNotFound), err == nil && string(b) == "1":
		if err := ds.Put(ctx, keySchema, []byte(schemaVersion)); err != nil {
			return err
		}
		return ds.Sync(ctx, keySchema)
	case err != nil:
		return err
	case string(b) != schemaVersion:
		return fmt.Errorf("chat: the datastore has schema %q; this meshtalk knows %q: update meshtalk", b, schemaVersion)
	}
	return nil
}
