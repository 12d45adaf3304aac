package node_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nodetest.IgnoredGoroutines()...)
}

// loopback keeps a node that a test starts without nodetest on 127.0.0.1.
func loopback(c *node.Config) {
	c.Network.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	c.Discovery.MDNS = false
}

func TestNewCreatesHome(t *testing.T) {
	home := node.Home(t.TempDir() + "/sub/home")
	n := nodetest.Start(t, nodetest.Options{Home: home})
	for _, p := range []string{home.IdentityPath(), home.ConfigPath(), home.DatastorePath(), home.BlobsPath()} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if fi, _ := os.Stat(home.IdentityPath()); fi.Mode().Perm() != 0o600 {
		t.Errorf("identity.key mode %v", fi.Mode().Perm())
	}
	if len(n.Host().Addrs()) == 0 {
		t.Fatal("no listen addresses")
	}
}

func TestSecondNodeOnSameHomeIsRefused(t *testing.T) {
	home := node.Home(t.TempDir())
	first, err := node.New(context.Background(), node.Options{Home: home, Configure: loopback})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(home.IdentityPath())
	_, err = node.New(context.Background(), node.Options{Home: home, Configure: loopback})
	if !errors.Is(err, node.ErrAlreadyRunning) {
		t.Fatalf("second node: got %v, want ErrAlreadyRunning", err)
	}
	after, _ := os.ReadFile(home.IdentityPath())
	if string(before) != string(after) {
		t.Fatal("the refused start changed identity.key")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Released on close: the home can be used again, with the same identity.
	again := nodetest.Start(t, nodetest.Options{Home: home})
	if again.ID() != first.ID() {
		t.Fatalf("restart changed the peer ID: %s -> %s", first.ID(), again.ID())
	}
}

func TestPeerEvents(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	events, cancel := a.Events().Subscribe(16)
	defer cancel()
	nodetest.Connect(t, a, b)
	nodetest.WaitPeerEvent(t, events, node.EventPeerConnected, b.ID())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitPeerEvent(t, events, node.EventPeerDisconnected, b.ID())
}

func TestPeerstoreSurvivesRestart(t *testing.T) {
	homeA := node.Home(t.TempDir())
	a, err := node.New(context.Background(), node.Options{Home: homeA, Configure: loopback})
	if err != nil {
		t.Fatal(err)
	}
	b := nodetest.Start(t, nodetest.Options{})
	nodetest.Connect(t, a, b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = nodetest.Start(t, nodetest.Options{Home: homeA})
	addrs := a.Host().Peerstore().Addrs(b.ID())
	if len(addrs) == 0 {
		t.Fatalf("after a restart the peerstore has no address of %s", b.ID())
	}
	if a.Host().Peerstore().PubKey(b.ID()) == nil {
		t.Fatal("after a restart the peerstore has no key of the peer")
	}
	// The remembered addresses are enough to reach the peer again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Host().Connect(ctx, a.Host().Peerstore().PeerInfo(b.ID())); err != nil {
		t.Fatalf("reconnect from the stored addresses: %v", err)
	}
}

func TestEventsOverflowCutsSubscriber(t *testing.T) {
	e := node.NewEvents()
	ch, cancel := e.Subscribe(2)
	defer cancel()
	for range 3 {
		e.Publish(node.Event{Type: "x"})
	}
	n := 0
	for range ch {
		n++
	}
	if n != 2 {
		t.Fatalf("got %d buffered events before the cut, want 2", n)
	}
	e.Close()
}
