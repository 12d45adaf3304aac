package history

import (
	"fmt"
	"math"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Keys sort in conversation order only if the clock reading is fixed-width
// hex: convKey must print what "%016x" prints.
func TestConvKey(t *testing.T) {
	for _, h := range []uint64{0, 1, 0xabc, 1 << 40, math.MaxUint64} {
		if got, want := ConvKey("/msgs/", "peer", h, "id"), fmt.Sprintf("/msgs/peer/%016x/id", h); got != want {
			t.Errorf("ConvKey(%#x) = %q, want %q", h, got, want)
		}
		if got, want := string(MsgLoc("peer", h)), fmt.Sprintf("peer/%016x", h); got != want {
			t.Errorf("MsgLoc(%#x) = %q, want %q", h, got, want)
		}
	}
}

// TestPeerStringBounded: the cache of peer strings answers as p.String()
// does and holds no more than maxPeerStrings peers however many it saw.
func TestPeerStringBounded(t *testing.T) {
	for i := range maxPeerStrings + 10 {
		p := peer.ID(fmt.Sprintf("peer %d", i))
		if got := PeerString(p); got != p.String() {
			t.Fatalf("PeerString(%q) = %q, want %q", p, got, p.String())
		}
	}
	n := 0
	peerStrings.Range(func(any, any) bool { n++; return true })
	if n == 0 || n > maxPeerStrings {
		t.Fatalf("the cache holds %d peers, want 1..%d", n, maxPeerStrings)
	}
}
