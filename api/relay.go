package api

import (
	"net/http"
)

// RegisterRequest is the body of POST /api/v1/account/register.
type RegisterRequest struct {
	// Relay is the relay's multiaddr, ending in /p2p/<peer ID>.
	Relay  string `json:"relay"`
	Name   string `json:"name"`
	Invite string `json:"invite,omitempty"`
}

// UnregisterRequest is the body of POST /api/v1/account/unregister.
type UnregisterRequest struct {
	// Relay is the relay's peer ID or multiaddr.
	Relay string `json:"relay"`
}

// RelayInviteRequest is the body of POST /api/v1/relay/invites.
type RelayInviteRequest struct {
	Uses int `json:"uses"`
	// Expires is a Go duration ("168h"); empty is 7 days.
	Expires string `json:"expires,omitempty"`
}

func (s *Server) relayRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/account/register", s.handleRegister)
	mux.HandleFunc("POST /api/v1/account/unregister", s.handleUnregister)
	mux.HandleFunc("GET /api/v1/account/lookup", s.handleLookup)
	mux.HandleFunc("GET /api/v1/relay/users", func(w http.ResponseWriter, _ *http.Request) {
		us, err := s.node.RelayUsers()
		reply(w, us, err)
	})
	mux.HandleFunc("GET /api/v1/relay/stats", func(w http.ResponseWriter, _ *http.Request) {
		stats, err := s.node.RelayStats()
		reply(w, stats, err)
	})
	mux.HandleFunc("POST /api/v1/relay/invites", s.handleRelayInvite)
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req RegisterRequest
	if !decodeBody(w, r, &req) {
		return
	}
	u, err := s.node.Register(r.Context(), req.Relay, req.Name, req.Invite)
	reply(w, u, err)
}

func (s *Server) handleUnregister(w http.ResponseWriter, r *http.Request) {
	var req UnregisterRequest
	if !decodeBody(w, r, &req) {
		return
	}
	res, err := s.node.Unregister(r.Context(), req.Relay)
	reply(w, res, err)
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	u, err := s.node.Lookup(r.Context(), q.Get("name"), q.Get("relay"))
	reply(w, u, err)
}

func (s *Server) handleRelayInvite(w http.ResponseWriter, r *http.Request) {
	var req RelayInviteRequest
	if !decodeBody(w, r, &req) {
		return
	}
	inv, err := s.node.NewRelayInvite(r.Context(), req.Uses, req.Expires)
	reply(w, inv, err)
}
