package relay

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/relay/pb"
)

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

// DropUnsealedForTest drops the file at path to p as it is, not sealed:
// what a hostile friend sends to make a drop fail to open.
func (c *Client) DropUnsealedForTest(ctx context.Context, p peer.ID, path string) error {
	m, err := c.cfg.Transfer.Import(path, sealedName)
	if err != nil {
		return err
	}
	r := c.loggedInRelays()[0]
	if err := c.dropOn(ctx, r, p, m); err != nil {
		return err
	}
	item, _ := proto.Marshal(&pb.FileDrop{Relay: []byte(r), Manifest: m.Encode(), Name: "x", Size: m.Size})
	return c.Deposit(ctx, p, KindFileDrop, [][]byte{item})
}

// PendingDrops counts the dropped files c is fetching.
func (c *Client) PendingDrops() int {
	n := 0
	scan(c.ctx, c.ds, "/client/drops/", func(string, []byte) { n++ })
	return n
}

// MayDeposit reports whether s takes deposits from sender for rcpt.
func (s *Server) MayDeposit(rcpt, sender peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[rcpt]
	return a != nil && a.mayDeposit(sender)
}

// DropBrokenForTest drops the file at path to p as it is, after break_
// has damaged its chunks in the store (the relay's fetch then fails).
func (c *Client) DropBrokenForTest(ctx context.Context, p peer.ID, path string, break_ func(chunk string)) error {
	m, err := c.cfg.Transfer.Import(path, sealedName)
	if err != nil {
		return err
	}
	for _, h := range m.Chunks {
		break_(h.String())
	}
	return c.dropOn(ctx, c.loggedInRelays()[0], p, m)
}

// DropRecords counts the drop records s keeps, complete or not.
func DropRecords(s *Server) int {
	n := 0
	scan(s.ctx, s.ds, "/drops/", func(string, []byte) { n++ })
	return n
}

// SetDropWaitForTest changes how long c waits for a relay's answer to a
// drop (plus the file's time at dropMinRate).
func (c *Client) SetDropWaitForTest(d time.Duration) { c.dropWait = d }

// SetSyncDirForTest replaces how c makes a dropped file's name durable.
func (c *Client) SetSyncDirForTest(f func(dir string) error) { c.syncDir = f }

// DropOnForTest imports the file at path and asks relay to hold it for
// p, as DropFile does on each relay.
func (c *Client) DropOnForTest(ctx context.Context, relay, p peer.ID, path string) error {
	m, err := c.cfg.Transfer.Import(path, sealedName)
	if err != nil {
		return err
	}
	return c.dropOn(ctx, relay, p, m)
}

// TURNForTest is a TURN server alone, as a relay runs it (the benchmark
// runs it in a process of its own).
type TURNForTest struct{ t *turnServer }

// StartTURNForTest starts one with cfg as it is (no defaults filled in).
func StartTURNForTest(cfg TURNConfig) (*TURNForTest, error) {
	t, err := newTURN(cfg)
	if err != nil {
		return nil, err
	}
	return &TURNForTest{t}, nil
}

// Addr is host:port, UDP and TCP.
func (s *TURNForTest) Addr() string { return s.t.addr }

// Credentials are user's, as a logged-in user gets them.
func (s *TURNForTest) Credentials(user string) (username, password string) {
	c, err := s.t.credentials(peer.ID(user))
	if err != nil {
		panic(err)
	}
	return c.Username, c.Password
}

// Close stops the server.
func (s *TURNForTest) Close() error { return s.t.close() }

// DroppedBytes is what the server dropped over allocations' bandwidth.
func (s *TURNForTest) DroppedBytes() float64 {
	var m dto.Metric
	s.t.dropped.Write(&m)
	return m.GetCounter().GetValue()
}

// DropFolderNamedForTest drops the folder at dir to p as DropFolder
// does, but its letter names fileID as the folder's file ID: what a
// hostile friend sends to tie its folder to another message.
func (c *Client) DropFolderNamedForTest(ctx context.Context, p peer.ID, dir, fileID string) error {
	m, err := c.cfg.Transfer.ShareFolder(ctx, dir, "photos")
	if err != nil {
		return err
	}
	_, err = c.dropFolderAs(ctx, p, m, fileID)
	return err
}
