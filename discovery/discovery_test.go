package discovery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"

	"github.com/meshtalk/meshtalk/discovery"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nodetest.IgnoredGoroutines()...)
}

func isCircuit(a ma.Multiaddr) bool { return strings.Contains(a.String(), "/p2p-circuit") }

// TestDHTFindsPeerByID: twenty nodes, each joined through the one before;
// a newcomer that knows only the last finds the first one's addresses
// from its peer ID alone, and reaches it.
func TestDHTFindsPeerByID(t *testing.T) {
	const n = 20
	nodes := make([]*node.Node, n)
	for i := range nodes {
		var boot []string
		if i > 0 {
			boot = []string{nodetest.Addr(t, nodes[i-1])}
		}
		nodes[i] = nodetest.Start(t, nodetest.Options{Configure: func(c *node.Config) { c.Discovery.Bootstrap = boot }})
	}
	newcomer := nodetest.Start(t, nodetest.Options{Configure: func(c *node.Config) {
		c.Discovery.Bootstrap = []string{nodetest.Addr(t, nodes[n-1])}
		c.Discovery.DHT = "client"
	}})
	target := nodes[0]
	if len(newcomer.Host().Peerstore().Addrs(target.ID())) != 0 {
		t.Fatal("the newcomer knows the target's addresses before any lookup")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var info peer.AddrInfo
	var err error
	// The routing tables fill in the background after each start; retry
	// the lookup until they hold a path to the target.
	for {
		info, err = newcomer.Discovery().FindPeer(ctx, target.ID())
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("FindPeer: %v", err)
	}
	if info.ID != target.ID() || len(info.Addrs) == 0 {
		t.Fatalf("found %v", info)
	}
	if err := newcomer.Host().Connect(ctx, info); err != nil {
		t.Fatalf("connect to the found addresses: %v", err)
	}
}

// relayAndHidden starts a relay and a node that listens on nothing and is
// reachable only through a reservation on that relay.
func relayAndHidden(t testing.TB, relayCfg func(*node.Config)) (relay, hidden *node.Node, circuit ma.Multiaddr) {
	t.Helper()
	relay = nodetest.Start(t, nodetest.Options{Role: node.RoleRelay, Configure: relayCfg})
	relayAddr := nodetest.Addr(t, relay)
	hidden = nodetest.Start(t, nodetest.Options{Configure: func(c *node.Config) {
		c.Network.Listen = []string{}
		c.Discovery.Relays = []string{relayAddr}
		c.Discovery.Reachability = "private"
	}})
	for _, a := range hidden.Host().Network().ListenAddresses() {
		if !isCircuit(a) {
			t.Fatalf("the no-listen node listens on %v", a)
		}
	}
	circuit = nodetest.WaitAddrs(t, hidden.Host(), 30*time.Second, isCircuit)
	return relay, hidden, circuit
}

const echoProto = protocol.ID("/meshtalk/test/echo/1.0.0")

// TestRelayedStreamBothWays: a node that listens on nothing is reached
// through the relay, a stream flows both ways over the circuit, and 10 MiB
// (far past go-libp2p's default 128 KiB relay limit) crosses uncut.
func TestRelayedStreamBothWays(t *testing.T) {
	relay, hidden, circuit := relayAndHidden(t, nil)
	hidden.Host().SetStreamHandler(echoProto, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	caller := nodetest.Start(t, nodetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	info, _ := peer.AddrInfoFromP2pAddr(circuit.Encapsulate(ma.StringCast("/p2p/" + hidden.ID().String())))
	if err := caller.Host().Connect(network.WithAllowLimitedConn(ctx, "test"), *info); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	s, err := caller.Host().NewStream(network.WithAllowLimitedConn(ctx, "test"), hidden.ID(), echoProto)
	if err != nil {
		t.Fatal(err)
	}
	if p := caller.Discovery().Paths().Of(s.Conn()); p.Kind != discovery.PathRelayed || p.Relay != relay.ID() {
		t.Fatalf("path %v, want relayed via %s", p, relay.ID())
	}
	const size = 10 << 20
	payload := make([]byte, size)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(payload)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read the echo after %d bytes: %v", len(got), err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), size)
	}
}

// TestRelayRefusesOverCap: a relay at its reservation cap says so.
func TestRelayRefusesOverCap(t *testing.T) {
	relay, _, _ := relayAndHidden(t, func(c *node.Config) { c.Relay.MaxReservations = 1 })
	other := nodetest.Start(t, nodetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := client.Reserve(ctx, other.Host(), peer.AddrInfo{ID: relay.ID(), Addrs: relay.Host().Addrs()})
	var rerr client.ReservationError
	if !errors.As(err, &rerr) || !strings.Contains(strings.ToLower(err.Error()), "refused") {
		t.Fatalf("reservation over the cap: got %v, want a refusal", err)
	}
}

func TestPingPaths(t *testing.T) {
	_, hidden, circuit := relayAndHidden(t, nil)
	caller := nodetest.Start(t, nodetest.Options{})
	direct := nodetest.Start(t, nodetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var got []discovery.PingResult
	collect := func(r discovery.PingResult) { got = append(got, r) }
	if err := caller.Discovery().Ping(ctx, peer.AddrInfo{ID: direct.ID(), Addrs: direct.Host().Addrs()}, 2, time.Millisecond, 10*time.Second, collect); err != nil {
		t.Fatal(err)
	}
	code, _ := discovery.EncodeFriendCode(peer.AddrInfo{ID: hidden.ID(), Addrs: []ma.Multiaddr{circuit}})
	target, err := discovery.ParsePeer(code)
	if err != nil {
		t.Fatal(err)
	}
	if err := caller.Discovery().Ping(ctx, target, 1, time.Millisecond, 10*time.Second, collect); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d results, want 3", len(got))
	}
	for i, want := range []string{discovery.PathDirect, discovery.PathDirect, discovery.PathRelayed} {
		if got[i].Error != "" || got[i].RTT <= 0 || got[i].Path.Kind != want {
			t.Errorf("round trip %d: %+v, want path %s", i+1, got[i], want)
		}
	}
}

func TestPingUnreachable(t *testing.T) {
	caller := nodetest.Start(t, nodetest.Options{})
	_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
	nobody, _ := peer.IDFromPublicKey(pub)
	// A closed port on loopback, and no DHT peer that knows better.
	target := peer.AddrInfo{ID: nobody, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}}
	start := time.Now()
	err := caller.Discovery().Ping(context.Background(), target, 1, time.Second, 3*time.Second, func(discovery.PingResult) {
		t.Error("a round trip to nobody")
	})
	if !errors.Is(err, discovery.ErrNoRoute) {
		t.Fatalf("got %v, want ErrNoRoute", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the error took %v", took)
	}
}

// TestKeepAliveRedials: a kept peer is protected and re-dialed when its
// connection is lost.
func TestKeepAliveRedials(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	events, cancel := a.Events().Subscribe(64)
	defer cancel()
	a.Discovery().Keep(peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()})
	nodetest.WaitPeerEvent(t, events, node.EventPeerConnected, b.ID())
	if !a.Host().ConnManager().IsProtected(b.ID(), "") {
		t.Fatal("the kept peer is not protected from the connection manager")
	}
	if err := a.Host().Network().ClosePeer(b.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitPeerEvent(t, events, node.EventPeerDisconnected, b.ID())
	nodetest.WaitPeerEvent(t, events, node.EventPeerConnected, b.ID())

	a.Discovery().Unkeep(b.ID())
	if a.Host().ConnManager().IsProtected(b.ID(), "") {
		t.Fatal("still protected after Unkeep")
	}
}

func TestTransport(t *testing.T) {
	for addr, want := range map[string]string{
		"/ip4/203.0.113.1/udp/4001/quic-v1": "quic",
		"/ip4/203.0.113.1/tcp/4001":         "tcp",
		"/ip6/2001:db8::1/tcp/4747/p2p/12D3KooWD34z4vxyQ373Uq8A6PYGCcFUTWsB91shKM4U3PsTgYQf":             "tcp",
		"/ip4/203.0.113.1/tcp/4001/p2p/12D3KooWD34z4vxyQ373Uq8A6PYGCcFUTWsB91shKM4U3PsTgYQf/p2p-circuit": "tcp",
	} {
		if got := discovery.Transport(ma.StringCast(addr)); got != want {
			t.Errorf("Transport(%s) = %q, want %q", addr, got, want)
		}
	}
}
