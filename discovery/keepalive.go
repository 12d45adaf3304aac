package discovery

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/internal/lifecycle"
)

// keepTag protects kept peers in the connection manager.
const keepTag = "meshtalk-keep"

// Backoff bounds of the keep-alive's re-dials.
const (
	keepMinBackoff = time.Second
	keepMaxBackoff = 5 * time.Minute
	// keepStable is how long a connection must last to reset the backoff.
	keepStable = 30 * time.Second
)

// KeepAlive holds connections to the peers a node cares about (its
// friends and the members of its groups, which chat and group ask for
// through their Keeper): each is protected from the connection
// manager and, while not connected, re-dialed with exponential backoff and
// full jitter. One goroutine per kept peer; it sleeps on the network's
// disconnect notification, not on a timer.
type KeepAlive struct {
	h   host.Host
	log *slog.Logger

	life *lifecycle.Group

	mu    sync.Mutex
	peers map[peer.ID]*keptPeer
	nb    *network.NotifyBundle
}

type keptPeer struct {
	cancel context.CancelFunc
	lost   chan struct{} // signalled (non-blocking) when the peer disconnects
}

// NewKeepAlive returns a KeepAlive on h. Close stops it.
func NewKeepAlive(h host.Host, log *slog.Logger) *KeepAlive {
	k := &KeepAlive{h: h, log: log, life: lifecycle.New(), peers: make(map[peer.ID]*keptPeer)}
	k.nb = &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		k.mu.Lock()
		kp := k.peers[c.RemotePeer()]
		k.mu.Unlock()
		if kp != nil {
			select {
			case kp.lost <- struct{}{}:
			default:
			}
		}
	}}
	h.Network().Notify(k.nb)
	return k
}

// Keep starts holding a connection to p. Addresses in p are added to the
// peerstore; without any, the node's routing (the DHT) finds them.
func (k *KeepAlive) Keep(p peer.AddrInfo) {
	if len(p.Addrs) > 0 {
		k.h.Peerstore().AddAddrs(p.ID, p.Addrs, time.Hour)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.peers[p.ID]; ok {
		return
	}
	ctx, cancel := context.WithCancel(k.life.Context())
	kp := &keptPeer{cancel: cancel, lost: make(chan struct{}, 1)}
	if !k.life.Go(func() { k.hold(ctx, p.ID, kp) }) {
		cancel()
		return
	}
	k.peers[p.ID] = kp
	k.h.ConnManager().Protect(p.ID, keepTag)
}

// Unkeep stops holding a connection to p (it is not closed).
func (k *KeepAlive) Unkeep(p peer.ID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if kp, ok := k.peers[p]; ok {
		kp.cancel()
		delete(k.peers, p)
		k.h.ConnManager().Unprotect(p, keepTag)
	}
}

func (k *KeepAlive) hold(ctx context.Context, p peer.ID, kp *keptPeer) {
	bo := newBackoff()
	var connected time.Time
	for {
		if k.h.Network().Connectedness(p) != network.Connected {
			// The backoff starts over only after a connection that lasted:
			// a peer that accepts and drops at once is not hammered.
			if !connected.IsZero() && time.Since(connected) > keepStable {
				bo.reset()
			}
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := k.h.Connect(network.WithAllowLimitedConn(dctx, "keep-alive"), peer.AddrInfo{ID: p})
			cancel()
			if err == nil {
				connected = time.Now()
			} else {
				if ctx.Err() != nil {
					return
				}
				wait := bo.next()
				k.log.Debug("kept peer unreachable", "peer", p, "retry_in", wait, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-kp.lost:
		}
	}
}

// backoff is exponential backoff with full jitter: each wait is uniformly
// random up to a bound that doubles from keepMinBackoff to keepMaxBackoff,
// so that many nodes that lost one relay do not come back in step.
type backoff struct{ bound time.Duration }

func newBackoff() *backoff { return &backoff{bound: keepMinBackoff} }

func (b *backoff) next() time.Duration {
	wait := rand.N(b.bound) + time.Millisecond
	b.bound = min(2*b.bound, keepMaxBackoff)
	return wait
}

func (b *backoff) reset() { b.bound = keepMinBackoff }

// Close stops every hold.
func (k *KeepAlive) Close() {
	k.h.Network().StopNotify(k.nb)
	k.life.Close()
	k.mu.Lock()
	for p := range k.peers {
		k.h.ConnManager().Unprotect(p, keepTag)
	}
	k.peers = map[peer.ID]*keptPeer{}
	k.mu.Unlock()
}
