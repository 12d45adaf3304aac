package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// TestGroupCommands drives three real nodes through the command line: a
// group created, an invite, a join, messages both ways, history and
// members; then the used-up invite refused with a clear error; a member
// promoted by the admin, then removed.
func TestGroupCommands(t *testing.T) {
	env := cleanEnv()
	homeA, homeB, homeC := t.TempDir(), t.TempDir(), t.TempDir()
	a := startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	startNode(t, env, append([]string{"--home", homeC}, testListen...)...)
	idA, idB := a.ready["peer_id"], b.ready["peer_id"]
	mt := func(home string, args ...string) string { t.Helper(); return mustRun(t, env, home, args...) }

	var created struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := json.Unmarshal([]byte(mt(homeA, "group", "create", "Book club", "--json")), &created); err != nil || created.ID == "" || created.Role != "admin" {
		t.Fatalf("group create: %+v %v", created, err)
	}
	var inv struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal([]byte(mt(homeA, "group", "invite", "Book club", "--uses", "1", "--expires", "1h", "--json")), &inv); err != nil || !strings.HasPrefix(inv.Code, "mtg1") {
		t.Fatalf("group invite: %+v %v", inv, err)
	}
	if out := mt(homeB, "group", "join", inv.Code); !strings.Contains(out, "joined \"Book club\"") {
		t.Fatalf("group join: %s", out)
	}
	if out := mt(homeB, "group", "join", inv.Code); !strings.Contains(out, "a member of \"Book club\"") || !strings.Contains(out, "already") {
		t.Fatalf("group join again: %s", out)
	}
	var members []map[string]any
	nodetest.Eventually(t, 30*time.Second, "both see two members", func() bool {
		json.Unmarshal([]byte(mt(homeA, "group", "members", created.ID, "--json")), &members)
		return len(members) == 2
	})
	ids := map[string]bool{}
	for _, m := range members {
		ids[m["peer_id"].(string)] = true
	}
	if !ids[idA] || !ids[idB] {
		t.Fatalf("members %v", members)
	}
	// Everyone online: the mesh is up once each sees the other online.
	nodetest.Eventually(t, 30*time.Second, "b online for a", func() bool {
		return strings.Contains(mt(homeA, "group", "members", created.ID), "online")
	})

	mt(homeB, "group", "send", "book club", "hello club")
	var hist []map[string]any
	nodetest.Eventually(t, 30*time.Second, "a gets b's message", func() bool {
		json.Unmarshal([]byte(mt(homeA, "history", "Book club", "--json")), &hist)
		return len(hist) == 1
	})
	if hist[0]["text"] != "hello club" || hist[0]["from"] != idB || hist[0]["group"] != created.ID {
		t.Fatalf("history %v", hist)
	}
	mt(homeA, "group", "send", created.ID, "--face", "party")
	nodetest.Eventually(t, 30*time.Second, "b gets a's face", func() bool {
		json.Unmarshal([]byte(mt(homeB, "history", created.ID, "--json")), &hist)
		return len(hist) == 2
	})
	if out := mt(homeB, "history", "Book club"); !strings.Contains(out, "hello club") || !strings.Contains(out, "party") {
		t.Fatalf("history: %s", out)
	}
	var found []map[string]any
	json.Unmarshal([]byte(mt(homeA, "search", "club", "--with", "Book club", "--json")), &found)
	if len(found) != 1 || found[0]["text"] != "hello club" {
		t.Fatalf("search in the group: %v", found)
	}
	if out := mt(homeA, "group", "list"); !strings.Contains(out, "Book club") || !strings.Contains(out, "admin") {
		t.Fatalf("group list: %s", out)
	}

	// The invite was for one.
	out, errOut, code := meshtalk(t, env, "group", "join", inv.Code, "--home", homeC)
	if code == 0 || !strings.Contains(errOut, "used up") {
		t.Fatalf("a used-up invite: exit %d: %s %s", code, out, errOut)
	}

	// Only an admin promotes; b, promoted, is one on both sides.
	if out, errOut, code := meshtalk(t, env, "group", "promote", created.ID, idA, "--home", homeB); code == 0 || !strings.Contains(errOut, "admin") {
		t.Fatalf("a member promoting: exit %d: %s %s", code, out, errOut)
	}
	if out := mt(homeA, "group", "promote", created.ID, idB); !strings.Contains(out, "now an admin") {
		t.Fatalf("group promote: %s", out)
	}
	nodetest.Eventually(t, 30*time.Second, "b sees itself an admin", func() bool {
		var list []map[string]any
		json.Unmarshal([]byte(mt(homeB, "group", "members", created.ID, "--json")), &list)
		for _, m := range list {
			if m["peer_id"] == idB {
				return m["role"] == "admin"
			}
		}
		return false
	})
	if out := mt(homeA, "group", "kick", created.ID, idB); !strings.Contains(out, "removed "+idB) || !strings.Contains(out, "key epoch 2") { // b's add started epoch 1
		t.Fatalf("group kick: %s", out)
	}
}

// TestGroupInviteRevokeCommand: an invite is for one person and one day
// unless asked, and `group invite revoke` withdraws one: the holder is
// then refused with a clear error.
func TestGroupInviteRevokeCommand(t *testing.T) {
	env := cleanEnv()
	homeA, homeB := t.TempDir(), t.TempDir()
	startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	mt := func(home string, args ...string) string { t.Helper(); return mustRun(t, env, home, args...) }
	mt(homeA, "group", "create", "Quiet", "--json")
	var inv struct {
		Code    string    `json:"code"`
		ID      string    `json:"id"`
		Uses    uint32    `json:"uses"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal([]byte(mt(homeA, "group", "invite", "Quiet", "--json")), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Uses != 1 || time.Until(inv.Expires) > 24*time.Hour || time.Until(inv.Expires) < 23*time.Hour {
		t.Fatalf("the default invite: %+v, want one use for 24 hours", inv)
	}
	if out := mt(homeA, "group", "invite", "revoke", "Quiet", inv.Code); !strings.Contains(out, "revoked") {
		t.Fatalf("group invite revoke: %s", out)
	}
	out, errOut, code := meshtalk(t, env, "group", "join", inv.Code, "--home", homeB)
	if code == 0 || !strings.Contains(errOut, "meshtalk: an admin revoked the invite: ask a group admin for a new one (") {
		t.Fatalf("a revoked invite: exit %d: %s %s", code, out, errOut)
	}
	// The admin finds it, with its state, in the list of invites made.
	if out := mt(homeA, "group", "invite", "list", "Quiet"); !regexp.MustCompile(inv.ID + `\s+revoked\s+0 of 1\s`).MatchString(out) {
		t.Fatalf("group invite list: %s", out)
	}
	var listed []struct {
		ID, State string
	}
	if err := json.Unmarshal([]byte(mt(homeA, "group", "invite", "list", "Quiet", "--json")), &listed); err != nil || len(listed) != 1 || listed[0].ID != inv.ID || listed[0].State != "revoked" {
		t.Fatalf("group invite list --json: %+v (%v)", listed, err)
	}
}
