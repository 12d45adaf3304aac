package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/discovery"
	"github.com/meshtalk/meshtalk/relay"
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

// RelayInvite is the answer of POST /api/v1/relay/invites.
type RelayInvite struct {
	Token   string    `json:"token"`
	Uses    int       `json:"uses"`
	Expires time.Time `json:"expires"`
}

// FileDropped is the answer of POST /api/v1/files when the file went to
// the recipient's relay (the recipient is offline).
type FileDropped struct {
	Dropped bool   `json:"dropped"`
	To      string `json:"to"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
}

func (s *Server) relayRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/account/register", s.withRelayClient(s.handleRegister))
	mux.HandleFunc("POST /api/v1/account/unregister", s.withRelayClient(s.handleUnregister))
	mux.HandleFunc("GET /api/v1/account/lookup", s.withRelayClient(s.handleLookup))
	mux.HandleFunc("GET /api/v1/relay/users", s.withRelayServer(func(w http.ResponseWriter, _ *http.Request, rs *relay.Server) {
		writeJSON(w, http.StatusOK, rs.Users())
	}))
	mux.HandleFunc("GET /api/v1/relay/stats", s.withRelayServer(func(w http.ResponseWriter, _ *http.Request, rs *relay.Server) {
		writeJSON(w, http.StatusOK, rs.Stats())
	}))
	mux.HandleFunc("POST /api/v1/relay/invites", s.withRelayServer(s.handleRelayInvite))
}

func (s *Server) withRelayClient(h func(http.ResponseWriter, *http.Request, *relay.Client)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := s.node.RelayClient()
		if c == nil {
			writeError(w, http.StatusNotFound, CodeNotFound, "a relay has no accounts of its own; run this against a personal node")
			return
		}
		h(w, r, c)
	}
}

func (s *Server) withRelayServer(h func(http.ResponseWriter, *http.Request, *relay.Server)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rs := s.node.RelayServer()
		if rs == nil {
			writeError(w, http.StatusNotFound, CodeNotFound, "this is a personal node; run operator commands against a relay (meshtalk relay ... --home RELAY_HOME)")
			return
		}
		h(w, r, rs)
	}
}

// relayError maps the relay package's errors to HTTP.
func relayError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, relay.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, relay.ErrNameTaken):
		writeError(w, http.StatusConflict, CodeNameTaken, err.Error())
	case errors.Is(err, relay.ErrQuota):
		writeError(w, http.StatusTooManyRequests, CodeQuota, err.Error())
	case errors.Is(err, relay.ErrBadName), errors.Is(err, relay.ErrBadInvite), errors.Is(err, relay.ErrClosed),
		errors.Is(err, relay.ErrBadRequest), errors.Is(err, relay.ErrNotRegistered), errors.Is(err, discovery.ErrBadPeer),
		errors.Is(err, relay.ErrTooLarge):
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	case errors.Is(err, relay.ErrNoRelay), errors.Is(err, relay.ErrNotLoggedIn):
		writeError(w, http.StatusConflict, CodeNoRelay, err.Error())
	default:
		writeError(w, http.StatusBadGateway, CodeNoRoute, err.Error())
	}
}

// relayAddr parses a relay's multiaddr ending in /p2p/<peer ID>.
func relayAddr(s string) (peer.AddrInfo, error) {
	info, err := peer.AddrInfoFromString(s)
	if err != nil {
		return peer.AddrInfo{}, errors.Join(relay.ErrBadRequest, errors.New("the relay is a multiaddr ending in /p2p/<peer ID>: "+err.Error()))
	}
	return *info, nil
}

// relayID takes a relay's peer ID or multiaddr ("" stays "").
func relayID(s string) (peer.ID, error) {
	if s == "" {
		return "", nil
	}
	if id, err := peer.Decode(s); err == nil {
		return id, nil
	}
	info, err := relayAddr(s)
	return info.ID, err
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request, c *relay.Client) {
	var req RegisterRequest
	if !decodeBody(w, r, &req) {
		return
	}
	info, err := relayAddr(req.Relay)
	if err != nil {
		relayError(w, err)
		return
	}
	u, err := c.Register(r.Context(), info, req.Name, req.Invite)
	if err != nil {
		relayError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) handleUnregister(w http.ResponseWriter, r *http.Request, c *relay.Client) {
	var req UnregisterRequest
	if !decodeBody(w, r, &req) {
		return
	}
	id, err := relayID(req.Relay)
	if err == nil && id == "" {
		err = errors.Join(relay.ErrBadRequest, errors.New("relay is required"))
	}
	if err == nil {
		err = c.Unregister(r.Context(), id)
	}
	if err != nil {
		relayError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"unregistered": true})
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request, c *relay.Client) {
	id, err := relayID(r.URL.Query().Get("relay"))
	if err != nil {
		relayError(w, err)
		return
	}
	u, err := c.Lookup(r.Context(), r.URL.Query().Get("name"), id)
	if err != nil {
		relayError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) handleRelayInvite(w http.ResponseWriter, r *http.Request, rs *relay.Server) {
	var req RelayInviteRequest
	if !decodeBody(w, r, &req) {
		return
	}
	ttl := 7 * 24 * time.Hour
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "expires is a positive duration such as 72h")
			return
		}
		ttl = d
	}
	if req.Uses < 1 {
		req.Uses = 1
	}
	tok, err := rs.NewInvite(r.Context(), req.Uses, ttl)
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, RelayInvite{Token: tok, Uses: req.Uses, Expires: time.Now().Add(ttl).UTC()})
}

// lookupFriend resolves a username through the node's relays into the
// peer and its addresses through the relay it is registered on.
func (s *Server) lookupFriend(r *http.Request, name string) (peer.AddrInfo, error) {
	c := s.node.RelayClient()
	if c == nil || strings.ContainsAny(name, "/") {
		return peer.AddrInfo{}, discovery.ErrBadPeer
	}
	u, err := c.Lookup(r.Context(), name, "")
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
