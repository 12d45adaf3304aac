package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// reservations holds a circuit relay v2 reservation on each configured
// relay, renews it before it expires and takes it again at once when the
// connection to the relay is lost.
//
// It does what go-libp2p's autorelay does for static relays, with one
// difference that matters to meshtalk: the relay addresses it announces
// are the ones the user configured, not only those go-libp2p deems public.
// A relay on a LAN, a VPN or in a test namespace works like one on the
// internet. The addresses reach the host's address manager through the
// same event autorelay uses (event.EvtAutoRelayAddrsUpdated), which adds
// them while the node is not publicly reachable.
type reservations struct {
	h      host.Host
	log    *slog.Logger
	emit   event.Emitter
	relays []peer.AddrInfo

	mu    sync.Mutex
	addrs map[peer.ID][]ma.Multiaddr
	held  map[peer.ID]*client.Reservation
	lost  map[peer.ID]chan struct{}
}

func newReservations(h host.Host, relays []peer.AddrInfo, log *slog.Logger) (*reservations, error) {
	emit, err := h.EventBus().Emitter(new(event.EvtAutoRelayAddrsUpdated))
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	r := &reservations{h: h, log: log, emit: emit, relays: relays,
		addrs: map[peer.ID][]ma.Multiaddr{}, held: map[peer.ID]*client.Reservation{}, lost: map[peer.ID]chan struct{}{}}
	for _, relay := range relays {
		r.lost[relay.ID] = make(chan struct{}, 1)
	}
	return r, nil
}

// disconnected wakes the loop of a relay whose last connection closed.
func (r *reservations) disconnected(p peer.ID) {
	r.mu.Lock()
	ch, ok := r.lost[p]
	r.mu.Unlock()
	if ok && r.h.Network().Connectedness(p) != network.Connected {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// hold keeps a reservation on relay until ctx ends.
func (r *reservations) hold(ctx context.Context, relay peer.AddrInfo) {
	circuits := make([]ma.Multiaddr, 0, len(relay.Addrs))
	for _, a := range relay.Addrs {
		circuits = append(circuits, a.Encapsulate(ma.StringCast("/p2p/"+relay.ID.String()+"/p2p-circuit")))
	}
	r.mu.Lock()
	lost := r.lost[relay.ID]
	r.mu.Unlock()
	bo := newBackoff()
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rsvp, err := client.Reserve(rctx, r.h, relay)
		cancel()
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err != nil {
			r.set(relay.ID, nil, nil)
			// A loss signalled by the connection that just failed must not
			// cut the backoff short.
			select {
			case <-lost:
			default:
			}
			wait = bo.next()
			r.log.Warn("relay reservation failed", "relay", relay.ID, "retry_in", wait.Round(time.Millisecond), "err", err)
		} else {
			bo.reset()
			r.set(relay.ID, circuits, rsvp)
			// Renew at half the remaining time: well before expiry, not
			// chatty.
			wait = max(time.Until(rsvp.Expiration)/2, 5*time.Second)
			r.log.Info("relay reservation held", "relay", relay.ID, "expires", rsvp.Expiration.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-lost:
			if err != nil {
				// No reservation to lose: keep to the backoff.
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			r.set(relay.ID, nil, nil)
		case <-time.After(wait):
		}
	}
}

// set records a relay's circuit addresses and tells the host when the
// whole set changed.
func (r *reservations) set(relay peer.ID, addrs []ma.Multiaddr, rsvp *client.Reservation) {
	r.mu.Lock()
	changed := !slices.EqualFunc(r.addrs[relay], addrs, func(a, b ma.Multiaddr) bool { return a.Equal(b) })
	if rsvp == nil {
		delete(r.held, relay)
		delete(r.addrs, relay)
	} else {
		r.held[relay] = rsvp
		r.addrs[relay] = addrs
	}
	if !slices.ContainsFunc(r.relays, func(i peer.AddrInfo) bool { return i.ID == relay }) {
		delete(r.held, relay)
		delete(r.addrs, relay)
	}
	var all []ma.Multiaddr
	for _, relay := range r.relays {
		all = append(all, r.addrs[relay.ID]...)
	}
	r.mu.Unlock()
	if changed {
		r.emit.Emit(event.EvtAutoRelayAddrsUpdated{RelayAddrs: all})
	}
}

// Reserved reports whether the node holds a reservation on relay.
func (r *reservations) Reserved(relay peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.held[relay]
	return ok
}

func (r *reservations) close() { r.emit.Close() }

// add starts holding a reservation on relay until ctx ends; false when
// it is held already.
func (r *reservations) add(relay peer.AddrInfo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.lost[relay.ID]; ok {
		return false
	}
	r.relays = append(r.relays, relay)
	r.lost[relay.ID] = make(chan struct{}, 1)
	return true
}

// remove forgets relay (its loop's context is cancelled by the caller)
// and withdraws its circuit addresses.
func (r *reservations) remove(relay peer.ID) {
	r.mu.Lock()
	r.relays = slices.DeleteFunc(r.relays, func(i peer.AddrInfo) bool { return i.ID == relay })
	delete(r.lost, relay)
	r.mu.Unlock()
	r.set(relay, nil, nil)
}
