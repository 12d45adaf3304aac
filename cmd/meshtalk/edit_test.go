package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// TestEditDeleteAndGroupReceipts drives two real nodes through the
// command line: a friend's message edited and deleted for everyone
// (the other side's history says "(edited)" and "message deleted"), an
// edit of another's message refused; in a group, the author's history
// says "delivered to 1 of 1", then "read by 1 of 1" once the other
// member ran `read`.
func TestEditDeleteAndGroupReceipts(t *testing.T) {
	env := cleanEnv()
	homeA, homeB := t.TempDir(), t.TempDir()
	a := startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	idA := a.ready["peer_id"]
	mt := func(home string, args ...string) string { t.Helper(); return mustRun(t, env, home, args...) }
	var id struct {
		FriendCode string `json:"friend_code"`
	}
	json.Unmarshal([]byte(mt(homeA, "id", "--json")), &id)
	mt(homeB, "profile", "set", "--name", "Bob")
	mt(homeB, "friend", "add", id.FriendCode)
	nodetest.Eventually(t, 30*time.Second, "A has B's request", func() bool {
		return strings.Contains(mt(homeA, "friend", "list", "--pending"), "Bob")
	})
	mt(homeA, "friend", "accept", "Bob")
	nodetest.Eventually(t, 30*time.Second, "B sees A as a friend", func() bool {
		var friends []map[string]any
		json.Unmarshal([]byte(mt(homeB, "friend", "list", "--json")), &friends)
		return len(friends) == 1 && friends[0]["state"] == "friend"
	})

	first := strings.Fields(mt(homeB, "send", idA, "helo"))[0]
	second := strings.Fields(mt(homeB, "send", idA, "sent by mistake"))[0]
	history := func(home, with string) []map[string]any {
		var h []map[string]any
		json.Unmarshal([]byte(mt(home, "history", with, "--json")), &h)
		return h
	}
	nodetest.Eventually(t, 30*time.Second, "A has both", func() bool { return len(history(homeA, "Bob")) == 2 })
	if out := mt(homeB, "edit", first, "hello"); !strings.Contains(out, first+" edited") {
		t.Fatalf("edit: %s", out)
	}
	if out := mt(homeB, "delete", second, "--for-everyone"); !strings.Contains(out, "deleted for everyone") {
		t.Fatalf("delete: %s", out)
	}
	nodetest.Eventually(t, 30*time.Second, "A sees the edit and the delete", func() bool {
		out := mt(homeA, "history", "Bob")
		return strings.Contains(out, "hello (edited)") && strings.Contains(out, "message deleted") && !strings.Contains(out, "mistake")
	})
	h := history(homeA, "Bob")
	if h[0]["edited_at"] == nil || h[1]["deleted"] != true {
		t.Fatalf("A's history: %v", h)
	}
	if _, errOut, code := meshtalk(t, env, "edit", first, "mine now", "--home", homeA); code == 0 || !strings.Contains(errOut, "only its author") {
		t.Fatalf("A edits B's message: exit %d: %s", code, errOut)
	}

	// A group of two: receipts.
	var created struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(mt(homeA, "group", "create", "Pair", "--json")), &created)
	var inv struct {
		Code string `json:"code"`
	}
	json.Unmarshal([]byte(mt(homeA, "group", "invite", "Pair", "--json")), &inv)
	mt(homeB, "group", "join", inv.Code)
	nodetest.Eventually(t, 30*time.Second, "b online for a", func() bool {
		return strings.Contains(mt(homeA, "group", "members", created.ID), "online")
	})
	mt(homeA, "group", "send", created.ID, "tonight?")
	nodetest.Eventually(t, 30*time.Second, "delivered to 1 of 1", func() bool {
		return strings.Contains(mt(homeA, "history", created.ID), "tonight?  [delivered to 1 of 1")
	})
	if out := mt(homeB, "read", created.ID, "--json"); strings.TrimSpace(out) != "{\n  \"marked\": 1\n}" {
		t.Fatalf("read --json: %s", out)
	}
	nodetest.Eventually(t, 30*time.Second, "read by 1 of 1", func() bool {
		return strings.Contains(mt(homeA, "history", created.ID), "tonight?  [read by 1 of 1")
	})
	g := history(homeA, created.ID)
	readBy, _ := g[0]["read_by"].([]any)
	deliveredBy, _ := g[0]["delivered_by"].([]any)
	if len(g) != 1 || len(readBy) != 1 || len(deliveredBy) != 1 || g[0]["recipients"] != float64(1) || g[0]["read_count"] != float64(1) || g[0]["state"] != "read" {
		t.Fatalf("A's group history: %v", g)
	}
	// message info: the member by name, with when it stored and read it.
	info := mt(homeA, "message", "info", g[0]["id"].(string))
	_, member, found := strings.Cut(info, "  member Bob (")
	if !found || !strings.Contains(info, " sent\n") || !strings.Contains(member, " delivered\n") || !strings.Contains(member, " read\n") {
		t.Fatalf("message info on the group message:\n%s", info)
	}
}
