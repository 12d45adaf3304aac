// Package nodetest starts real in-process meshtalk nodes for tests: each on
// its own temporary home, listening on 127.0.0.1 with port 0 (QUIC and
// TCP), closed by t.Cleanup.
//
// Beside Start and Connect it holds what tests of several packages share:
// waiting on an event or a condition with a deadline instead of sleeping
// (wait.go), splitting nodes from each other (partition.go), making two
// nodes friends (chat.go), a relay client on a bare
// host (relayclient.go), a friend code's decoder for tests that see a node
// through its API only (friendcode.go), and the CPU measure benchmarks
// report (cpu.go).
package nodetest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/meshtalk/meshtalk/node"
)

// Options adjust a test node. The zero value is a node on a fresh home.
type Options struct {
	// Home reuses a home (to restart a node); empty means t.TempDir().
	Home node.Home
	// Passphrase protects the identity key.
	Passphrase []byte
	// Role is the node's role; the default is a personal node.
	Role node.Role
	// Configure adjusts the test configuration (see Start) further.
	Configure func(*node.Config)
	// Clock is the node's wall clock; nil is time.Now.
	Clock func() time.Time
	// After is the timer of the node's chat couriers; nil is time.After.
	After func(time.Duration) <-chan time.Time
	// Switchboard, when set, can split the node from others
	// (partition.go).
	Switchboard *Switchboard
}

// Start starts one node and closes it when the test ends. A test node
// listens on 127.0.0.1 only (QUIC and TCP, port 0), runs no mDNS (it would
// multicast on real interfaces) and serves the DHT, so that a handful of
// test nodes form one.
func Start(t testing.TB, opts Options) *node.Node {
	t.Helper()
	if opts.Home == "" {
		opts.Home = node.Home(t.TempDir())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var gate *gater
	var gateOpt connmgr.ConnectionGater
	if opts.Switchboard != nil {
		gate = &gater{s: opts.Switchboard}
		gateOpt = gate
	}
	n, err := node.New(ctx, node.Options{
		Home:       opts.Home,
		Passphrase: opts.Passphrase,
		Role:       opts.Role,
		Configure: func(c *node.Config) {
			c.Network.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"}
			c.API.Listen = "127.0.0.1:0"
			c.Discovery.MDNS = false
			c.Discovery.DHT = "server"
			// Never the user's own ~/Downloads.
			c.Files.Dir = opts.Home.DownloadsPath()
			if opts.Configure != nil {
				opts.Configure(c)
			}
		},
		Logger: Logger(t),
		Clock:  opts.Clock,
		After:  opts.After,
		Gater:  gateOpt,
	})
	if err != nil {
		t.Fatalf("nodetest: start node: %v", err)
	}
	if gate != nil {
		gate.self.Store(n.ID())
	}
	t.Cleanup(func() {
		// Close is idempotent: a test may have stopped the node already.
		if err := n.Close(); err != nil {
			t.Errorf("nodetest: close node: %v", err)
		}
	})
	return n
}

// Connect connects a to b directly.
func Connect(t testing.TB, a, b *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info := peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}
	if err := a.Host().Connect(ctx, info); err != nil {
		t.Fatalf("nodetest: connect %s to %s: %v", a.ID(), b.ID(), err)
	}
}

// Logger returns a logger that writes into the test's log at debug level.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// IgnoredGoroutines are goroutines that libraries start once per process,
// not per node, which leak checks must not count. There are none today;
// tests pass this list so that one place changes if a library adds one.
func IgnoredGoroutines() []goleak.Option { return nil }

// ListenAddrs returns n's concrete listen addresses (ports resolved), for
// restarting a node where its peers will look for it.
func ListenAddrs(n *node.Node) []string {
	var out []string
	for _, a := range n.Host().Network().ListenAddresses() {
		if s := a.String(); !strings.Contains(s, "p2p-circuit") {
			out = append(out, s)
		}
	}
	return out
}
