package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// TestChatCommands drives two real nodes through the command line: a
// friend request by friend code, accept, a message, watch, history,
// search, read, profile.
func TestChatCommands(t *testing.T) {
	env := cleanEnv()
	homeA, homeB := t.TempDir(), t.TempDir()
	a := startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	idA, idB := a.ready["peer_id"], b.ready["peer_id"]
	mt := func(home string, args ...string) string { t.Helper(); return mustRun(t, env, home, args...) }
	var id struct {
		FriendCode string `json:"friend_code"`
	}
	json.Unmarshal([]byte(mt(homeA, "id", "--json")), &id)

	// Watch A's events from the start.
	watch := exec.Command(binary, "watch", "--json", "--home", homeA)
	watch.Env = env
	stdout, _ := watch.StdoutPipe()
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Process.Kill(); watch.Wait() })
	watched := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				watched <- ev
			}
		}
		close(watched)
	}()
	waitWatch := func(typ string) map[string]any {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case ev, ok := <-watched:
				if !ok {
					t.Fatalf("watch ended before a %s event", typ)
				}
				if ev["type"] == typ {
					return ev["data"].(map[string]any)
				}
			case <-deadline:
				t.Fatalf("watch printed no %s event within 30s", typ)
			}
		}
	}

	mt(homeB, "profile", "set", "--name", "Bob", "--status", "testing")
	if out := mt(homeB, "friend", "add", id.FriendCode, "--message", "it's bob"); !strings.Contains(out, "stored") {
		t.Fatalf("friend add: %s", out)
	}
	req := waitWatch("friend.request")
	if req["peer_id"] != idB || req["message"] != "it's bob" || req["name"] != "Bob" {
		t.Fatalf("friend.request %v", req)
	}
	var pending []map[string]any
	json.Unmarshal([]byte(mt(homeA, "friend", "list", "--pending", "--json")), &pending)
	if len(pending) != 1 || pending[0]["peer_id"] != idB || pending[0]["state"] != "pending_in" {
		t.Fatalf("pending: %v", pending)
	}
	mt(homeA, "friend", "accept", "Bob") // by nickname
	nodetest.Eventually(t, 30*time.Second, "B sees A as a friend", func() bool {
		var friends []map[string]any
		json.Unmarshal([]byte(mt(homeB, "friend", "list", "--json")), &friends)
		return len(friends) == 1 && friends[0]["state"] == "friend" && friends[0]["online"] == true
	})

	out := mt(homeB, "send", idA, "hello over the mesh")
	msgID := strings.Fields(out)[0]
	msg := waitWatch("message.received")
	if msg["id"] != msgID || msg["text"] != "hello over the mesh" || msg["from"] != idB {
		t.Fatalf("message.received %v", msg)
	}
	mt(homeB, "send", idA, "with a face", "--face", "party")
	waitWatch("message.received")

	var hist []map[string]any
	json.Unmarshal([]byte(mt(homeA, "history", "Bob", "--json")), &hist)
	if len(hist) != 2 {
		t.Fatalf("history: %v", hist)
	}
	for _, k := range []string{"id", "from", "kind", "text", "state", "time"} {
		if _, ok := hist[0][k]; !ok {
			t.Fatalf("history entry lacks %q: %v", k, hist[0])
		}
	}
	// history marked the conversation read; B hears of it.
	nodetest.Eventually(t, 30*time.Second, "B's message read", func() bool {
		var h []map[string]any
		json.Unmarshal([]byte(mt(homeB, "history", idA, "--json")), &h)
		return len(h) == 2 && h[0]["state"] == "read"
	})
	// Search names each result's conversation: A's with Bob, and B's own
	// message in B's conversation with A (who has no name: a short ID).
	if out := mt(homeA, "search", "mesh"); !strings.Contains(out, "with Bob  <Bob> hello over the mesh") {
		t.Fatalf("search: %s", out)
	}
	if out := mt(homeB, "search", "mesh"); !strings.Contains(out, "<me> hello over the mesh") || !strings.Contains(out, "with "+shortPeer(idA)+"  <me>") {
		t.Fatalf("search on B: %s", out)
	}
	// A face's text is shown beside it.
	if out := mt(homeA, "history", idB); !strings.Contains(out, "🎉 (party) with a face") {
		t.Fatalf("history text: %s", out)
	}

	// Bad input: a stranger, an avatar that is not an image, an unknown face.
	notImage := filepath.Join(t.TempDir(), "cat.png")
	os.WriteFile(notImage, []byte("meow"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"profile", "set", "--avatar", notImage}, "meshtalk: avatar: not a PNG, JPEG or GIF"},
		{[]string{"profile", "set"}, "nothing to change"},
		{[]string{"send", idA, "hi"}, "a message to yourself"},
		{[]string{"edit", msgID, "changed"}, "(" + msgID + " is someone else's)"},
		{[]string{"send", idB, "--face", "nope"}, "no face named"},
		{[]string{"send", "12D3KooWGRUVh2N4mVVHMzQ1RcXsRAHNxCd29QEEHmBYGrD4wCGG", "hi"}, "not a friend"},
		{[]string{"friend", "accept", "nobody"}, "\"nobody\" is no contact of yours, nor a peer ID, friend code or username"},
	} {
		_, errOut, code := meshtalk(t, env, append(tc.args, "--home", homeA)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d: %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestFileCommands: a file offered with `send --file` is listed on the
// other side, fetched with `file get`, and arrives identical.
func TestFileCommands(t *testing.T) {
	downloads := t.TempDir()
	env := cleanEnv("XDG_DOWNLOAD_DIR=" + downloads)
	homeA, homeB := t.TempDir(), t.TempDir()
	startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	mt := func(home string, args ...string) string { t.Helper(); return mustRun(t, env, home, args...) }
	befriendCLI(t, env, homeA, homeB)

	src := filepath.Join(t.TempDir(), "holiday photos.tar")
	data := make([]byte, 5<<20+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(src, data, 0o600)
	mt(homeA, "send", b.ready["peer_id"], "--file", src, "for you")
	var files []map[string]any
	nodetest.Eventually(t, 30*time.Second, "the offer arrives", func() bool {
		json.Unmarshal([]byte(mt(homeB, "file", "list", "--json")), &files)
		return len(files) == 1 && files[0]["state"] == "available"
	})
	if files[0]["name"] != "holiday photos.tar" || files[0]["size"] != float64(len(data)) {
		t.Fatalf("offer %v", files[0])
	}
	out := t.TempDir()
	// By name: the README says an ID prefix or the file's name.
	stdout, stderr, code := meshtalk(t, env, "file", "get", "holiday photos.tar", "--out", out, "--home", homeB)
	if code != 0 {
		t.Fatalf("file get: exit %d: %s", code, stderr)
	}
	// Not a terminal: plain lines of progress, never a bar redrawn with \r.
	if strings.Contains(stderr, "\r") || !strings.Contains(stderr, "holiday photos.tar: done") {
		t.Fatalf("file get's progress off a terminal: %q", stderr)
	}
	got := strings.TrimSpace(stdout)
	b2, err := os.ReadFile(got)
	if err != nil || !bytes.Equal(b2, data) {
		t.Fatalf("fetched %s: %v, identical=%v", got, err, bytes.Equal(b2, data))
	}
	json.Unmarshal([]byte(mt(homeB, "file", "list", "--json")), &files)
	if files[0]["state"] != "done" || files[0]["path"] != got {
		t.Fatalf("after get: %v", files[0])
	}
	// Fetched already: another --out says so, and where the file is.
	stdout, stderr, code = meshtalk(t, env, "file", "get", files[0]["id"].(string)[:12], "--out", t.TempDir(), "--home", homeB)
	if code != 0 || strings.TrimSpace(stdout) != got || !strings.Contains(stderr, "fetched before, into "+out) {
		t.Fatalf("file get of a file fetched already, elsewhere: exit %d: %q %q", code, stdout, stderr)
	}
	// The sender lists its offer.
	json.Unmarshal([]byte(mt(homeA, "file", "list", "--json")), &files)
	if len(files) != 1 || files[0]["state"] != "offered" {
		t.Fatalf("sender's list: %v", files)
	}
	// ... with what it served to whom, and when they had it all.
	nodetest.Eventually(t, 30*time.Second, "the sender sees the friend finish", func() bool {
		return strings.Contains(mt(homeA, "file", "list"), "finished")
	})
	json.Unmarshal([]byte(mt(homeA, "file", "list", "--json")), &files)
	if served, _ := files[0]["bytes_served"].(float64); served < float64(len(data)) {
		t.Fatalf("sender's list after the download: %v", files[0])
	}
	if per, _ := files[0]["served"].([]any); len(per) != 1 || per[0].(map[string]any)["name"] == nil {
		t.Fatalf("sender's list names no one it served: %v", files[0])
	}

	// A picture: the thumbnail travels inline, and the receiver fetches
	// the original by itself into the downloads folder, under the name
	// it was sent by.
	pic := filepath.Join(t.TempDir(), "cat.png")
	var buf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for x := range 640 {
		img.Set(x, x%480, color.RGBA{200, 100, 50, 255})
	}
	png.Encode(&buf, img)
	os.WriteFile(pic, buf.Bytes(), 0o600)
	mt(homeA, "send", b.ready["peer_id"], "--picture", pic)
	nodetest.Eventually(t, 30*time.Second, "the original picture fetched", func() bool {
		got, err := os.ReadFile(filepath.Join(downloads, "meshtalk", "cat.png"))
		return err == nil && bytes.Equal(got, buf.Bytes())
	})
}

// mustRun runs a client command against the node on home and returns its
// output; a failure fails the test.
func mustRun(t testing.TB, env []string, home string, args ...string) string {
	t.Helper()
	out, errOut, code := meshtalk(t, env, append(args, "--home", home)...)
	if code != 0 {
		t.Fatalf("meshtalk %v: exit %d: %s", args, code, errOut)
	}
	return out
}

// befriendCLI makes the nodes on homeA and homeB friends through the
// command line: a request by friend code, accepted.
func befriendCLI(t testing.TB, env []string, homeA, homeB string) {
	t.Helper()
	var id struct {
		FriendCode string `json:"friend_code"`
	}
	json.Unmarshal([]byte(mustRun(t, env, homeB, "id", "--json")), &id)
	// --json prints the node's answer: the contact as it is now.
	var asked, accepted struct {
		State string `json:"state"`
	}
	json.Unmarshal([]byte(mustRun(t, env, homeA, "friend", "add", id.FriendCode, "--json")), &asked)
	if asked.State != "pending_out" {
		t.Fatalf("friend add --json: state %q, want pending_out", asked.State)
	}
	var pending []map[string]any
	nodetest.Eventually(t, 30*time.Second, "the request arrives", func() bool {
		json.Unmarshal([]byte(mustRun(t, env, homeB, "friend", "list", "--pending", "--json")), &pending)
		return len(pending) == 1
	})
	json.Unmarshal([]byte(mustRun(t, env, homeB, "friend", "accept", pending[0]["peer_id"].(string), "--json")), &accepted)
	if accepted.State != "friend" {
		t.Fatalf("friend accept --json: state %q, want friend", accepted.State)
	}
	nodetest.Eventually(t, 30*time.Second, "friends", func() bool {
		return strings.Contains(mustRun(t, env, homeA, "friend", "list", "--json"), `"state": "friend"`)
	})
}
