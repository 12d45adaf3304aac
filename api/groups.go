package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/transfer"
)

// Error codes of groups.
const (
	CodeNotMember     = "not_member"
	CodeNotAdmin      = "not_admin"
	CodeInviteExpired = "invite_expired"
	CodeInviteUsedUp  = "invite_used_up"
)

// CreateGroupRequest is the body of POST /api/v1/groups.
type CreateGroupRequest struct {
	Name string `json:"name"`
	// Avatar is an image file (PNG, JPEG or GIF), base64 in JSON.
	Avatar []byte `json:"avatar,omitempty"`
}

// UpdateGroupRequest is the body of PUT /api/v1/groups/{group}; absent
// fields stay.
type UpdateGroupRequest struct {
	Name   *string `json:"name"`
	Avatar []byte  `json:"avatar"`
}

// InviteRequest is the body of POST /api/v1/groups/{group}/invites.
type InviteRequest struct {
	// Uses is how many may join with the code (0: any number).
	Uses uint32 `json:"uses"`
	// ExpiresSeconds is how long the code is valid (0: 7 days).
	ExpiresSeconds int64 `json:"expires_seconds"`
}

// InviteResult is the answer of POST /api/v1/groups/{group}/invites.
type InviteResult struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

// JoinRequest is the body of POST /api/v1/groups/join.
type JoinRequest struct {
	Code string `json:"code"`
}

// AddMemberRequest is the body of POST /api/v1/groups/{group}/members.
type AddMemberRequest struct {
	// Peer is a friend: peer ID or nickname.
	Peer string `json:"peer"`
}

// GroupSendRequest is the body of POST /api/v1/groups/{group}/messages.
type GroupSendRequest struct {
	Text    string `json:"text,omitempty"`
	Face    string `json:"face,omitempty"`
	Picture []byte `json:"picture,omitempty"`
	// Path is a file on this machine to offer to the members.
	Path    string `json:"path,omitempty"`
	ReplyTo string `json:"reply_to,omitempty"`
	ReactTo string `json:"react_to,omitempty"`
}

// DefaultInviteValidity is how long an invite is valid unless asked.
const DefaultInviteValidity = 7 * 24 * time.Hour

func (s *Server) groupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/groups", s.withChat(s.handleGroups))
	mux.HandleFunc("POST /api/v1/groups", s.withChat(s.handleCreateGroup))
	mux.HandleFunc("POST /api/v1/groups/join", s.withChat(s.handleJoinGroup))
	mux.HandleFunc("GET /api/v1/groups/{group}", s.withGroup(s.handleGroup))
	mux.HandleFunc("PUT /api/v1/groups/{group}", s.withGroup(s.handleUpdateGroup))
	mux.HandleFunc("POST /api/v1/groups/{group}/invites", s.withGroup(s.handleInvite))
	mux.HandleFunc("GET /api/v1/groups/{group}/members", s.withGroup(s.handleGroupMembers))
	mux.HandleFunc("POST /api/v1/groups/{group}/members", s.withGroup(s.handleAddMember))
	mux.HandleFunc("DELETE /api/v1/groups/{group}/members/{peer}", s.withGroup(s.handleKick))
	mux.HandleFunc("POST /api/v1/groups/{group}/admins", s.withGroup(s.handlePromote))
	mux.HandleFunc("POST /api/v1/groups/{group}/leave", s.withGroup(s.handleLeave))
	mux.HandleFunc("POST /api/v1/groups/{group}/messages", s.withGroup(s.handleGroupSend))
}

// withGroup resolves {group} (ID, ID prefix or name).
func (s *Server) withGroup(h func(http.ResponseWriter, *http.Request, *chat.Service, string)) http.HandlerFunc {
	return s.withChat(func(w http.ResponseWriter, r *http.Request, c *chat.Service) {
		id, err := s.node.Groups().Resolve(r.Context(), r.PathValue("group"))
		if err != nil {
			groupError(w, err)
			return
		}
		h(w, r, c, id)
	})
}

// groupError maps the group errors to HTTP, and the rest as chatError.
func groupError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, group.ErrNoGroup):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, group.ErrNotAdmin):
		writeError(w, http.StatusForbidden, CodeNotAdmin, err.Error())
	case errors.Is(err, group.ErrNotMember):
		writeError(w, http.StatusForbidden, CodeNotMember, err.Error())
	case errors.Is(err, group.ErrInviteExpired):
		writeError(w, http.StatusGone, CodeInviteExpired, err.Error())
	case errors.Is(err, group.ErrInviteUsedUp):
		writeError(w, http.StatusGone, CodeInviteUsedUp, err.Error())
	case errors.Is(err, group.ErrBadInvite):
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	case errors.Is(err, group.ErrUnreachable), errors.Is(err, chat.ErrRefused), errors.Is(err, group.ErrRefused):
		writeError(w, http.StatusBadGateway, CodeNoRoute, err.Error())
	case errors.Is(err, group.ErrNotFriend):
		writeError(w, http.StatusConflict, CodeNotFriends, err.Error())
	case errors.Is(err, group.ErrAmbiguous), errors.Is(err, group.ErrBadFrame):
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	default:
		chatError(w, err)
	}
}

func (s *Server) handleGroups(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	gs, err := s.node.Groups().List(r.Context())
	if err != nil {
		groupError(w, err)
		return
	}
	if gs == nil {
		gs = []*group.Info{}
	}
	writeJSON(w, http.StatusOK, gs)
}

func (s *Server) handleCreateGroup(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	var req CreateGroupRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.Groups().Create(r.Context(), req.Name, req.Avatar)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) handleJoinGroup(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	var req JoinRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.Groups().Join(r.Context(), req.Code)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) handleGroup(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	g, err := s.node.Groups().Get(r.Context(), id)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) handleUpdateGroup(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	var req UpdateGroupRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.Groups().Rename(r.Context(), id, req.Name, req.Avatar)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	var req InviteRequest
	if !decodeBody(w, r, &req) {
		return
	}
	ttl := DefaultInviteValidity
	if req.ExpiresSeconds < 0 {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "expires_seconds must be positive")
		return
	}
	if req.ExpiresSeconds > 0 {
		ttl = time.Duration(req.ExpiresSeconds) * time.Second
	}
	code, err := s.node.Groups().Invite(r.Context(), id, req.Uses, ttl)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, InviteResult{Code: code, Expires: time.Now().Add(ttl).UTC()})
}

func (s *Server) handleGroupMembers(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	ms, err := s.node.Groups().Members(r.Context(), id)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	var req AddMemberRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, err := c.Resolve(r.Context(), req.Peer)
	if err != nil {
		groupError(w, err)
		return
	}
	g, err := s.node.Groups().Add(r.Context(), id, p)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) handleKick(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	p, err := s.groupMember(r, c, id, r.PathValue("peer"))
	if err != nil {
		groupError(w, err)
		return
	}
	if err := s.node.Groups().Kick(r.Context(), id, p); err != nil {
		groupError(w, err)
		return
	}
	s.handleGroup(w, r, c, id)
}

// handlePromote makes a member an admin: {"peer": ...} as for adding one.
func (s *Server) handlePromote(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	var req AddMemberRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, err := s.groupMember(r, c, id, req.Peer)
	if err != nil {
		groupError(w, err)
		return
	}
	g, err := s.node.Groups().Promote(r.Context(), id, p)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// groupMember resolves a member: a peer ID, a unique prefix of one, or a
// contact's name.
func (s *Server) groupMember(r *http.Request, c *chat.Service, id, name string) (peer.ID, error) {
	if p, err := c.Resolve(r.Context(), name); err == nil {
		return p, nil
	}
	ms, err := s.node.Groups().Members(r.Context(), id)
	if err != nil {
		return "", err
	}
	var found []peer.ID
	for _, m := range ms {
		if strings.HasPrefix(m.PeerID.String(), name) || strings.EqualFold(m.Name, name) {
			found = append(found, m.PeerID)
		}
	}
	if len(found) != 1 {
		return "", group.ErrNotMember
	}
	return found[0], nil
}

func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	if err := s.node.Groups().Leave(r.Context(), id); err != nil {
		groupError(w, err)
		return
	}
	s.handleGroup(w, r, c, id)
}

func (s *Server) handleGroupSend(w http.ResponseWriter, r *http.Request, c *chat.Service, id string) {
	var req GroupSendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	draft := chat.Draft{Text: req.Text, Face: req.Face, Picture: req.Picture, ReplyTo: req.ReplyTo, ReactTo: req.ReactTo}
	var offer func(*transfer.Service) (*transfer.Manifest, error)
	switch {
	case req.Picture != nil:
		offer = func(x *transfer.Service) (*transfer.Manifest, error) {
			return x.ImportBytes(pictureName(req.Picture), req.Picture)
		}
	case req.Path != "":
		offer = func(x *transfer.Service) (*transfer.Manifest, error) { return x.Import(req.Path, "") }
	}
	if offer != nil {
		// The file goes into the blob store, offered to every member.
		xfer := s.node.Transfer()
		m, err := offer(xfer)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
			return
		}
		ms, err := s.node.Groups().Members(r.Context(), id)
		if err != nil {
			groupError(w, err)
			return
		}
		for _, mem := range ms {
			if !mem.Self {
				if err := xfer.Offer(r.Context(), m, mem.PeerID); err != nil {
					writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
					return
				}
			}
		}
		draft.File = m.Encode()
	}
	m, err := s.node.Groups().Send(r.Context(), id, draft)
	if err != nil {
		groupError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
