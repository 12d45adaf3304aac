package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// relayListen keeps a relay on loopback, port 0, with its metrics.
var relayListen = []string{"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--no-mdns"}

func relayAddrOf(r *running) string {
	return strings.Split(r.ready["listen"], ",")[0] + "/p2p/" + r.ready["peer_id"]
}

// waitLoggedIn waits until `status` on home says it is logged in as name.
func waitLoggedIn(t *testing.T, env []string, home, name string) {
	t.Helper()
	nodetest.Eventually(t, 30*time.Second, name+" logged in", func() bool {
		out, _, _ := meshtalk(t, env, "status", "--home", home)
		return strings.Contains(out, "logged in as "+name)
	})
}

// TestAccountAndOperatorCommands: register and look up names through the
// command line, befriend by username, and ask the relay as its operator
// (users, stats, invite, metrics).
func TestAccountAndOperatorCommands(t *testing.T) {
	env := cleanEnv()
	relayHome, homeA, homeB := t.TempDir(), t.TempDir(), t.TempDir()
	r := startRelayIn(t, env, nil, append([]string{"--home", relayHome, "--metrics", "127.0.0.1:0"}, relayListen...)...)
	addr := relayAddrOf(r)
	a := startNode(t, env, append([]string{"--home", homeA, "--relay", addr}, testListen...)...)
	startNode(t, env, append([]string{"--home", homeB, "--relay", addr}, testListen...)...)

	if out := mustRun(t, env, homeA, "account", "register", "Alice", "--relay", addr); !strings.Contains(out, "registered alice") {
		t.Fatalf("register: %q", out)
	}
	mustRun(t, env, homeB, "account", "register", "bob", "--relay", addr)
	waitLoggedIn(t, env, homeA, "alice")
	waitLoggedIn(t, env, homeB, "bob")

	_, errOut, code := meshtalk(t, env, "account", "register", "ALICE", "--relay", addr, "--home", homeB)
	if code == 0 || !strings.Contains(errOut, "name taken") && !strings.Contains(errOut, "belongs to someone else") {
		t.Fatalf("a taken name: exit %d, %q", code, errOut)
	}
	_, errOut, code = meshtalk(t, env, "account", "register", "x y", "--relay", addr, "--home", homeB)
	if code == 0 || !strings.Contains(errOut, "a name has 3 to 32 characters") && !strings.Contains(errOut, "only letters") {
		t.Fatalf("a bad name: exit %d, %q", code, errOut)
	}

	var u struct {
		Name   string `json:"name"`
		PeerID string `json:"peer_id"`
	}
	json.Unmarshal([]byte(mustRun(t, env, homeA, "account", "lookup", "bob", "--json")), &u)
	if u.Name != "bob" || u.PeerID != hiddenID(t, env, homeB) {
		t.Fatalf("lookup bob: %+v", u)
	}

	// A friend request by username.
	mustRun(t, env, homeA, "friend", "add", "bob", "--message", "found you on the relay")
	var pending []map[string]any
	nodetest.Eventually(t, 30*time.Second, "the request arrives", func() bool {
		json.Unmarshal([]byte(mustRun(t, env, homeB, "friend", "list", "--pending", "--json")), &pending)
		return len(pending) == 1
	})

	var users []map[string]any
	json.Unmarshal([]byte(mustRun(t, env, relayHome, "relay", "users", "--json")), &users)
	if len(users) != 2 || users[0]["name"] != "alice" || users[0]["logged_in"] != true {
		t.Fatalf("relay users: %v", users)
	}
	var stats map[string]float64
	json.Unmarshal([]byte(mustRun(t, env, relayHome, "relay", "stats", "--json")), &stats)
	if stats["accounts"] != 2 || stats["logged_in"] != 2 {
		t.Fatalf("relay stats: %v", stats)
	}
	if tok := mustRun(t, env, relayHome, "relay", "invite", "--uses", "3"); !strings.HasPrefix(tok, "mtinv-") {
		t.Fatalf("invite: %q", tok)
	}
	// Operator commands against a personal node say where to run them.
	if _, errOut, code := meshtalk(t, env, "relay", "stats", "--home", homeA); code == 0 || !strings.Contains(errOut, "personal node") {
		t.Fatalf("relay stats on a personal node: exit %d, %q", code, errOut)
	}

	resp, err := http.Get(r.ready["metrics"])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"meshtalk_relay_accounts 2", "meshtalk_relay_logged_in 2", "meshtalk_relay_mailbox_items 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// A clean stop logs out at once.
	if err, _ := a.stop(t); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal([]byte(mustRun(t, env, relayHome, "relay", "users", "--json")), &users)
	if users[0]["name"] != "alice" || users[0]["logged_in"] != false || users[0]["last_seen"] == nil {
		t.Fatalf("alice after a clean stop: %v", users[0])
	}

	// `meshtalk stop` stops a relay too.
	if out := mustRun(t, env, relayHome, "stop"); !strings.Contains(out, "a relay") {
		t.Fatalf("stop of a relay: %s", out)
	}
	r.exitsAfterStop(t)
}

// TestRelayKilledLosesNothing: a message parked on the relay for an
// offline friend survives the relay's SIGKILL and reaches the friend,
// once, when both are back.
func TestRelayKilledLosesNothing(t *testing.T) {
	env := cleanEnv()
	relayHome, homeA, homeB := t.TempDir(), t.TempDir(), t.TempDir()
	// A parks what B does not take within a second (10s by default).
	conf := node.DefaultConfigText(node.RolePersonal)
	if !strings.Contains(conf, `park_after = "10s"`) || !strings.Contains(conf, `park_on_stop = "5s"`) {
		t.Fatal("the default config.toml has no park_after = \"10s\" and park_on_stop = \"5s\"")
	}
	writeConfig(t, homeA, strings.Replace(conf, `park_after = "10s"`, `park_after = "1s"`, 1))
	r := startRelayIn(t, env, nil, append([]string{"--home", relayHome}, relayListen...)...)
	addr := relayAddrOf(r)
	a := startNode(t, env, append([]string{"--home", homeA, "--relay", addr}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB, "--relay", addr}, testListen...)...)
	mustRun(t, env, homeA, "account", "register", "alice", "--relay", addr)
	mustRun(t, env, homeB, "account", "register", "bob", "--relay", addr)
	waitLoggedIn(t, env, homeA, "alice")
	waitLoggedIn(t, env, homeB, "bob")
	befriendCLI(t, env, homeA, homeB)
	idB := hiddenID(t, env, homeB)
	idA := hiddenID(t, env, homeA)
	if err, _ := b.stop(t); err != nil {
		t.Fatal(err)
	}

	mustRun(t, env, homeA, "send", idB, "parked for you")
	nodetest.Eventually(t, 60*time.Second, "the relay holds the message", func() bool {
		var st map[string]float64
		json.Unmarshal([]byte(mustRun(t, env, relayHome, "relay", "stats", "--json")), &st)
		return st["mailbox_items"] >= 1
	})
	// The sender goes away too, and the relay dies without a chance to
	// flush anything.
	a.stop(t)
	r.cmd.Process.Kill()
	<-r.exited
	listen := strings.Split(r.ready["listen"], ",")
	args := []string{"--home", relayHome, "--api", "127.0.0.1:0", "--no-mdns"}
	for _, l := range listen {
		args = append(args, "--listen", l)
	}
	startRelayIn(t, env, nil, args...)

	startNode(t, env, append([]string{"--home", homeB, "--relay", addr}, testListen...)...)
	nodetest.Eventually(t, 60*time.Second, "B gets the message", func() bool {
		return strings.Contains(mustRun(t, env, homeB, "history", idA), "parked for you")
	})
	var msgs []map[string]any
	json.Unmarshal([]byte(mustRun(t, env, homeB, "history", idA, "--json")), &msgs)
	if len(msgs) != 1 || msgs[0]["text"] != "parked for you" {
		t.Fatalf("B's history: %v", msgs)
	}
}
