package node

import (
	"context"
	"errors"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/discovery"
)

// Contact is a stored contact record: state, profile, addresses.
type Contact = chat.Contact

// Profile is a node's profile: name, status text, avatar.
type Profile = chat.Profile

// ProfileUpdate changes a profile; nil fields stay.
type ProfileUpdate = chat.ProfileUpdate

// States of a contact (Contact.State).
const (
	StatePendingOut = chat.StatePendingOut
	StatePendingIn  = chat.StatePendingIn
	StateFriend     = chat.StateFriend
	StateDeclined   = chat.StateDeclined
	StateRemoved    = chat.StateRemoved
	StateBlocked    = chat.StateBlocked
)

// MaxImageInput is the largest image file a picture, an avatar or a
// group's picture may be.
const MaxImageInput = chat.MaxImageInput

// Friend is a contact with its live presence.
type Friend struct {
	*Contact
	Online bool `json:"online"`
}

// Avatar is an avatar's image.
type Avatar struct {
	Data []byte
	// Type is its MIME type.
	Type string
}

// chatService is the chat service, or ErrNoChat on a relay.
func (n *Node) chatService() (*chat.Service, error) {
	if n.chat == nil {
		return nil, ErrNoChat
	}
	return n.chat, nil
}

func (n *Node) friend(c *chat.Service, ct *chat.Contact) *Friend {
	return &Friend{Contact: ct, Online: c.Online(ct.PeerID)}
}

// Friends lists the contacts, or only the requests waiting for an answer.
func (n *Node) Friends(ctx context.Context, pendingOnly bool) ([]*Friend, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	contacts, err := c.Contacts(ctx, pendingOnly)
	if err != nil {
		return nil, err
	}
	out := make([]*Friend, 0, len(contacts))
	for _, ct := range contacts {
		out = append(out, n.friend(c, ct))
	}
	return out, nil
}

// AddFriend sends a friend request to who: a friend code, a peer ID, a
// /p2p/ multiaddr, or else a username that the node's relays know. It is
// stored and answered at once, and delivered when the peer is reachable.
func (n *Node) AddFriend(ctx context.Context, who, message string) (*Friend, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	info, err := discovery.ParsePeer(who)
	if err != nil && errors.Is(err, discovery.ErrBadFriendCode) && discovery.LooksLikeFriendCode(who) {
		// Too long for a username: a mistyped code, never a name to look up.
		return nil, err
	}
	if err != nil {
		var lerr error
		if info, lerr = n.lookupFriend(ctx, who); lerr != nil {
			if errors.Is(lerr, discovery.ErrBadPeer) {
				return nil, err
			}
			return nil, relayFailure(lerr)
		}
	}
	ct, err := c.AddFriend(ctx, info, message)
	if err != nil {
		return nil, err
	}
	return n.friend(c, ct), nil
}

// lookupFriend resolves a username through the node's relays into the
// peer and its addresses through the relay it is registered on.
func (n *Node) lookupFriend(ctx context.Context, name string) (peer.AddrInfo, error) {
	if n.relayc == nil || strings.ContainsAny(name, "/") {
		return peer.AddrInfo{}, discovery.ErrBadPeer
	}
	u, err := n.relayc.Lookup(ctx, name, "")
	if err != nil {
		return peer.AddrInfo{}, err
	}
	info := peer.AddrInfo{ID: u.PeerID}
	for _, a := range u.Addrs {
		if m, err := ma.NewMultiaddr(a); err == nil {
			if _, last := ma.SplitLast(m); last != nil && last.Protocol().Code == ma.P_P2P {
				m, _ = ma.SplitLast(m)
			}
			info.Addrs = append(info.Addrs, m)
		}
	}
	return info, nil
}

// friendAction resolves a friend (peer ID or unique nickname) and applies
// act to it.
func (n *Node) friendAction(ctx context.Context, name string, act func(*chat.Service, peer.ID) (*chat.Contact, error)) (*Friend, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	p, err := c.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	ct, err := act(c, p)
	if err != nil {
		return nil, err
	}
	return n.friend(c, ct), nil
}

// AcceptFriend accepts the friend request of name (a peer ID or a
// contact's nickname).
func (n *Node) AcceptFriend(ctx context.Context, name string) (*Friend, error) {
	return n.friendAction(ctx, name, func(c *chat.Service, p peer.ID) (*chat.Contact, error) { return c.Accept(ctx, p) })
}

// DeclineFriend declines the friend request of name.
func (n *Node) DeclineFriend(ctx context.Context, name string) (*Friend, error) {
	return n.friendAction(ctx, name, func(c *chat.Service, p peer.ID) (*chat.Contact, error) { return c.Decline(ctx, p) })
}

// RemoveFriend removes a friend, on both sides.
func (n *Node) RemoveFriend(ctx context.Context, name string) (*Friend, error) {
	return n.friendAction(ctx, name, func(c *chat.Service, p peer.ID) (*chat.Contact, error) { return c.Remove(ctx, p) })
}

// BlockFriend removes a peer on both sides and refuses whatever it sends.
func (n *Node) BlockFriend(ctx context.Context, name string) (*Friend, error) {
	return n.friendAction(ctx, name, func(c *chat.Service, p peer.ID) (*chat.Contact, error) { return c.Block(ctx, p) })
}

// Profile is this node's profile.
func (n *Node) Profile(ctx context.Context) (*Profile, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	return c.Profile(ctx)
}

// SetProfile changes this node's profile; friends get it now if online,
// else when they reconnect. An avatar is cropped square and scaled.
func (n *Node) SetProfile(ctx context.Context, u ProfileUpdate) (*Profile, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	return c.SetProfile(ctx, u)
}

// Avatar is the image of this node's or a contact's avatar by its ID.
func (n *Node) Avatar(ctx context.Context, id string) (*Avatar, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	b, typ, err := c.Avatar(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Avatar{Data: b, Type: typ}, nil
}
