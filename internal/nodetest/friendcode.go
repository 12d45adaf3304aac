package nodetest

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/discovery"
)

// DecodeFriendCode reads a friend code (as GET /api/v1/id answers it), for
// tests of packages that see the node through its API only.
func DecodeFriendCode(code string) (peer.AddrInfo, error) { return discovery.DecodeFriendCode(code) }
