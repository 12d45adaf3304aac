package api

// Browser sessions of the web UI.
//
// The long-lived API token never reaches a browser. `meshtalk open` asks
// the node (with the token) for a login code and opens
// http://ADDR/#login=CODE; the page trades the code, once and within
// loginCodeTTL, for a session: an HttpOnly, SameSite=Strict cookie and a
// CSRF value that the page sends back as the X-CSRF-Token header on every
// request that changes state. Sessions live in memory only: logging out
// or restarting the node ends them.

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"time"
)

const (
	loginCodeTTL = 60 * time.Second
	// maxLoginCodes and maxSessions bound what a local client asking
	// again and again can make the node keep; the oldest go first.
	maxLoginCodes = 16
	maxSessions   = 64
	// CSRFHeader is the header that carries a session's CSRF value.
	CSRFHeader = "X-CSRF-Token"
)

// LoginCode is the answer of POST /api/v1/login-codes.
type LoginCode struct {
	Code    string    `json:"code"`
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// LoginRequest is the body of POST /api/v1/session.
type LoginRequest struct {
	Code string `json:"code"`
}

// Session is the answer of POST and GET /api/v1/session.
type Session struct {
	CSRF string `json:"csrf"`
}

type session struct {
	csrf    string
	created time.Time
}

// sessions holds the login codes not yet used and the live sessions.
type sessions struct {
	mu    sync.Mutex
	now   func() time.Time
	codes map[string]time.Time // code → expiry
	live  map[string]session   // cookie value → session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, codes: make(map[string]time.Time), live: make(map[string]session)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// newCode makes a login code valid once, until the time it answers.
func (s *sessions) newCode() (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for c, exp := range s.codes {
		if !now.Before(exp) {
			delete(s.codes, c)
		}
	}
	for len(s.codes) >= maxLoginCodes {
		oldest := ""
		for c, exp := range s.codes {
			if oldest == "" || exp.Before(s.codes[oldest]) {
				oldest = c
			}
		}
		delete(s.codes, oldest)
	}
	code, exp := randomHex(16), now.Add(loginCodeTTL)
	s.codes[code] = exp
	return code, exp
}

// login trades a code for a new session (its cookie value and CSRF
// value); a code unknown, used or expired answers ok false.
func (s *sessions) login(code string) (id string, csrf string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, found := s.codes[code]
	delete(s.codes, code)
	if !found || !s.now().Before(exp) {
		return "", "", false
	}
	for len(s.live) >= maxSessions {
		oldest := ""
		for k, v := range s.live {
			if oldest == "" || v.created.Before(s.live[oldest].created) {
				oldest = k
			}
		}
		delete(s.live, oldest)
	}
	id, csrf = randomHex(32), randomHex(32)
	s.live[id] = session{csrf: csrf, created: s.now()}
	return id, csrf, true
}

// lookup answers the CSRF value of the session id.
func (s *sessions) lookup(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.live[id]
	return v.csrf, ok
}

func (s *sessions) logout(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, id)
}

// cookieName is per port: browsers keep cookies by host, not by port, and
// two nodes on one machine must not log each other's page out.
func (s *Server) cookieName() string {
	_, port, _ := net.SplitHostPort(s.Addr())
	return "meshtalk_session_" + port
}

// sessionOf answers the session a request's cookie names.
func (s *Server) sessionOf(r *http.Request) (id, csrf string, ok bool) {
	c, err := r.Cookie(s.cookieName())
	if err != nil {
		return "", "", false
	}
	csrf, ok = s.sessions.lookup(c.Value)
	return c.Value, csrf, ok
}

// checkSession lets a browser request through on a live session, and a
// state-changing one only with the session's CSRF header.
func (s *Server) checkSession(w http.ResponseWriter, r *http.Request) bool {
	_, csrf, ok := s.sessionOf(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "no session: open the web UI with `meshtalk open`, or send the bearer token (it is in api.json in the node's home)")
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(csrf)) != 1 {
		writeError(w, http.StatusForbidden, CodeForbiddenCSRF, "missing or wrong "+CSRFHeader+" header for this session")
		return false
	}
	return true
}

func (s *Server) sessionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/login-codes", s.handleLoginCode)
	mux.HandleFunc("POST /api/v1/session", s.handleLogin)
	mux.HandleFunc("GET /api/v1/session", s.handleSession)
	mux.HandleFunc("DELETE /api/v1/session", s.handleLogout)
}

// handleLoginCode makes a login code; only the bearer token may ask (a
// session must not breed sessions).
func (s *Server) handleLoginCode(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		writeError(w, http.StatusForbidden, CodeUnauthorized, "login codes are for the bearer token's holder (`meshtalk open`)")
		return
	}
	code, exp := s.sessions.newCode()
	writeJSON(w, http.StatusOK, LoginCode{Code: code, URL: s.URL() + "/#login=" + code, Expires: exp})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	if !decodeBody(w, r, &req) {
		return
	}
	id, csrf, ok := s.sessions.login(req.Code)
	if !ok {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "this login code is unknown, used or expired (they last 60 s, once): run `meshtalk open` again")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, Session{CSRF: csrf})
}

func (s *Server) handleSession(w http.ResponseWriter, r *http.Request) {
	_, csrf, ok := s.sessionOf(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "no session")
		return
	}
	writeJSON(w, http.StatusOK, Session{CSRF: csrf})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if id, _, ok := s.sessionOf(r); ok {
		s.sessions.logout(id)
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
