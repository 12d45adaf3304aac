package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// binary is the meshtalk binary that TestMain builds once; the command-line
// tests run it as a user would.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(labRouterEnv) != "" || os.Getenv(natPMPClientEnv) != "" {
		// A helper process of the lab (TestHelperLabRouter,
		// TestHelperNATPMPClient): no binary.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "meshtalk-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "meshtalk")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build meshtalk:", err)
		os.Exit(2)
	}
	// On disk like an installed binary: pages of a file just written are
	// dirty, and the kernel keeps them cached until written back.
	if f, err := os.Open(binary); err == nil {
		f.Sync()
		f.Close()
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testListen are the flags that keep a test node on loopback, port 0, and
// off the real network (no mDNS multicast).
var testListen = []string{"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--no-mdns"}

// cleanEnv is the environment of the commands the tests run: no
// passphrase or home from the developer's shell.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "MESHTALK_") && !strings.HasPrefix(e, "XDG_DATA_HOME=") && !strings.HasPrefix(e, "XDG_DOWNLOAD_DIR=") {
			env = append(env, e)
		}
	}
	// Never the user's own ~/Downloads; a test that looks at downloads
	// sets its own in extra (the last one counts).
	env = append(env, "XDG_DOWNLOAD_DIR="+filepath.Join(os.TempDir(), "meshtalk-test-downloads"))
	return append(env, extra...)
}

// running is a `meshtalk run` process started by a test.
type running struct {
	cmd    *exec.Cmd
	ready  map[string]string // the ready line's key=value pairs
	stderr *bytes.Buffer
	exited chan error
}

var readyLine = regexp.MustCompile(`^meshtalk ready (.*)$`)

// startNode runs `meshtalk run` with args and waits for its ready line. The
// process is stopped (SIGTERM, then SIGKILL) when the test ends.
func startNode(t testing.TB, env []string, args ...string) *running {
	t.Helper()
	return startProc(t, env, nil, "run", args...)
}

// startNodeIn is startNode with a command prefix (such as `ip netns exec
// NS`) before the binary.
func startNodeIn(t testing.TB, env, prefix []string, args ...string) *running {
	t.Helper()
	return startProc(t, env, prefix, "run", args...)
}

// startRelayIn runs `meshtalk relay` like startNodeIn.
func startRelayIn(t testing.TB, env, prefix []string, args ...string) *running {
	t.Helper()
	return startProc(t, env, prefix, "relay", args...)
}

func startProc(t testing.TB, env, prefix []string, sub string, args ...string) *running {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), binary, sub), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &running{cmd: cmd, stderr: new(bytes.Buffer), exited: make(chan error, 1)}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		r.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case line := <-lines:
		m := readyLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first line %q is not the ready line", line)
		}
		r.ready = map[string]string{}
		for _, kv := range strings.Fields(m[1]) {
			k, v, _ := strings.Cut(kv, "=")
			r.ready[k] = v
		}
	case err := <-r.exited:
		r.exited <- err
		t.Fatalf("meshtalk run exited before it was ready: %v\n%s", err, r.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("no ready line within 30s\n%s", r.stderr)
	}
	return r
}

// stop sends SIGTERM and waits for the exit; it returns the exit error
// and how long the stop took.
func (r *running) stop(t testing.TB) (error, time.Duration) {
	t.Helper()
	if r.cmd.ProcessState != nil {
		return nil, 0
	}
	start := time.Now()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.exited:
		r.exited <- err
		return err, time.Since(start)
	case <-time.After(15 * time.Second):
		// SIGQUIT: the Go runtime writes every goroutine's stack to
		// stderr and exits, so that the failure shows what it waited
		// for. stderr is read once the process is gone.
		r.cmd.Process.Signal(syscall.SIGQUIT)
		var err error
		select {
		case err = <-r.exited:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			err = <-r.exited
		}
		r.exited <- err
		t.Errorf("meshtalk run did not stop within 15s of SIGTERM\n%s", r.stderr)
		return err, time.Since(start)
	}
}

// exitsAfterStop waits, at most 30 s, for the process to exit by itself
// after `meshtalk stop`, and fails the test unless it exits cleanly.
func (r *running) exitsAfterStop(t testing.TB) {
	t.Helper()
	select {
	case err := <-r.exited:
		r.exited <- err
		if err != nil {
			t.Fatalf("exited with %v after `meshtalk stop`\n%s", err, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still runs 30s after `meshtalk stop`\n%s", r.stderr)
	}
}

// meshtalk runs a command to completion and returns stdout, stderr and the
// exit code.
func meshtalk(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	return meshtalkIn(t, env, nil, args...)
}

// meshtalkIn is meshtalk with a command prefix before the binary.
func meshtalkIn(t testing.TB, env, prefix []string, args ...string) (string, string, int) {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), binary), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("meshtalk %v did not finish within 60s", args)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

func TestRunIDStatus(t *testing.T) {
	home := t.TempDir()
	env := cleanEnv()
	n := startNode(t, env, append([]string{"--home", home}, testListen...)...)
	if !strings.HasPrefix(n.ready["peer_id"], "12D3Koo") || n.ready["listen"] == "" || !strings.HasPrefix(n.ready["api"], "http://127.0.0.1:") {
		t.Fatalf("ready line %v", n.ready)
	}

	out, errOut, code := meshtalk(t, env, "id", "--home", home, "--json")
	if code != 0 {
		t.Fatalf("id --json: exit %d: %s", code, errOut)
	}
	var id map[string]any
	if err := json.Unmarshal([]byte(out), &id); err != nil {
		t.Fatalf("id --json is not JSON: %v\n%s", err, out)
	}
	if id["peer_id"] != n.ready["peer_id"] || id["addrs"] == nil || !strings.HasPrefix(fmt.Sprint(id["friend_code"]), "mt1") {
		t.Fatalf("id --json: %v", id)
	}

	out, _, code = meshtalk(t, env, "id", "--home", home)
	if code != 0 || !strings.Contains(out, fmt.Sprint(id["friend_code"])) || !strings.Contains(out, "█") {
		t.Fatalf("id: exit %d, want the friend code and its QR code:\n%s", code, out)
	}

	out, errOut, code = meshtalk(t, env, "status", "--home", home, "--json")
	if code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, errOut)
	}
	var st struct {
		Version       string   `json:"version"`
		ListenAddrs   []string `json:"listen_addrs"`
		Peers         []any    `json:"peers"`
		UptimeSeconds float64  `json:"uptime_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Version == "" || len(st.ListenAddrs) == 0 || st.Peers == nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	out, _, code = meshtalk(t, env, "status", "--home", home)
	if code != 0 || !strings.Contains(out, "uptime:") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
}

func TestStopIsClean(t *testing.T) {
	home := t.TempDir()
	env := cleanEnv()
	n := startNode(t, env, append([]string{"--home", home}, testListen...)...)
	err, took := n.stop(t)
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, n.stderr)
	}
	if took > 5*time.Second {
		t.Errorf("stop took %v", took)
	}
	if _, err := os.Stat(filepath.Join(home, "api.json")); !os.IsNotExist(err) {
		t.Fatalf("api.json left behind: %v", err)
	}
	// The lock is free and the identity is kept.
	again := startNode(t, env, append([]string{"--home", home}, testListen...)...)
	if again.ready["peer_id"] != n.ready["peer_id"] {
		t.Fatalf("peer ID changed across a restart: %s -> %s", n.ready["peer_id"], again.ready["peer_id"])
	}
}

func TestKilledNodeCanRestart(t *testing.T) {
	home := t.TempDir()
	env := cleanEnv()
	n := startNode(t, env, append([]string{"--home", home}, testListen...)...)
	n.cmd.Process.Kill()
	<-n.exited
	n.exited <- nil
	// api.json is stale now; a client says no node runs.
	_, errOut, code := meshtalk(t, env, "status", "--home", home)
	if code == 0 || !strings.Contains(errOut, "meshtalk run") {
		t.Fatalf("status after kill: exit %d: %s", code, errOut)
	}
	again := startNode(t, env, append([]string{"--home", home}, testListen...)...)
	if again.ready["peer_id"] != n.ready["peer_id"] {
		t.Fatal("peer ID changed after a kill")
	}
	if _, _, code := meshtalk(t, env, "status", "--home", home); code != 0 {
		t.Fatal("status against the restarted node failed")
	}
}

func TestSecondRunOnSameHome(t *testing.T) {
	home := t.TempDir()
	env := cleanEnv()
	first := startNode(t, env, append([]string{"--home", home}, testListen...)...)
	_, errOut, code := meshtalk(t, env, append([]string{"run", "--home", home}, testListen...)...)
	if code == 0 {
		t.Fatal("second run on the same home exited 0")
	}
	pid := fmt.Sprint(first.cmd.Process.Pid)
	if !strings.Contains(errOut, "already running") || !strings.Contains(errOut, pid) {
		t.Fatalf("second run: %q, want 'already running' and pid %s", errOut, pid)
	}
	// The first node is unharmed.
	if _, _, code := meshtalk(t, env, "status", "--home", home); code != 0 {
		t.Fatal("the first node stopped answering")
	}
}

func TestCorruptIdentityKey(t *testing.T) {
	home := t.TempDir()
	key := filepath.Join(home, "identity.key")
	damaged := []byte("-----BEGIN MESHTALK IDENTITY KEY-----\nCAESQ\n")
	if err := os.WriteFile(key, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := meshtalk(t, cleanEnv(), append([]string{"run", "--home", home}, testListen...)...)
	if code == 0 || !strings.Contains(errOut, key) || !strings.Contains(errOut, "damaged") {
		t.Fatalf("run with a damaged key: exit %d: %q", code, errOut)
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(after, damaged) {
		t.Fatal("the damaged identity.key was changed")
	}
}

func TestMalformedConfig(t *testing.T) {
	home := t.TempDir()
	cfg := "[connections]\nlow_water = 10\nhigh_water = \"lots\"\n"
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := meshtalk(t, cleanEnv(), append([]string{"run", "--home", home}, testListen...)...)
	if code == 0 || !strings.Contains(errOut, "config.toml:3") || !strings.Contains(errOut, "connections.high_water") {
		t.Fatalf("run with a bad config: exit %d: %q", code, errOut)
	}
}

func TestClientWithoutNode(t *testing.T) {
	for _, cmd := range []string{"id", "status"} {
		_, errOut, code := meshtalk(t, cleanEnv(), cmd, "--home", t.TempDir())
		if code == 0 || !strings.Contains(errOut, "no meshtalk node is running") || !strings.Contains(errOut, "meshtalk run") {
			t.Fatalf("%s without a node: exit %d: %q", cmd, code, errOut)
		}
	}
}

func TestPassphrase(t *testing.T) {
	home := t.TempDir()
	n := startNode(t, cleanEnv("MESHTALK_PASSPHRASE=open sesame"), append([]string{"--home", home}, testListen...)...)
	n.stop(t)
	key, _ := os.ReadFile(filepath.Join(home, "identity.key"))
	if !bytes.Contains(key, []byte("ENCRYPTED")) {
		t.Fatal("identity.key is not encrypted")
	}

	wrong := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(wrong, []byte("open says me\n"), 0o600)
	_, errOut, code := meshtalk(t, cleanEnv(), append([]string{"run", "--home", home, "--passphrase-file", wrong}, testListen...)...)
	if code == 0 || !strings.Contains(errOut, "wrong passphrase") {
		t.Fatalf("wrong passphrase: exit %d: %q", code, errOut)
	}
	_, errOut, code = meshtalk(t, cleanEnv(), append([]string{"run", "--home", home}, testListen...)...)
	if code == 0 || !strings.Contains(errOut, "passphrase-protected") {
		t.Fatalf("no passphrase: exit %d: %q", code, errOut)
	}

	right := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(right, []byte("open sesame\n"), 0o600)
	again := startNode(t, cleanEnv(), append([]string{"--home", home, "--passphrase-file", right}, testListen...)...)
	if again.ready["peer_id"] != n.ready["peer_id"] {
		t.Fatal("the passphrase-protected identity changed")
	}
}

func TestHomeFromEnvironment(t *testing.T) {
	xdg := t.TempDir()
	n := startNode(t, cleanEnv("XDG_DATA_HOME="+xdg), testListen...)
	if _, err := os.Stat(filepath.Join(xdg, "meshtalk", "identity.key")); err != nil {
		t.Fatalf("XDG_DATA_HOME: %v", err)
	}
	// Client commands find the node through the same default.
	out, _, code := meshtalk(t, cleanEnv("XDG_DATA_HOME="+xdg), "id", "--json")
	if code != 0 || !strings.Contains(out, n.ready["peer_id"]) {
		t.Fatalf("id via XDG_DATA_HOME: exit %d\n%s", code, out)
	}

	mh := filepath.Join(t.TempDir(), "mh")
	startNode(t, cleanEnv("XDG_DATA_HOME="+xdg, "MESHTALK_HOME="+mh), testListen...)
	if _, err := os.Stat(filepath.Join(mh, "identity.key")); err != nil {
		t.Fatalf("MESHTALK_HOME: %v", err)
	}
}

func TestBadFlags(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--api", "0.0.0.0:0"}, "loopback"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--listen", "nonsense"}, "nonsense"},
	} {
		// Flags given later win: each case overrides one loopback default.
		args := append(append([]string{"run", "--home", home}, testListen...), tc.args...)
		_, errOut, code := meshtalk(t, cleanEnv(), args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d: %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestEveryCommandTakesJSON: the README promises --json on every command
// that prints data; the ones that run a node print a log instead.
func TestEveryCommandTakesJSON(t *testing.T) {
	runsANode := map[string]bool{"meshtalk run": true, "meshtalk relay": true}
	var walk func(c *cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		path := c.CommandPath()
		if c.Runnable() && !runsANode[path] && !strings.HasPrefix(path, "meshtalk completion") && c.Name() != "help" {
			checked++
			if c.Flags().Lookup("json") == nil {
				t.Errorf("%s has no --json", path)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(io.Discard, io.Discard))
	if checked < 40 {
		t.Fatalf("checked %d commands: the walk missed the tree", checked)
	}
}

// TestRelayPeersPing: a relay, a node that listens on nothing behind it, and
// a node that pings the hidden one through the relay; status, peers and
// ping show the path.
func TestRelayPeersPing(t *testing.T) {
	env := cleanEnv()
	relayHome, hiddenHome, callerHome := t.TempDir(), t.TempDir(), t.TempDir()
	relay := startRelayIn(t, env, nil, append([]string{"--home", relayHome}, testListen...)...)
	if relay.ready["role"] != "relay" {
		t.Fatalf("relay ready line: %v", relay.ready)
	}
	relayAddr := strings.Split(relay.ready["listen"], ",")[0] + "/p2p/" + relay.ready["peer_id"]
	startNode(t, env, "--home", hiddenHome, "--no-listen", "--no-mdns", "--api", "127.0.0.1:0", "--relay", relayAddr)
	startNode(t, env, append([]string{"--home", callerHome}, testListen...)...)

	var code string
	nodetest.Eventually(t, 30*time.Second, "a reservation on the relay", func() bool {
		out, _, _ := meshtalk(t, env, "status", "--home", hiddenHome, "--json")
		var st struct {
			Reachability string `json:"reachability"`
			Relays       []struct {
				PeerID   string `json:"peer_id"`
				Reserved bool   `json:"reserved"`
			} `json:"relays"`
		}
		json.Unmarshal([]byte(out), &st)
		if len(st.Relays) != 1 || !st.Relays[0].Reserved || st.Relays[0].PeerID != relay.ready["peer_id"] || st.Reachability != "private" {
			return false
		}
		if out := mustRun(t, env, hiddenHome, "status"); strings.Contains(out, "/p2p-circuit") || !strings.Contains(out, "listen:   nothing") {
			t.Fatalf("status of a node that listens on nothing:\n%s", out)
		}
		out, _, _ = meshtalk(t, env, "id", "--home", hiddenHome, "--json")
		var id struct {
			Addrs      []string `json:"addrs"`
			FriendCode string   `json:"friend_code"`
		}
		json.Unmarshal([]byte(out), &id)
		code = id.FriendCode
		return len(id.Addrs) > 0 && strings.Contains(id.Addrs[0], "/p2p-circuit")
	})

	out, errOut, exit := meshtalk(t, env, "ping", "--home", callerHome, "--count", "2", "--interval", "10ms", "--json", code)
	if exit != 0 {
		t.Fatalf("ping through the relay: exit %d: %s", exit, errOut)
	}
	var rounds []struct {
		Seq  int `json:"seq"`
		RTT  int `json:"rtt_ns"`
		Path struct {
			Kind  string `json:"path"`
			Relay string `json:"relay"`
		} `json:"path"`
	}
	if err := json.Unmarshal([]byte(out), &rounds); err != nil || len(rounds) != 2 {
		t.Fatalf("ping --json: %v\n%s", err, out)
	}
	for _, r := range rounds {
		if r.RTT <= 0 || r.Path.Kind != "relayed" || r.Path.Relay != relay.ready["peer_id"] {
			t.Fatalf("round trip %+v, want relayed via %s", r, relay.ready["peer_id"])
		}
	}
	out, _, exit = meshtalk(t, env, "ping", "--home", callerHome, "--count", "1", code)
	if exit != 0 || !strings.Contains(out, "path=relayed via "+relay.ready["peer_id"]) {
		t.Fatalf("ping: exit %d\n%s", exit, out)
	}

	out, _, exit = meshtalk(t, env, "peers", "--home", hiddenHome, "--json")
	var peers []struct {
		PeerID string `json:"peer_id"`
		Path   string `json:"path"`
	}
	if err := json.Unmarshal([]byte(out), &peers); exit != 0 || err != nil {
		t.Fatalf("peers --json: exit %d: %v\n%s", exit, err, out)
	}
	paths := map[string]string{}
	for _, p := range peers {
		paths[p.PeerID] = p.Path
	}
	if paths[relay.ready["peer_id"]] != "direct" {
		t.Fatalf("peers: the relay's path is %q, want direct: %v", paths[relay.ready["peer_id"]], peers)
	}
	if !slices.ContainsFunc(peers, func(p struct {
		PeerID string `json:"peer_id"`
		Path   string `json:"path"`
	}) bool {
		return p.Path == "relayed"
	}) {
		t.Fatalf("peers: no relayed connection: %v", peers)
	}
	out, _, _ = meshtalk(t, env, "peers", "--home", hiddenHome)
	if !strings.Contains(out, "relayed via "+relay.ready["peer_id"]) {
		t.Fatalf("peers:\n%s", out)
	}

	// The relay answers id, status and peers like a personal node.
	var st struct {
		Role  string `json:"role"`
		Peers []struct {
			PeerID string `json:"peer_id"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, env, relayHome, "status", "--json")), &st); err != nil || st.Role != "relay" || len(st.Peers) < 2 {
		t.Fatalf("relay status: %+v %v", st, err)
	}
	if out := mustRun(t, env, relayHome, "peers", "--json"); !strings.Contains(out, hiddenID(t, env, hiddenHome)) {
		t.Fatalf("relay peers do not list the hidden node:\n%s", out)
	}
}

func hiddenID(t testing.TB, env []string, home string) string {
	var id struct {
		PeerID string `json:"peer_id"`
	}
	json.Unmarshal([]byte(mustRun(t, env, home, "id", "--json")), &id)
	return id.PeerID
}

// TestRelayAnnounce: --announce replaces the addresses a relay tells.
func TestRelayAnnounce(t *testing.T) {
	env := cleanEnv()
	home := t.TempDir()
	const public = "/ip4/203.0.113.9/udp/4001/quic-v1" // documentation range: never dialled
	startRelayIn(t, env, nil, append([]string{"--home", home, "--announce", public}, testListen...)...)
	var id struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
	}
	json.Unmarshal([]byte(mustRun(t, env, home, "id", "--json")), &id)
	// A relay's addresses end in its /p2p/ part, ready for --relay.
	if want := public + "/p2p/" + id.PeerID; len(id.Addrs) != 1 || id.Addrs[0] != want {
		t.Fatalf("announced %v, want only %s", id.Addrs, want)
	}
}

func TestPingNoRoute(t *testing.T) {
	env := cleanEnv()
	home := t.TempDir()
	startNode(t, env, append([]string{"--home", home}, testListen...)...)
	// A peer ID nobody runs, at a loopback port nobody listens on.
	const nobody = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGRUVh2N4mVVHMzQ1RcXsRAHNxCd29QEEHmBYGrD4wCGG"
	start := time.Now()
	_, errOut, code := meshtalk(t, env, "ping", "--home", home, "--timeout", "3s", nobody)
	if code == 0 || !strings.Contains(errOut, "no route") {
		t.Fatalf("ping to nobody: exit %d: %q", code, errOut)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("the no-route error took %v", took)
	}
	_, errOut, code = meshtalk(t, env, "ping", "--home", home, "not-a-peer")
	if code == 0 || !strings.Contains(errOut, "is no contact of yours") {
		t.Fatalf("ping not-a-peer: exit %d: %q", code, errOut)
	}
}
