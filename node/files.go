package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/transfer"
)

// FileSend is a file to send to a friend.
type FileSend struct {
	// To is the friend (see ResolvePeer).
	To string
	// Path is the file on this machine, or a folder: its files and
	// folders go as one offer, received as a folder.
	Path string
	// Message is a caption.
	Message string
	// Drop sends the file through the friend's relay even when the friend
	// is online (and fails when no relay can take it).
	Drop bool
}

// FileSent is what became of a sent file: Message is the message of kind
// file that offers it; Dropped says it went through the friend's relay
// too. To, Name and Size are the friend's peer ID and the file's.
type FileSent struct {
	*Message
	Dropped bool   `json:"dropped"`
	To      string `json:"to"`
	// ToName is the friend's name (NameOf).
	ToName string `json:"to_name"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
}

// FileServed is what this node served of a file to one peer.
type FileServed = transfer.Served

// File is one file offer, sent or received, and what became of it.
type File struct {
	FileInfo
	// MessageID is the chat message that offered it.
	MessageID string  `json:"message_id"`
	From      peer.ID `json:"from"`
	// To is the friend it was offered to; empty for a group's file.
	To peer.ID `json:"to,omitempty"`
	// Group and GroupName: the group it was offered to.
	// FromName and ToName are their names (NameOf).
	FromName  string `json:"from_name"`
	ToName    string `json:"to_name,omitempty"`
	Group     string `json:"group,omitempty"`
	GroupName string `json:"group_name,omitempty"`
	Outgoing  bool   `json:"outgoing"`
	// State: "offered" (sent by this node), "dropped" (sent by this node
	// through Relay's file drop, not yet fetched), "delivered" (the
	// friend fetched it from the relay: Fetched says when), "available"
	// (not fetched), "downloading", "done", "failed".
	State string `json:"state"`
	// Relay is the relay a dropped file went through.
	Relay peer.ID `json:"relay,omitempty"`
	// Delivered is when the friend's node had the message that offers a
	// dropped file; Fetched when it said it fetched the file itself.
	Delivered *time.Time `json:"delivered,omitempty"`
	Fetched   *time.Time `json:"fetched,omitempty"`
	Path      string     `json:"path,omitempty"`
	Error     string     `json:"error,omitempty"`
	// While downloading: bytes so far, rate and time left.
	Bytes      uint64  `json:"bytes,omitempty"`
	Rate       float64 `json:"rate_bytes_per_second,omitempty"`
	ETASeconds float64 `json:"eta_seconds,omitempty"`
	// BytesServed is what this node served of the file to others, and
	// Served the same per peer: bytes, rate while serving, and when the
	// peer said it had the whole file. A group's file is served by every
	// member that holds some of it, not only its sender.
	BytesServed uint64       `json:"bytes_served"`
	Served      []FileServed `json:"served,omitempty"`
}

// SendFile sends a file, or a whole folder, to a friend, with a message
// of kind file that offers it (and carries the caption) either way. When the friend is
// offline and one of the node's relays can take it, or when asked to
// (Drop), the file also goes through the relay's file drop, sealed to the
// friend, and the friend's node ties it to the message; otherwise (or
// when no relay can take it and Drop was not asked) it is offered
// directly only.
func (n *Node) SendFile(ctx context.Context, f FileSend) (*FileSent, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	p, err := n.ResolvePeer(ctx, f.To)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(f.Path)
	if err != nil {
		return nil, badRequest(err)
	}
	sent := &FileSent{To: p.String(), ToName: n.NameOf(ctx, p), Name: filepath.Base(f.Path), Size: fi.Size()}
	m, err := n.importFile(ctx, Draft{Path: f.Path})
	if err != nil {
		return nil, err
	}
	drop := func() (peer.ID, error) { return n.relayc.DropFile(ctx, p, f.Path, m.ID()) }
	if m.Folder {
		sent.Name, sent.Size = m.Name, int64(m.Size)
		drop = func() (peer.ID, error) { return n.relayc.DropFolder(ctx, p, m) }
	}
	if n.relayc != nil && (f.Drop || !c.Online(p)) {
		r, err := drop()
		switch {
		case err == nil:
			if err := n.putDrop(m.ID(), "", dropRecord{Relay: r, Time: n.now()}); err != nil {
				return nil, err
			}
			sent.Dropped = true
		case f.Drop:
			return nil, relayFailure(err)
		}
		// No relay can take it: offered only, for when the friend is back.
	}
	if err := n.xfer.Offer(ctx, m, p); err != nil {
		return nil, err
	}
	if sent.Message, err = c.Send(ctx, p, chat.Draft{File: m.Encode(), Text: f.Message}); err != nil {
		return nil, err
	}
	n.present(ctx, sent.Message)
	return sent, nil
}

// Files lists the file offers, sent and received, joined with the
// downloads.
func (n *Node) Files(ctx context.Context) ([]File, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	offers, err := c.FileOffers(ctx)
	if err != nil {
		return nil, err
	}
	downloads, err := n.xfer.Downloads(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]transfer.DownloadInfo{}
	for _, d := range downloads {
		byID[d.ID] = d
	}
	out := make([]File, 0, len(offers))
	for _, m := range offers {
		f := File{FileInfo: *m.File, MessageID: m.ID, From: m.From, To: m.To, Group: m.Group, Outgoing: m.Outgoing, State: "available",
			FromName: n.NameOf(ctx, m.From)}
		if m.To != "" {
			f.ToName = n.NameOf(ctx, m.To)
		}
		if m.Group != "" && n.groups != nil {
			if gi, err := n.groups.Get(ctx, m.Group); err == nil {
				f.GroupName = gi.Name
			}
		}
		from := m.From
		if m.Outgoing {
			from = "" // a drop this node sent
		}
		dr, dropped := n.drop(ctx, m.File.ID, from)
		if dropped {
			f.Relay = dr.Relay
		}
		switch {
		case m.Outgoing && dropped:
			f.State = "dropped"
			if m.State == history.MsgDelivered || m.State == history.MsgRead {
				// The offer's trace: its delivered hop (DeliveryMS).
				at := m.Time.Add(time.Duration(m.DeliveryMS) * time.Millisecond)
				f.Delivered = &at
			}
			if at, ok := c.FileFetched(ctx, m.ID); ok {
				f.State, f.Fetched = "delivered", &at
			}
		case m.Outgoing:
			f.State = "offered"
		case dropped && dr.Path != "":
			f.State, f.Path = "done", dr.Path
		}
		if f.Served, err = n.xfer.Served(ctx, m.File.ID); err != nil {
			return nil, err
		}
		for i, sv := range f.Served {
			f.BytesServed += sv.Bytes
			f.Served[i].Name = n.NameOf(ctx, sv.Peer)
		}
		if d, ok := byID[m.File.ID]; ok && !m.Outgoing && f.State == "available" {
			switch {
			case d.Done:
				f.State, f.Path = "done", d.Final
			case d.Error != "":
				f.State, f.Error = "failed", d.Error
			default:
				f.State = "downloading"
				f.Bytes, f.Rate, f.ETASeconds = d.Bytes, d.Rate, d.ETASeconds
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// GetFile starts downloading the file offered to this node with id (an
// ID, a unique prefix of it or the file's name) into
// dir, in the background (it resumes after a restart), and answers the
// file as Files lists it.
func (n *Node) GetFile(ctx context.Context, id, dir string) (*File, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	switch {
	case dir == "":
		if dir, err = n.cfg.Files.DownloadsDir(); err != nil {
			return nil, err
		}
	case !filepath.IsAbs(dir):
		return nil, badRequest(fmt.Errorf("node: dir %q is not an absolute path", dir))
	}
	f, err := n.resolveFile(ctx, id, func(f File) bool { return !f.Outgoing })
	if errors.Is(err, ErrNoFile) {
		if _, serr := n.resolveFile(ctx, id, func(f File) bool { return f.Outgoing }); serr == nil {
			return nil, ErrOwnFile
		}
	}
	if err != nil {
		return nil, err
	}
	offer, err := c.GetMessage(ctx, f.MessageID) // the offer f lists
	if err != nil {
		return nil, err
	}
	if dr, ok := n.drop(ctx, f.ID, offer.From); ok && dr.Path != "" {
		return n.listedFile(ctx, offer.ID) // here already, through a relay
	}
	manifest, err := transfer.DecodeManifest(offer.Manifest)
	if err != nil {
		return nil, err
	}
	sources := []peer.ID{offer.From}
	if offer.Group != "" {
		if sources, err = n.swarm(ctx, offer, manifest); err != nil {
			return nil, err
		}
	}
	if err := n.xfer.Start(manifest, sources, dir); err != nil {
		return nil, err
	}
	return n.listedFile(ctx, offer.ID)
}

// swarm is where a group's file is fetched from: its sender first, then
// every other member, to whom this node offers what it fetches in turn
// (chunks are verified against the manifest whoever serves them).
func (n *Node) swarm(ctx context.Context, offer *chat.Message, m *transfer.Manifest) ([]peer.ID, error) {
	sources := []peer.ID{offer.From}
	if n.groups == nil {
		return sources, nil
	}
	members, err := n.groups.Members(ctx, offer.Group)
	if err != nil {
		return sources, nil // no longer a member: the sender only
	}
	var others []peer.ID
	for _, mem := range members {
		if !mem.Self && mem.PeerID != offer.From {
			others = append(others, mem.PeerID)
		}
	}
	if err := n.xfer.OfferFetched(ctx, m, others); err != nil {
		return nil, err
	}
	return append(sources, others...), nil
}

// listedFile is the file that message msgID offered this node, as Files
// lists it (two friends may offer the same file).
func (n *Node) listedFile(ctx context.Context, msgID string) (*File, error) {
	files, err := n.Files(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.MessageID == msgID && !f.Outgoing {
			return &f, nil
		}
	}
	return nil, errors.New("node: the download vanished")
}

// incomingOffer finds the message from from that offered file id to this
// node.
func incomingOffer(ctx context.Context, c *chat.Service, id string, from peer.ID) (*chat.Message, error) {
	offers, err := c.FileOffers(ctx)
	if err != nil {
		return nil, err
	}
	sent := false
	for _, m := range offers {
		if m.File.ID == id && !m.Outgoing && m.From == from {
			return m, nil
		}
		sent = sent || (m.File.ID == id && m.Outgoing)
	}
	if sent {
		return nil, ErrOwnFile
	}
	return nil, ErrNoFile
}

// CancelFile stops a download and deletes its partial file; ErrNotStarted
// when there is no such download.
func (n *Node) CancelFile(ctx context.Context, id string) error {
	if _, err := n.chatService(); err != nil {
		return err
	}
	f, err := n.resolveFile(ctx, id, func(f File) bool { return !f.Outgoing })
	if err != nil {
		if errors.Is(err, ErrNoFile) {
			return n.xfer.Cancel(ctx, id) // a download started otherwise
		}
		return err
	}
	return n.xfer.Cancel(ctx, f.ID)
}
