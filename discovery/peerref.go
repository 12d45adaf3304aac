package discovery

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrBadPeer is wrapped by ParsePeer's errors.
var ErrBadPeer = errors.New("discovery: not a peer")

// ParsePeer reads what a user types to name a peer: a peer ID, a friend
// code, or a multiaddr ending in /p2p/<peer ID>. Only the last two carry
// addresses; for a bare peer ID the DHT finds them.
func ParsePeer(s string) (peer.AddrInfo, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "/"):
		info, err := peer.AddrInfoFromString(s)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("%w: %q is not a multiaddr ending in /p2p/<peer ID>: %v", ErrBadPeer, s, err)
		}
		return *info, nil
	case strings.HasPrefix(strings.ToLower(s), friendCodePrefix):
		return DecodeFriendCode(s)
	}
	id, err := peer.Decode(s)
	switch {
	case err != nil && LooksLikeFriendCode(s):
		return DecodeFriendCode(s) // its first characters lost: the error says so
	case err != nil:
		return peer.AddrInfo{}, fmt.Errorf("%w: %q is neither a peer ID, a friend code nor a /p2p/ multiaddr", ErrBadPeer, s)
	}
	return peer.AddrInfo{ID: id}, nil
}
