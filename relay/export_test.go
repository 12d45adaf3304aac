package relay

import "github.com/libp2p/go-libp2p/core/peer"

// SweepNow removes expired items at once (the sweeper does it every
// SweepEvery).
func (s *Server) SweepNow() { s.sweep() }

// ProofPayload is what a client signs for op.
func ProofPayload(op string, relay, client peer.ID, nonce []byte, name string) []byte {
	return proofPayload(op, relay, client, nonce, name)
}

// NewShortCodeForTest is a new random short code.
func NewShortCodeForTest() string { return newShortCode() }

// ShortInvitesHeld counts the short codes s holds on disk.
func ShortInvitesHeld(s *Server) int {
	n := 0
	scan(s.ctx, s.ds, "/short", func(string, []byte) { n++ })
	return n
}
