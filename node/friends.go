package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
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

// Friend is a contact with its live presence and the names the node
// knows it by.
type Friend struct {
	*Contact
	// Name is how the node shows it: nickname, else username, else
	// ShortID.
	Name string `json:"name"`
	// Username is the name a relay answered for it ("": none known).
	Username string `json:"username,omitempty"`
	Online   bool   `json:"online"`
	// Path is how it is connected now ("": not connected), and Relay the
	// relay of a relayed path (FriendShow only).
	Path  string  `json:"path,omitempty"`
	Relay peer.ID `json:"relay,omitempty"`
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

func (n *Node) friend(ctx context.Context, c *chat.Service, ct *chat.Contact) *Friend {
	f := &Friend{Contact: ct, Name: n.NameOf(ctx, ct.PeerID), Online: c.Online(ct.PeerID)}
	if n.relayc != nil {
		f.Username = n.relayc.UserName(ctx, ct.PeerID)
	}
	return f
}

// FriendShow is one contact (see ResolvePeer) with the path it is
// connected by now.
func (n *Node) FriendShow(ctx context.Context, name string) (*Friend, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	p, err := n.ResolvePeer(ctx, name)
	if err != nil {
		return nil, err
	}
	ct, err := c.Contact(ctx, p)
	if err != nil {
		return nil, err
	}
	f := n.friend(ctx, c, ct)
	for _, conn := range n.Peers() {
		if conn.PeerID == p && (f.Path == "" || f.Path == PathRelayed) {
			f.Path, f.Relay = string(conn.Path), conn.Relay
		}
	}
	return f, nil
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
		out = append(out, n.friend(ctx, c, ct))
	}
	return out, nil
}

// AddFriend sends a friend request to who: a friend code, a peer ID, a
// /p2p/ multiaddr, a username that the node's relays know, or any other
// name ResolvePeer takes. It is stored and answered at once, and
// delivered when the peer is reachable.
func (n *Node) AddFriend(ctx context.Context, who, message string) (*Friend, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	info, err := n.resolvePeerInfo(ctx, who)
	if err != nil {
		return nil, err
	}
	ct, err := c.AddFriend(ctx, info, message)
	if err != nil {
		return nil, err
	}
	return n.friend(ctx, c, ct), nil
}

// friendAction resolves a friend (see ResolvePeer) and applies act to it.
func (n *Node) friendAction(ctx context.Context, name string, act func(*chat.Service, peer.ID) (*chat.Contact, error)) (*Friend, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	p, err := n.ResolvePeer(ctx, name)
	if err != nil {
		return nil, err
	}
	ct, err := act(c, p)
	if err != nil {
		return nil, err
	}
	return n.friend(ctx, c, ct), nil
}

// AcceptFriend accepts the friend request of name (see ResolvePeer: a
// username or nickname too).
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
