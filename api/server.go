package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshtalk/meshtalk/node"
)

// Server serves the local API of one node on a loopback address. It
// writes the home's api.json when it starts and removes it when it stops.
type Server struct {
	node  *node.Node
	token string
	ln    net.Listener
	srv   *http.Server
	log   *slog.Logger

	ctx        context.Context // cancelled by Close; ends event streams
	cancel     context.CancelFunc
	sessions   *sessions
	events     *eventLog
	done       chan struct{}
	handlers   sync.WaitGroup // requests being served
	closeOnce  sync.Once
	followDone chan struct{}
	closeErr   error
}

// New starts serving n's API on addr (HOST:PORT, loopback only; port 0
// picks a free port) and writes api.json into n's home.
func New(ctx context.Context, n *node.Node, addr string, logger *slog.Logger) (*Server, error) {
	if err := node.CheckLoopback(addr); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: listen on %s: %w (pick another with --api HOST:PORT)", addr, err)
	}
	return Serve(n, ln, logger)
}

// Serve serves n's API on a listener of the caller's (a loopback TCP
// address; the server closes it) and writes api.json into n's home. New
// listens on an address and calls it; a caller that needs to see or cut
// the connections (a test of the web UI's reconnects) wraps its own.
func Serve(n *node.Node, ln net.Listener, logger *slog.Logger) (*Server, error) {
	if err := node.CheckLoopback(ln.Addr().String()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{node: n, token: hex.EncodeToString(tok), ln: ln, log: logger.With("component", "api"), done: make(chan struct{}),
		sessions: newSessions(time.Now), events: newEventLog()}

	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	if err := writeInfo(n.Home().APIInfoPath(), Info{Addr: ln.Addr().String(), Token: s.token, PID: os.Getpid()}); err != nil {
		ln.Close()
		s.cancel()
		return nil, err
	}
	s.followDone = make(chan struct{})
	events, unsubscribe := subscribeHub(n.Events())
	go func() {
		defer close(s.followDone)
		s.events.follow(s.ctx, n.Events(), events, unsubscribe)
	}()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the API.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Token is the bearer token that requests must carry.
func (s *Server) Token() string { return s.token }

// Close stops the server, ends open event streams and removes api.json.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if err != nil {
			err = s.srv.Close()
		}
		<-s.done
		<-s.followDone
		// A handler cut off by Close may still be running: the node's
		// services must outlive it.
		s.handlers.Wait()
		if rerr := os.Remove(s.node.Home().APIInfoPath()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		s.closeErr = err
	})
	return s.closeErr
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/id", s.handleID)
	mux.HandleFunc("GET /api/v1/status", s.handleStatus)
	mux.HandleFunc("GET /api/v1/events", s.handleEvents)
	mux.HandleFunc("GET /api/v1/peers", s.handlePeers)
	mux.HandleFunc("GET /api/v1/ping", s.handlePing)
	mux.HandleFunc("POST /api/v1/stop", func(w http.ResponseWriter, r *http.Request) {
		rep, err := s.node.Stop(r.Context())
		reply(w, rep, err)
	})
	s.chatRoutes(mux)
	s.fileRoutes(mux)
	s.uploadRoutes(mux)
	s.savedRelayRoutes(mux)
	s.relayRoutes(mux)
	s.groupRoutes(mux)
	s.callRoutes(mux)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	if s.node.Role() == node.RolePersonal {
		s.sessionRoutes(mux)
		mux.Handle("/", uiHandler())
	} else {
		// A relay serves no UI.
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, CodeNotFound, "a relay serves no web UI; no such endpoint: "+r.Method+" "+r.URL.Path)
		})
	}
	return s.authorize(mux)
}

// authorize lets a request through only when it names the API's own
// loopback address as its Host, and, when a browser sends an Origin, only
// from the API's own origin: a page on any other site must not drive the
// node (CSRF; DNS rebinding, where a name of the attacker's resolves to
// 127.0.0.1 and the browser sends that name as the Host). Then an API
// request needs the bearer token or a web UI session (session.go); the
// UI's own files and the login itself need neither.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		if !s.ownHost(r.Host) {
			writeError(w, http.StatusForbidden, CodeForbiddenHost, "requests for host "+r.Host+" are not allowed; use http://"+s.Addr())
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !s.ownOrigin(origin) {
			writeError(w, http.StatusForbidden, CodeForbiddenOrigin, "requests from origin "+origin+" are not allowed")
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/api/") || (r.Method == http.MethodPost && r.URL.Path == "/api/v1/session") {
			next.ServeHTTP(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		if auth == "" {
			if s.checkSession(w, r) {
				next.ServeHTTP(w, r)
			}
			return
		}
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "wrong bearer token (the node writes a new one to api.json at every start)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ownOrigin reports whether origin is one of the API's own.
func (s *Server) ownOrigin(origin string) bool {
	host, ok := strings.CutPrefix(origin, "http://")
	return ok && s.ownHost(host)
}

// ownHost reports whether host (HOST:PORT, as a Host header has it) names
// the API's own loopback address: the one it listens on, or its port on
// 127.0.0.1, localhost or [::1].
func (s *Server) ownHost(host string) bool {
	_, port, _ := net.SplitHostPort(s.Addr())
	return slices.Contains([]string{s.Addr(), "127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port}, host)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: Error{Code: code, Message: msg}})
}
