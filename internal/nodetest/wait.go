package nodetest

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/node"
)

// Addr returns n's first address as a multiaddr ending in /p2p/<id>.
func Addr(t testing.TB, n *node.Node) string {
	t.Helper()
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()})
	if err != nil || len(addrs) == 0 {
		t.Fatalf("nodetest: no address for %s: %v", n.ID(), err)
	}
	return addrs[0].String()
}

// WaitAddrs waits until h announces an address that match accepts, and
// returns it. It wakes on the host's address-change events.
func WaitAddrs(t testing.TB, h host.Host, timeout time.Duration, match func(ma.Multiaddr) bool) ma.Multiaddr {
	t.Helper()
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	deadline := time.After(timeout)
	for {
		for _, a := range h.Addrs() {
			if match(a) {
				return a
			}
		}
		select {
		case <-sub.Out():
		case <-deadline:
			t.Fatalf("nodetest: no matching address within %v; have %v", timeout, h.Addrs())
		}
	}
}
