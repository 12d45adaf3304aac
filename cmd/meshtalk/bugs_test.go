package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// groupOfTwo makes homeA's node and homeB's friends and homeA's node the
// admin of a group that homeB's node is a member of; it answers the
// group's ID once both list both members.
func groupOfTwo(t testing.TB, env []string, homeA, homeB, name string) string {
	t.Helper()
	befriendCLI(t, env, homeA, homeB)
	var g struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(mustRun(t, env, homeA, "group", "create", name, "--json")), &g)
	var idB struct {
		PeerID string `json:"peer_id"`
	}
	json.Unmarshal([]byte(mustRun(t, env, homeB, "id", "--json")), &idB)
	mustRun(t, env, homeA, "group", "add", g.ID, idB.PeerID)
	waitMembers(t, env, homeB, g.ID, 2)
	waitMembers(t, env, homeA, g.ID, 2)
	return g.ID
}

func waitMembers(t testing.TB, env []string, home, group string, n int) {
	t.Helper()
	nodetest.Eventually(t, 30*time.Second, "members listed", func() bool {
		out, _, code := meshtalk(t, env, "group", "members", group, "--json", "--home", home)
		var list []map[string]any
		json.Unmarshal([]byte(out), &list)
		return code == 0 && len(list) == n
	})
}

// TestGroupFileListAndGet: a file sent to a group is listed on the
// sender's and the member's node, and the member fetches it (issue 21,
// bug 1: the CLI could not decode a group offer's empty peer ID).
func TestGroupFileListAndGet(t *testing.T) {
	env := cleanEnv()
	homeA, homeB := t.TempDir(), t.TempDir()
	startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	gid := groupOfTwo(t, env, homeA, homeB, "Files club")

	src := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(src, []byte("chapter one"), 0o600)
	mustRun(t, env, homeA, "group", "send", gid, "--file", src, "read this")
	var files []map[string]any
	nodetest.Eventually(t, 30*time.Second, "the member lists the offer", func() bool {
		out, errOut, code := meshtalk(t, env, "file", "list", "--json", "--home", homeB)
		if code != 0 {
			t.Fatalf("file list on the member: %s", errOut)
		}
		json.Unmarshal([]byte(out), &files)
		return len(files) == 1
	})
	if files[0]["group"] != gid || files[0]["state"] != "available" {
		t.Fatalf("member's list: %v", files)
	}
	if out := mustRun(t, env, homeA, "file", "list"); !strings.Contains(out, "notes.txt") || !strings.Contains(out, "Files club") {
		t.Fatalf("sender's file list:\n%s", out)
	}
	if out := mustRun(t, env, homeB, "file", "list"); !strings.Contains(out, "notes.txt") {
		t.Fatalf("member's file list:\n%s", out)
	}
	out := t.TempDir()
	got := strings.TrimSpace(mustRun(t, env, homeB, "file", "get", files[0]["id"].(string)[:12], "--out", out))
	if b, err := os.ReadFile(got); err != nil || string(b) != "chapter one" {
		t.Fatalf("fetched %q: %v %q", got, err, b)
	}
	// The sender has nothing to fetch: a clear answer, not a decoding error.
	_, errOut, code := meshtalk(t, env, "file", "get", files[0]["id"].(string)[:12], "--out", out, "--home", homeA)
	if code == 0 || strings.Contains(errOut, "peer ID") || !strings.Contains(errOut, "sent") {
		t.Fatalf("file get on the sender: exit %d: %s", code, errOut)
	}
}

// TestLimitOutOfRange: history's --limit out of 1 to 1000 is an error
// that names the range (issue 21, bug 7: it was quietly 50).
func TestLimitOutOfRange(t *testing.T) {
	env := cleanEnv()
	home := t.TempDir()
	n := startNode(t, env, append([]string{"--home", home}, testListen...)...)
	for _, limit := range []string{"100000", "0", "-5", "1001"} {
		_, errOut, code := meshtalk(t, env, "history", n.ready["peer_id"], "--limit", limit, "--home", home)
		if code == 0 || !strings.Contains(errOut, "1 to 1000") {
			t.Errorf("--limit %s: exit %d: %s", limit, code, errOut)
		}
	}
}

// TestMistypedFriendCode: a friend code with a character wrong or
// missing is reported as such, on a node with a relay (it was "bad name")
// and on one without (it was "no relay available") (issue 21, bug 6).
func TestMistypedFriendCode(t *testing.T) {
	env := cleanEnv()
	relayHome, homeA, homeB := t.TempDir(), t.TempDir(), t.TempDir()
	r := startRelayIn(t, env, nil, append([]string{"--home", relayHome}, relayListen...)...)
	startNode(t, env, append([]string{"--home", homeA, "--relay", relayAddrOf(r)}, testListen...)...)
	startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	code := func(home string) string {
		var id struct {
			FriendCode string `json:"friend_code"`
		}
		json.Unmarshal([]byte(mustRun(t, env, home, "id", "--json")), &id)
		return id.FriendCode
	}
	for _, tc := range []struct{ home, code string }{{homeA, code(homeB)}, {homeB, code(homeA)}} {
		i := len(tc.code) / 2
		swapped := []byte(tc.code)
		swapped[i] = map[bool]byte{true: 'b', false: 'a'}[swapped[i] == 'a']
		for _, bad := range []struct{ code, want string }{
			{string(swapped), "not a valid friend code (a character is wrong or missing)"},
			{tc.code[:i] + tc.code[i+1:], "not a valid friend code (a character is wrong or missing)"},
			// Its first character lost, or cut short (a walkthrough's
			// finding: both were looked up as usernames).
			{tc.code[1:], "not a valid friend code"},
			{tc.code[:30], "too short for a friend code: was the code cut short?"},
		} {
			_, errOut, exit := meshtalk(t, env, "friend", "add", bad.code, "--home", tc.home)
			if exit == 0 || !strings.Contains(errOut, bad.want) {
				t.Errorf("friend add %s: exit %d: %s", bad.code, exit, errOut)
			}
		}
	}
}

// TestGroupAddAfterLeave: a member that left and is added again is a
// full member on its own node too: it sends, and the admin gets it
// (issue 21, bug 3: it stayed "left" and group send refused).
func TestGroupAddAfterLeave(t *testing.T) {
	env := cleanEnv()
	homeA, homeB := t.TempDir(), t.TempDir()
	startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	gid := groupOfTwo(t, env, homeA, homeB, "Comeback")
	var left struct{ ID, Status string }
	json.Unmarshal([]byte(mustRun(t, env, homeB, "group", "leave", gid, "--json")), &left)
	if left.ID != gid || left.Status != "left" {
		t.Fatalf("group leave --json: %+v", left)
	}
	waitMembers(t, env, homeA, gid, 1)
	mustRun(t, env, homeA, "group", "add", gid, b.ready["peer_id"])
	nodetest.Eventually(t, 30*time.Second, "b is a member again on its own node", func() bool {
		var g map[string]any
		json.Unmarshal([]byte(mustRun(t, env, homeB, "group", "list", "--json")), &[]any{&g})
		return g["status"] == "member"
	})
	waitMembers(t, env, homeB, gid, 2)
	mustRun(t, env, homeB, "group", "send", gid, "back again")
	nodetest.Eventually(t, 30*time.Second, "a gets b's message", func() bool {
		return strings.Contains(mustRun(t, env, homeA, "history", gid), "back again")
	})
}

// TestFriendRemoveReachesConnectedFriend: a removal reaches a connected
// friend at once (issue 21, bug 2: it waited about a minute, and the
// remover's contact kept "owe": "unfriend"); the removed side's message
// to the remover then fails with the reason in the plain output.
func TestFriendRemoveReachesConnectedFriend(t *testing.T) {
	env := cleanEnv()
	homeA, homeB := t.TempDir(), t.TempDir()
	a := startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	befriendCLI(t, env, homeA, homeB)
	// Messages both ways first: the couriers are busy as in daily use.
	mustRun(t, env, homeA, "send", b.ready["peer_id"], "hi")
	mustRun(t, env, homeB, "send", a.ready["peer_id"], "hello")
	nodetest.Eventually(t, 30*time.Second, "a gets b's message", func() bool {
		return strings.Contains(mustRun(t, env, homeA, "history", b.ready["peer_id"]), "hello")
	})
	start := time.Now()
	mustRun(t, env, homeA, "friend", "remove", b.ready["peer_id"])
	nodetest.Eventually(t, 10*time.Second, "b sees the removal", func() bool {
		return strings.Contains(mustRun(t, env, homeB, "friend", "list", "--json"), `"state": "removed"`)
	})
	nodetest.Eventually(t, 10*time.Second, "a owes nothing", func() bool {
		return !strings.Contains(mustRun(t, env, homeA, "friend", "list", "--json"), `"owe"`)
	})
	t.Logf("removal reached the friend in %v", time.Since(start).Round(time.Millisecond))
	_, errOut, code := meshtalk(t, env, "send", a.ready["peer_id"], "still there?", "--home", homeB)
	if code == 0 || !strings.Contains(errOut, "not a friend") {
		t.Fatalf("a message to who removed you: exit %d: %s", code, errOut)
	}
}

// TestRelaySavedAndManaged: run --relay saves the relay in config.toml (a
// restart without the flag holds a reservation there), and relay
// add|remove|list manage the saved relays on a running node and on a
// stopped one, keeping the file's comments and other settings (issue 21,
// bug 5: the relay was never saved).
func TestRelaySavedAndManaged(t *testing.T) {
	env := cleanEnv()
	relayHome, home := t.TempDir(), t.TempDir()
	r := startRelayIn(t, env, nil, append([]string{"--home", relayHome}, relayListen...)...)
	addr := relayAddrOf(r)
	relayID := r.ready["peer_id"]
	a := startNode(t, env, append([]string{"--home", home, "--relay", addr}, testListen...)...)
	a.stop(t)
	cfg, _ := os.ReadFile(filepath.Join(home, "config.toml"))
	if !strings.Contains(string(cfg), addr) || !strings.Contains(string(cfg), "# Relays to keep a reservation on") {
		t.Fatalf("config.toml after run --relay:\n%s", cfg)
	}
	// A setting of the user's own, with a comment, survives the edits.
	custom := strings.Replace(string(cfg), `park_after = "10s"`, "# mine\npark_after = \"45s\" # slower", 1)
	os.WriteFile(filepath.Join(home, "config.toml"), []byte(custom), 0o600)

	startNode(t, env, append([]string{"--home", home}, testListen...)...)
	reserved := func() bool {
		var st struct {
			Relays []struct {
				PeerID   string `json:"peer_id"`
				Reserved bool   `json:"reserved"`
			} `json:"relays"`
		}
		json.Unmarshal([]byte(mustRun(t, env, home, "status", "--json")), &st)
		return len(st.Relays) > 0 && st.Relays[0].PeerID == relayID && st.Relays[0].Reserved
	}
	nodetest.Eventually(t, 30*time.Second, "a reservation without --relay", reserved)
	if out := mustRun(t, env, home, "relay", "list"); strings.TrimSpace(out) != addr {
		t.Fatalf("relay list: %q", out)
	}
	mustRun(t, env, home, "account", "register", "alice", "--relay", addr)
	loggedIn := func() bool {
		var st struct {
			Relays []struct {
				PeerID   string `json:"peer_id"`
				LoggedIn bool   `json:"logged_in"`
			} `json:"relays"`
		}
		json.Unmarshal([]byte(mustRun(t, env, home, "status", "--json")), &st)
		for _, r := range st.Relays {
			if r.PeerID == relayID && r.LoggedIn {
				return true
			}
		}
		return false
	}
	nodetest.Eventually(t, 30*time.Second, "logged in to the relay", loggedIn)
	if out := mustRun(t, env, home, "relay", "remove", relayID); !strings.Contains(out, "no relays saved") {
		t.Fatalf("relay remove: %q", out)
	}
	// Logged out at once, not when the node stops.
	if loggedIn() {
		t.Fatalf("still logged in to the relay after relay remove:\n%s", mustRun(t, env, home, "status"))
	}
	nodetest.Eventually(t, 30*time.Second, "the reservation is let go", func() bool { return !reserved() })
	mustRun(t, env, home, "relay", "add", addr)
	nodetest.Eventually(t, 30*time.Second, "a reservation again", reserved)
	nodetest.Eventually(t, 30*time.Second, "logged in again", loggedIn)
	if _, errOut, code := meshtalk(t, env, "relay", "add", "/ip4/127.0.0.1/udp/1/quic-v1", "--home", home); code == 0 || !strings.Contains(errOut, "/p2p/") {
		t.Fatalf("a bad relay address: exit %d: %s", code, errOut)
	}
	cfg, _ = os.ReadFile(filepath.Join(home, "config.toml"))
	if !strings.Contains(string(cfg), "# mine\npark_after = \"45s\" # slower") || !strings.Contains(string(cfg), addr) {
		t.Fatalf("config.toml after the edits:\n%s", cfg)
	}
}

// TestRelayCommandsWithoutNode: relay add|remove|list edit config.toml
// when no node runs.
func TestRelayCommandsWithoutNode(t *testing.T) {
	env := cleanEnv()
	home := t.TempDir()
	const addr = "/ip4/192.0.2.1/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	if out := mustRun(t, env, home, "relay", "list"); !strings.Contains(out, "no relays saved") {
		t.Fatalf("relay list: %q", out)
	}
	mustRun(t, env, home, "relay", "add", addr)
	mustRun(t, env, home, "relay", "add", addr) // once is enough
	if out := mustRun(t, env, home, "relay", "list"); strings.TrimSpace(out) != addr {
		t.Fatalf("relay list: %q", out)
	}
	if _, errOut, code := meshtalk(t, env, "relay", "remove", "12D3KooWNope", "--home", home); code == 0 || !strings.Contains(errOut, "no such relay") {
		t.Fatalf("removing an unknown relay: exit %d: %s", code, errOut)
	}
	mustRun(t, env, home, "relay", "remove", addr)
	if out := mustRun(t, env, home, "relay", "list"); !strings.Contains(out, "no relays saved") {
		t.Fatalf("relay list: %q", out)
	}
}

// TestDroppedFileShowsEverywhere: a file dropped on a relay shows in the
// conversation with its caption on both sides and in file list on both
// sides with its state; it lands in the recipient's downloads folder
// under its own name, never over another file; file get without --out
// uses the same folder (issue 21, bug 4 and "files in one place").
func TestDroppedFileShowsEverywhere(t *testing.T) {
	downloads := t.TempDir()
	env := cleanEnv()
	envB := cleanEnv("XDG_DOWNLOAD_DIR=" + downloads)
	relayHome, homeA, homeB := t.TempDir(), t.TempDir(), t.TempDir()
	r := startRelayIn(t, env, nil, append([]string{"--home", relayHome}, relayListen...)...)
	addr := relayAddrOf(r)
	a := startNode(t, env, append([]string{"--home", homeA, "--relay", addr}, testListen...)...)
	b := startNode(t, envB, append([]string{"--home", homeB, "--relay", addr}, testListen...)...)
	mustRun(t, env, homeA, "account", "register", "alice", "--relay", addr)
	mustRun(t, env, homeB, "account", "register", "bob", "--relay", addr)
	waitLoggedIn(t, env, homeA, "alice")
	waitLoggedIn(t, env, homeB, "bob")
	befriendCLI(t, env, homeA, homeB)

	dir := filepath.Join(downloads, "meshtalk")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("already here"), 0o600)
	src := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(src, []byte("the minutes of the meeting"), 0o600)
	if out := mustRun(t, env, homeA, "file", "send", b.ready["peer_id"], src, "--drop", "--message", "the minutes"); !strings.Contains(out, "dropped") {
		t.Fatalf("file send --drop: %s", out)
	}
	type file struct {
		ID, State, Path, Relay, Delivered, Fetched string
	}
	list := func(env []string, home string) []file {
		var fs []file
		json.Unmarshal([]byte(mustRun(t, env, home, "file", "list", "--json")), &fs)
		return fs
	}
	if fs := list(env, homeA); len(fs) != 1 || fs[0].Relay != r.ready["peer_id"] || fs[0].State != "dropped" && fs[0].State != "delivered" {
		t.Fatalf("sender's file list: %+v", fs)
	}
	var got []file
	nodetest.Eventually(t, 30*time.Second, "b lists the dropped file", func() bool {
		got = list(envB, homeB)
		return len(got) == 1 && got[0].State == "done"
	})
	if want := filepath.Join(dir, "notes (1).txt"); got[0].Path != want {
		t.Fatalf("dropped file at %q, want %q", got[0].Path, want)
	}
	if b, _ := os.ReadFile(got[0].Path); string(b) != "the minutes of the meeting" {
		t.Fatalf("dropped file holds %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "already here" {
		t.Fatalf("the file that was there holds %q", b)
	}
	if out := strings.TrimSpace(mustRun(t, envB, homeB, "file", "get", got[0].ID[:12])); out != got[0].Path {
		t.Fatalf("file get of the dropped file: %q", out)
	}
	for _, h := range []struct {
		env        []string
		home, peer string
	}{{env, homeA, b.ready["peer_id"]}, {envB, homeB, a.ready["peer_id"]}} {
		if out := mustRun(t, h.env, h.home, "history", h.peer); !strings.Contains(out, "notes.txt") || !strings.Contains(out, "the minutes") {
			t.Fatalf("history on %s:\n%s", h.home, out)
		}
	}
	// The sender's file is delivered once the recipient fetched it (not
	// when the message that offers it was), and says when.
	nodetest.Eventually(t, 30*time.Second, "the sender sees it fetched", func() bool {
		fs := list(env, homeA)
		if len(fs) == 1 && fs[0].State == "delivered" && fs[0].Fetched == "" {
			t.Fatalf("delivered before it was fetched: %+v", fs)
		}
		return len(fs) == 1 && fs[0].State == "delivered"
	})
	if out := mustRun(t, env, homeA, "file", "list"); !strings.Contains(out, "delivered, fetched 20") {
		t.Fatalf("sender's file list:\n%s", out)
	}

	// Offered directly, fetched without --out: the same folder, the next name.
	os.WriteFile(src, []byte("the minutes, corrected"), 0o600)
	// With --json each prints the node's answer: the offer, the file.
	var sent struct {
		Dropped bool `json:"dropped"`
		File    struct {
			ID string `json:"id"`
		} `json:"file"`
	}
	json.Unmarshal([]byte(mustRun(t, env, homeA, "file", "send", b.ready["peer_id"], src, "--json")), &sent)
	if sent.File.ID == "" || sent.Dropped {
		t.Fatalf("file send --json: %+v", sent)
	}
	nodetest.Eventually(t, 30*time.Second, "b lists the offer", func() bool {
		got = list(envB, homeB)
		return len(got) == 2
	})
	if got[0].ID != sent.File.ID {
		t.Fatalf("b lists %s first, a sent %s", got[0].ID, sent.File.ID)
	}
	var fetched file
	json.Unmarshal([]byte(mustRun(t, envB, homeB, "file", "get", got[0].ID[:12], "--json")), &fetched)
	if want := filepath.Join(dir, "notes (2).txt"); fetched.Path != want || fetched.State != "done" {
		t.Fatalf("file get --json without --out: %q %s, want %q done", fetched.Path, fetched.State, want)
	}
}

// TestTablesAlignWideCharacters: a table's columns start at the same
// terminal column in every row, whatever the width of the characters
// before them (issue 21, terminal output: tabwriter counted a Chinese
// character or an emoji as one column).
func TestTablesAlignWideCharacters(t *testing.T) {
	env := cleanEnv()
	home := t.TempDir()
	startNode(t, env, append([]string{"--home", home}, testListen...)...)
	for _, name := range []string{"读书会", "Book club", "🎉 party"} {
		mustRun(t, env, home, "group", "create", name)
	}
	out := mustRun(t, env, home, "group", "list")
	col := -1
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		// The ID column: where the second field starts.
		fields := strings.Fields(line)
		i := strings.Index(line, map[bool]string{true: "ID", false: ""}[fields[0] == "NAME"])
		if fields[0] != "NAME" {
			for _, f := range fields {
				if len(f) == 64 || strings.HasPrefix(f, "mtg") || len(f) > 30 {
					i = strings.Index(line, f)
					break
				}
			}
		}
		w := runewidth.StringWidth(line[:i])
		if col >= 0 && w != col {
			t.Fatalf("columns not aligned (%d vs %d):\n%s", w, col, out)
		}
		col = w
	}
}
