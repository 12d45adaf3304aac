package discovery

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Direct-path tuning: how long one direct dial may take, how often the
// peers are looked over (identify's events cover the rest), and the
// backoff of a peer whose direct dial failed, reset when its addresses
// change.
const (
	directDialTimeout = 10 * time.Second
	directSweepEvery  = 5 * time.Second
	directRetryMin    = 5 * time.Second
	directRetryMax    = 5 * time.Minute
)

// direct moves a peer that this node reaches only through a relay onto a
// direct connection as soon as the peer announces a public address that
// may take one: a port its router mapped, or an address a port forward
// made public. Hole punching (DCUtR) covers the rest, but only the side
// that accepted the relayed connection starts it, it needs both ends to
// know a public address of their own, and it tries once per relayed
// connection; a mapping that comes later, or a peer behind a symmetric
// NAT dialing a mapped port, would stay relayed without this.
//
// The relayed connection is not closed: streams already on it (a
// transfer, a call's signaling) run to their end, and new streams take
// the direct connection, which libp2p prefers to a limited one.
type direct struct {
	h      host.Host
	log    *slog.Logger
	relays map[peer.ID]bool // relays are reached directly anyway
	emit   func(typ string, data any)

	mu    sync.Mutex
	peers map[peer.ID]*directTry
}

// directTry is the state of one peer's direct dials.
type directTry struct {
	busy  bool
	addrs string // the addresses last tried, joined
	next  time.Time
	wait  time.Duration
}

// EventPathDirect is the event of a peer reached only through a relay
// now reached directly too; its data is an EvtPathDirect.
const EventPathDirect = "path.direct"

// EvtPathDirect is the data of an EventPathDirect.
type EvtPathDirect struct {
	PeerID peer.ID `json:"peer_id"`
	Addr   string  `json:"addr"`
}

// run looks at a peer whenever identify learns its addresses (also when
// the peer pushes new ones), and at every peer every directSweepEvery,
// until ctx ends. start starts a dial goroutine.
func (d *direct) run(ctx context.Context, sub event.Subscription, start func(func()) bool) {
	defer sub.Close()
	t := time.NewTicker(directSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			d.consider(ctx, e.(event.EvtPeerIdentificationCompleted).Peer, start)
		case <-t.C:
			for _, p := range d.h.Network().Peers() {
				d.consider(ctx, p, start)
			}
		}
	}
}

// consider dials p directly when it is reached only through relays, has
// public addresses, and is not waiting out a failure at these addresses.
func (d *direct) consider(ctx context.Context, p peer.ID, start func(func()) bool) {
	if d.relays[p] || !relayedOnly(d.h.Network().ConnsToPeer(p)) {
		return
	}
	var addrs []ma.Multiaddr
	for _, a := range d.h.Peerstore().Addrs(p) {
		if _, relayed := CircuitRelay(a); !relayed && manet.IsPublicAddr(a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return
	}
	key := make([]string, len(addrs))
	for i, a := range addrs {
		key[i] = a.String()
	}
	slices.Sort(key)
	joined := strings.Join(key, " ")
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.peers) >= maxPunched {
		// State of a backoff, not a record: start over rather than grow,
		// but keep the dials running (their goroutines hold their entry).
		maps.DeleteFunc(d.peers, func(_ peer.ID, t *directTry) bool { return !t.busy })
	}
	t := d.peers[p]
	if t == nil {
		t = &directTry{}
		d.peers[p] = t
	}
	if t.busy || (t.addrs == joined && time.Now().Before(t.next)) {
		return
	}
	if t.addrs != joined {
		t.wait = 0
	}
	t.busy, t.addrs = true, joined
	if !start(func() { d.dial(ctx, p, addrs, t) }) {
		t.busy = false
	}
}

func (d *direct) dial(ctx context.Context, p peer.ID, addrs []ma.Multiaddr, t *directTry) {
	dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "direct path"), directDialTimeout)
	err := d.h.Connect(dctx, peer.AddrInfo{ID: p, Addrs: addrs})
	cancel()
	d.mu.Lock()
	t.busy = false
	if err != nil || relayedOnly(d.h.Network().ConnsToPeer(p)) {
		t.wait = min(max(2*t.wait, directRetryMin), directRetryMax)
		t.next = time.Now().Add(t.wait)
		wait := t.wait
		d.mu.Unlock()
		if ctx.Err() == nil {
			d.log.Debug("no direct path yet", "peer", p, "retry_in", wait, "err", err)
		}
		return
	}
	delete(d.peers, p)
	d.mu.Unlock()
	for _, c := range d.h.Network().ConnsToPeer(p) {
		if _, relayed := CircuitRelay(c.RemoteMultiaddr()); !relayed {
			d.log.Info("direct path to a peer reached through a relay", "peer", p, "addr", c.RemoteMultiaddr())
			d.emit(EventPathDirect, EvtPathDirect{PeerID: p, Addr: c.RemoteMultiaddr().String()})
			break
		}
	}
}

// relayedOnly says whether conns are all relayed (and there is one).
func relayedOnly(conns []network.Conn) bool {
	for _, c := range conns {
		if _, relayed := CircuitRelay(c.RemoteMultiaddr()); !relayed {
			return false
		}
	}
	return len(conns) > 0
}
