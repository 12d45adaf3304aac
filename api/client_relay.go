package api

import (
	"context"
	"net/http"
	"net/url"
)

// Register takes a name on a relay.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*User, error) {
	return call[*User](ctx, c, http.MethodPost, "/api/v1/account/register", req)
}

// Unregister gives the name up on a relay (peer ID or multiaddr).
func (c *Client) Unregister(ctx context.Context, relay string) (*Unregistered, error) {
	return call[*Unregistered](ctx, c, http.MethodPost, "/api/v1/account/unregister", UnregisterRequest{Relay: relay})
}

// Lookup finds a user by name on the node's relays, or on relay alone.
func (c *Client) Lookup(ctx context.Context, name, relay string) (*User, error) {
	q := url.Values{"name": {name}}
	if relay != "" {
		q.Set("relay", relay)
	}
	return call[*User](ctx, c, http.MethodGet, "/api/v1/account/lookup?"+q.Encode(), nil)
}

// RelayUsers lists a relay's accounts (operator).
func (c *Client) RelayUsers(ctx context.Context) ([]RelayUser, error) {
	return call[[]RelayUser](ctx, c, http.MethodGet, "/api/v1/relay/users", nil)
}

// RelayStats is what a relay holds and carries (operator).
func (c *Client) RelayStats(ctx context.Context) (*RelayStats, error) {
	return call[*RelayStats](ctx, c, http.MethodGet, "/api/v1/relay/stats", nil)
}

// NewRelayInvite makes a registration invite token (operator).
func (c *Client) NewRelayInvite(ctx context.Context, req RelayInviteRequest) (*RelayInvite, error) {
	return call[*RelayInvite](ctx, c, http.MethodPost, "/api/v1/relay/invites", req)
}
