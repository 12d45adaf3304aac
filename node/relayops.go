package node

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/meshtalk/meshtalk/relay"
)

// The operator's use cases, on a relay node (ErrNotRelay on a personal
// node).

// RelayUser is one account of a relay, as its operator sees it.
type RelayUser = relay.UserInfo

// RelayStats is what a relay holds and carries now.
type RelayStats = relay.Stats

// RelayInvite is a registration invite token of a relay.
type RelayInvite struct {
	Token   string    `json:"token"`
	Uses    int       `json:"uses"`
	Expires time.Time `json:"expires"`
}

func (n *Node) relayServer() (*relay.Server, error) {
	if n.relays == nil {
		return nil, ErrNotRelay
	}
	return n.relays, nil
}

// RelayUsers lists the relay's accounts, by name.
func (n *Node) RelayUsers() ([]RelayUser, error) {
	server, err := n.relayServer()
	if err != nil {
		return nil, err
	}
	return server.Users(), nil
}

// RelayStats is what the relay holds and carries now.
func (n *Node) RelayStats() (*RelayStats, error) {
	server, err := n.relayServer()
	if err != nil {
		return nil, err
	}
	stats := server.Stats()
	return &stats, nil
}

// NewRelayInvite makes a registration invite token good for uses
// registrations (less than 1: one) until expires passes (a Go duration
// such as "72h"; "": 7 days).
func (n *Node) NewRelayInvite(ctx context.Context, uses int, expires string) (*RelayInvite, error) {
	server, err := n.relayServer()
	if err != nil {
		return nil, err
	}
	ttl := 7 * 24 * time.Hour
	if expires != "" {
		d, err := time.ParseDuration(expires)
		if err != nil || d <= 0 {
			return nil, badRequest(errors.New("node: expires is a positive duration such as 72h"))
		}
		ttl = d
	}
	if uses < 1 {
		uses = 1
	}
	tok, err := server.NewInvite(ctx, uses, ttl)
	if err != nil {
		return nil, err
	}
	return &RelayInvite{Token: tok, Uses: uses, Expires: time.Now().Add(ttl).UTC()}, nil
}

// MetricsHandler serves the relay's Prometheus metrics; nil on a personal
// node.
func (n *Node) MetricsHandler() http.Handler {
	if n.relays == nil {
		return nil
	}
	return n.relays.MetricsHandler()
}
