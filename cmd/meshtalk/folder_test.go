package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// TestFileSendFolder: `file send FRIEND DIR` offers a whole folder, and
// `file get` receives it as a folder in the downloads folder, every file
// identical and its empty folder kept.
func TestFileSendFolder(t *testing.T) {
	downloads := t.TempDir()
	env := cleanEnv("XDG_DOWNLOAD_DIR=" + downloads)
	homeA, homeB := t.TempDir(), t.TempDir()
	startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	mt := func(home string, args ...string) string { t.Helper(); return mustRun(t, env, home, args...) }
	befriendCLI(t, env, homeA, homeB)

	src := filepath.Join(t.TempDir(), "trip")
	files := map[string]string{"notes.txt": "day one", "pics/1.jpg": strings.Repeat("j", 300<<10), "pics/raw/2.raw": strings.Repeat("r", 1<<20+3)}
	for p, data := range files {
		p = filepath.Join(src, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(src, "empty"), 0o755)
	mt(homeA, "file", "send", b.ready["peer_id"], src+"/")

	var list []map[string]any
	nodetest.Eventually(t, 30*time.Second, "the folder's offer arrives", func() bool {
		json.Unmarshal([]byte(mt(homeB, "file", "list", "--json")), &list)
		return len(list) == 1 && list[0]["state"] == "available"
	})
	total := 0
	for _, data := range files {
		total += len(data)
	}
	if list[0]["name"] != "trip" || list[0]["size"] != float64(total) {
		t.Fatalf("offer %v", list[0])
	}
	stdout, stderr, code := meshtalk(t, env, "file", "get", list[0]["id"].(string)[:12], "--home", homeB)
	if code != 0 {
		t.Fatalf("file get: exit %d: %s", code, stderr)
	}
	got := strings.TrimSpace(stdout)
	if got != filepath.Join(downloads, "meshtalk", "trip") {
		t.Fatalf("received at %q", got)
	}
	for p, data := range files {
		b, err := os.ReadFile(filepath.Join(got, filepath.FromSlash(p)))
		if err != nil || string(b) != data {
			t.Fatalf("%s: %v, identical=%v", p, err, string(b) == data)
		}
	}
	if fi, err := os.Stat(filepath.Join(got, "empty")); err != nil || !fi.IsDir() {
		t.Fatalf("the empty folder: %v", err)
	}
}
