package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/meshtalk/meshtalk/node"
)

func (s *Server) handleID(w http.ResponseWriter, r *http.Request) {
	id, err := s.node.Identity()
	reply(w, id, err)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.node.Status())
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.node.Peers())
}

// handlePing streams one JSON object per round trip (NDJSON), as soon as
// each is measured. Query: peer (peer ID, friend code or /p2p/ multiaddr),
// count, interval and timeout (the node's defaults when absent).
func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	opts, err := pingOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	started := false
	err = s.node.Ping(r.Context(), opts, func(res node.PingResult) {
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
	if err != nil && !started {
		writeErr(w, err)
	}
}

// pingOptions decodes the query of GET /api/v1/ping.
func pingOptions(r *http.Request) (node.PingOptions, error) {
	q := r.URL.Query()
	opts := node.PingOptions{Peer: q.Get("peer")}
	var err error
	if v := q.Get("count"); v != "" {
		if opts.Count, err = strconv.Atoi(v); err != nil || opts.Count < 1 {
			return opts, fmt.Errorf("api: count must be between 1 and 1000")
		}
	}
	for name, d := range map[string]*time.Duration{"interval": &opts.Interval, "timeout": &opts.Timeout} {
		if v := q.Get(name); v != "" {
			if *d, err = time.ParseDuration(v); err != nil || *d <= 0 {
				return opts, fmt.Errorf("api: %s must be a duration such as 1s, up to 1h", name)
			}
		}
	}
	return opts, nil
}

// handleEvents streams the node's events as Server-Sent Events: one
// "id: <n>", "event: <type>" and "data: <json>" triple per event. A
// client that reconnects with Last-Event-ID (header, or the last_event_id
// query) gets the events it missed first; when the API no longer holds
// them, a "reset" event tells it to re-read state. The stream ends when
// the client goes away, the node stops, or the client falls too far
// behind (it reconnects and resumes).
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, CodeInternal, "streaming unsupported")
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	var after uint64
	if last != "" {
		var err error
		if after, err = strconv.ParseUint(last, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "Last-Event-ID must be an event ID the stream sent")
			return
		}
	}
	past, complete, events, cancel := s.events.subscribe(after, 256)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// A comment line tells the client the subscription is in place.
	fmt.Fprint(w, ": subscribed\n\n")
	if !complete {
		fmt.Fprint(w, "event: reset\ndata: {\"type\":\"reset\"}\n\n")
	}
	for _, n := range past {
		if writeSSE(w, n) != nil {
			return
		}
	}
	flusher.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case n, ok := <-events:
			if !ok {
				return
			}
			if err := writeSSE(w, n); err != nil {
				return
			}
		}
		flusher.Flush()
	}
}

func writeSSE(w http.ResponseWriter, n numbered) error {
	b, err := json.Marshal(n.ev)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", n.id, n.ev.Type, b)
	return err
}
