package call_test

import (
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/turn/v4"

	"github.com/meshtalk/meshtalk/call"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// turnRelay starts a relay with a TURN server on loopback.
func turnRelay(t testing.TB, perUser int) *node.Node {
	return nodetest.Start(t, nodetest.Options{Role: node.RoleRelay, Configure: func(c *node.Config) {
		c.TURN.Listen = "127.0.0.1:0"
		if perUser > 0 {
			c.TURN.MaxAllocationsPerUser = perUser
		}
	}})
}

// turnUser starts a personal node logged in to relay r as name, whose
// calls go through TURN only.
func turnUser(t testing.TB, r *node.Node, name string) *node.Node {
	t.Helper()
	addr := nodetest.Addr(t, r)
	n := callNode(t, time.Minute, func(c *node.Config) {
		c.Discovery.Relays = []string{addr}
		c.Calls.ICEPolicy = "relay"
	})
	if _, err := n.RelayClient().Register(bg, peer.AddrInfo{ID: r.ID(), Addrs: r.Host().Addrs()}, name, ""); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	nodetest.Eventually(t, 20*time.Second, name+" logged in", func() bool {
		for _, s := range n.RelayClient().Status() {
			if s.PeerID == r.ID() && s.LoggedIn {
				return true
			}
		}
		return false
	})
	return n
}

// TestCallThroughTURN: with ICE policy relay, a call's media goes through
// the relay's TURN server; the stats say so and name the relay, and the
// relay's metrics count the allocations and the bytes.
func TestCallThroughTURN(t *testing.T) {
	ogg, ivf := media(t)
	r := turnRelay(t, 0)
	a, b := turnUser(t, r, "alice"), turnUser(t, r, "bob")
	nodetest.Befriend(t, a, b)
	evA, evB := nodetest.Events(t, a), nodetest.Events(t, b)

	ice, err := a.CallICEServers(bg)
	if err != nil || len(ice) != 1 || ice[0].Username == "" || !strings.Contains(strings.Join(ice[0].URLs, " "), "turn:"+r.RelayServer().TURNAddr()) {
		t.Fatalf("ICE servers %+v %v", ice, err)
	}
	info, err := a.StartCall(bg, node.CallRequest{Peer: b.ID().String(), CallMedia: node.CallMedia{AudioFile: ogg, VideoFile: ivf}})
	if err != nil {
		t.Fatal(err)
	}
	waitCall(t, evB, call.EventRinging, info.ID)
	if _, err := b.AnswerCall(bg, info.ID, node.AnswerRequest{}); err != nil {
		t.Fatal(err)
	}
	waitCall(t, evA, call.EventAccepted, info.ID)
	var st *call.Stats
	nodetest.Eventually(t, 20*time.Second, "video through TURN", func() bool {
		st, _ = b.CallStats(bg, info.ID)
		return st != nil && st.Video.FramesReceived >= 30
	})
	t.Logf("callee: %+v", *st)
	if st.Path != "relay" || !strings.HasPrefix(st.TURN, "turn:") || !strings.Contains(st.Relay, r.ID().String()) {
		t.Errorf("stats say path %q turn %q relay %q", st.Path, st.TURN, st.Relay)
	}
	metrics := scrape(t, r)
	for _, m := range []string{"meshtalk_relay_turn_allocations ", "meshtalk_relay_turn_allocations_total ", "meshtalk_relay_turn_relayed_bytes_total "} {
		if v := metricValue(metrics, m); v == "" || v == "0" {
			t.Errorf("metric %s= %q", m, v)
		}
	}
	if _, err := a.HangupCall(bg, info.ID); err != nil {
		t.Fatal(err)
	}
	waitCall(t, evB, call.EventEnded, info.ID)
}

func scrape(t testing.TB, r *node.Node) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.RelayServer().MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func metricValue(metrics, prefix string) string {
	for line := range strings.Lines(metrics) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(strings.TrimPrefix(line, prefix))
		}
	}
	return ""
}

// TestTURNAllocationsPerUser: a user's credentials hold at most
// max_allocations_per_user allocations; one more is refused and counted.
func TestTURNAllocationsPerUser(t *testing.T) {
	r := turnRelay(t, 1)
	a := turnUser(t, r, "alice")
	ice, err := a.CallICEServers(bg)
	if err != nil || len(ice) != 1 {
		t.Fatalf("ICE servers %+v %v", ice, err)
	}
	allocate := func() error {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: r.RelayServer().TURNAddr(), TURNServerAddr: r.RelayServer().TURNAddr(),
			Conn: conn, Username: ice[0].Username, Password: ice[0].Credential, Realm: "meshtalk"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); conn.Close() })
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		relayed, err := c.Allocate()
		if err == nil {
			t.Cleanup(func() { relayed.Close() })
		}
		return err
	}
	if err := allocate(); err != nil {
		t.Fatalf("first allocation: %v", err)
	}
	if err := allocate(); err == nil {
		t.Fatal("a second allocation over the cap of 1 was made")
	}
	if v := metricValue(scrape(t, r), "meshtalk_relay_turn_refused_total "); v == "" || v == "0" {
		t.Errorf("refused_total %q", v)
	}
	// Wrong credentials get nothing.
	ice[0].Credential = "d3Jvbmc="
	if err := allocate(); err == nil {
		t.Fatal("an allocation with a wrong password")
	}
}
