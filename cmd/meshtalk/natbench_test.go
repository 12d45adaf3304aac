package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// BenchmarkNATTransfer: a 100 MiB file from a node behind a symmetric NAT
// to a friend behind a cone NAT, who fetches it; "relayed": the friend's
// router maps no ports, so every byte crosses the relay; "direct": it
// maps them (UPnP, the lab router's), and the two are connected directly
// before the transfer starts. It reports MB/s (MiB moved per second of
// `file get`, over all the runs). It needs root and iptables, like the namespace tests.
func BenchmarkNATTransfer(b *testing.B) {
	const size = 100 << 20
	for _, mode := range []string{"relayed", "direct"} {
		b.Run(mode, func(b *testing.B) {
			l := newLab(b, "iptables")
			pub := l.publicNet()
			env := cleanEnv()
			relayAddr := startLabRelay(b, l, env, pub)
			kb := coneNAT
			if mode == "direct" {
				kb = coneNAT.withMapping()
			}
			a := l.behindNAT(pub, "a", symmetricNAT, "203.0.113.40", "192.0.2")
			bns := l.behindNAT(pub, "b", kb, "203.0.113.41", "198.51.100")
			listen := []string{"--listen", "/ip4/0.0.0.0/udp/4747/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4747", "--api", "127.0.0.1:0", "--no-mdns", "--relay", relayAddr}
			homeA, homeB := filepath.Join(b.TempDir(), "a"), filepath.Join(b.TempDir(), "b")
			writeConfig(b, homeA, labNodeConfig)
			writeConfig(b, homeB, labNodeConfig)
			startNodeIn(b, env, in(a), append([]string{"--home", homeA}, listen...)...)
			nb := startNodeIn(b, env, in(bns), append([]string{"--home", homeB}, listen...)...)
			mtA := func(args ...string) string { b.Helper(); return mustRunIn(b, env, in(a), homeA, args...) }
			mtB := func(args ...string) string { b.Helper(); return mustRunIn(b, env, in(bns), homeB, args...) }
			if mode == "direct" {
				nodetest.Eventually(b, 30*time.Second, "the router's port mapping", func() bool { return len(labStatus(b, env, bns, homeB).PortMap.Mapped) > 0 })
			}
			mtA("friend", "add", relayedFriendCode(b, env, bns, homeB))
			var pending []map[string]any
			nodetest.Eventually(b, 30*time.Second, "the friend request", func() bool {
				json.Unmarshal([]byte(mtB("friend", "list", "--pending", "--json")), &pending)
				return len(pending) == 1
			})
			mtB("friend", "accept", pending[0]["peer_id"].(string))
			if mode == "direct" {
				nodetest.Eventually(b, 30*time.Second, "a direct connection", func() bool {
					return directTo(b, env, in(a), homeA, nb.ready["peer_id"])
				})
			}
			data := make([]byte, size)
			rand.Read(data)
			fetched := map[string]bool{}
			var moved int64
			var took time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				// A new file each time: the same bytes would be the same
				// file, fetched already.
				data[0], data[1] = byte(i), byte(i>>8)
				src := filepath.Join(b.TempDir(), "big.bin")
				if err := os.WriteFile(src, data, 0o600); err != nil {
					b.Fatal(err)
				}
				mtA("file", "send", nb.ready["peer_id"], src)
				var id string
				nodetest.Eventually(b, 30*time.Second, "the offer", func() bool {
					var files []map[string]any
					json.Unmarshal([]byte(mtB("file", "list", "--json")), &files)
					for _, f := range files {
						if f["state"] == "available" && !fetched[f["id"].(string)] {
							id = f["id"].(string)
						}
					}
					return id != ""
				})
				fetched[id] = true
				out := b.TempDir()
				b.StartTimer()
				start := time.Now()
				got := strings.TrimSpace(mtB("file", "get", id[:12], "--out", out))
				took += time.Since(start)
				moved += size
				b.StopTimer()
				if st, err := os.Stat(got); err != nil || st.Size() != size {
					b.Fatalf("fetched %s: %v", got, err)
				}
				os.RemoveAll(out)
				b.StartTimer()
			}
			b.ReportMetric(float64(moved)/(1<<20)/took.Seconds(), "MB/s")
			b.StopTimer()
			if direct := directTo(b, env, in(a), homeA, nb.ready["peer_id"]); direct != (mode == "direct") {
				b.Fatalf("%s: a direct connection: %t", mode, direct)
			}
		})
	}
}

// directTo says whether the node on home (in a namespace) has a direct
// or hole-punched connection to peer.
func directTo(t testing.TB, env, prefix []string, home, peer string) bool {
	t.Helper()
	out, _, _ := meshtalkIn(t, env, prefix, "peers", "--home", home, "--json")
	var conns []struct {
		PeerID string `json:"peer_id"`
		Path   string `json:"path"`
	}
	json.Unmarshal([]byte(out), &conns)
	for _, c := range conns {
		if c.PeerID == peer && c.Path != "relayed" {
			return true
		}
	}
	return false
}

// mustRunIn is mustRun inside a namespace (prefix).
func mustRunIn(t testing.TB, env, prefix []string, home string, args ...string) string {
	t.Helper()
	out, errOut, code := meshtalkIn(t, env, prefix, append(args, "--home", home)...)
	if code != 0 {
		t.Fatalf("meshtalk %v: exit %d: %s", args, code, errOut)
	}
	return out
}

// TestDirectWinsMidTransfer: a file moves from a node behind a symmetric
// NAT to a friend behind a cone NAT whose router maps ports but, at
// first, refuses what comes through them, so the two start relayed (the
// relay paced at 8 MB/s). Once the download runs, the router lets the
// mapped ports through: the nodes connect directly, the download moves
// onto the direct connection at its next range (a request asks for 32
// chunks of 1 MiB), and it ends intact with only part of the file having
// crossed the relay; peers shows both connections.
func TestDirectWinsMidTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("a namespace lab and a 96 MiB transfer; CI runs it (no -short)")
	}
	const size = 96 << 20 // three ranges; two go at once
	l := newLab(t, "iptables", "tc")
	pub := l.publicNet()
	// The relay's own traffic leaves through br0; what the bridge
	// forwards between routers does not.
	l.sh(in(pub, "tc", "qdisc", "add", "dev", "br0", "root", "tbf", "rate", "64mbit", "burst", "64kb", "latency", "200ms")...)
	// What A sends the relay: the file's bytes, as long as they are relayed.
	const wanA = "203.0.113.50"
	l.sh(in(pub, "iptables", "-A", "INPUT", "-s", wanA)...)
	env := cleanEnv()
	relayAddr := startLabRelay(t, l, env, pub)
	a := l.behindNAT(pub, "a", symmetricNAT, wanA, "192.0.2")
	bns := l.behindNAT(pub, "b", coneNAT.withMapping(), "203.0.113.51", "198.51.100")
	routerB := l.prefix + "-rb"
	block := []string{"FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "DNAT", "-j", "REJECT"}
	l.sh(append(in(routerB, "iptables", "-I"), block...)...)
	listen := []string{"--listen", "/ip4/0.0.0.0/udp/4747/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4747", "--api", "127.0.0.1:0", "--no-mdns", "--relay", relayAddr}
	homeA, homeB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeConfig(t, homeA, labNodeConfig)
	writeConfig(t, homeB, labNodeConfig)
	startNodeIn(t, env, in(a), append([]string{"--home", homeA}, listen...)...)
	nb := startNodeIn(t, env, in(bns), append([]string{"--home", homeB}, listen...)...)
	mtA := func(args ...string) string { t.Helper(); return mustRunIn(t, env, in(a), homeA, args...) }
	mtB := func(args ...string) string { t.Helper(); return mustRunIn(t, env, in(bns), homeB, args...) }
	nodetest.Eventually(t, 30*time.Second, "the router's port mapping", func() bool { return len(labStatus(t, env, bns, homeB).PortMap.Mapped) > 0 })
	mtA("friend", "add", relayedFriendCode(t, env, bns, homeB))
	var pending []map[string]any
	nodetest.Eventually(t, 30*time.Second, "the friend request", func() bool {
		json.Unmarshal([]byte(mtB("friend", "list", "--pending", "--json")), &pending)
		return len(pending) == 1
	})
	mtB("friend", "accept", pending[0]["peer_id"].(string))

	src := filepath.Join(t.TempDir(), "big.bin")
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mtA("file", "send", nb.ready["peer_id"], src)
	var id string
	nodetest.Eventually(t, 30*time.Second, "the offer", func() bool {
		var files []map[string]any
		json.Unmarshal([]byte(mtB("file", "list", "--json")), &files)
		for _, f := range files {
			if f["state"] == "available" {
				id = f["id"].(string)
			}
		}
		return id != ""
	})
	if directTo(t, env, in(a), homeA, nb.ready["peer_id"]) {
		t.Fatal("direct before the router let the mapped ports through")
	}
	out := t.TempDir()
	start := time.Now()
	mtB("file", "get", id[:12], "--out", out, "--no-wait")
	l.sh(append(in(routerB, "iptables", "-D"), block...)...)
	var path string
	nodetest.Eventually(t, 60*time.Second, "the download done", func() bool {
		var files []map[string]any
		json.Unmarshal([]byte(mtB("file", "list", "--json")), &files)
		for _, f := range files {
			if f["id"] == id && f["state"] == "done" {
				path, _ = f["path"].(string)
				return true
			}
		}
		return false
	})
	took := time.Since(start)
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file arrived damaged or not at all: %v", err)
	}
	peers, _, _ := meshtalkIn(t, env, in(bns), "peers", "--home", homeB)
	relayed := relayBytesFrom(t, pub, wanA)
	t.Logf("%d MiB in %v, %.1f MiB of it through the relay; B's peers:\n%s", size>>20, took.Round(time.Millisecond), float64(relayed)/(1<<20), peers)
	if !directTo(t, env, in(a), homeA, nb.ready["peer_id"]) {
		t.Fatal("no direct connection after the router let the mapped ports through")
	}
	if relayed > size*9/10 {
		t.Fatalf("%d of %d bytes crossed the relay: the download stayed on it", relayed, size)
	}
}

// relayBytesFrom reads the byte counter of the relay's INPUT rule for
// source src.
func relayBytesFrom(t testing.TB, pub, src string) int64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", pub, "iptables", "-L", "INPUT", "-v", "-x", "-n").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && slices.Contains(f, src) {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no counter for %s:\n%s", src, out)
	return 0
}
