package node

import (
	"context"
	"errors"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/relay"
)

// relayKey is the datastore namespace of the relay package, on a relay
// (the server) and on a personal node (the client); its key schema is in
// relay/store.go.
var relayKey = datastore.NewKey("/relay")

// EventFileDropped is the event type of a file that came through a
// relay's file drop.
const EventFileDropped = "file.dropped"

// FileDroppedData is the data of file.dropped.
type FileDroppedData struct {
	From peer.ID `json:"from"`
	Name string  `json:"name"`
	Path string  `json:"path"`
	Size uint64  `json:"size"`
	// FileID is the file's ID in file list, when the sender gave it.
	FileID string `json:"file_id,omitempty"`
}

// serverConfig turns [relay] into the relay server's configuration.
func (n *Node) serverConfig() relay.ServerConfig {
	r := n.cfg.Relay
	return relay.ServerConfig{
		Registration:      r.Registration,
		MailboxTTL:        time.Duration(r.MailboxTTL),
		RecipientMaxItems: r.MailboxMaxItems,
		RecipientMaxBytes: r.MailboxMaxMiB << 20,
		SenderMaxItems:    r.SenderMaxItems,
		SenderMaxBytes:    r.SenderMaxMiB << 20,
		DropTTL:           time.Duration(r.DropTTL),
		DropMaxBytes:      r.DropMaxMiB << 20,
		SweepEvery:        time.Minute,

		RegistrationsPerIPPerHour: r.RegistrationsPerIPPerHour,
		RegistrationsPerMinute:    r.RegistrationsPerMinute,
		Transfer:                  n.xfer,
		DropDir:                   n.home.DropsPath(),
		TURN:                      n.turnConfig(),
		Now:                       n.clock,
		Logger:                    n.log,
	}
}

func (n *Node) startRelayClient(ctx context.Context) error {
	dropDir, err := n.cfg.Files.DownloadsDir()
	if err != nil {
		return err
	}
	n.relayc, err = relay.NewClient(ctx, n.host, namespace.Wrap(n.ds, relayKey), relay.ClientConfig{
		Relays: addrInfos(n.cfg.Discovery.Relays),
		Key:    n.key,
		Sink:   relaySink{n},
		Profile: func() relay.Profile {
			p, err := n.chat.Profile(context.Background())
			if err != nil || p == nil {
				return relay.Profile{}
			}
			return relay.Profile{Nickname: p.Name, Status: p.Status}
		},
		Transfer:   n.xfer,
		DropDir:    dropDir,
		StagingDir: n.home.DropsPath(),
		Now:        n.clock,
		Logger:     n.log,
	})
	if err != nil {
		return err
	}
	n.chat.SetMailbox(n.relayc, time.Duration(n.cfg.Chat.ParkAfter))
	n.groups.SetMailbox(n.relayc)
	n.syncAllowList()
	return nil
}

// syncAllowList lets exactly this node's friends see its presence on its
// relays, and its friends and the members of its groups leave it mail
// and files there (a relay refuses deposits from anyone else).
func (n *Node) syncAllowList() {
	if n.relayc == nil {
		return
	}
	ctx := context.Background()
	contacts, err := n.chat.Contacts(ctx, false)
	if err != nil {
		n.log.Warn("allow-list", "err", err)
		return
	}
	var friends, members []peer.ID
	for _, c := range contacts {
		if c.State == chat.StateFriend {
			friends = append(friends, c.PeerID)
		}
	}
	if n.groups != nil {
		groups, err := n.groups.List(ctx)
		if err != nil {
			n.log.Warn("allow-list", "err", err)
			return
		}
		for _, g := range groups {
			ms, err := n.groups.Members(ctx, g.ID)
			if err != nil {
				continue // gone meanwhile
			}
			for _, m := range ms {
				if !m.Self {
					members = append(members, m.PeerID)
				}
			}
		}
	}
	n.relayc.SetAllow(friends, members)
}

// relaySink hands what relays deliver to the service it is for: direct
// letters to chat, group letters to group, presence to chat, and a
// dropped file to the event stream.
type relaySink struct{ n *Node }

func (s relaySink) Letter(ctx context.Context, l *relay.Letter) error {
	switch l.Kind {
	case relay.KindDM:
		err := s.n.chat.ReceiveLetter(ctx, l.Relay, l.From, l.Items)
		if errors.Is(err, chat.ErrNotFriend) || errors.Is(err, chat.ErrBadFrame) {
			// Never acceptable: let the relay delete it.
			s.n.log.Info("mailbox: refused a letter", "from", l.From, "err", err)
			return nil
		}
		return err
	case relay.KindGroup:
		// Each envelope is checked like one from gossip: a current
		// member's signature, the group's key.
		err := s.n.groups.ReceiveLetter(ctx, l.Relay, l.Items)
		if errors.Is(err, group.ErrBadFrame) {
			s.n.log.Info("mailbox: refused a group letter", "from", l.From, "err", err)
			return nil
		}
		return err
	}
	s.n.log.Info("mailbox: a letter of a kind this node does not take", "kind", l.Kind, "from", l.From)
	return nil
}

func (s relaySink) Friend(p peer.ID) bool { return s.n.chat.IsFriend(p) }

func (s relaySink) Presence(p relay.Presence) {
	s.n.chat.SetRelayPresence(p.PeerID, p.Online, p.LastSeen)
}

func (s relaySink) FileDropped(f relay.DroppedFile) {
	if f.FileID != "" {
		err := s.n.putDrop(f.FileID, f.From, dropRecord{Relay: f.Relay, Path: f.Path, Time: s.n.now()})
		if err != nil {
			s.n.log.Warn("record a dropped file", "name", f.Name, "err", err)
		} else {
			s.n.tellFetched(context.Background(), f.FileID, f.From)
		}
	}
	s.n.events.Publish(Event{Type: EventFileDropped, Data: FileDroppedData{From: f.From, Name: f.Name, Path: f.Path, Size: f.Size, FileID: f.FileID}})
}
