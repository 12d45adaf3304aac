package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/meshtalk/meshtalk/node"
)

// AddFriendRequest is the body of POST /api/v1/friends.
type AddFriendRequest struct {
	// Peer is a friend code, a peer ID, a /p2p/ multiaddr or a username
	// on a relay.
	Peer    string `json:"peer"`
	Message string `json:"message"`
}

// ProfileRequest is the body of PUT /api/v1/profile; absent fields stay.
type ProfileRequest struct {
	Name   *string `json:"name"`
	Status *string `json:"status"`
	// Avatar is an image file (PNG, JPEG or GIF), base64 in JSON.
	Avatar []byte `json:"avatar"`
}

// SendRequest is the body of POST /api/v1/messages.
type SendRequest struct {
	To      string `json:"to"`
	Text    string `json:"text,omitempty"`
	Face    string `json:"face,omitempty"`
	Picture []byte `json:"picture,omitempty"`
	// PictureName is the picture's file name: its original arrives
	// under it (else "picture.png" or the like).
	PictureName string `json:"picture_name,omitempty"`
	ReplyTo     string `json:"reply_to,omitempty"`
	ReactTo     string `json:"react_to,omitempty"`
}

// EditRequest is the body of PATCH /api/v1/messages/{id}.
type EditRequest struct {
	Text string `json:"text"`
}

// ReadRequest is the body of POST /api/v1/read.
type ReadRequest struct {
	With string `json:"with"`
}

// maxBody bounds a request body: a picture or avatar of 5 MiB in base64.
const maxBody = 8 << 20

func (s *Server) chatRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/friends", s.handleFriends)
	mux.HandleFunc("POST /api/v1/friends", s.handleAddFriend)
	mux.HandleFunc("GET /api/v1/friends/{peer}", func(w http.ResponseWriter, r *http.Request) {
		f, err := s.node.FriendShow(r.Context(), r.PathValue("peer"))
		reply(w, f, err)
	})
	for action, do := range map[string]friendAction{
		"accept":  s.node.AcceptFriend,
		"decline": s.node.DeclineFriend,
		"remove":  s.node.RemoveFriend,
		"block":   s.node.BlockFriend,
	} {
		mux.HandleFunc("POST /api/v1/friends/{peer}/"+action, func(w http.ResponseWriter, r *http.Request) {
			f, err := do(r.Context(), r.PathValue("peer"))
			reply(w, f, err)
		})
	}
	mux.HandleFunc("POST /api/v1/friends/{peer}/{action}", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such action: "+r.PathValue("action")+" (accept, decline, block, remove)")
	})
	mux.HandleFunc("GET /api/v1/profile", s.handleProfile)
	mux.HandleFunc("PUT /api/v1/profile", s.handleSetProfile)
	mux.HandleFunc("GET /api/v1/avatars/{id}", s.handleAvatar)
	mux.HandleFunc("POST /api/v1/messages", s.handleSend)
	mux.HandleFunc("PATCH /api/v1/messages/{id}", s.handleEdit)
	mux.HandleFunc("DELETE /api/v1/messages/{id}", s.handleDelete)
	mux.HandleFunc("GET /api/v1/history", s.handleHistory)
	mux.HandleFunc("GET /api/v1/search", s.handleSearch)
	mux.HandleFunc("POST /api/v1/read", s.handleRead)
	mux.HandleFunc("GET /api/v1/conversations", func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.node.Conversations(r.Context())
		reply(w, cs, err)
	})
	mux.HandleFunc("GET /api/v1/messages/{id}/info", func(w http.ResponseWriter, r *http.Request) {
		t, err := s.node.MessageInfo(r.Context(), r.PathValue("id"))
		reply(w, t, err)
	})
	mux.HandleFunc("GET /api/v1/faces", func(w http.ResponseWriter, _ *http.Request) {
		faces, err := s.node.Faces()
		reply(w, faces, err)
	})
}

// friendAction is one of the node's answers to a friend request.
type friendAction func(ctx context.Context, name string) (*node.Friend, error)

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the body is over the %d MiB limit", maxBody>>20))
			return false
		}
		writeError(w, http.StatusBadRequest, CodeBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) handleFriends(w http.ResponseWriter, r *http.Request) {
	fs, err := s.node.Friends(r.Context(), r.URL.Query().Get("pending") == "true")
	reply(w, fs, err)
}

func (s *Server) handleAddFriend(w http.ResponseWriter, r *http.Request) {
	var req AddFriendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	f, err := s.node.AddFriend(r.Context(), req.Peer, req.Message)
	reply(w, f, err)
}

func (s *Server) handleProfile(w http.ResponseWriter, r *http.Request) {
	p, err := s.node.Profile(r.Context())
	reply(w, p, err)
}

func (s *Server) handleSetProfile(w http.ResponseWriter, r *http.Request) {
	var req ProfileRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, err := s.node.SetProfile(r.Context(), node.ProfileUpdate{Name: req.Name, Status: req.Status, Avatar: req.Avatar})
	reply(w, p, err)
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request) {
	var req SendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	m, err := s.node.SendMessage(r.Context(), req.To, node.Draft{Text: req.Text, Face: req.Face, Picture: req.Picture, PictureName: req.PictureName, ReplyTo: req.ReplyTo, ReactTo: req.ReactTo})
	reply(w, m, err)
}

func (s *Server) handleEdit(w http.ResponseWriter, r *http.Request) {
	var req EditRequest
	if !decodeBody(w, r, &req) {
		return
	}
	m, err := s.node.EditMessage(r.Context(), r.PathValue("id"), req.Text)
	reply(w, m, err)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	m, err := s.node.DeleteMessage(r.Context(), r.PathValue("id"), r.URL.Query().Get("for_everyone") == "true")
	reply(w, m, err)
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := queryLimit(w, q)
	if !ok {
		return
	}
	page, err := s.node.History(r.Context(), q.Get("with"), q.Get("before"), limit)
	reply(w, page, err)
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := queryLimit(w, q)
	if !ok {
		return
	}
	msgs, err := s.node.Search(r.Context(), q.Get("q"), q.Get("with"), limit)
	reply(w, msgs, err)
}

func (s *Server) handleRead(w http.ResponseWriter, r *http.Request) {
	var req ReadRequest
	if !decodeBody(w, r, &req) {
		return
	}
	res, err := s.node.MarkRead(r.Context(), req.With)
	reply(w, res, err)
}

// handleAvatar serves an avatar (this node's or a contact's) by its ID.
func (s *Server) handleAvatar(w http.ResponseWriter, r *http.Request) {
	a, err := s.node.Avatar(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", a.Type)
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	w.Write(a.Data)
}

// queryLimit decodes the limit parameter of history and search: absent
// is 0 (the node's default); present, it is 1 to node.MaxLimit.
func queryLimit(w http.ResponseWriter, q url.Values) (int, bool) {
	v := q.Get("limit")
	if v == "" {
		return 0, true
	}
	limit, err := strconv.Atoi(v)
	if err != nil || limit < 1 || limit > node.MaxLimit {
		writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("limit %q is out of range: give 1 to %d", v, node.MaxLimit))
		return 0, false
	}
	return limit, true
}
