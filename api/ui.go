package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/meshtalk/meshtalk/web"
)

// uiPolicy keeps the page to the node: no script, style, font, frame or
// connection from anywhere else, and no page of another site may frame it.
const uiPolicy = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// uiHandler serves the web UI's committed bundle (web/dist). Every path
// that is not a file of it answers index.html, so that a reload of any
// screen works.
func uiHandler() http.Handler {
	files := web.Files()
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic("api: the web bundle has no index.html: " + err.Error()) // a build defect, caught by every test
	}
	// Each file's ETag is its hash: a reload revalidates the script and
	// the style sheet (no-cache) and gets 304 Not Modified, so the
	// browser keeps its copy (and its compiled code).
	etags := map[string]string{}
	fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := fs.ReadFile(files, name); err == nil {
				sum := sha256.Sum256(b)
				etags[name] = `"` + hex.EncodeToString(sum[:16]) + `"`
			}
		}
		return nil
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, CodeBadRequest, "the web UI answers GET only")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", uiPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		name := path.Clean(r.URL.Path)[1:]
		if b, err := fs.ReadFile(files, name); err == nil && name != "" {
			h.Set("Cache-Control", "no-cache")
			h.Set("ETag", etags[name])
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
			return
		}
		h.Set("Cache-Control", "no-store")
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
	})
}
