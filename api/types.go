package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meshtalk/meshtalk/discovery"
	"github.com/meshtalk/meshtalk/internal/atomicfile"
)

// Error codes: stable, for programs; the message is for people.
const (
	CodeUnauthorized    = "unauthorized"
	CodeForbiddenOrigin = "forbidden_origin"
	CodeNotFound        = "not_found"
	CodeBadRequest      = "bad_request"
	CodeInternal        = "internal"
	CodeNoRoute         = "no_route"
	CodeNotFriends      = "not_friends"
	CodeTooLarge        = "too_large"
	CodeNameTaken       = "name_taken"
	CodeQuota           = "quota"
	CodeNoRelay         = "no_relay"
)

// Error is the body of every API error response, under "error".
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Status is the HTTP status; it is not part of the body.
	Status int `json:"-"`
}

func (e *Error) Error() string { return e.Message + " (" + e.Code + ")" }

type errorBody struct {
	Error Error `json:"error"`
}

// Info is the content of api.json: how client commands reach the running
// node.
type Info struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
}

// ID is the answer of GET /api/v1/id.
type ID struct {
	PeerID     string   `json:"peer_id"`
	Addrs      []string `json:"addrs"`
	FriendCode string   `json:"friend_code"`
}

// Status is the answer of GET /api/v1/status.
type Status struct {
	Version     string   `json:"version"`
	Role        string   `json:"role"`
	PeerID      string   `json:"peer_id"`
	ListenAddrs []string `json:"listen_addrs"`
	// Reachability is "public", "private" or "unknown" (AutoNAT's view).
	Reachability string `json:"reachability"`
	// HolePunchReady: the node knows a public address of its own and
	// answers hole punching (DCUtR); go-libp2p waits for one first.
	HolePunchReady bool                 `json:"hole_punch_ready"`
	Relays         []RelayStatus        `json:"relays"`
	Peers          []discovery.ConnInfo `json:"peers"`
	Started        time.Time            `json:"started"`
	UptimeSeconds  float64              `json:"uptime_seconds"`
}

// RelayStatus is one relay the node uses.
type RelayStatus struct {
	PeerID    string `json:"peer_id"`
	Connected bool   `json:"connected"`
	// Reserved: the node holds a reservation and announces an address
	// through this relay.
	Reserved bool `json:"reserved"`
	// Name is this node's account there; LoggedIn says whether it is
	// logged in now, Error why not.
	Name     string `json:"name,omitempty"`
	LoggedIn bool   `json:"logged_in"`
	Error    string `json:"error,omitempty"`
}

// writeInfo writes api.json readable by its owner only. It replaces a file
// left by a node that did not stop cleanly (the home lock tells that no
// other node runs).
func writeInfo(path string, info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600, true); err != nil {
		return fmt.Errorf("api: write api.json: %w", err)
	}
	return nil
}

// ErrNotRunning means no node answers for a home.
var ErrNotRunning = errors.New("no meshtalk node is running")
