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
//	/node/drops/<file ID>          -> dropRecord (JSON), one this node sent
//	/node/drops/<file ID>/<sender> -> dropRecord (JSON), one it received
//
// On the sender: the relay that holds it. On the recipient: the relay it
// came through and where it is now. file list joins them with the
// messages, a received one only with a message of its sender's: a file
// ID is a hash of the file, which another friend may know too (the same
// file, a group's message), and a drop under it must not stand for that
// friend's file. (Before that key, received drops were recorded under
// the file ID alone; such a record still counts, for any sender.)
var dropsKey = datastore.NewKey("/node/drops")

// dropKey is the key of a drop: sent by this node (from empty) or
// received from from.
func dropKey(fileID string, from peer.ID) datastore.Key {
	k := dropsKey.ChildString(fileID)
	if from != "" {
		k = k.ChildString(from.String())
	}
	return k
}

// dropRecord is a dropped file, sent or received.
type dropRecord struct {
	Relay peer.ID `json:"relay"`
	// From is the friend who dropped a received one.
	From peer.ID `json:"from,omitempty"`
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
func (n *Node) tellFetched(ctx context.Context, fileID string, from peer.ID) {
	r, ok := n.drop(ctx, fileID, from)
	if !ok || r.Path == "" || r.Told || n.chat == nil {
		return
	}
	offer, err := incomingOffer(ctx, n.chat, fileID, from)
	if err != nil {
		return // the offer comes later: its EventMessage calls again
	}
	if err := n.chat.ConfirmFetched(ctx, offer.From, offer.ID); err != nil {
		n.log.Warn("tell the sender a dropped file was fetched", "err", err)
		return
	}
	r.Told = true
	if err := n.putDrop(fileID, r.From, r); err != nil {
		n.log.Warn("record a dropped file told", "err", err)
	}
}

func (n *Node) now() time.Time {
	if n.clock != nil {
		return n.clock()
	}
	return time.Now()
}

// putDrop records a dropped file, synced: sent by this node (from
// empty) or received from from.
func (n *Node) putDrop(fileID string, from peer.ID, r dropRecord) error {
	ctx := context.Background()
	r.From = from
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	key := dropKey(fileID, from)
	if err := n.ds.Put(ctx, key, b); err != nil {
		return err
	}
	return n.ds.Sync(ctx, key)
}

// drop is the record of a dropped file, if there is one: one this node
// sent (from empty) or one it received from from.
func (n *Node) drop(ctx context.Context, fileID string, from peer.ID) (dropRecord, bool) {
	r, ok := n.dropAt(ctx, dropKey(fileID, from))
	switch {
	case from == "":
		return r, ok && r.Path == "" // a sent one has no path here
	case !ok:
		// Recorded before received drops were keyed by their sender.
		r, ok = n.dropAt(ctx, dropKey(fileID, ""))
		return r, ok && r.Path != "" && r.From == ""
	}
	return r, ok && r.From == from
}

func (n *Node) dropAt(ctx context.Context, key datastore.Key) (dropRecord, bool) {
	var r dropRecord
	b, err := n.ds.Get(ctx, key)
	if err != nil || json.Unmarshal(b, &r) != nil {
		return r, false
	}
	return r, true
}
