package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// TestDownloadResumesAfterKill: a download whose node is SIGKILLed past
// its first checkpoint (the receiver records verified chunks, synced,
// every 64 MiB) goes on from that checkpoint when the node starts again,
// by itself, and ends with the sender's bytes. The sender serves the file
// at 4 MiB/s, so the kill lands mid-download on any machine (past 80 of
// its 96 MiB, 4 s after the checkpoint was due); it counts
// what it served, which says the download resumed rather than began
// again (from the start it would serve at least 1.75 of the file).
func TestDownloadResumesAfterKill(t *testing.T) {
	const size = 96 << 20
	downloads := t.TempDir()
	env := cleanEnv("XDG_DOWNLOAD_DIR=" + downloads)
	homeA, homeB := t.TempDir(), t.TempDir()
	writeConfig(t, homeA, "[files]\nupload_kib_per_second = 4096\n")
	startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	mt := func(home string, args ...string) string { t.Helper(); return mustRun(t, env, home, args...) }
	befriendCLI(t, env, homeA, homeB)

	data := make([]byte, size)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mt(homeA, "file", "send", b.ready["peer_id"], src)
	type file struct {
		ID          string `json:"id"`
		State       string `json:"state"`
		Path        string `json:"path"`
		Error       string `json:"error"`
		Bytes       uint64 `json:"bytes"`
		BytesServed uint64 `json:"bytes_served"`
	}
	list := func(home string) file {
		t.Helper()
		var l []file
		if err := json.Unmarshal([]byte(mt(home, "file", "list", "--json")), &l); err != nil || len(l) != 1 {
			t.Fatalf("file list: %v, %d files", err, len(l))
		}
		return l[0]
	}
	nodetest.Eventually(t, 30*time.Second, "the offer arrives", func() bool { return list(homeB).State == "available" })
	mt(homeB, "file", "get", list(homeB).ID, "--no-wait")
	nodetest.Eventually(t, 60*time.Second, "the download is past its first checkpoint", func() bool {
		f := list(homeB)
		if f.State == "done" {
			t.Fatal("the download ended before the kill")
		}
		return f.Bytes >= 80<<20
	})
	b.cmd.Process.Kill()
	<-b.exited

	startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	var got file
	nodetest.Eventually(t, 90*time.Second, "the download ends after the restart", func() bool {
		got = list(homeB)
		return got.State == "done" || got.State == "failed"
	})
	if got.State != "done" {
		t.Fatalf("after the restart: %s: %s", got.State, got.Error)
	}
	received, err := os.ReadFile(got.Path)
	if err != nil || !bytes.Equal(received, data) {
		t.Fatalf("the received file (%s): %v, %d bytes, identical %v", got.Path, err, len(received), bytes.Equal(received, data))
	}
	if served := list(homeA).BytesServed; served >= size+size*3/4 || served < size {
		t.Fatalf("the sender served %d bytes of a %d-byte file: the download began again", served, size)
	} else {
		t.Logf("the sender served %.2f of the file", float64(served)/size)
	}
}
