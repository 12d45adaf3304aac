package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/internal/nodetest"
)

// The lab relay's TURN server (relay/turn.go), on the public network.
const labTURN = labRelayIP + ":3478"

// TestCallThroughTURNInLab: calls between two nodes on the lab's public
// network, with the relay's TURN server on (UDP and TCP on labTURN).
//
//   - udp-between-dropped: each node drops UDP to and from the other
//     (iptables in its own namespace), while UDP to the relay works; ICE
//     policy "all". No host or server-reflexive pair can carry the media,
//     so it goes through the relay's TURN over UDP; libp2p (the
//     signaling) connects the nodes directly over TCP.
//   - tcp-only: the caller drops every UDP packet but loopback's and
//     forces its media through TURN (ice_policy "relay"); only TURN over
//     TCP reaches the relay (pion/turn's TCP listener), and the call
//     still connects.
//
// Both ways, video frames arrive on both sides, and `call stats` says the
// path is relay, names the relay and the protocol to it.
func TestCallThroughTURNInLab(t *testing.T) {
	ogg, ivf := "/work/shared/media/test.ogg", "/work/shared/media/test.ivf"
	for _, f := range []string{ogg, ivf} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("no test media: %v", err)
		}
	}
	l := newLab(t, "iptables")
	pub := l.publicNet()
	env := cleanEnv()
	relayQUIC := startLabRelayWith(t, l, env, pub, "[turn]\nlisten = \""+labTURN+"\"\n")
	relayTCP := strings.Replace(relayQUIC, "/udp/4001/quic-v1/", "/tcp/4001/", 1)
	relayID := relayQUIC[strings.LastIndex(relayQUIC, "/")+1:]

	t.Run("udp-between-dropped", func(t *testing.T) {
		const ipA, ipB = "203.0.113.60", "203.0.113.61"
		a := startLabCallNode(t, l, env, pub, "ua", ipA, "all", false, relayQUIC)
		b := startLabCallNode(t, l, env, pub, "ub", ipB, "all", false, relayQUIC)
		for _, n := range []struct{ ns, other string }{{a.ns, ipB}, {b.ns, ipA}} {
			l.sh(in(n.ns, "iptables", "-A", "OUTPUT", "-d", n.other, "-p", "udp", "-j", "DROP")...)
			l.sh(in(n.ns, "iptables", "-A", "INPUT", "-s", n.other, "-p", "udp", "-j", "DROP")...)
		}
		sa, sb := labCall(t, a, b, ogg, ivf)
		// ICE may pair one side's relayed candidate with the other's host
		// one (one allocation carries the call): whichever side's local
		// candidate is relayed says which relay; the other sends to the
		// relay's address (a candidate it may have learnt from the checks
		// themselves: peer-reflexive).
		relayed := 0
		for _, s := range []labCallStats{sa, sb} {
			switch {
			case s.Path == "relay":
				relayed++
				checkRelayed(t, s, relayID, "") // UDP or TCP to the relay, as ICE found first
			case !strings.HasPrefix(s.Remote, "udp "+labRelayIP+":"):
				t.Errorf("a side neither relayed nor sending to the relay: %+v", s)
			}
		}
		if relayed == 0 {
			t.Fatalf("the media does not go through TURN: caller %+v, callee %+v", sa, sb)
		}
	})

	t.Run("tcp-only", func(t *testing.T) {
		const ipA, ipB = "203.0.113.62", "203.0.113.63"
		// The caller has no UDP from its start: its link to the relay
		// is TCP from the first dial. (Dropping UDP once it ran left it a
		// QUIC connection to the relay that failed every stream until
		// libp2p gave it up: the call's TURN credentials, asked for over
		// it, failed once in about 20 runs, and with them the call.)
		a := startLabCallNode(t, l, env, pub, "ta", ipA, "relay", true, relayTCP, relayQUIC)
		b := startLabCallNode(t, l, env, pub, "tb", ipB, "all", false, relayQUIC)
		sa, _ := labCall(t, a, b, ogg, ivf)
		if sa.Path != "relay" {
			t.Fatalf("caller's path %q, want relay", sa.Path)
		}
		checkRelayed(t, sa, relayID, "tcp")
	})
}

// checkRelayed checks the stats of a side whose local candidate is
// relayed: through the lab relay's TURN, over proto ("": either).
func checkRelayed(t testing.TB, s labCallStats, relayID, proto string) {
	t.Helper()
	if !strings.Contains(s.Relay, relayID) || !strings.HasPrefix(s.TURN, "turn:"+labTURN) || s.RelayProtocol == "" || proto != "" && s.RelayProtocol != proto {
		t.Errorf("relayed path: turn %q relay %q protocol %q; want the lab relay %s over %s", s.TURN, s.Relay, s.RelayProtocol, relayID, proto)
	}
}

// labCallNode is a node in its own namespace on the lab's public network,
// logged in to the lab relay.
type labCallNode struct {
	r            *running
	ns, home, id string
	env          []string
}

func (n labCallNode) mt(t testing.TB, args ...string) string {
	t.Helper()
	return mustRunIn(t, n.env, in(n.ns), n.home, args...)
}

// startLabCallNode starts a node at ip on the public network with ICE
// policy policy (and, if noUDP, all its UDP but loopback dropped from
// the start), registers it on the lab relay (the first of relays, its
// multiaddrs) and waits until it is logged in there.
func startLabCallNode(t testing.TB, l *lab, env []string, pub, name, ip, policy string, noUDP bool, relays ...string) labCallNode {
	t.Helper()
	ns := l.ns("h" + name)
	l.link(ns, "eth0", ip+"/24", pub, "p"+name, "")
	l.sh("ip", "-n", pub, "link", "set", "p"+name, "master", "br0")
	if noUDP {
		for _, rule := range [][]string{{"OUTPUT", "!", "-o", "lo"}, {"INPUT", "!", "-i", "lo"}} {
			l.sh(in(ns, append(append([]string{"iptables", "-A"}, rule...), "-p", "udp", "-j", "DROP")...)...)
		}
	}
	home := filepath.Join(t.TempDir(), name)
	writeConfig(t, home, "[discovery]\npublic_ranges = [\"203.0.113.0/24\"]\n[calls]\nmdns = false\nice_policy = \""+policy+"\"\n[log]\nlevel = \"debug\"\n")
	args := []string{"--home", home, "--listen", "/ip4/0.0.0.0/udp/4747/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4747", "--api", "127.0.0.1:0", "--no-mdns"}
	for _, r := range relays {
		args = append(args, "--relay", r)
	}
	r := startNodeIn(t, env, in(ns), args...)
	n := labCallNode{r: r, ns: ns, home: home, id: r.ready["peer_id"], env: env}
	n.mt(t, "account", "register", "user-"+name, "--relay", relays[0])
	nodetest.Eventually(t, 30*time.Second, name+" logged in to the relay", func() bool {
		var st struct {
			Relays []struct {
				LoggedIn bool `json:"logged_in"`
			} `json:"relays"`
		}
		json.Unmarshal([]byte(n.mt(t, "status", "--json")), &st)
		for _, r := range st.Relays {
			if r.LoggedIn {
				return true
			}
		}
		return false
	})
	return n
}

// labCallStats is what the lab reads of `call stats --json`.
type labCallStats struct {
	State         string `json:"state"`
	Path          string `json:"path"`
	RemotePath    string `json:"remote_path"`
	Remote        string `json:"remote"`
	TURN          string `json:"turn"`
	Relay         string `json:"relay"`
	RelayProtocol string `json:"relay_protocol"`
	Video         struct {
		FramesReceived int64 `json:"frames_received"`
	} `json:"video"`
}

// labCall: a befriends b, calls it with the media (looping), b answers
// with the same media; once 30 video frames arrived on each side, it
// reads both sides' stats, then a hangs up and both commands end.
func labCall(t testing.TB, a, b labCallNode, ogg, ivf string) (sa, sb labCallStats) {
	t.Helper()
	var id struct {
		FriendCode string `json:"friend_code"`
	}
	json.Unmarshal([]byte(b.mt(t, "id", "--json")), &id)
	a.mt(t, "friend", "add", id.FriendCode)
	var pending []map[string]any
	nodetest.Eventually(t, 30*time.Second, "the friend request", func() bool {
		json.Unmarshal([]byte(b.mt(t, "friend", "list", "--pending", "--json")), &pending)
		return len(pending) == 1
	})
	b.mt(t, "friend", "accept", pending[0]["peer_id"].(string))
	nodetest.Eventually(t, 30*time.Second, "friends", func() bool {
		return strings.Contains(a.mt(t, "friend", "list", "--json"), `"state": "friend"`)
	})
	media := []string{"--audio", ogg, "--video", ivf, "--loop"}
	caller := startCallProc(t, a, append([]string{"call", b.id}, media...)...)
	nodetest.Eventually(t, 30*time.Second, "b rings", func() bool {
		return strings.Contains(b.mt(t, "call", "list"), "ringing")
	})
	callee := startCallProc(t, b, append([]string{"call", "answer"}, media...)...)
	var lastA, lastB string
	read := func(n labCallNode, last *string) (labCallStats, bool) {
		var s labCallStats
		out, errOut, code := meshtalkIn(t, n.env, in(n.ns), "call", "stats", "--json", "--home", n.home)
		*last = out + errOut
		return s, code == 0 && json.Unmarshal([]byte(out), &s) == nil && s.State == "connected" && s.Video.FramesReceived >= 30
	}
	for deadline := time.Now().Add(60 * time.Second); ; <-time.After(200 * time.Millisecond) {
		var okA, okB bool
		sa, okA = read(a, &lastA)
		sb, okB = read(b, &lastB)
		if okA && okB {
			break
		}
		if time.Now().After(deadline) {
			// Stopped, the nodes' logs (debug: the media's states) are
			// whole and still.
			a.r.stop(t)
			b.r.stop(t)
			t.Logf("caller's node log:\n%s\ncallee's node log:\n%s", a.r.stderr, b.r.stderr)
			t.Fatalf("no video frames on both sides within 60 s\ncaller's stats: %s\ncallee's stats: %s\ncaller:\n%s\ncallee:\n%s", lastA, lastB, caller.out, callee.out)
		}
	}
	t.Logf("caller's stats:\n%s\ncallee's stats:\n%s", a.mt(t, "call", "stats"), b.mt(t, "call", "stats"))
	if out, errOut, code := meshtalkIn(t, a.env, in(a.ns), "call", "hangup", "--home", a.home); code != 0 {
		t.Fatalf("hangup: exit %d: %s%s\ncaller:\n%s\ncallee:\n%s", code, out, errOut, caller.out, callee.out)
	}
	caller.wait(t)
	callee.wait(t)
	return sa, sb
}

// callProc is a `meshtalk call` or `call answer` running in a namespace.
type callProc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// lockedBuffer is a command's output, read while the command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startCallProc(t testing.TB, n labCallNode, args ...string) *callProc {
	t.Helper()
	argv := in(n.ns, append([]string{binary, "--home", n.home}, args...)...)
	p := &callProc{cmd: exec.Command(argv[0], argv[1:]...), out: new(lockedBuffer), done: make(chan error, 1)}
	p.cmd.Env = n.env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.done:
			p.done <- err
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the command to end (the call ended), successfully.
func (p *callProc) wait(t testing.TB) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("%v: %v\n%s", p.cmd.Args, err, p.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not end with the call\n%s", p.cmd.Args, p.out)
	}
}
