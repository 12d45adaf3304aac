package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// callTestConfig keeps a node's calls on loopback.
const callTestConfig = `[calls]
loopback_candidates = true
interfaces = ["lo"]
mdns = false
`

// TestCallCommands calls a friend from the command line with the shared
// media, answers on the other node with a recording, and reads the
// stats, the list and the call's line in history.
func TestCallCommands(t *testing.T) {
	for _, f := range []string{"/work/shared/media/test.ogg", "/work/shared/media/test.ivf"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("no test media: %v", err)
		}
	}
	env := cleanEnv()
	homeA, homeB, rec := t.TempDir(), t.TempDir(), t.TempDir()
	for _, h := range []string{homeA, homeB} {
		if err := os.WriteFile(filepath.Join(h, "config.toml"), []byte(callTestConfig), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startNode(t, env, append([]string{"--home", homeA}, testListen...)...)
	b := startNode(t, env, append([]string{"--home", homeB}, testListen...)...)
	befriendCLI(t, env, homeA, homeB)

	// The caller runs until --for after the answer.
	caller := exec.Command(binary, "--home", homeA, "call", b.ready["peer_id"], "--audio", "/work/shared/media/test.ogg", "--video", "/work/shared/media/test.ivf", "--for", "3s")
	caller.Env = env
	var out, errOut bytes.Buffer
	caller.Stdout, caller.Stderr = &out, &errOut
	if err := caller.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- caller.Wait() }()
	t.Cleanup(func() {
		if caller.ProcessState == nil {
			caller.Process.Kill()
			<-done
		}
	})
	nodetest.Eventually(t, 20*time.Second, "b rings", func() bool {
		return strings.Contains(mustRun(t, env, homeB, "call", "list"), "ringing")
	})
	answer := exec.Command(binary, "--home", homeB, "call", "answer", "--record", rec)
	answer.Env = env
	var aOut bytes.Buffer
	answer.Stdout, answer.Stderr = &aOut, &aOut
	if err := answer.Start(); err != nil {
		t.Fatal(err)
	}
	aDone := make(chan error, 1)
	go func() { aDone <- answer.Wait() }()
	nodetest.Eventually(t, 10*time.Second, "stats show frames", func() bool {
		st, _, _ := meshtalk(t, env, "--home", homeB, "call", "stats")
		return strings.Contains(st, "path host") && !strings.Contains(st, "video  0  0 frames")
	})
	t.Logf("stats:\n%s", mustRun(t, env, homeB, "call", "stats"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("meshtalk call: %v\n%s\n%s", err, out.String(), errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("meshtalk call did not end after --for\n%s", out.String())
	}
	select {
	case err := <-aDone:
		if err != nil {
			t.Fatalf("meshtalk call answer: %v\n%s", err, aOut.String())
		}
	case <-time.After(15 * time.Second):
		answer.Process.Kill()
		t.Fatalf("meshtalk call answer did not end with the call\n%s", aOut.String())
	}
	t.Logf("caller:\n%s\ncallee:\n%s", out.String(), aOut.String())
	if !strings.Contains(out.String(), "answered") || !strings.Contains(out.String(), "ended hangup") {
		t.Fatalf("caller's output:\n%s", out.String())
	}
	for _, f := range []string{"audio.ogg", "video.ivf"} {
		if st, err := os.Stat(filepath.Join(rec, f)); err != nil || st.Size() < 1000 {
			t.Fatalf("recording %s: %v", f, err)
		}
	}
	if list := mustRun(t, env, homeA, "call", "list"); !strings.Contains(list, "ended (hangup)") {
		t.Fatalf("call list:\n%s", list)
	}
}
