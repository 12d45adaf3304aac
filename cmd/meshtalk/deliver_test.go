package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// deliveryLab is a relay and two friends on it, alice (A) and bob (B).
type deliveryLab struct {
	env                     []string
	relay, a, b             *running
	relayHome, homeA, homeB string
	addr, idA, idB          string
}

func newDeliveryLab(t *testing.T) *deliveryLab {
	t.Helper()
	return newDeliveryLabWith(t, "")
}

// newDeliveryLabWith is newDeliveryLab with config.toml of both friends
// (empty: the default).
func newDeliveryLabWith(t *testing.T, config string) *deliveryLab {
	t.Helper()
	l := &deliveryLab{env: cleanEnv(), relayHome: t.TempDir(), homeA: t.TempDir(), homeB: t.TempDir()}
	if config != "" {
		writeConfig(t, l.homeA, config)
		writeConfig(t, l.homeB, config)
	}
	l.relay = startRelayIn(t, l.env, nil, append([]string{"--home", l.relayHome}, relayListen...)...)
	l.addr = relayAddrOf(l.relay)
	l.a = l.startNode(t, l.homeA)
	l.b = l.startNode(t, l.homeB)
	mustRun(t, l.env, l.homeA, "account", "register", "alice", "--relay", l.addr)
	mustRun(t, l.env, l.homeB, "account", "register", "bob", "--relay", l.addr)
	waitLoggedIn(t, l.env, l.homeA, "alice")
	waitLoggedIn(t, l.env, l.homeB, "bob")
	befriendCLI(t, l.env, l.homeA, l.homeB)
	l.idA, l.idB = hiddenID(t, l.env, l.homeA), hiddenID(t, l.env, l.homeB)
	return l
}

func (l *deliveryLab) startNode(t *testing.T, home string) *running {
	t.Helper()
	return startNode(t, l.env, append([]string{"--home", home, "--relay", l.addr}, testListen...)...)
}

// stopA stops A with `meshtalk stop`, waits for it to exit and returns
// what the command printed.
func (l *deliveryLab) stopA(t *testing.T) string {
	t.Helper()
	out := mustRun(t, l.env, l.homeA, "stop")
	l.a.exitsAfterStop(t)
	return out
}

// restartRelay SIGKILLs the relay and starts it again on its addresses.
func (l *deliveryLab) restartRelay(t *testing.T) {
	t.Helper()
	l.relay.cmd.Process.Kill()
	<-l.relay.exited
	l.relay = l.relaunch(t, l.relay, l.relayHome)
}

// relaunch starts r, which has exited (a test SIGKILLed it), again on
// home and on the addresses it listened on: the relay, or a node on the
// lab's relay.
func (l *deliveryLab) relaunch(t *testing.T, r *running, home string) *running {
	t.Helper()
	args := []string{"--home", home, "--api", "127.0.0.1:0", "--no-mdns"}
	for _, a := range strings.Split(r.ready["listen"], ",") {
		if !strings.Contains(a, "/p2p-circuit") {
			args = append(args, "--listen", a)
		}
	}
	if r.ready["role"] == "relay" {
		return startRelayIn(t, l.env, nil, args...)
	}
	return startNode(t, l.env, append(args, "--relay", l.addr)...)
}

// historyOf is the conversation on home with peer, oldest first.
func historyOf(t *testing.T, env []string, home, peer string) []map[string]any {
	t.Helper()
	var msgs []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, env, home, "history", peer, "--json", "--limit", "1000")), &msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// TestParkOnStopThroughRelayRestart: B is away; A sends three messages
// and stops cleanly three seconds later; the relay is SIGKILLed and
// restarted; B comes back and gets all three, once, in order, through
// the relay's mailbox (message info says so). A, back too, sees them
// delivered, with the time from send to delivered in history --json.
func TestParkOnStopThroughRelayRestart(t *testing.T) {
	l := newDeliveryLab(t)
	if err, _ := l.b.stop(t); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 1; i <= 3; i++ {
		out := mustRun(t, l.env, l.homeA, "send", l.idB, fmt.Sprintf("away %d", i))
		ids = append(ids, strings.Fields(out)[0])
	}
	time.Sleep(3 * time.Second) // the scenario: A stops 3 s after sending
	if out := l.stopA(t); !strings.Contains(out, "stopped: parked") {
		t.Fatalf("meshtalk stop: %q", out)
	}
	l.restartRelay(t)

	l.b = l.startNode(t, l.homeB)
	nodetest.Eventually(t, 60*time.Second, "B gets the three messages", func() bool {
		return len(historyOf(t, l.env, l.homeB, l.idA)) >= 3
	})
	msgs := historyOf(t, l.env, l.homeB, l.idA)
	if len(msgs) != 3 {
		t.Fatalf("B's history has %d messages: %v", len(msgs), msgs)
	}
	for i, m := range msgs {
		if m["text"] != fmt.Sprintf("away %d", i+1) || m["id"] != ids[i] {
			t.Fatalf("B's message %d: %v", i, m)
		}
	}
	if out := mustRun(t, l.env, l.homeB, "message", "info", ids[0]); !strings.Contains(out, "through the relay's mailbox") {
		t.Fatalf("message info on B: %q", out)
	}

	// A comes back: the messages are delivered, with their delivery time.
	l.a = l.startNode(t, l.homeA)
	nodetest.Eventually(t, 60*time.Second, "A sees them delivered", func() bool {
		for _, m := range historyOf(t, l.env, l.homeA, l.idB) {
			if m["state"] != "delivered" && m["state"] != "read" {
				return false
			}
			if d, ok := m["delivery_ms"].(float64); !ok || d <= 0 {
				return false
			}
		}
		return true
	})
	if out := mustRun(t, l.env, l.homeA, "message", "info", ids[0]); !strings.Contains(out, "parked on relay "+l.relay.ready["peer_id"]) {
		t.Fatalf("message info on A: %q", out)
	}
}

// TestKilledMidBurstExactlyOnce: A sends to B while both are online, B is
// SIGKILLed mid-burst, A stops cleanly two seconds later: every message
// A's send accepted reaches B exactly once when B is back, directly
// before the kill or through the mailbox after.
func TestKilledMidBurstExactlyOnce(t *testing.T) {
	l := newDeliveryLab(t)
	var accepted []string
	for i := range 16 {
		if i == 6 {
			l.b.cmd.Process.Kill()
			<-l.b.exited
		}
		text := fmt.Sprintf("burst %02d", i)
		if _, _, code := meshtalk(t, l.env, "send", l.idB, text, "--home", l.homeA); code == 0 {
			accepted = append(accepted, text)
		}
	}
	time.Sleep(2 * time.Second) // the scenario: A stops 2 s after the kill's burst
	if out := l.stopA(t); !strings.Contains(out, "stopped: parked") {
		t.Fatalf("meshtalk stop: %q", out)
	}

	l.b = l.startNode(t, l.homeB)
	nodetest.Eventually(t, 60*time.Second, "B gets every accepted message", func() bool {
		return len(historyOf(t, l.env, l.homeB, l.idA)) >= len(accepted)
	})
	msgs := historyOf(t, l.env, l.homeB, l.idA)
	got := map[string]int{}
	for _, m := range msgs {
		got[m["text"].(string)]++
	}
	for _, text := range accepted {
		if got[text] != 1 {
			t.Errorf("%q arrived %d times", text, got[text])
		}
	}
	if len(msgs) != len(accepted) {
		t.Errorf("B has %d messages, A accepted %d", len(msgs), len(accepted))
	}
}

// TestLoggedOutOnLANOnce: B logs out of the relay (relay remove) and
// stays on the LAN, connected to A. A, told by the relay that B is
// logged out, parks its message at once and still sends it directly: B
// has it from the direct connection; when B logs in again and takes the
// mailbox copy, it is not a second message.
func TestLoggedOutOnLANOnce(t *testing.T) {
	l := newDeliveryLab(t)
	relayID := l.relay.ready["peer_id"]
	loggedOut := time.Now().Add(-time.Second) // the two share a clock; a second of slack
	mustRun(t, l.env, l.homeB, "relay", "remove", relayID)
	nodetest.Eventually(t, 30*time.Second, "A hears from the relay that B logged out", func() bool {
		var friends []struct {
			PeerID   string    `json:"peer_id"`
			LastSeen time.Time `json:"last_seen"`
		}
		json.Unmarshal([]byte(mustRun(t, l.env, l.homeA, "friend", "list", "--json")), &friends)
		return len(friends) == 1 && friends[0].LastSeen.After(loggedOut)
	})
	out := mustRun(t, l.env, l.homeA, "send", l.idB, "on the LAN")
	id := strings.Fields(out)[0]
	bob := func() map[string]any {
		var users []map[string]any
		json.Unmarshal([]byte(mustRun(t, l.env, l.relayHome, "relay", "users", "--json")), &users)
		for _, u := range users {
			if u["name"] == "bob" {
				return u
			}
		}
		return nil
	}
	nodetest.Eventually(t, 30*time.Second, "B has it directly, and the relay holds a copy", func() bool {
		u := bob()
		return len(historyOf(t, l.env, l.homeB, l.idA)) == 1 && u != nil && u["mailbox_items"].(float64) >= 1
	})
	if out := mustRun(t, l.env, l.homeB, "message", "info", id); !strings.Contains(out, "received over a direct connection") {
		t.Fatalf("message info on B: %q", out)
	}

	// B logs in again and takes the copy: nothing new.
	mustRun(t, l.env, l.homeB, "relay", "add", l.addr)
	nodetest.Eventually(t, 30*time.Second, "B takes the copy out of the mailbox", func() bool {
		u := bob()
		return u != nil && u["logged_in"] == true && u["mailbox_items"].(float64) == 0
	})
	msgs := historyOf(t, l.env, l.homeB, l.idA)
	if len(msgs) != 1 || msgs[0]["id"] != id {
		t.Fatalf("B's history after the mailbox copy: %v", msgs)
	}
	out = mustRun(t, l.env, l.homeA, "message", "info", id)
	for _, want := range []string{"parked on relay " + relayID, "sent over a direct connection", "delivered"} {
		if !strings.Contains(out, want) {
			t.Fatalf("message info on A lacks %q: %q", want, out)
		}
	}
}
