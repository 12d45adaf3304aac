package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/relay"
)

// User is an account on a relay: name, peer ID, profile, addresses.
type User = relay.User

// Unregistered is the answer of Unregister.
type Unregistered struct {
	Unregistered bool `json:"unregistered"`
}

// relayClient is the personal node's link to its relays, or ErrNoAccounts
// on a relay.
func (n *Node) relayClient() (*relay.Client, error) {
	if n.relayc == nil {
		return nil, ErrNoAccounts
	}
	return n.relayc, nil
}

// Register takes name on the relay at relayAddr (a multiaddr ending in
// /p2p/<peer ID>), with an invite token for a relay that registers by
// invitation. From then on the node logs in there on every start.
func (n *Node) Register(ctx context.Context, relayAddr, name, invite string) (*User, error) {
	c, err := n.relayClient()
	if err != nil {
		return nil, err
	}
	info, err := parseRelayAddr(relayAddr)
	if err != nil {
		return nil, err
	}
	u, err := c.Register(ctx, info, name, invite)
	return u, relayFailure(err)
}

// Unregister gives this node's name up on a relay (its peer ID or
// multiaddr).
func (n *Node) Unregister(ctx context.Context, relayRef string) (*Unregistered, error) {
	c, err := n.relayClient()
	if err != nil {
		return nil, err
	}
	id, err := parseRelayID(relayRef)
	if err == nil && id == "" {
		err = kindError{relay.ErrBadRequest, errors.New("node: relay is required")}
	}
	if err == nil {
		err = c.Unregister(ctx, id)
	}
	if err != nil {
		return nil, relayFailure(err)
	}
	return &Unregistered{Unregistered: true}, nil
}

// Lookup finds a user by name on the relays the node is logged in to, or
// on the one relayRef names (peer ID or multiaddr; "": all).
func (n *Node) Lookup(ctx context.Context, name, relayRef string) (*User, error) {
	c, err := n.relayClient()
	if err != nil {
		return nil, err
	}
	id, err := parseRelayID(relayRef)
	if err != nil {
		return nil, err
	}
	u, err := c.Lookup(ctx, name, id)
	return u, relayFailure(err)
}

// parseRelayAddr parses a relay's multiaddr ending in /p2p/<peer ID>.
func parseRelayAddr(s string) (peer.AddrInfo, error) {
	info, err := peer.AddrInfoFromString(s)
	if err != nil {
		return peer.AddrInfo{}, kindError{relay.ErrBadRequest, fmt.Errorf("node: the relay is a multiaddr ending in /p2p/<peer ID>: %w", err)}
	}
	return *info, nil
}

// parseRelayID takes a relay's peer ID or multiaddr ("" stays "").
func parseRelayID(s string) (peer.ID, error) {
	if s == "" {
		return "", nil
	}
	if id, err := peer.Decode(s); err == nil {
		return id, nil
	}
	info, err := parseRelayAddr(s)
	return info.ID, err
}
