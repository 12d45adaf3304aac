package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"

	"github.com/meshtalk/meshtalk/internal/lifecycle"
)

// DHTPrefix keeps meshtalk's Kademlia DHT apart from every other libp2p
// DHT (the public IPFS one above all): its protocol is /meshtalk/kad/1.0.0.
const DHTPrefix = "/meshtalk"

// MDNSService is the mDNS service name meshtalk nodes announce.
const MDNSService = "meshtalk"

// Config is what the Service needs to know; node fills it from
// config.toml and the command line.
type Config struct {
	// MDNS finds peers on the local network.
	MDNS bool
	// DHTMode is "auto", "client" or "server".
	DHTMode string
	// Bootstrap peers join the DHT.
	Bootstrap []peer.AddrInfo
	// Relays hold this node's reservations, renewed and re-taken when
	// lost, and are bootstrap peers too.
	Relays []peer.AddrInfo
	// Reachability is "auto", "public" or "private".
	Reachability string
	// PortMap asks the router for a mapping of each listen port (UPnP IGD,
	// NAT-PMP) and announces the mapped addresses.
	PortMap bool
	// Emit receives the service's events (EventPeerFound, with an
	// EvtPeerFound as data); nil discards them. It is called from the
	// service's goroutines and must not block.
	Emit func(typ string, data any)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Service finds and reaches peers: mDNS on the LAN, the DHT across the
// internet, reservations on relays for when this node sits behind NAT,
// hole punching to turn relayed connections into direct ones, and a
// keep-alive for the peers the node cares about.
//
// It is made in two steps because libp2p builds its host from options:
// New returns the Service and HostOptions gives what the host needs from
// it (routing, hole punching, relays); Start then runs it on the host.
type Service struct {
	cfg   Config
	log   *slog.Logger
	paths *Paths
	pmap  portMap
	emit  func(typ string, data any)

	life *lifecycle.Group
	ctx  context.Context // life's: cancelled when Close begins

	h     host.Host
	dht   *dht.IpfsDHT
	mdns  mdns.Service
	keep  *KeepAlive
	rsvp  *reservations
	nb    *network.NotifyBundle
	mu    sync.Mutex
	reach network.Reachability

	started   atomic.Bool
	closeOnce sync.Once
	// holds cancels the reservation loop of each relay (mu).
	holds map[peer.ID]context.CancelFunc
}

// New returns a Service for cfg; call HostOptions and Start next. ctx
// bounds the call only: the Service runs until Close.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	switch cfg.DHTMode {
	case "", "auto", "client", "server":
	default:
		return nil, fmt.Errorf("discovery: unknown DHT mode %q", cfg.DHTMode)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	emit := cfg.Emit
	if emit == nil {
		emit = func(string, any) {}
	}
	life := lifecycle.New()
	s := &Service{cfg: cfg, log: log.With("component", "discovery"), paths: NewPaths(), emit: emit, life: life, ctx: life.Context()}
	switch cfg.Reachability {
	case "public":
		s.reach = network.ReachabilityPublic
	case "private":
		s.reach = network.ReachabilityPrivate
	}
	return s, nil
}

// HostOptions are the libp2p options the host needs for this Service: the
// DHT as its peer routing (so a peer ID alone is enough to connect), the
// circuit relay client with reservations on the configured relays, hole
// punching with path tracing, and port mapping when Config.PortMap.
func (s *Service) HostOptions() []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(holepunch.WithTracer(s.paths)),
		libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			mode := dht.ModeAuto
			switch s.cfg.DHTMode {
			case "client":
				mode = dht.ModeClient
			case "server":
				mode = dht.ModeServer
			}
			d, err := dht.New(h,
				dht.Mode(mode),
				dht.ProtocolPrefix(DHTPrefix),
				// Not BootstrapPeers: the DHT would dial them while the host
				// is still being built, before identify's listeners run,
				// and the node would never learn its observed address
				// from that connection (so never hole-punch).
				dht.BootstrapPeersFunc(s.bootstrapPeers),
				dht.DisableProviders(),
				dht.DisableValues(),
			)
			s.dht = d
			return d, err
		}),
	}
	if s.cfg.PortMap {
		opts = append(opts, s.pmap.hostOption())
	}
	switch s.cfg.Reachability {
	case "public":
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case "private":
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	return opts
}

// bootstrapPeers are the DHT's bootstrap peers once the Service runs.
func (s *Service) bootstrapPeers() []peer.AddrInfo {
	if !s.started.Load() {
		return nil
	}
	return append(append([]peer.AddrInfo{}, s.cfg.Bootstrap...), s.cfg.Relays...)
}

// Start runs the Service on h, the host built with HostOptions. ctx
// bounds the call only. Close stops what it started, also after an error.
func (s *Service) Start(ctx context.Context, h host.Host) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	s.h = h
	s.started.Store(true)
	if s.dht == nil {
		return errors.New("discovery: the host was not built with HostOptions")
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	s.keep = NewKeepAlive(h, s.log)
	if s.rsvp, err = newReservations(h, s.cfg.Relays, s.log); err != nil {
		sub.Close()
		return err
	}
	s.nb = &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) { s.rsvp.disconnected(c.RemotePeer()) }}
	h.Network().Notify(s.nb)
	for _, r := range s.cfg.Relays {
		s.holdRelay(r)
	}
	s.life.Watch(sub, s.reachabilityChanged)
	s.life.Go(s.bootstrap)
	if err := s.startDirect(); err != nil {
		return err
	}
	if s.cfg.MDNS {
		s.mdns = mdns.NewMdnsService(h, MDNSService, mdnsNotifee{s})
		if err := s.mdns.Start(); err != nil {
			s.log.Warn("mDNS did not start; LAN discovery is off", "err", err)
			s.mdns = nil
		}
	}
	return nil
}

// startDirect runs the move of relayed peers onto direct connections.
func (s *Service) startDirect() error {
	sub, err := s.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	d := &direct{h: s.h, log: s.log, emit: s.emit, relays: map[peer.ID]bool{}, peers: map[peer.ID]*directTry{}}
	for _, r := range s.cfg.Relays {
		d.relays[r.ID] = true
	}
	if !s.life.Go(func() { d.run(s.ctx, sub, s.life.Go) }) {
		sub.Close()
	}
	return nil
}

// bootstrap connects to the bootstrap peers and fills the routing table.
func (s *Service) bootstrap() {
	var wg sync.WaitGroup
	var reached atomic.Int32
	for _, p := range s.cfg.Bootstrap {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
			defer cancel()
			if err := s.h.Connect(ctx, p); err != nil {
				// A peer that left: routine while another answers.
				s.log.Debug("bootstrap peer unreachable", "peer", p.ID, "err", err)
				return
			}
			reached.Add(1)
		}()
	}
	wg.Wait()
	if len(s.cfg.Bootstrap) > 0 && reached.Load() == 0 && s.ctx.Err() == nil {
		s.log.Warn("no bootstrap peer reachable; the DHT finds peers once one is", "peers", len(s.cfg.Bootstrap))
	}
	if err := s.dht.Bootstrap(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("DHT bootstrap", "err", err)
	}
}

// reachabilityChanged records what AutoNAT says of this node now.
func (s *Service) reachabilityChanged(e any) {
	r := e.(event.EvtLocalReachabilityChanged).Reachability
	s.mu.Lock()
	s.reach = r
	s.mu.Unlock()
	s.log.Info("reachability", "reachability", ReachabilityString(r))
}

// Reachability is what AutoNAT (or the configuration) says of this node:
// "public", "private" or "unknown".
func (s *Service) Reachability() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ReachabilityString(s.reach)
}

// ReachabilityString names a reachability as the API shows it.
func ReachabilityString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// Reserved reports whether the node holds a reservation on relay.
func (s *Service) Reserved(relay peer.ID) bool { return s.rsvp != nil && s.rsvp.Reserved(relay) }

// DHT is the node's Kademlia DHT.
func (s *Service) DHT() *dht.IpfsDHT { return s.dht }

// Paths tells how each connection reaches its peer.
func (s *Service) Paths() *Paths { return s.paths }

// Keep makes the node hold a connection to p: protected from the
// connection manager and re-dialed with backoff when lost.
func (s *Service) Keep(p peer.AddrInfo) { s.keep.Keep(p) }

// Unkeep undoes Keep.
func (s *Service) Unkeep(p peer.ID) { s.keep.Unkeep(p) }

// FindPeer returns p's current addresses: the ones the node knows, else
// from a DHT lookup.
func (s *Service) FindPeer(ctx context.Context, p peer.ID) (peer.AddrInfo, error) {
	if addrs := s.h.Peerstore().Addrs(p); len(addrs) > 0 {
		return peer.AddrInfo{ID: p, Addrs: addrs}, nil
	}
	info, err := s.dht.FindPeer(ctx, p)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("discovery: find %s: %w", p, err)
	}
	return info, nil
}

// Close stops mDNS, the keep-alive and the DHT.
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.mdns != nil {
			s.mdns.Close()
		}
		if s.keep != nil {
			s.keep.Close()
		}
		if s.nb != nil {
			s.h.Network().StopNotify(s.nb)
		}
		s.life.Close()
		if s.rsvp != nil {
			s.rsvp.close()
		}
		if s.dht != nil {
			err = s.dht.Close()
		}
	})
	return err
}

// EventPeerFound is the event of a peer found on the local network; its
// data is an EvtPeerFound.
const EventPeerFound = "peer.found"

// EvtPeerFound is the data of an EventPeerFound.
type EvtPeerFound struct {
	PeerID peer.ID  `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	Via    string   `json:"via"`
}

type mdnsNotifee struct{ s *Service }

// HandlePeerFound adds a LAN peer's addresses to the peerstore, so that
// dialing its peer ID just works.
func (n mdnsNotifee) HandlePeerFound(info peer.AddrInfo) {
	s := n.s
	if info.ID == s.h.ID() || s.ctx.Err() != nil {
		return
	}
	s.h.Peerstore().AddAddrs(info.ID, info.Addrs, 10*time.Minute)
	addrs := make([]string, len(info.Addrs))
	for i, a := range info.Addrs {
		addrs[i] = a.String()
	}
	s.emit(EventPeerFound, EvtPeerFound{PeerID: info.ID, Addrs: addrs, Via: "mdns"})
}

// holdRelay keeps a reservation on r until RemoveRelay or Close.
func (s *Service) holdRelay(r peer.AddrInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.holds[r.ID]; ok {
		return
	}
	if s.holds == nil {
		s.holds = map[peer.ID]context.CancelFunc{}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.holds[r.ID] = cancel
	s.rsvp.add(r)
	s.h.ConnManager().Protect(r.ID, keepTag)
	s.life.Go(func() { s.rsvp.hold(ctx, r) })
}

// AddRelay holds a reservation on a relay from now on, as on the relays
// of Config (the node saves it in its config for the next start).
func (s *Service) AddRelay(r peer.AddrInfo) {
	if s.started.Load() {
		s.holdRelay(r)
	}
}

// RemoveRelay stops holding a reservation on relay and withdraws the
// addresses it gave.
func (s *Service) RemoveRelay(relay peer.ID) {
	s.mu.Lock()
	cancel, ok := s.holds[relay]
	delete(s.holds, relay)
	s.mu.Unlock()
	if !ok {
		return
	}
	cancel()
	s.rsvp.remove(relay)
	s.h.ConnManager().Unprotect(relay, keepTag)
}
