package node

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Files that went through a relay's file drop, by the ID of the file as
// its message of kind file offers it (the plain manifest's root):
//
//	/node/drops/<file ID> -> dropRecord (JSON)
//
// On the sender: the relay that holds it. On the recipient: the relay it
// came through and where it is now. file list joins them with the
// messages.
var dropsKey = datastore.NewKey("/node/drops")

// dropRecord is a dropped file, sent or received.
type dropRecord struct {
	Relay peer.ID `json:"relay"`
	// Path is where a received one is.
	Path string    `json:"path,omitempty"`
	Time time.Time `json:"time"`
	// Told: this node, the recipient, told the sender it fetched the
	// file (chat's ConfirmFetched).
	Told bool `json:"told,omitempty"`
}

// tellFetched tells the sender of a file dropped for this node that it
// fetched it, once the file is in place and the message that offers it
// is here too (either may come first), once.
func (n *Node) tellFetched(ctx context.Context, fileID string) {
	r, ok := n.drop(ctx, fileID)
	if !ok || r.Path == "" || r.Told || n.chat == nil {
		return
	}
	offer, err := incomingOffer(ctx, n.chat, fileID)
	if err != nil {
		return // the offer comes later: its EventMessage calls again
	}
	if err := n.chat.ConfirmFetched(ctx, offer.From, offer.ID); err != nil {
		n.log.Warn("tell the sender a dropped file was fetched", "err", err)
		return
	}
	r.Told = true
	if err := n.putDrop(fileID, r); err != nil {
		n.log.Warn("record a dropped file told", "err", err)
	}
}

func (n *Node) now() time.Time {
	if n.clock != nil {
		return n.clock()
	}
	return time.Now()
}

// putDrop records a dropped file, synced.
func (n *Node) putDrop(fileID string, r dropRecord) error {
	ctx := context.Background()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	key := dropsKey.ChildString(fileID)
	if err := n.ds.Put(ctx, key, b); err != nil {
		return err
	}
	return n.ds.Sync(ctx, key)
}

// drop is the record of a dropped file, if there is one.
func (n *Node) drop(ctx context.Context, fileID string) (dropRecord, bool) {
	var r dropRecord
	b, err := n.ds.Get(ctx, dropsKey.ChildString(fileID))
	if err != nil || json.Unmarshal(b, &r) != nil {
		return r, false
	}
	return r, true
}
