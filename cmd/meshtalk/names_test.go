package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// TestNamesThroughTheBinary: people are named by username and nickname
// everywhere, through the binary: a relay's id prints addresses ready for
// --relay; a request by username is accepted by username; ping, send,
// history, friend show and profile take and print names; a reply shows
// what it quotes; shell completion offers friend names.
func TestNamesThroughTheBinary(t *testing.T) {
	env := cleanEnv()
	relayHome, homeA, homeB := t.TempDir(), t.TempDir(), t.TempDir()
	r := startRelayIn(t, env, nil, append([]string{"--home", relayHome}, relayListen...)...)
	relayID := r.ready["peer_id"]
	out := mustRun(t, env, relayHome, "id", "--no-qr")
	if !strings.Contains(out, "/p2p/"+relayID) {
		t.Fatalf("a relay's id prints no /p2p/ addresses:\n%s", out)
	}
	addr := relayAddrOf(r)
	startNode(t, env, append([]string{"--home", homeA, "--relay", addr}, testListen...)...)
	startNode(t, env, append([]string{"--home", homeB, "--relay", addr}, testListen...)...)
	mustRun(t, env, homeA, "account", "register", "alice", "--relay", addr)
	mustRun(t, env, homeB, "account", "register", "bob", "--relay", addr)
	waitLoggedIn(t, env, homeA, "alice")
	waitLoggedIn(t, env, homeB, "bob")

	// A username no one has: the error says the relays were asked.
	if _, errOut, code := meshtalk(t, env, "friend", "add", "carol", "--home", homeA); code == 0 ||
		!strings.Contains(errOut, `"carol" is no contact of yours, and no one has that username on your relays`) {
		t.Fatalf("friend add carol: exit %d: %q", code, errOut)
	}
	// A request by username, accepted by username.
	mustRun(t, env, homeA, "friend", "add", "bob")
	nodetest.Eventually(t, 30*time.Second, "the request arrives", func() bool {
		return strings.Contains(mustRun(t, env, homeB, "friend", "list", "--pending"), "pending")
	})
	if out := mustRun(t, env, homeB, "friend", "accept", "alice"); !strings.Contains(out, "you and alice (") {
		t.Fatalf("friend accept alice: %q", out)
	}
	mustRun(t, env, homeB, "profile", "set", "--name", "Bobby")
	nodetest.Eventually(t, 30*time.Second, "alice sees Bobby, a friend", func() bool {
		out := mustRun(t, env, homeA, "friend", "list")
		return strings.Contains(out, "Bobby") && strings.Contains(out, "friend")
	})

	// ping NICKNAME names whom it pings.
	if out := mustRun(t, env, homeA, "ping", "Bobby", "--count", "1"); !strings.HasPrefix(out, "PING Bobby (12D3Koo") {
		t.Fatalf("ping Bobby: %q", out)
	}
	// send and history by name; a reply quotes what it answers.
	var m struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(mustRun(t, env, homeA, "send", "bobby", "hello there", "--json")), &m)
	mustRun(t, env, homeA, "send", "Bobby", "--reply", m.ID[:12], "are you there?")
	nodetest.Eventually(t, 30*time.Second, "bob has both, by alice's name", func() bool {
		out := mustRun(t, env, homeB, "history", "alice")
		return strings.Contains(out, "<alice> hello there") && strings.Contains(out, "<alice> ↪ “hello there” are you there?")
	})
	if out := mustRun(t, env, homeB, "history", "alice", "--json"); !strings.Contains(out, `"name": "alice"`) || !strings.Contains(out, `"from": "12D3Koo`) {
		t.Fatalf("history --json keeps the IDs beside the names:\n%s", out)
	}

	// friend show and profile.
	out = mustRun(t, env, homeA, "friend", "show", "Bobby")
	for _, want := range []string{"name:", "Bobby", "username:", "bob", "path:", "last seen:", "online now"} {
		if !strings.Contains(out, want) {
			t.Errorf("friend show lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, env, homeB, "profile")
	for _, want := range []string{"name:", "Bobby", "username:", "bob (on relay " + relayID} {
		if !strings.Contains(out, want) {
			t.Errorf("profile lacks %q:\n%s", want, out)
		}
	}
	// --json says what the text says.
	var profile struct {
		Name      string `json:"name"`
		PeerID    string `json:"peer_id"`
		Usernames []struct{ Name, Relay string }
	}
	json.Unmarshal([]byte(mustRun(t, env, homeB, "profile", "--json")), &profile)
	if profile.Name != "Bobby" || !strings.HasPrefix(profile.PeerID, "12D3Koo") || len(profile.Usernames) != 1 ||
		profile.Usernames[0].Name != "bob" || profile.Usernames[0].Relay != relayID {
		t.Errorf("profile --json: %+v", profile)
	}

	// Completion: the script, and friend names from the running node;
	// nothing, quietly, without one.
	if out := mustRun(t, env, homeA, "completion", "bash"); !strings.Contains(out, "__start_meshtalk") {
		t.Fatalf("completion bash: %.200q", out)
	}
	if out, _, _ := meshtalk(t, env, "__complete", "--home", homeA, "friend", "show", "Bo"); !strings.Contains(out, "Bobby") {
		t.Fatalf("completing a friend: %q", out)
	}
	out, _, code := meshtalk(t, env, "__complete", "--home", t.TempDir(), "send", "")
	if code != 0 || strings.Contains(out, "Bobby") {
		t.Fatalf("completion without a node: exit %d, %q", code, out)
	}
}

// TestShortInviteThroughRelay: an inviter logged in to a relay gets a
// short code (and its QR code) beside the full one; a joiner whose node
// knows the relay joins with the short code, typed in lower case.
func TestShortInviteThroughRelay(t *testing.T) {
	env := cleanEnv()
	relayHome, homeA, homeB := t.TempDir(), t.TempDir(), t.TempDir()
	r := startRelayIn(t, env, nil, append([]string{"--home", relayHome}, relayListen...)...)
	addr := relayAddrOf(r)
	startNode(t, env, append([]string{"--home", homeA, "--relay", addr}, testListen...)...)
	startNode(t, env, append([]string{"--home", homeB, "--relay", addr}, testListen...)...)
	mustRun(t, env, homeA, "account", "register", "alice", "--relay", addr)
	waitLoggedIn(t, env, homeA, "alice")

	mustRun(t, env, homeA, "group", "create", "Book club")
	out := mustRun(t, env, homeA, "group", "invite", "Book club")
	m := regexp.MustCompile(`short code: ([0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z])`).FindStringSubmatch(out)
	if m == nil || !strings.HasPrefix(out, "mtg1") || !strings.Contains(out, "▀") {
		t.Fatalf("group invite gives no short code and QR code:\n%s", out)
	}
	if len(m[1]) > 16 {
		t.Fatalf("short code %q is over 16 characters", m[1])
	}
	if out := mustRun(t, env, homeB, "group", "join", strings.ToLower(m[1])); !strings.Contains(out, `joined "Book club"`) {
		t.Fatalf("group join SHORTCODE: %s", out)
	}
	nodetest.Eventually(t, 30*time.Second, "alice sees two members", func() bool {
		return strings.Count(mustRun(t, env, homeA, "group", "members", "Book club"), "\n") == 3
	})
	// A typo fails its check, before any relay is asked.
	typo := []byte(m[1])
	typo[0] = map[bool]byte{true: 'X', false: 'Y'}[typo[0] != 'X']
	if _, errOut, code := meshtalk(t, env, "group", "join", string(typo), "--home", homeB); code == 0 || !strings.Contains(errOut, "typo") {
		t.Fatalf("a mistyped short code: exit %d, %q", code, errOut)
	}
}
