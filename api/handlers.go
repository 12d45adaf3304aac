package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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
	st := Status{
		Version:       node.Version,
		PeerID:        h.ID().String(),
		ListenAddrs:   addrStrings(h.Network().ListenAddresses()),
		Peers:         []Peer{},
		Started:       s.node.Started().UTC(),
		UptimeSeconds: time.Since(s.node.Started()).Seconds(),
	}
	for _, c := range h.Network().Conns() {
		st.Peers = append(st.Peers, Peer{PeerID: c.RemotePeer().String(), Addr: c.RemoteMultiaddr().String()})
	}
	writeJSON(w, http.StatusOK, st)
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
