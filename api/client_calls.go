package api

import (
	"context"
	"net/http"
	"net/url"
)

func callPath(id, rest string) string {
	if id == "" {
		id = "-"
	}
	return "/api/v1/calls/" + url.PathEscape(id) + rest
}

// Calls lists the live calls and the latest ended ones.
func (c *Client) Calls(ctx context.Context) ([]CallInfo, error) {
	return call[[]CallInfo](ctx, c, http.MethodGet, "/api/v1/calls", nil)
}

// StartCall rings a friend; it returns once the friend rings.
func (c *Client) StartCall(ctx context.Context, req CallRequest) (*CallInfo, error) {
	return call[*CallInfo](ctx, c, http.MethodPost, "/api/v1/calls", req)
}

// GetCall is one call.
func (c *Client) GetCall(ctx context.Context, id string) (*CallInfo, error) {
	return call[*CallInfo](ctx, c, http.MethodGet, callPath(id, ""), nil)
}

// CallStats measures a call on the node's own endpoint ("": the live one).
func (c *Client) CallStats(ctx context.Context, id string) (*CallStats, error) {
	return call[*CallStats](ctx, c, http.MethodGet, callPath(id, "/stats"), nil)
}

// AnswerCall answers a ringing call ("": the one ringing).
func (c *Client) AnswerCall(ctx context.Context, id string, req AnswerRequest) (*CallInfo, error) {
	return call[*CallInfo](ctx, c, http.MethodPost, callPath(id, "/answer"), req)
}

// DeclineCall declines a ringing call ("": the one ringing).
func (c *Client) DeclineCall(ctx context.Context, id string) (*CallInfo, error) {
	return call[*CallInfo](ctx, c, http.MethodPost, callPath(id, "/decline"), struct{}{})
}

// HangupCall ends a call ("": the live one).
func (c *Client) HangupCall(ctx context.Context, id string) (*CallInfo, error) {
	return call[*CallInfo](ctx, c, http.MethodPost, callPath(id, "/hangup"), struct{}{})
}

// SignalCall sends an endpoint's offer, answer or candidate.
func (c *Client) SignalCall(ctx context.Context, id string, req SignalRequest) error {
	_, err := call[struct{}](ctx, c, http.MethodPost, callPath(id, "/signal"), req)
	return err
}

// CallICEServers are the STUN and TURN servers for an endpoint.
func (c *Client) CallICEServers(ctx context.Context) ([]ICEServer, error) {
	return call[[]ICEServer](ctx, c, http.MethodGet, "/api/v1/calls/ice", nil)
}
