package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// lab builds network namespaces for tests that need more than loopback: a
// LAN for mDNS, NAT routers for hole punching. Every address in it comes
// from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24), which are routed nowhere else, and every namespace is
// deleted when the test ends, also on failure.
type lab struct {
	t      testing.TB
	prefix string
	made   []string
}

// newLab returns a lab, or skips the test saying why it cannot make one.
func newLab(t testing.TB, tools ...string) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CI runs as root)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on this machine (Debian: apt-get install iproute2 iptables)", tool)
		}
	}
	l := &lab{t: t, prefix: fmt.Sprintf("mt%d", os.Getpid()%100000)}
	probe := l.prefix + "-probe"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("cannot make network namespaces here: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "del", probe).Run()
	t.Cleanup(l.cleanup)
	return l
}

// ns makes a namespace with its loopback up and returns its name.
func (l *lab) ns(name string) string {
	l.t.Helper()
	full := l.prefix + "-" + name
	l.sh("ip", "netns", "add", full)
	l.made = append(l.made, full)
	l.sh("ip", "-n", full, "link", "set", "lo", "up")
	return full
}

// link joins two namespaces with a veth pair and gives each end an address
// (CIDR) unless it is empty.
func (l *lab) link(nsA, ifA, addrA, nsB, ifB, addrB string) {
	l.t.Helper()
	l.sh("ip", "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	for _, end := range [][3]string{{nsA, ifA, addrA}, {nsB, ifB, addrB}} {
		if end[2] != "" {
			l.sh("ip", "-n", end[0], "addr", "add", end[2], "dev", end[1])
		}
		l.sh("ip", "-n", end[0], "link", "set", end[1], "up")
	}
}

// sh runs a command and fails the test if it fails.
func (l *lab) sh(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// in returns the command line that runs args inside namespace ns.
func in(ns string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

func (l *lab) cleanup() {
	for _, ns := range slices.Backward(l.made) {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("delete namespace %s: %v: %s", ns, err, out)
		}
	}
}

// writeConfig writes a config.toml into a fresh home.
func writeConfig(t testing.TB, home, text string) {
	t.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMDNSOnLAN: two nodes on one LAN (two namespaces joined by a veth)
// find each other by mDNS: one pings the other by peer ID alone, with no
// DHT, relay or address given.
func TestMDNSOnLAN(t *testing.T) {
	l := newLab(t)
	a, b := l.ns("lan-a"), l.ns("lan-b")
	l.link(a, "eth0", "192.0.2.10/24", b, "eth0", "192.0.2.20/24")
	// mDNS sends to 224.0.0.251; the route makes the veth its way out.
	l.sh("ip", "-n", a, "route", "add", "224.0.0.0/4", "dev", "eth0")
	l.sh("ip", "-n", b, "route", "add", "224.0.0.0/4", "dev", "eth0")
	env := cleanEnv()
	lanListen := []string{"--listen", "/ip4/0.0.0.0/udp/4747/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4747", "--api", "127.0.0.1:0"}
	homeA, homeB := t.TempDir(), t.TempDir()
	startNodeIn(t, env, in(a), append([]string{"--home", homeA}, lanListen...)...)
	nb := startNodeIn(t, env, in(b), append([]string{"--home", homeB}, lanListen...)...)
	nodetest.Eventually(t, 30*time.Second, "ping by peer ID over the LAN", func() bool {
		out, _, code := meshtalkIn(t, env, in(a), "ping", "--home", homeA, "--count", "1", "--timeout", "2s", nb.ready["peer_id"])
		return code == 0 && strings.Contains(out, "path=direct")
	})
}

// TestHolePunchThroughNAT: a relay on a "public" network and two nodes,
// each behind its own NAT (iptables MASQUERADE). They reach each other
// through the relay first; then hole punching upgrades the connection to
// a direct one. Ten tries; the figures go to the test log.
func TestHolePunchThroughNAT(t *testing.T) {
	l := newLab(t, "iptables")
	pub, natA, natB, a, b := l.ns("pub"), l.ns("nat-a"), l.ns("nat-b"), l.ns("a"), l.ns("b")
	// The public network: a bridge in pub, the relay on it, both NATs' WAN
	// ports plugged in.
	l.sh("ip", "-n", pub, "link", "add", "br0", "type", "bridge")
	l.sh("ip", "-n", pub, "addr", "add", "203.0.113.1/24", "dev", "br0")
	l.sh("ip", "-n", pub, "link", "set", "br0", "up")
	for _, nat := range []struct{ ns, port, wan string }{{natA, "pa", "203.0.113.2/24"}, {natB, "pb", "203.0.113.3/24"}} {
		l.link(nat.ns, "wan", nat.wan, pub, nat.port, "")
		l.sh("ip", "-n", pub, "link", "set", nat.port, "master", "br0")
		l.sh(in(nat.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")...)
		l.sh(in(nat.ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")...)
		// Like a home router, drop what arrives unasked. Dropped before
		// conntrack confirms it, a punch packet that comes early leaves no
		// entry behind that would make the NAT pick another port for the
		// host's own punch.
		l.sh(in(nat.ns, "iptables", "-A", "INPUT", "-i", "wan", "-j", "DROP")...)
	}
	// Each LAN: one host behind its NAT.
	l.link(natA, "lan", "192.0.2.1/24", a, "eth0", "192.0.2.2/24")
	l.sh("ip", "-n", a, "route", "add", "default", "via", "192.0.2.1")
	l.link(natB, "lan", "198.51.100.1/24", b, "eth0", "198.51.100.2/24")
	l.sh("ip", "-n", b, "route", "add", "default", "via", "198.51.100.1")

	env := cleanEnv()
	relayHome := t.TempDir()
	writeConfig(t, relayHome, "[discovery]\npublic_ranges = [\"203.0.113.0/24\"]\n")
	relay := startRelayIn(t, env, in(pub), "--home", relayHome, "--listen", "/ip4/203.0.113.1/udp/4001/quic-v1", "--listen", "/ip4/203.0.113.1/tcp/4001", "--api", "127.0.0.1:0")
	relayAddr := "/ip4/203.0.113.1/udp/4001/quic-v1/p2p/" + relay.ready["peer_id"]
	// Behind NAT: say so (no wait for AutoNAT), and let the lab's public
	// range count as public.
	natConfig := "[discovery]\nreachability = \"private\"\npublic_ranges = [\"203.0.113.0/24\"]\n"
	natListen := []string{"--listen", "/ip4/0.0.0.0/udp/4747/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4747", "--api", "127.0.0.1:0", "--no-mdns", "--relay", relayAddr}

	const tries = 10
	var toRelayed, toDirect []time.Duration
	upgraded := 0
	for try := 1; try <= tries; try++ {
		homeA, homeB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
		writeConfig(t, homeA, natConfig)
		writeConfig(t, homeB, natConfig)
		na := startNodeIn(t, env, in(a), append([]string{"--home", homeA}, natListen...)...)
		nb := startNodeIn(t, env, in(b), append([]string{"--home", homeB}, natListen...)...)
		// B's friend code, once it carries B's relayed address.
		var code string
		nodetest.Eventually(t, 30*time.Second, "B's relayed address", func() bool {
			out, _, _ := meshtalkIn(t, env, in(b), "id", "--home", homeB, "--json")
			var id struct {
				Addrs      []string `json:"addrs"`
				FriendCode string   `json:"friend_code"`
			}
			json.Unmarshal([]byte(out), &id)
			code = id.FriendCode
			return slices.ContainsFunc(id.Addrs, func(a string) bool { return strings.Contains(a, "/p2p-circuit") })
		})
		// go-libp2p answers hole punching only once it knows a public
		// address of its own, which it polls for; wait for both ends.
		for _, n := range []struct{ ns, home string }{{a, homeA}, {b, homeB}} {
			nodetest.Eventually(t, 30*time.Second, "hole punching ready", func() bool {
				out, _, _ := meshtalkIn(t, env, in(n.ns), "status", "--home", n.home, "--json")
				var st struct {
					Ready bool `json:"hole_punch_ready"`
				}
				json.Unmarshal([]byte(out), &st)
				return st.Ready
			})
		}
		relayed, direct := pingUntilDirect(t, env, in(a), homeA, code)
		if relayed == 0 {
			t.Fatalf("try %d: no round trip through the relay", try)
		}
		toRelayed = append(toRelayed, relayed)
		if direct > 0 {
			upgraded++
			toDirect = append(toDirect, direct)
		}
		t.Logf("try %d: relayed after %v, hole-punched after %v", try, relayed.Round(time.Millisecond), direct.Round(time.Millisecond))
		na.stop(t)
		nb.stop(t)
	}
	t.Logf("FIGURES: %d/%d tries upgraded; median time to the first relayed round trip %v, to the first hole-punched one %v",
		upgraded, tries, medianDuration(toRelayed), medianDuration(toDirect))
	// Hole punching through two port-preserving NATs on one machine has no
	// excuse to fail; allow one unlucky try.
	if upgraded < tries-1 {
		t.Fatalf("only %d of %d tries upgraded to a direct connection", upgraded, tries)
	}
}

// pingUntilDirect pings code from inside a namespace and returns when the
// first round trip (relayed, through the lab's relay) and the first
// direct one (hole-punched) were printed, measured from the start of the
// ping command (0: never).
func pingUntilDirect(t testing.TB, env, prefix []string, home, code string) (relayed, direct time.Duration) {
	t.Helper()
	relayed, _, direct, path := pingUntilDirectPath(t, env, prefix, home, code, 10*time.Second)
	if relayed == 0 {
		t.Logf("ping printed no round trip")
	}
	if path != "hole-punched" {
		return relayed, 0 // direct, but not by the punch this test is about
	}
	return relayed, direct
}

func medianDuration(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
