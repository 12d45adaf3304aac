package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// natKind is how a lab router translates its LAN's connections.
type natKind struct {
	name string
	// symmetric: a new external port per destination (MASQUERADE
	// --random-fully); else port-preserving ("cone", plain MASQUERADE).
	// Both drop what arrives unasked, like a home router.
	symmetric bool
	// mapping: the router maps ports on request (UPnP IGD, NAT-PMP) and
	// forwards what it maps.
	mapping bool
}

var (
	coneNAT      = natKind{name: "cone"}
	symmetricNAT = natKind{name: "symmetric", symmetric: true}
)

// withMapping is k on a router that maps ports on request.
func (k natKind) withMapping() natKind {
	k.name += "+map"
	k.mapping = true
	return k
}

// The lab's public network: a bridge in its own namespace with the relay
// on 203.0.113.1; routers' WAN ports plug into it.
const labRelayIP = "203.0.113.1"

// publicNet makes the public network's namespace and bridge.
func (l *lab) publicNet() string {
	l.t.Helper()
	pub := l.ns("pub")
	l.sh("ip", "-n", pub, "link", "add", "br0", "type", "bridge")
	l.sh("ip", "-n", pub, "addr", "add", labRelayIP+"/24", "dev", "br0")
	l.sh("ip", "-n", pub, "link", "set", "br0", "up")
	return pub
}

// behindNAT makes a router of kind with WAN address wanIP on the public
// network and a host behind it on lan (the first three octets of a /24:
// the router is .1, the host .2), and returns the host's namespace. A
// mapping router runs the lab's port-mapping service (UPnP IGD, NAT-PMP).
func (l *lab) behindNAT(pub, name string, kind natKind, wanIP, lan string) string {
	l.t.Helper()
	router, host := l.ns("r"+name), l.ns("h"+name)
	l.link(router, "wan", wanIP+"/24", pub, "p"+name, "")
	l.sh("ip", "-n", pub, "link", "set", "p"+name, "master", "br0")
	l.sh(in(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")...)
	masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if kind.symmetric {
		masq = append(masq, "--random-fully")
	}
	l.sh(in(router, masq...)...)
	// Dropped before conntrack confirms it, a punch packet that comes
	// early leaves no entry behind that would make the NAT pick another
	// port for the host's own punch. Forwarded (mapped) ports pass
	// through FORWARD, not INPUT.
	l.sh(in(router, "iptables", "-A", "INPUT", "-i", "wan", "-j", "DROP")...)
	l.link(router, "lan", lan+".1/24", host, "eth0", lan+".2/24")
	// The default route is how the node's NAT-PMP client finds the router.
	l.sh("ip", "-n", host, "route", "add", "default", "via", lan+".1")
	if kind.mapping {
		startLabRouter(l.t, router, lan+".1", wanIP, "wan", "lan")
	}
	return host
}

// natRow is one pair of the matrix.
type natRow struct {
	a, b       natKind
	mappedIn   time.Duration // node start to the router's mapping (0: no mapping router)
	reached    bool
	first      time.Duration // ping start to the first round trip
	firstPath  string
	direct     time.Duration // ping start to the first direct round trip (0: never)
	directPath string
}

// TestNATMatrix: two nodes behind every pair of NAT kinds, with a relay
// on the public network: cone/cone, cone/symmetric, symmetric/symmetric,
// and each with a router on one side that maps ports (NAT-PMP, the lab's
// responder; the nodes' client is go-libp2p's own). A pings B by friend
// code until a round trip takes a direct path or 20s pass. Every pair
// must be reached (relayed at worst); cone/cone and every pair with a
// mapping router must go direct. The matrix goes to the test log.
func TestNATMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the NAT matrix takes a minute or two; CI runs it (no -short)")
	}
	l := newLab(t, "iptables")
	pub := l.publicNet()
	env := cleanEnv()
	relayAddr := startLabRelay(t, l, env, pub)

	pairs := []struct {
		a, b       natKind
		wantDirect bool
	}{
		{coneNAT, coneNAT, true},
		{coneNAT, symmetricNAT, false},
		{symmetricNAT, symmetricNAT, false},
		{coneNAT.withMapping(), coneNAT, true},
		{symmetricNAT, coneNAT.withMapping(), true},
		{symmetricNAT.withMapping(), symmetricNAT, true},
	}
	var rows []natRow
	for i, p := range pairs {
		row := runNATPair(t, l, env, pub, relayAddr, i, p.a, p.b)
		t.Logf("%s / %s: reached=%t first=%v (%s) direct=%v (%s) mapped in %v", p.a.name, p.b.name,
			row.reached, row.first.Round(time.Millisecond), row.firstPath, row.direct.Round(time.Millisecond), row.directPath, row.mappedIn.Round(time.Millisecond))
		rows = append(rows, row)
	}
	t.Log("NAT matrix (A pings B by friend code; times from the ping's start):\n" + natTable(rows))
	for i, p := range pairs {
		r := rows[i]
		if !r.reached {
			t.Errorf("%s / %s: not reached at all", p.a.name, p.b.name)
		}
		if p.wantDirect && r.direct == 0 {
			t.Errorf("%s / %s: stayed relayed", p.a.name, p.b.name)
		}
	}
}

// natTable prints the matrix as a Markdown table.
func natTable(rows []natRow) string {
	var b strings.Builder
	b.WriteString("| A | B | reached | first round trip | direct | time to direct |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		reached, direct, toDirect := "no", "no, relayed", "-"
		if r.reached {
			reached = "yes (" + r.firstPath + ")"
		}
		if r.direct > 0 {
			direct, toDirect = "yes ("+r.directPath+")", r.direct.Round(time.Millisecond).String()
		}
		first := "-"
		if r.reached {
			first = r.first.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.a.name, r.b.name, reached, first, direct, toDirect)
	}
	return b.String()
}

// startLabRelay starts the relay on the public network and returns its
// QUIC and TCP addresses (each ending in /p2p/<relay ID>).
func startLabRelay(t testing.TB, l *lab, env []string, pub string) (quicAddr string) {
	t.Helper()
	return startLabRelayWith(t, l, env, pub, "")
}

// startLabRelayWith is startLabRelay with more of config.toml (sections
// other than [discovery]).
func startLabRelayWith(t testing.TB, l *lab, env []string, pub, config string) (quicAddr string) {
	t.Helper()
	relayHome := t.TempDir()
	writeConfig(t, relayHome, "[discovery]\npublic_ranges = [\"203.0.113.0/24\"]\n"+config)
	relay := startRelayIn(t, env, in(pub), "--home", relayHome, "--listen", "/ip4/"+labRelayIP+"/udp/4001/quic-v1", "--listen", "/ip4/"+labRelayIP+"/tcp/4001", "--api", "127.0.0.1:0")
	return "/ip4/" + labRelayIP + "/udp/4001/quic-v1/p2p/" + relay.ready["peer_id"]
}

// labNodeConfig: behind NAT, say so (no wait for AutoNAT), and let the
// lab's public range count as public.
const labNodeConfig = "[discovery]\nreachability = \"private\"\npublic_ranges = [\"203.0.113.0/24\"]\n"

// runNATPair builds pair i of the matrix, starts a node behind each
// router, waits until B is reachable through the relay (and mapped, on a
// mapping router), then measures A's pings to B.
func runNATPair(t testing.TB, l *lab, env []string, pub, relayAddr string, i int, ka, kb natKind) natRow {
	t.Helper()
	row := natRow{a: ka, b: kb}
	a := l.behindNAT(pub, fmt.Sprintf("%da", i), ka, fmt.Sprintf("203.0.113.%d", 10+2*i), "192.0.2")
	b := l.behindNAT(pub, fmt.Sprintf("%db", i), kb, fmt.Sprintf("203.0.113.%d", 11+2*i), "198.51.100")
	listen := []string{"--listen", "/ip4/0.0.0.0/udp/4747/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4747", "--api", "127.0.0.1:0", "--no-mdns", "--relay", relayAddr}
	homeA, homeB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeConfig(t, homeA, labNodeConfig)
	writeConfig(t, homeB, labNodeConfig)
	started := time.Now()
	na := startNodeIn(t, env, in(a), append([]string{"--home", homeA}, listen...)...)
	nb := startNodeIn(t, env, in(b), append([]string{"--home", homeB}, listen...)...)
	defer na.stop(t)
	defer nb.stop(t)
	code := relayedFriendCode(t, env, b, homeB)
	for _, n := range []struct {
		ns, home string
		kind     natKind
	}{{a, homeA, ka}, {b, homeB, kb}} {
		if n.kind.mapping {
			nodetest.Eventually(t, 30*time.Second, "the router's port mapping in status", func() bool {
				return len(labStatus(t, env, n.ns, n.home).PortMap.Mapped) > 0
			})
			row.mappedIn = time.Since(started)
		}
	}
	// go-libp2p answers hole punching once it knows a public address of
	// its own; give both ends the time the hole-punch test gives them.
	// Behind a symmetric NAT that address may be no use, so this is a
	// bounded wait, not a condition.
	for _, n := range []struct{ ns, home string }{{a, homeA}, {b, homeB}} {
		for deadline := time.Now().Add(15 * time.Second); !labStatus(t, env, n.ns, n.home).HolePunchReady && time.Now().Before(deadline); {
			<-time.After(200 * time.Millisecond)
		}
	}
	row.first, row.firstPath, row.direct, row.directPath = pingUntilDirectPath(t, env, in(a), homeA, code, 20*time.Second)
	row.reached = row.first > 0
	if row.direct > 0 {
		out, _, _ := meshtalkIn(t, env, in(a), "peers", "--home", homeA)
		t.Logf("%s / %s: A's peers once direct:\n%s", ka.name, kb.name, out)
	}
	return row
}

// labStatusJSON is what the lab reads of `meshtalk status --json`.
type labStatusJSON struct {
	HolePunchReady bool `json:"hole_punch_ready"`
	PortMap        struct {
		Router string `json:"router"`
		Mapped []struct {
			External string `json:"external"`
		} `json:"mapped"`
	} `json:"port_map"`
}

func labStatus(t testing.TB, env []string, ns, home string) labStatusJSON {
	t.Helper()
	out, _, _ := meshtalkIn(t, env, in(ns), "status", "--home", home, "--json")
	var st labStatusJSON
	json.Unmarshal([]byte(out), &st)
	return st
}

// relayedFriendCode waits until the node in ns announces an address
// through its relay and returns its friend code then.
func relayedFriendCode(t testing.TB, env []string, ns, home string) string {
	t.Helper()
	var code string
	nodetest.Eventually(t, 30*time.Second, "a relayed address", func() bool {
		out, _, _ := meshtalkIn(t, env, in(ns), "id", "--home", home, "--json")
		var id struct {
			Addrs      []string `json:"addrs"`
			FriendCode string   `json:"friend_code"`
		}
		json.Unmarshal([]byte(out), &id)
		code = id.FriendCode
		return slices.ContainsFunc(id.Addrs, func(a string) bool { return strings.Contains(a, "/p2p-circuit") })
	})
	return code
}

// pingUntilDirectPath pings code from inside a namespace, 20 a second,
// until a round trip takes a direct path (direct or hole-punched) or
// giveUp passes. It returns the times, from the start of the ping
// command, of the first round trip on any path and of the first direct
// one (0: none), with their paths.
func pingUntilDirectPath(t testing.TB, env, prefix []string, home, code string, giveUp time.Duration) (first time.Duration, firstPath string, direct time.Duration, directPath string) {
	t.Helper()
	// A ping every 50 ms, for as long as giveUp allows.
	count := strconv.Itoa(int(giveUp/(50*time.Millisecond)) + 1)
	args := append(slices.Clone(prefix), binary, "ping", "--home", home, "--count", count, "--interval", "50ms", "--timeout", "20s", code)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	defer func() {
		close(done)
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.After(giveUp)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Logf("ping ended: %s", stderr.String())
				return
			}
			_, path, found := strings.Cut(line, " path=")
			fields := strings.Fields(path)
			if !found || len(fields) == 0 || !strings.Contains(line, " rtt=") {
				continue
			}
			path = fields[0] // "relayed via <relay ID>": the kind will do
			if first == 0 {
				first, firstPath = time.Since(start), path
			}
			if !strings.HasPrefix(path, "relayed") {
				return first, firstPath, time.Since(start), path
			}
		case <-deadline:
			return
		}
	}
}

// TestReachOverTCPWhenUDPBlocked: a node on a network that drops UDP
// (its namespace drops every UDP packet but loopback's) still reaches its
// relay and a friend behind a NAT, over TCP, both ways; peers says TCP
// carries every connection.
func TestReachOverTCPWhenUDPBlocked(t *testing.T) {
	l := newLab(t, "iptables")
	pub := l.publicNet()
	env := cleanEnv()
	relayQUIC := startLabRelay(t, l, env, pub)
	relayTCP := strings.Replace(relayQUIC, "/udp/4001/quic-v1/", "/tcp/4001/", 1)
	x := l.behindNAT(pub, "x", coneNAT, "203.0.113.30", "192.0.2")
	y := l.behindNAT(pub, "y", coneNAT, "203.0.113.31", "198.51.100")
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		dir := "-i"
		if chain == "OUTPUT" {
			dir = "-o"
		}
		l.sh(in(x, "iptables", "-A", chain, "!", dir, "lo", "-p", "udp", "-j", "DROP")...)
	}
	listen := []string{"--listen", "/ip4/0.0.0.0/udp/4747/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4747", "--api", "127.0.0.1:0", "--no-mdns",
		"--relay", relayQUIC, "--relay", relayTCP}
	homeX, homeY := filepath.Join(t.TempDir(), "x"), filepath.Join(t.TempDir(), "y")
	writeConfig(t, homeX, labNodeConfig)
	writeConfig(t, homeY, labNodeConfig)
	startNodeIn(t, env, in(x), append([]string{"--home", homeX}, listen...)...)
	startNodeIn(t, env, in(y), append([]string{"--home", homeY}, listen...)...)
	codeX := relayedFriendCode(t, env, x, homeX)
	codeY := relayedFriendCode(t, env, y, homeY)
	for _, p := range []struct {
		from, home, to, name string
	}{{x, homeX, codeY, "x pings y"}, {y, homeY, codeX, "y pings x"}} {
		out, errOut, code := meshtalkIn(t, env, in(p.from), "ping", "--home", p.home, "--count", "2", "--interval", "200ms", "--timeout", "20s", p.to)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s%s", p.name, code, out, errOut)
		}
		t.Logf("%s:\n%s", p.name, out)
	}
	out, _, _ := meshtalkIn(t, env, in(x), "peers", "--home", homeX, "--json")
	var conns []struct {
		PeerID    string `json:"peer_id"`
		Path      string `json:"path"`
		Transport string `json:"transport"`
		Addr      string `json:"addr"`
	}
	if err := json.Unmarshal([]byte(out), &conns); err != nil || len(conns) < 2 {
		t.Fatalf("peers --json: %v\n%s", err, out)
	}
	for _, c := range conns {
		if c.Transport != "tcp" {
			t.Errorf("connection to %s (%s, %s) says transport %q, want tcp", c.PeerID, c.Path, c.Addr, c.Transport)
		}
	}
	text, _, _ := meshtalkIn(t, env, in(x), "peers", "--home", homeX)
	t.Logf("x's peers:\n%s", text)
}
