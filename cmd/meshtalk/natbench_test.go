package main

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
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
// `file get`). It needs root and iptables, like the namespace tests.
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
			src := filepath.Join(b.TempDir(), "big.bin")
			data := make([]byte, size)
			rand.Read(data)
			if err := os.WriteFile(src, data, 0o600); err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				mtA("file", "send", nb.ready["peer_id"], src)
				var files []map[string]any
				nodetest.Eventually(b, 30*time.Second, "the offer", func() bool {
					json.Unmarshal([]byte(mtB("file", "list", "--json")), &files)
					for _, f := range files {
						if f["state"] == "available" {
							return true
						}
					}
					return false
				})
				var id string
				for _, f := range files {
					if f["state"] == "available" {
						id = f["id"].(string)
					}
				}
				out := b.TempDir()
				b.StartTimer()
				start := time.Now()
				got := strings.TrimSpace(mtB("file", "get", id[:12], "--out", out))
				took := time.Since(start)
				b.StopTimer()
				if st, err := os.Stat(got); err != nil || st.Size() != size {
					b.Fatalf("fetched %s: %v", got, err)
				}
				os.RemoveAll(out)
				b.ReportMetric(float64(size)/(1<<20)/took.Seconds(), "MB/s")
				b.StartTimer()
			}
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
