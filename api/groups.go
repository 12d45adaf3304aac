package api

import (
	"net/http"
	"time"

	"github.com/meshtalk/meshtalk/node"
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
	// Uses is how many may join with the code (absent: 1; 0: any
	// number).
	Uses *uint32 `json:"uses,omitempty"`
	// ExpiresSeconds is how long the code is valid (0: 24 hours).
	ExpiresSeconds int64 `json:"expires_seconds"`
}

// RevokeInviteRequest is the body of POST
// /api/v1/groups/{group}/invites/revoke.
type RevokeInviteRequest struct {
	// Invite is the invite code or its ID.
	Invite string `json:"invite"`
}

// JoinRequest is the body of POST /api/v1/groups/join.
type JoinRequest struct {
	Code string `json:"code"`
}

// AddMemberRequest is the body of POST /api/v1/groups/{group}/members
// and of POST /api/v1/groups/{group}/admins.
type AddMemberRequest struct {
	// Peer is a friend (peer ID or nickname), or for admins a member.
	Peer string `json:"peer"`
}

// GroupSendRequest is the body of POST /api/v1/groups/{group}/messages.
type GroupSendRequest struct {
	Text    string `json:"text,omitempty"`
	Face    string `json:"face,omitempty"`
	Picture []byte `json:"picture,omitempty"`
	// PictureName is the picture's file name (SendRequest).
	PictureName string `json:"picture_name,omitempty"`
	// Path is a file on this machine to offer to the members.
	Path    string `json:"path,omitempty"`
	ReplyTo string `json:"reply_to,omitempty"`
	ReactTo string `json:"react_to,omitempty"`
}

func (s *Server) groupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/groups", s.handleGroups)
	mux.HandleFunc("POST /api/v1/groups", s.handleCreateGroup)
	mux.HandleFunc("POST /api/v1/groups/join", s.handleJoinGroup)
	mux.HandleFunc("GET /api/v1/groups/{group}", s.handleGroup)
	mux.HandleFunc("PUT /api/v1/groups/{group}", s.handleUpdateGroup)
	mux.HandleFunc("GET /api/v1/groups/{group}/invites", s.handleInvites)
	mux.HandleFunc("POST /api/v1/groups/{group}/invites", s.handleInvite)
	mux.HandleFunc("POST /api/v1/groups/{group}/invites/revoke", s.handleRevokeInvite)
	mux.HandleFunc("GET /api/v1/groups/{group}/members", s.handleGroupMembers)
	mux.HandleFunc("POST /api/v1/groups/{group}/members", s.handleAddMember)
	mux.HandleFunc("DELETE /api/v1/groups/{group}/members/{peer}", s.handleKick)
	mux.HandleFunc("POST /api/v1/groups/{group}/admins", s.handlePromote)
	mux.HandleFunc("POST /api/v1/groups/{group}/leave", s.handleLeave)
	mux.HandleFunc("POST /api/v1/groups/{group}/messages", s.handleGroupSend)
}

func (s *Server) handleGroups(w http.ResponseWriter, r *http.Request) {
	gs, err := s.node.Groups(r.Context())
	reply(w, gs, err)
}

func (s *Server) handleCreateGroup(w http.ResponseWriter, r *http.Request) {
	var req CreateGroupRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.CreateGroup(r.Context(), req.Name, req.Avatar)
	reply(w, g, err)
}

func (s *Server) handleJoinGroup(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.JoinGroup(r.Context(), req.Code)
	reply(w, g, err)
}

func (s *Server) handleGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.node.Group(r.Context(), r.PathValue("group"))
	reply(w, g, err)
}

func (s *Server) handleUpdateGroup(w http.ResponseWriter, r *http.Request) {
	var req UpdateGroupRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.UpdateGroup(r.Context(), r.PathValue("group"), req.Name, req.Avatar)
	reply(w, g, err)
}

func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request) {
	var req InviteRequest
	if !decodeBody(w, r, &req) {
		return
	}
	inv, err := s.node.InviteToGroup(r.Context(), r.PathValue("group"), req.Uses, time.Duration(req.ExpiresSeconds)*time.Second)
	reply(w, inv, err)
}

func (s *Server) handleInvites(w http.ResponseWriter, r *http.Request) {
	invites, err := s.node.GroupInvites(r.Context(), r.PathValue("group"))
	reply(w, invites, err)
}

func (s *Server) handleRevokeInvite(w http.ResponseWriter, r *http.Request) {
	var req RevokeInviteRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.RevokeGroupInvite(r.Context(), r.PathValue("group"), req.Invite)
	reply(w, g, err)
}

func (s *Server) handleGroupMembers(w http.ResponseWriter, r *http.Request) {
	members, err := s.node.GroupMembers(r.Context(), r.PathValue("group"))
	reply(w, members, err)
}

func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	var req AddMemberRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.AddGroupMember(r.Context(), r.PathValue("group"), req.Peer)
	reply(w, g, err)
}

func (s *Server) handleKick(w http.ResponseWriter, r *http.Request) {
	g, err := s.node.KickGroupMember(r.Context(), r.PathValue("group"), r.PathValue("peer"))
	reply(w, g, err)
}

// handlePromote makes a member an admin: {"peer": ...} as for adding one.
func (s *Server) handlePromote(w http.ResponseWriter, r *http.Request) {
	var req AddMemberRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g, err := s.node.PromoteGroupMember(r.Context(), r.PathValue("group"), req.Peer)
	reply(w, g, err)
}

func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request) {
	g, err := s.node.LeaveGroup(r.Context(), r.PathValue("group"))
	reply(w, g, err)
}

func (s *Server) handleGroupSend(w http.ResponseWriter, r *http.Request) {
	var req GroupSendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	d := node.Draft{Text: req.Text, Face: req.Face, Picture: req.Picture, PictureName: req.PictureName, Path: req.Path, ReplyTo: req.ReplyTo, ReactTo: req.ReactTo}
	m, err := s.node.SendGroup(r.Context(), r.PathValue("group"), d)
	reply(w, m, err)
}
