package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// browser is an HTTP client with a cookie jar, as a page has.
type browser struct {
	t    *testing.T
	srv  *api.Server
	http *http.Client
	csrf string
}

func newBrowser(t *testing.T, srv *api.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, srv: srv, http: &http.Client{Jar: jar}}
}

// do sends a request as the page would (own Origin, CSRF header when it
// has one) after edit adjusts it; it answers the status and error code.
func (b *browser) do(method, path string, body any, edit func(*http.Request)) (int, string, []byte) {
	b.t.Helper()
	var in io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		in = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.srv.URL()+path, in)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Origin", b.srv.URL())
	if b.csrf != "" {
		req.Header.Set(api.CSRFHeader, b.csrf)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Error api.Error `json:"error"`
	}
	json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error.Code, raw
}

func loginCode(t *testing.T, srv *api.Server) api.LoginCode {
	t.Helper()
	var lc api.LoginCode
	if err := api.NewClient(srv.Addr(), srv.Token()).Call(context.Background(), http.MethodPost, "/api/v1/login-codes", nil, &lc); err != nil {
		t.Fatal(err)
	}
	return lc
}

// login trades a fresh login code for a session, as the page does.
func (b *browser) login() {
	b.t.Helper()
	lc := loginCode(b.t, b.srv)
	status, code, raw := b.do(http.MethodPost, "/api/v1/session", api.LoginRequest{Code: lc.Code}, nil)
	if status != http.StatusOK {
		b.t.Fatalf("login: %d %s", status, code)
	}
	var s api.Session
	if err := json.Unmarshal(raw, &s); err != nil || s.CSRF == "" {
		b.t.Fatalf("login answered %s", raw)
	}
	b.csrf = s.CSRF
}

func TestLoginCodeOnce(t *testing.T) {
	_, srv := startAPI(t)
	lc := loginCode(t, srv)
	if !strings.HasPrefix(lc.URL, srv.URL()+"/#login=") || strings.Contains(lc.URL, srv.Token()) {
		t.Fatalf("login URL %q: want %s/#login=CODE, never the token", lc.URL, srv.URL())
	}
	first, second := newBrowser(t, srv), newBrowser(t, srv)
	if status, code, _ := first.do(http.MethodPost, "/api/v1/session", api.LoginRequest{Code: lc.Code}, nil); status != 200 {
		t.Fatalf("first use of the code: %d %s", status, code)
	}
	if status, code, _ := second.do(http.MethodPost, "/api/v1/session", api.LoginRequest{Code: lc.Code}, nil); status != 401 || code != api.CodeUnauthorized {
		t.Fatalf("second use of the code: %d %s, want 401 unauthorized", status, code)
	}
	if status, _, _ := second.do(http.MethodGet, "/api/v1/friends", nil, nil); status != 401 {
		t.Fatalf("refused login still got a session: %d", status)
	}
	// A session may not make login codes: only the token's holder may.
	first.login()
	if status, _, _ := first.do(http.MethodPost, "/api/v1/login-codes", nil, nil); status != 403 {
		t.Fatalf("a session made a login code: %d", status)
	}
}

func TestSessionAuth(t *testing.T) {
	_, srv := startAPI(t)
	b := newBrowser(t, srv)
	if status, code, _ := b.do(http.MethodGet, "/api/v1/friends", nil, nil); status != 401 || code != api.CodeUnauthorized {
		t.Fatalf("no cookie: %d %s, want 401", status, code)
	}
	b.login()
	profile := map[string]string{"status": "here"}
	for _, tc := range []struct {
		name, method, path string
		body               any
		edit               func(*http.Request)
		status             int
		code               string
	}{
		{"read with cookie", "GET", "/api/v1/friends", nil, nil, 200, ""},
		{"change with CSRF", "PUT", "/api/v1/profile", profile, nil, 200, ""},
		{"change without CSRF", "PUT", "/api/v1/profile", profile, func(r *http.Request) { r.Header.Del(api.CSRFHeader) }, 403, api.CodeForbiddenCSRF},
		{"change with wrong CSRF", "PUT", "/api/v1/profile", profile, func(r *http.Request) { r.Header.Set(api.CSRFHeader, "00") }, 403, api.CodeForbiddenCSRF},
		{"wrong origin", "GET", "/api/v1/friends", nil, func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") }, 403, api.CodeForbiddenOrigin},
		{"wrong host", "GET", "/api/v1/friends", nil, func(r *http.Request) { r.Host = "evil.example" }, 403, api.CodeForbiddenHost},
		{"wrong host for the page", "GET", "/", nil, func(r *http.Request) { r.Host = "rebind.example:80" }, 403, api.CodeForbiddenHost},
		{"login with wrong origin", "POST", "/api/v1/session", api.LoginRequest{Code: "x"}, func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") }, 403, api.CodeForbiddenOrigin},
	} {
		if status, code, raw := b.do(tc.method, tc.path, tc.body, tc.edit); status != tc.status || code != tc.code {
			t.Errorf("%s: %d %q (%s), want %d %q", tc.name, status, code, raw, tc.status, tc.code)
		}
	}
	// The bearer token keeps working for scripts, without CSRF.
	if err := api.NewClient(srv.Addr(), srv.Token()).Call(context.Background(), "PUT", "/api/v1/profile", profile, nil); err != nil {
		t.Fatalf("bearer token: %v", err)
	}
	if status, _, _ := b.do(http.MethodDelete, "/api/v1/session", nil, nil); status != 204 {
		t.Fatalf("logout: %d", status)
	}
	b.http.Jar, _ = cookiejar.New(nil) // even a page that kept the cookie
	if status, _, _ := b.do(http.MethodGet, "/api/v1/friends", nil, nil); status != 401 {
		t.Fatalf("after logout: %d, want 401", status)
	}
}

func TestSessionEndsAtLogoutWithOldCookie(t *testing.T) {
	_, srv := startAPI(t)
	b := newBrowser(t, srv)
	b.login()
	u, _ := url.Parse(srv.URL())
	kept := b.http.Jar.Cookies(u)
	if len(kept) != 1 {
		t.Fatalf("want the session cookie on requests, have %v", kept)
	}
	b.do(http.MethodDelete, "/api/v1/session", nil, nil)
	status, _, _ := b.do(http.MethodGet, "/api/v1/friends", nil, func(r *http.Request) {
		r.Header.Del("Cookie")
		r.AddCookie(kept[0])
	})
	if status != 401 {
		t.Fatalf("the logged-out cookie still works: %d", status)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	_, srv := startAPI(t)
	lc := loginCode(t, srv)
	resp, err := http.Post(srv.URL()+"/api/v1/session", "application/json", strings.NewReader(`{"code":"`+lc.Code+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
}

func TestUIPage(t *testing.T) {
	_, srv := startAPI(t)
	b := newBrowser(t, srv)
	for _, path := range []string{"/", "/index.html", "/chats/whatever"} {
		status, _, raw := b.do(http.MethodGet, path, nil, nil)
		if status != 200 || !bytes.Contains(raw, []byte("<html")) {
			t.Fatalf("GET %s: %d %.80s", path, status, raw)
		}
		if bytes.Contains(raw, []byte(srv.Token())) {
			t.Fatalf("the token is in the page")
		}
	}
	// The script revalidates by its ETag: a reload gets 304 and no body.
	var etag string
	status, _, raw := b.do(http.MethodGet, "/app.js", nil, nil)
	resp, err := http.Get(srv.URL() + "/app.js")
	if err == nil {
		etag = resp.Header.Get("ETag")
		resp.Body.Close()
	}
	if status != 200 || len(raw) == 0 || etag == "" {
		t.Fatalf("GET /app.js: %d, %d bytes, ETag %q (%v)", status, len(raw), etag, err)
	}
	status, _, raw = b.do(http.MethodGet, "/app.js", nil, func(r *http.Request) { r.Header.Set("If-None-Match", etag) })
	if status != http.StatusNotModified || len(raw) != 0 {
		t.Fatalf("GET /app.js again with its ETag: %d, %d bytes", status, len(raw))
	}
}

func TestRelayServesNoUI(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{Role: node.RoleRelay})
	srv, err := api.New(context.Background(), n, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	b := newBrowser(t, srv)
	for _, path := range []string{"/", "/index.html"} {
		if status, _, _ := b.do(http.MethodGet, path, nil, nil); status != 404 {
			t.Errorf("relay GET %s: %d, want 404", path, status)
		}
	}
	if status, _, _ := b.do(http.MethodPost, "/api/v1/session", api.LoginRequest{Code: "x"}, nil); status != 404 {
		t.Errorf("relay login: %d, want 404", status)
	}
}

func TestUploadNeedsName(t *testing.T) {
	_, srv := startAPI(t)
	b := newBrowser(t, srv)
	b.login()
	status, code, _ := b.do(http.MethodPost, "/api/v1/uploads", "x", nil)
	if status != 400 || code != api.CodeBadRequest {
		t.Fatalf("upload without a name: %d %s", status, code)
	}
	status, _, raw := b.do(http.MethodPost, "/api/v1/uploads?name=../../a.txt", "hello", nil)
	var up node.Upload
	json.Unmarshal(raw, &up)
	if status != 200 || !strings.HasSuffix(up.Path, "/a.txt") || !strings.Contains(up.Path, "/uploads/") || up.Size != 7 {
		t.Fatalf("upload: %d %s", status, raw)
	}
	// A day later the next upload clears it away.
	old := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(filepath.Dir(up.Path), old, old); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := b.do(http.MethodPost, "/api/v1/uploads?name=b.txt", "x", nil); status != 200 {
		t.Fatalf("second upload: %d", status)
	}
	if _, err := os.Stat(up.Path); !os.IsNotExist(err) {
		t.Fatalf("a day-old upload is still there: %v", err)
	}
}
