package api

import (
	"mime"
	"net/http"

	"github.com/meshtalk/meshtalk/node"
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

func (s *Server) fileRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/files", s.handleFiles)
	mux.HandleFunc("POST /api/v1/files", s.handleSendFile)
	mux.HandleFunc("POST /api/v1/files/{id}/get", s.handleGetFile)
	mux.HandleFunc("POST /api/v1/files/{id}/cancel", s.handleCancelFile)
}

func (s *Server) handleSendFile(w http.ResponseWriter, r *http.Request) {
	var req SendFileRequest
	if !decodeBody(w, r, &req) {
		return
	}
	sent, err := s.node.SendFile(r.Context(), node.FileSend{To: req.To, Path: req.Path, Message: req.Message, Drop: req.Drop})
	reply(w, sent, err)
}

func (s *Server) handleFiles(w http.ResponseWriter, r *http.Request) {
	files, err := s.node.Files(r.Context())
	reply(w, files, err)
}

func (s *Server) handleGetFile(w http.ResponseWriter, r *http.Request) {
	var req GetFileRequest
	if !decodeBody(w, r, &req) {
		return
	}
	f, err := s.node.GetFile(r.Context(), r.PathValue("id"), req.Dir)
	reply(w, f, err)
}

func (s *Server) handleCancelFile(w http.ResponseWriter, r *http.Request) {
	if err := s.node.CancelFile(r.Context(), r.PathValue("id")); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) uploadRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/uploads", s.handleUpload)
	mux.HandleFunc("GET /api/v1/files/{id}/content", s.handleFileContent)
}

// handleUpload takes a file's bytes as the body (any type, up to
// node.MaxUpload) and its name as ?name=.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	up, err := s.node.SaveUpload(r.Context(), r.URL.Query().Get("name"), r.Body)
	reply(w, up, err)
}

// handleFileContent serves a downloaded file, to save (or, for a
// picture, to show: ?inline=true).
func (s *Server) handleFileContent(w http.ResponseWriter, r *http.Request) {
	f, err := s.node.DownloadedFile(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	disp := "attachment"
	if r.URL.Query().Get("inline") == "true" {
		disp = "inline"
	}
	w.Header().Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": f.Name}))
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if f.MIME != "" {
		w.Header().Set("Content-Type", f.MIME)
	}
	http.ServeFile(w, r, f.Path)
}
