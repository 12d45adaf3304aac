package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/discovery"
	"github.com/meshtalk/meshtalk/node"
)

func (s *Server) handleID(w http.ResponseWriter, r *http.Request) {
	h := s.node.Host()
	addrs := h.Addrs()
	code, err := discovery.EncodeFriendCode(peer.AddrInfo{ID: h.ID(), Addrs: addrs})
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ID{PeerID: h.ID().String(), Addrs: addrStrings(addrs), FriendCode: code})
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	h := s.node.Host()
	disc := s.node.Discovery()
	st := Status{
		Version:        node.Version,
		Role:           s.node.Role().String(),
		PeerID:         h.ID().String(),
		ListenAddrs:    addrStrings(h.Network().ListenAddresses()),
		Reachability:   disc.Reachability(),
		HolePunchReady: slices.Contains(h.Mux().Protocols(), holepunch.Protocol),
		Relays:         []RelayStatus{},
		Peers:          disc.Paths().Conns(h),
		Started:        s.node.Started().UTC(),
		UptimeSeconds:  time.Since(s.node.Started()).Seconds(),
	}
	if c := s.node.RelayClient(); c != nil {
		// The relays of config.toml and those this node registered on.
		for _, rs := range c.Status() {
			st.Relays = append(st.Relays, RelayStatus{
				PeerID:    rs.PeerID.String(),
				Connected: h.Network().Connectedness(rs.PeerID) == network.Connected,
				Reserved:  disc.Reserved(rs.PeerID),
				Name:      rs.Name,
				LoggedIn:  rs.LoggedIn,
				Error:     rs.Error,
			})
		}
	} else {
		for _, r := range s.node.Config().Discovery.Relays {
			info, err := peer.AddrInfoFromString(r)
			if err != nil {
				continue
			}
			st.Relays = append(st.Relays, RelayStatus{
				PeerID:    info.ID.String(),
				Connected: h.Network().Connectedness(info.ID) == network.Connected,
				Reserved:  disc.Reserved(info.ID),
			})
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.node.Discovery().Paths().Conns(s.node.Host()))
}

// handlePing streams one JSON object per round trip (NDJSON), as soon as
// each is measured. Query: peer (peer ID, friend code or /p2p/ multiaddr),
// count (default 4, at most 1000), interval (default 1s), timeout to reach
// the peer (default 15s).
func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target, err := discovery.ParsePeer(q.Get("peer"))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	count, interval, timeout := 4, time.Second, 15*time.Second
	if v := q.Get("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 1 || count > 1000 {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "count must be between 1 and 1000")
			return
		}
	}
	for name, d := range map[string]*time.Duration{"interval": &interval, "timeout": &timeout} {
		if v := q.Get(name); v != "" {
			if *d, err = time.ParseDuration(v); err != nil || *d <= 0 || *d > time.Hour {
				writeError(w, http.StatusBadRequest, CodeBadRequest, name+" must be a duration such as 1s, up to 1h")
				return
			}
		}
	}
	started := false
	err = s.node.Discovery().Ping(r.Context(), target, count, interval, timeout, func(res discovery.PingResult) {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		json.NewEncoder(w).Encode(res)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	})
	switch {
	case err == nil || started:
	case errors.Is(err, discovery.ErrNoRoute):
		writeError(w, http.StatusBadGateway, CodeNoRoute, err.Error())
	default:
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	}
}

// handleEvents streams the node's events as Server-Sent Events: one
// "event: <type>" and "data: <json>" pair per event. The stream ends when
// the client goes away, the node stops, or the client falls too far
// behind (it should reconnect and re-read state).
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, CodeInternal, "streaming unsupported")
		return
	}
	events, cancel := s.node.Events().Subscribe(256)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// A comment line tells the client the subscription is in place.
	fmt.Fprint(w, ": subscribed\n\n")
	flusher.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case ev, ok := <-events:
			if !ok {
				return
			}
			if err := writeSSE(w, ev); err != nil {
				return
			}
		}
		flusher.Flush()
	}
}

func writeSSE(w http.ResponseWriter, ev node.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, b)
	return err
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
