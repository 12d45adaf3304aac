package api

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/meshtalk/meshtalk/internal/atomicfile"
	"github.com/meshtalk/meshtalk/node"
)

// Error codes: stable, for programs; the message is for people.
const (
	CodeUnauthorized    = "unauthorized"
	CodeForbiddenOrigin = "forbidden_origin"
	CodeForbiddenHost   = "forbidden_host"
	CodeNotFound        = "not_found"
	CodeBadRequest      = "bad_request"
	CodeInternal        = "internal"
	CodeNoRoute         = "no_route"
	CodeNotFriends      = "not_friends"
	CodeTooLarge        = "too_large"
	CodeNameTaken       = "name_taken"
	CodeQuota           = "quota"
	CodeNoRelay         = "no_relay"
	CodeNotMember       = "not_member"
	CodeNotAdmin        = "not_admin"
	CodeInviteExpired   = "invite_expired"
	CodeInviteUsedUp    = "invite_used_up"
	CodeInviteRevoked   = "invite_revoked"
	CodeRemoved         = "removed"
	CodeNotAuthor       = "not_author"
	// CodeAmbiguous: a name or prefix fits more than one thing; the
	// error's candidates list them.
	CodeAmbiguous = "ambiguous"
	// CodeForbiddenCSRF: a web UI session's state-changing request
	// without its X-CSRF-Token header.
	CodeForbiddenCSRF = "forbidden_csrf"
)

// Error is the body of every API error response, under "error".
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Candidates are what an ambiguous name could mean (code ambiguous).
	Candidates []Candidate `json:"candidates,omitempty"`
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

// The answers of the endpoints are the node's results, encoded as they
// are (docs/api.md shows them).
type (
	// ID is the answer of GET /api/v1/id.
	ID = node.Identity
	// Status is the answer of GET /api/v1/status.
	Status = node.Status
	// PortMapStatus is Status's port mapping.
	PortMapStatus = node.PortMapStatus
	// RelayStatus is one relay in Status.
	RelayStatus = node.RelayStatus
	// ConnInfo is one connection of GET /api/v1/peers.
	ConnInfo = node.ConnInfo
	// PingResult is one line of GET /api/v1/ping.
	PingResult = node.PingResult
	// Friend is a contact with its presence (GET /api/v1/friends).
	Friend = node.Friend
	// Profile is the answer of GET and PUT /api/v1/profile.
	Profile = node.Profile
	// Avatar is an avatar's image and type (GET /api/v1/avatars/{id}).
	Avatar = node.Avatar
	// Faces maps the faces' names to their emoji (GET /api/v1/faces).
	Faces = node.Faces
	// Message is a message (POST /api/v1/messages, history, search).
	Message = node.Message
	// HistoryPage is the answer of GET /api/v1/history.
	HistoryPage = node.HistoryPage
	// MessageTrace is the answer of GET /api/v1/messages/{id}/info.
	MessageTrace = node.MessageTrace
	// Hop is one step of a message's trace.
	Hop = node.Hop
	// StopReport is the answer of POST /api/v1/stop.
	StopReport = node.StopReport
	// ReadResult is the answer of POST /api/v1/read.
	ReadResult = node.ReadResult
	// Conversation is a line of GET /api/v1/conversations.
	Conversation = node.Conversation
	// FileSent is the answer of POST /api/v1/files.
	FileSent = node.FileSent
	// File is one file offer of GET /api/v1/files.
	File = node.File
	// Served is what a node served of a file to one peer.
	Served = node.FileServed
	// GroupInfo is a group (/api/v1/groups...).
	GroupInfo = node.GroupInfo
	// GroupMember is one member of GET /api/v1/groups/{group}/members.
	GroupMember = node.GroupMember
	// InviteResult is the answer of POST /api/v1/groups/{group}/invites.
	InviteResult = node.GroupInvite
	// MadeInvite is one invite of GET /api/v1/groups/{group}/invites.
	MadeInvite = node.MadeInvite
	// User is an account on a relay (register, lookup).
	User = node.User
	// Unregistered is the answer of POST /api/v1/account/unregister.
	Unregistered = node.Unregistered
	// RelayUser is one account of GET /api/v1/relay/users.
	RelayUser = node.RelayUser
	// RelayStats is the answer of GET /api/v1/relay/stats.
	RelayStats = node.RelayStats
	// SavedRelay is one relay of GET /api/v1/relays.
	SavedRelay = node.SavedRelay
	// RelayInvite is the answer of POST /api/v1/relay/invites.
	RelayInvite = node.RelayInvite
	// Candidate is one thing an ambiguous name could mean.
	Candidate = node.Candidate
)

// Values that appear in the answers.
const (
	StatePendingIn  = node.StatePendingIn
	StatePendingOut = node.StatePendingOut
	StateFriend     = node.StateFriend

	KindText     = node.KindText
	KindFace     = node.KindFace
	KindPicture  = node.KindPicture
	KindReply    = node.KindReply
	KindReaction = node.KindReaction
	KindFile     = node.KindFile

	PathDirect      = node.PathDirect
	PathHolePunched = node.PathHolePunched
	PathRelayed     = node.PathRelayed

	// MaxLimit is the most messages a history page or a search answers.
	MaxLimit = node.MaxLimit
	// MaxImageInput is the largest picture or avatar file.
	MaxImageInput = node.MaxImageInput
	// DefaultInviteValidity is how long a group invite is valid unless
	// asked.
	DefaultInviteValidity = node.DefaultInviteValidity
	// DefaultInviteUses is how many may join with a group invite unless
	// asked.
	DefaultInviteUses = node.DefaultInviteUses
)

// FaceTable is the faces a message may carry, by name (as GET
// /api/v1/faces answers, without asking the node).
func FaceTable() Faces { return node.FaceTable() }

// CheckPeer says whether s names a peer as ping and friend requests take
// it: a peer ID, a friend code or a multiaddr ending in /p2p/<peer ID>.
func CheckPeer(s string) error { return node.CheckPeer(s) }

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
var ErrNotRunning = errors.New("api: no meshtalk node is running")
