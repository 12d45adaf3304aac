package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/discovery"
	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/transfer"
)

// Friend is a contact as the API shows it: the stored record plus live
// presence.
type Friend struct {
	*chat.Contact
	Online bool `json:"online"`
}

// AddFriendRequest is the body of POST /api/v1/friends.
type AddFriendRequest struct {
	// Peer is a friend code, a peer ID or a /p2p/ multiaddr.
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
	ReplyTo string `json:"reply_to,omitempty"`
	ReactTo string `json:"react_to,omitempty"`
}

// ReadRequest is the body of POST /api/v1/read.
type ReadRequest struct {
	With string `json:"with"`
}

// ReadResult is the answer of POST /api/v1/read.
type ReadResult struct {
	Marked int `json:"marked"`
}

// maxBody bounds a request body: a picture or avatar of 5 MiB in base64.
const maxBody = 8 << 20

func (s *Server) chatRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/friends", s.withChat(s.handleFriends))
	mux.HandleFunc("POST /api/v1/friends", s.withChat(s.handleAddFriend))
	mux.HandleFunc("POST /api/v1/friends/{peer}/{action}", s.withChat(s.handleFriendAction))
	mux.HandleFunc("GET /api/v1/profile", s.withChat(s.handleProfile))
	mux.HandleFunc("PUT /api/v1/profile", s.withChat(s.handleSetProfile))
	mux.HandleFunc("GET /api/v1/avatars/{id}", s.withChat(s.handleAvatar))
	mux.HandleFunc("POST /api/v1/messages", s.withChat(s.handleSend))
	mux.HandleFunc("GET /api/v1/history", s.withChat(s.handleHistory))
	mux.HandleFunc("GET /api/v1/search", s.withChat(s.handleSearch))
	mux.HandleFunc("POST /api/v1/read", s.withChat(s.handleRead))
	mux.HandleFunc("GET /api/v1/faces", s.withChat(func(w http.ResponseWriter, _ *http.Request, _ *chat.Service) {
		writeJSON(w, http.StatusOK, chat.FaceTable())
	}))
}

// withChat answers 404 on a node without chat (a relay).
func (s *Server) withChat(h func(http.ResponseWriter, *http.Request, *chat.Service)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := s.node.Chat()
		if c == nil {
			writeError(w, http.StatusNotFound, CodeNotFound, "a relay has no contacts or messages")
			return
		}
		h(w, r, c)
	}
}

// chatError maps the chat service's errors to HTTP.
func chatError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, chat.ErrNotContact), errors.Is(err, chat.ErrNoRequest), errors.Is(err, chat.ErrNoMessage):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, chat.ErrNotFriend):
		writeError(w, http.StatusConflict, CodeNotFriends, err.Error())
	case errors.Is(err, chat.ErrAmbiguous), errors.Is(err, chat.ErrSelf), errors.Is(err, chat.ErrAlreadyAsked),
		errors.Is(err, chat.ErrNotImage), errors.Is(err, chat.ErrBadFrame), errors.Is(err, discovery.ErrBadPeer),
		errors.Is(err, discovery.ErrBadFriendCode), errors.Is(err, chat.ErrInvalid):
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
	}
}

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

func (s *Server) friendView(c *chat.Service, ct *chat.Contact) Friend {
	return Friend{Contact: ct, Online: c.Online(ct.PeerID)}
}

func (s *Server) handleFriends(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	contacts, err := c.Contacts(r.Context(), r.URL.Query().Get("pending") == "true")
	if err != nil {
		chatError(w, err)
		return
	}
	out := make([]Friend, 0, len(contacts))
	for _, ct := range contacts {
		out = append(out, s.friendView(c, ct))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAddFriend(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	var req AddFriendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	info, err := discovery.ParsePeer(req.Peer)
	if err != nil {
		// Not a friend code, peer ID or address: a username on a relay.
		var lerr error
		if info, lerr = s.lookupFriend(r, req.Peer); lerr != nil {
			if errors.Is(lerr, discovery.ErrBadPeer) {
				chatError(w, err)
			} else {
				relayError(w, lerr)
			}
			return
		}
	}
	ct, err := c.AddFriend(r.Context(), info, req.Message)
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.friendView(c, ct))
}

func (s *Server) handleFriendAction(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	p, err := s.resolve(r, c, r.PathValue("peer"))
	if err != nil {
		chatError(w, err)
		return
	}
	var ct *chat.Contact
	switch r.PathValue("action") {
	case "accept":
		ct, err = c.Accept(r.Context(), p)
	case "decline":
		ct, err = c.Decline(r.Context(), p)
	case "block":
		ct, err = c.Block(r.Context(), p)
	case "remove":
		ct, err = c.Remove(r.Context(), p)
	default:
		writeError(w, http.StatusNotFound, CodeNotFound, "no such action: "+r.PathValue("action")+" (accept, decline, block, remove)")
		return
	}
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.friendView(c, ct))
}

func (s *Server) resolve(r *http.Request, c *chat.Service, name string) (peer.ID, error) {
	return c.Resolve(r.Context(), name)
}

// resolveConv finds a conversation: a friend (peer ID or nickname), else a
// group (ID, ID prefix or name); for a group it returns its ID.
func (s *Server) resolveConv(r *http.Request, c *chat.Service, name string) (peer.ID, string, error) {
	p, err := c.Resolve(r.Context(), name)
	if err == nil {
		return p, "", nil
	}
	if gid, gerr := s.node.Groups().Resolve(r.Context(), name); gerr == nil || !errors.Is(gerr, group.ErrNoGroup) {
		return "", gid, gerr
	}
	return "", "", fmt.Errorf("%w (nor a group)", err)
}

func (s *Server) handleProfile(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	p, err := c.Profile(r.Context())
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleSetProfile(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	var req ProfileRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, err := c.SetProfile(r.Context(), chat.ProfileUpdate{Name: req.Name, Status: req.Status, Avatar: req.Avatar})
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	var req SendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, err := s.resolve(r, c, req.To)
	if err != nil {
		chatError(w, err)
		return
	}
	draft := chat.Draft{Text: req.Text, Face: req.Face, Picture: req.Picture, ReplyTo: req.ReplyTo, ReactTo: req.ReactTo}
	if req.Picture != nil {
		// The original goes into the blob store, offered to the friend: its
		// node fetches it by itself when it is small enough.
		orig, ok := s.offerFile(w, r, p, http.StatusInternalServerError, func(x *transfer.Service) (*transfer.Manifest, error) {
			return x.ImportBytes(pictureName(req.Picture), req.Picture)
		})
		if !ok {
			return
		}
		draft.File = orig.Encode()
	}
	m, err := c.Send(r.Context(), p, draft)
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	p, gid, err := s.resolveConv(r, c, q.Get("with"))
	if err != nil {
		groupError(w, err)
		return
	}
	var page *chat.HistoryPage
	if gid != "" {
		page, err = s.node.Groups().History(r.Context(), gid, q.Get("before"), limit)
	} else {
		page, err = c.History(r.Context(), p, q.Get("before"), limit)
	}
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	q := r.URL.Query()
	if q.Get("q") == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "search needs q=TEXT")
		return
	}
	var p peer.ID
	var gid string
	if with := q.Get("with"); with != "" {
		var err error
		if p, gid, err = s.resolveConv(r, c, with); err != nil {
			groupError(w, err)
			return
		}
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	var msgs []*chat.Message
	var err error
	if gid != "" {
		msgs, err = s.node.Groups().Search(r.Context(), q.Get("q"), gid, limit)
	} else {
		msgs, err = c.Search(r.Context(), q.Get("q"), p, limit)
	}
	if err != nil {
		chatError(w, err)
		return
	}
	if msgs == nil {
		msgs = []*chat.Message{}
	}
	writeJSON(w, http.StatusOK, msgs)
}

func (s *Server) handleRead(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	var req ReadRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, gid, err := s.resolveConv(r, c, req.With)
	if err != nil {
		groupError(w, err)
		return
	}
	var n int
	if gid != "" {
		n, err = s.node.Groups().MarkRead(r.Context(), gid)
	} else {
		n, err = c.MarkRead(r.Context(), p)
	}
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ReadResult{Marked: n})
}

// pictureName names a picture's original by its type.
func pictureName(b []byte) string {
	switch http.DetectContentType(b) {
	case "image/png":
		return "picture.png"
	case "image/gif":
		return "picture.gif"
	}
	return "picture.jpg"
}

// handleAvatar serves an avatar (this node's or a contact's) by its ID.
func (s *Server) handleAvatar(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	b, typ, err := c.Avatar(r.Context(), r.PathValue("id"))
	if err != nil {
		chatError(w, err)
		return
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	w.Write(b)
}
