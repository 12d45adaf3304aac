package nodetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/node"
)

// Switchboard partitions test nodes: two nodes it splits neither dial nor
// accept each other (a libp2p connection gater on each) until it heals
// them. Start a node on it with Options.Switchboard.
type Switchboard struct {
	mu      sync.Mutex
	blocked map[[2]peer.ID]bool
}

// NewSwitchboard is a switchboard that blocks nothing yet.
func NewSwitchboard() *Switchboard { return &Switchboard{blocked: map[[2]peer.ID]bool{}} }

func pairOf(a, b peer.ID) [2]peer.ID {
	if a > b {
		a, b = b, a
	}
	return [2]peer.ID{a, b}
}

func (s *Switchboard) isBlocked(a, b peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blocked[pairOf(a, b)]
}

// Split blocks every node of left from every node of right, closes their
// connections, and returns once none is left.
func (s *Switchboard) Split(t testing.TB, left, right []*node.Node) {
	t.Helper()
	s.mu.Lock()
	for _, a := range left {
		for _, b := range right {
			s.blocked[pairOf(a.ID(), b.ID())] = true
		}
	}
	s.mu.Unlock()
	for _, a := range left {
		for _, b := range right {
			Eventually(t, 30*time.Second, "the split pair disconnected", func() bool {
				a.Host().Network().ClosePeer(b.ID())
				b.Host().Network().ClosePeer(a.ID())
				return a.Host().Network().Connectedness(b.ID()) != network.Connected &&
					b.Host().Network().Connectedness(a.ID()) != network.Connected
			})
		}
	}
}

// Heal unblocks left from right and connects every pair.
func (s *Switchboard) Heal(t testing.TB, left, right []*node.Node) {
	t.Helper()
	s.mu.Lock()
	for _, a := range left {
		for _, b := range right {
			delete(s.blocked, pairOf(a.ID(), b.ID()))
		}
	}
	s.mu.Unlock()
	for _, a := range left {
		for _, b := range right {
			Connect(t, a, b)
		}
	}
}

// gater is one node's view of the switchboard.
type gater struct {
	s    *Switchboard
	self atomic.Value // peer.ID, once the node started
}

func (g *gater) blocks(p peer.ID) bool {
	self, ok := g.self.Load().(peer.ID)
	return ok && g.s.isBlocked(self, p)
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return !g.blocks(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.blocks(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.blocks(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
