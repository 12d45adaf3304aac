package api

import (
	"context"
	"net/http"
	"net/url"
)

// AddRelayRequest is the body of POST /api/v1/relays.
type AddRelayRequest struct {
	// Addr is the relay's multiaddr, ending in /p2p/<peer ID>.
	Addr string `json:"addr"`
}

func (s *Server) savedRelayRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/relays", s.handleRelays)
	mux.HandleFunc("POST /api/v1/relays", s.handleAddRelay)
	mux.HandleFunc("DELETE /api/v1/relays/{relay}", s.handleRemoveRelay)
}

func (s *Server) handleRelays(w http.ResponseWriter, r *http.Request) {
	relays, err := s.node.Relays()
	reply(w, relays, err)
}

func (s *Server) handleAddRelay(w http.ResponseWriter, r *http.Request) {
	var req AddRelayRequest
	if !decodeBody(w, r, &req) {
		return
	}
	relays, err := s.node.AddRelay(req.Addr)
	reply(w, relays, err)
}

func (s *Server) handleRemoveRelay(w http.ResponseWriter, r *http.Request) {
	relays, err := s.node.RemoveRelay(r.PathValue("relay"))
	reply(w, relays, err)
}

// SavedRelays lists the relays saved in the node's config.toml.
func (c *Client) SavedRelays(ctx context.Context) ([]SavedRelay, error) {
	return call[[]SavedRelay](ctx, c, http.MethodGet, "/api/v1/relays", nil)
}

// AddRelay saves a relay and starts using it.
func (c *Client) AddRelay(ctx context.Context, addr string) ([]SavedRelay, error) {
	return call[[]SavedRelay](ctx, c, http.MethodPost, "/api/v1/relays", AddRelayRequest{Addr: addr})
}

// RemoveRelay removes a saved relay (peer ID or address).
func (c *Client) RemoveRelay(ctx context.Context, relay string) ([]SavedRelay, error) {
	return call[[]SavedRelay](ctx, c, http.MethodDelete, "/api/v1/relays/"+url.PathEscape(relay), nil)
}
