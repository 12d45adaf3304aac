package api

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/transfer"
)

// SendFileRequest is the body of POST /api/v1/files.
type SendFileRequest struct {
	To string `json:"to"`
	// Path is a file on this machine (the API is local).
	Path    string `json:"path"`
	Message string `json:"message,omitempty"`
	// Drop sends the file through the friend's relay (sealed to the
	// friend) even when the friend is online. A file for a friend who is
	// offline goes that way by itself when a relay can take it.
	Drop bool `json:"drop,omitempty"`
}

// GetFileRequest is the body of POST /api/v1/files/{id}/get.
type GetFileRequest struct {
	Dir string `json:"dir"`
}

// File is one file offer and what became of it.
type File struct {
	chat.FileInfo
	// MessageID is the chat message that offered it.
	MessageID string  `json:"message_id"`
	From      peer.ID `json:"from"`
	To        peer.ID `json:"to"`
	Outgoing  bool    `json:"outgoing"`
	// State: "offered" (sent by this node), "available" (not fetched),
	// "downloading", "done", "failed".
	State string `json:"state"`
	Path  string `json:"path,omitempty"`
	Error string `json:"error,omitempty"`
	// While downloading: bytes so far, rate and time left.
	Bytes      uint64  `json:"bytes,omitempty"`
	Rate       float64 `json:"rate_bytes_per_second,omitempty"`
	ETASeconds float64 `json:"eta_seconds,omitempty"`
}

func (s *Server) fileRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/files", s.withChat(s.handleFiles))
	mux.HandleFunc("POST /api/v1/files", s.withChat(s.handleSendFile))
	mux.HandleFunc("POST /api/v1/files/{id}/get", s.withChat(s.handleGetFile))
	mux.HandleFunc("POST /api/v1/files/{id}/cancel", s.withChat(s.handleCancelFile))
}

func (s *Server) handleSendFile(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	var req SendFileRequest
	if !decodeBody(w, r, &req) {
		return
	}
	p, err := s.resolve(r, c, req.To)
	if err != nil {
		chatError(w, err)
		return
	}
	if rc := s.node.RelayClient(); rc != nil && (req.Drop || !c.Online(p)) {
		fi, serr := os.Stat(req.Path)
		if serr != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, serr.Error())
			return
		}
		err := rc.DropFile(r.Context(), p, req.Path)
		if err == nil {
			writeJSON(w, http.StatusOK, FileDropped{Dropped: true, To: p.String(), Name: filepath.Base(req.Path), Size: fi.Size()})
			return
		}
		if req.Drop {
			relayError(w, err)
			return
		}
		// No relay can take it: offer it, for when the friend is back.
	}
	m, ok := s.offerFile(w, r, p, http.StatusBadRequest, func(x *transfer.Service) (*transfer.Manifest, error) { return x.Import(req.Path, "") })
	if !ok {
		return
	}
	msg, err := c.Send(r.Context(), p, chat.Draft{File: m.Encode(), Text: req.Message})
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, msg)
}

// offerFile puts a file into the blob store (importFn) and offers it to p;
// it answers the request itself when that fails, with importStatus when
// the import does.
func (s *Server) offerFile(w http.ResponseWriter, r *http.Request, p peer.ID, importStatus int, importFn func(*transfer.Service) (*transfer.Manifest, error)) (*transfer.Manifest, bool) {
	xfer := s.node.Transfer()
	m, err := importFn(xfer)
	if err != nil {
		code := CodeBadRequest
		if importStatus == http.StatusInternalServerError {
			code = CodeInternal
		}
		writeError(w, importStatus, code, err.Error())
		return nil, false
	}
	if err := xfer.Offer(r.Context(), m, p); err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return nil, false
	}
	return m, true
}

// files joins the file offers with the downloads.
func (s *Server) files(r *http.Request, c *chat.Service) ([]File, error) {
	offers, err := c.FileOffers(r.Context())
	if err != nil {
		return nil, err
	}
	downloads, err := s.node.Transfer().Downloads(r.Context())
	if err != nil {
		return nil, err
	}
	byID := map[string]transfer.DownloadInfo{}
	for _, d := range downloads {
		byID[d.ID] = d
	}
	out := make([]File, 0, len(offers))
	for _, m := range offers {
		f := File{FileInfo: *m.File, MessageID: m.ID, From: m.From, To: m.To, Outgoing: m.Outgoing, State: "available"}
		if m.Outgoing {
			f.State = "offered"
		} else if d, ok := byID[m.File.ID]; ok {
			switch {
			case d.Done:
				f.State, f.Path = "done", d.Final
			case d.Error != "":
				f.State, f.Error = "failed", d.Error
			default:
				f.State = "downloading"
				f.Bytes, f.Rate, f.ETASeconds = d.Bytes, d.Rate, d.ETASeconds
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func (s *Server) handleFiles(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	files, err := s.files(r, c)
	if err != nil {
		chatError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, files)
}

// offer finds the incoming offer of file id.
func (s *Server) offer(r *http.Request, c *chat.Service, id string) (*chat.Message, error) {
	offers, err := c.FileOffers(r.Context())
	if err != nil {
		return nil, err
	}
	for _, m := range offers {
		if m.File.ID == id && !m.Outgoing {
			return m, nil
		}
	}
	return nil, errNoFile
}

var errNoFile = errors.New("no file offered with that ID (see `meshtalk file list`)")

func (s *Server) handleGetFile(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	var req GetFileRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Dir == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "dir is required")
		return
	}
	m, err := s.offer(r, c, r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
		return
	}
	manifest, err := transfer.DecodeManifest(m.Manifest)
	if err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	if err := s.node.Transfer().Start(manifest, []peer.ID{m.From}, req.Dir); err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	files, err := s.files(r, c)
	if err != nil {
		chatError(w, err)
		return
	}
	for _, f := range files {
		if f.ID == manifest.ID() && !f.Outgoing {
			writeJSON(w, http.StatusOK, f)
			return
		}
	}
	writeError(w, http.StatusInternalServerError, CodeInternal, "the download vanished")
}

func (s *Server) handleCancelFile(w http.ResponseWriter, r *http.Request, c *chat.Service) {
	if err := s.node.Transfer().Cancel(r.Context(), r.PathValue("id")); err != nil {
		if errors.Is(err, transfer.ErrNotStarted) {
			writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
