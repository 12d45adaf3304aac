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

// WaitEvent waits up to 30 seconds for an event of typ on ch that match
// accepts (nil: any) and returns it.
func WaitEvent(t testing.TB, ch <-chan node.Event, typ string, match func(node.Event) bool) node.Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("nodetest: event stream closed while waiting for %s", typ)
			}
			if ev.Type == typ && (match == nil || match(ev)) {
				return ev
			}
		case <-deadline:
			t.Fatalf("nodetest: no %s event within 30s", typ)
		}
	}
}

// Events subscribes to n's event stream for the rest of the test.
func Events(t testing.TB, n *node.Node) <-chan node.Event {
	ch, cancel := n.Events().Subscribe(8192)
	t.Cleanup(cancel)
	return ch
}

// WaitEventData is WaitEvent for a test that looks only at an event's
// data: it returns the data of the first event of typ whose data match
// accepts (nil: any).
func WaitEventData(t testing.TB, ch <-chan node.Event, typ string, match func(any) bool) any {
	t.Helper()
	ev := WaitEvent(t, ch, typ, func(ev node.Event) bool {
		return match == nil || match(ev.Data)
	})
	return ev.Data
}

// WaitPeerEvent waits for a peer.connected or peer.disconnected event
// about p.
func WaitPeerEvent(t testing.TB, ch <-chan node.Event, typ string, p peer.ID) {
	t.Helper()
	WaitEvent(t, ch, typ, func(ev node.Event) bool {
		d, _ := ev.Data.(node.PeerEventData)
		return d.PeerID == p.String()
	})
}

// Eventually re-checks cond every 20ms until it holds, and fails the
// test if timeout passes first. It is for state that has no event (a
// process's output, a relay's counters).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}
