package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nodetest.IgnoredGoroutines()...)
}

// startAPI starts a node with its API and returns both.
func startAPI(t *testing.T) (*node.Node, *api.Server) {
	t.Helper()
	n := nodetest.Start(t, nodetest.Options{})
	srv, err := api.New(context.Background(), n, "127.0.0.1:0", nodetest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return n, srv
}

func TestRefusesNonLoopback(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:0", ":0"} {
		if srv, err := api.New(context.Background(), n, addr, nil); err == nil {
			srv.Close()
			t.Errorf("api.New(%q) listened; want a loopback error", addr)
		}
	}
}

func TestAuth(t *testing.T) {
	_, srv := startAPI(t)
	_, port, _ := net.SplitHostPort(srv.Addr())
	for _, tc := range []struct {
		name, auth, origin string
		status             int
		code               string
		host               string // "": the API's own address
	}{
		{"no token", "", "", 401, api.CodeUnauthorized, ""},
		{"wrong token", "Bearer nope", "", 401, api.CodeUnauthorized, ""},
		{"not bearer", "Basic " + srv.Token(), "", 401, api.CodeUnauthorized, ""},
		{"foreign origin", "Bearer " + srv.Token(), "https://evil.example", 403, api.CodeForbiddenOrigin, ""},
		{"foreign origin same port", "Bearer " + srv.Token(), "http://evil.example:" + port, 403, api.CodeForbiddenOrigin, ""},
		{"own origin", "Bearer " + srv.Token(), "http://127.0.0.1:" + port, 200, "", ""},
		{"no origin (CLI)", "Bearer " + srv.Token(), "", 200, "", ""},
		{"localhost host", "Bearer " + srv.Token(), "", 200, "", "localhost:" + port},
		// DNS rebinding: a name of the attacker's that resolves to
		// 127.0.0.1 reaches the port with its own Host.
		{"foreign host", "Bearer " + srv.Token(), "", 403, api.CodeForbiddenHost, "evil.example:" + port},
		{"foreign host, own origin", "Bearer " + srv.Token(), "http://127.0.0.1:" + port, 403, api.CodeForbiddenHost, "evil.example:" + port},
		{"own host, other port", "Bearer " + srv.Token(), "", 403, api.CodeForbiddenHost, "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL()+"/api/v1/status", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.code == "" {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var body struct{ Error api.Error }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if body.Error.Code != tc.code || body.Error.Message == "" {
				t.Fatalf("error body %+v, want code %s and a message", body.Error, tc.code)
			}
		})
	}
}

func TestIDAndStatus(t *testing.T) {
	n, _ := startAPI(t)
	ctx := context.Background()
	c, err := api.Dial(ctx, n.Home())
	if err != nil {
		t.Fatal(err)
	}
	var id api.ID
	if err := c.Get(ctx, "/api/v1/id", &id); err != nil {
		t.Fatal(err)
	}
	if id.PeerID != n.ID().String() || len(id.Addrs) == 0 {
		t.Fatalf("id %+v", id)
	}
	info, err := nodetest.DecodeFriendCode(id.FriendCode)
	if err != nil || info.ID != n.ID() || len(info.Addrs) == 0 {
		t.Fatalf("friend code %q decodes to %v, %v", id.FriendCode, info, err)
	}

	other := nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, n, other)
	var st api.Status
	if err := c.Get(ctx, "/api/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != node.Version || st.PeerID != n.ID().String() || len(st.ListenAddrs) == 0 || st.UptimeSeconds <= 0 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Peers) == 0 || st.Peers[0].PeerID != other.ID() {
		t.Fatalf("status peers %+v, want %s", st.Peers, other.ID())
	}

	var aerr *api.Error
	if err := c.Get(ctx, "/api/v1/nope", nil); !errors.As(err, &aerr) || aerr.Status != 404 || aerr.Code != api.CodeNotFound {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

func TestEventStream(t *testing.T) {
	n, _ := startAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := api.Dial(ctx, n.Home())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	other := nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, other, n)
	for {
		ev, err := stream.Next()
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		data, _ := ev.Data.(map[string]any)
		if ev.Type == node.EventPeerConnected && data["peer_id"] == other.ID().String() {
			return
		}
	}
}

func TestCloseRemovesInfoAndEndsStreams(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	srv, err := api.New(context.Background(), n, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := api.Dial(ctx, n.Home())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Next(); err == nil {
		t.Fatal("event stream still open after Close")
	}
	if _, err := os.Stat(n.Home().APIInfoPath()); !os.IsNotExist(err) {
		t.Fatalf("api.json still there: %v", err)
	}
	if _, err := api.Dial(ctx, n.Home()); !errors.Is(err, api.ErrNotRunning) {
		t.Fatalf("dial after close: %v, want ErrNotRunning", err)
	}
}

func TestDialStaleInfo(t *testing.T) {
	home := node.Home(t.TempDir())
	// A node killed with SIGKILL leaves api.json pointing at nothing.
	if err := os.WriteFile(home.APIInfoPath(), []byte(`{"addr":"127.0.0.1:1","token":"x","pid":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := api.Dial(context.Background(), home)
	if !errors.Is(err, api.ErrNotRunning) {
		t.Fatalf("got %v, want ErrNotRunning", err)
	}
}

func TestChatEndpointErrors(t *testing.T) {
	n, srv := startAPI(t)
	ctx := context.Background()
	c := api.NewClient(srv.Addr(), srv.Token())
	var aerr *api.Error
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"POST", "/api/v1/friends", map[string]string{"peer": "not a peer"}, 404, api.CodeNotFound},
		// Too short for a friend code: a name, looked up and not found.
		{"POST", "/api/v1/friends", map[string]string{"peer": "mt1notacode"}, 404, api.CodeNotFound},
		// A friend code's length and prefix but a wrong character: 400.
		{"POST", "/api/v1/friends", map[string]string{"peer": "mt1" + strings.Repeat("a", 60)}, 400, api.CodeBadRequest},
		{"POST", "/api/v1/friends", map[string]string{"bogus": "x"}, 400, api.CodeBadRequest},
		{"POST", "/api/v1/friends", map[string]string{"peer": n.ID().String()}, 400, api.CodeBadRequest}, // itself
		{"POST", "/api/v1/messages", map[string]string{"to": "nobody", "text": "hi"}, 404, api.CodeNotFound},
		{"POST", "/api/v1/friends/" + n.ID().String() + "/explode", nil, 404, api.CodeNotFound},
		{"PUT", "/api/v1/profile", map[string]any{"avatar": []byte("not an image")}, 400, api.CodeBadRequest},
		{"GET", "/api/v1/search", nil, 400, api.CodeBadRequest},
		// Out-of-range limits are refused, not quietly changed.
		{"GET", "/api/v1/history?with=" + n.ID().String() + "&limit=0", nil, 400, api.CodeBadRequest},
		{"GET", "/api/v1/history?with=" + n.ID().String() + "&limit=-5", nil, 400, api.CodeBadRequest},
		{"GET", "/api/v1/history?with=" + n.ID().String() + "&limit=100000", nil, 400, api.CodeBadRequest},
		{"GET", "/api/v1/search?q=a&limit=1001", nil, 400, api.CodeBadRequest},
	} {
		err := c.Call(ctx, tc.method, tc.path, tc.body, nil)
		if !errors.As(err, &aerr) || aerr.Status != tc.status || aerr.Code != tc.code {
			t.Errorf("%s %s: got %v, want %d %s", tc.method, tc.path, err, tc.status, tc.code)
		}
	}
	// A relay has no chat.
	relay := nodetest.Start(t, nodetest.Options{Role: node.RoleRelay})
	rsrv, err := api.New(ctx, relay, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rsrv.Close()
	err = api.NewClient(rsrv.Addr(), rsrv.Token()).Get(ctx, "/api/v1/friends", nil)
	if !errors.As(err, &aerr) || aerr.Status != 404 {
		t.Fatalf("friends on a relay: %v", err)
	}
}
