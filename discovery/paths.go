package discovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// Path kinds: how a connection reaches its peer.
const (
	PathDirect      = "direct"
	PathRelayed     = "relayed"
	PathHolePunched = "hole-punched"
)

// ErrNoRoute means the node found no way to reach a peer.
var ErrNoRoute = errors.New("discovery: no route to peer")

// Paths remembers which peers were reached by hole punching, so that a
// direct connection can be told apart from one that a punch opened. It is
// the hole punching service's tracer.
type Paths struct {
	mu      sync.Mutex
	punched map[peer.ID]time.Time // when the last successful punch began
}

// NewPaths returns an empty Paths.
func NewPaths() *Paths { return &Paths{punched: make(map[peer.ID]time.Time)} }

// Trace implements holepunch.EventTracer.
func (p *Paths) Trace(evt *holepunch.Event) {
	end, ok := evt.Evt.(*holepunch.EndHolePunchEvt)
	if !ok || !end.Success {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.punched) >= maxPunched {
		clear(p.punched) // a label, not a record: start over rather than grow
	}
	p.punched[evt.Remote] = time.Unix(0, evt.Timestamp).Add(-end.EllapsedTime)
}

// maxPunched bounds the peers Paths remembers.
const maxPunched = 4096

// Path describes one connection's path.
type Path struct {
	// Kind is PathDirect, PathRelayed or PathHolePunched.
	Kind string `json:"path"`
	// Relay is the relay's peer ID on a relayed path.
	Relay peer.ID `json:"relay,omitempty"`
}

func (p Path) String() string {
	if p.Kind == PathRelayed {
		return "relayed via " + p.Relay.String()
	}
	return p.Kind
}

// Of returns the path of a connection.
func (p *Paths) Of(c network.Conn) Path {
	if relay, ok := CircuitRelay(c.RemoteMultiaddr()); ok {
		return Path{Kind: PathRelayed, Relay: relay}
	}
	p.mu.Lock()
	since, punched := p.punched[c.RemotePeer()]
	p.mu.Unlock()
	// A punch opens the connection during the attempt; allow for the
	// clock granularity of the two timestamps.
	if punched && !c.Stat().Opened.Before(since.Add(-time.Second)) {
		return Path{Kind: PathHolePunched}
	}
	return Path{Kind: PathDirect}
}

// CircuitRelay returns the relay of a /p2p-circuit address: the peer ID
// just before /p2p-circuit.
func CircuitRelay(a ma.Multiaddr) (peer.ID, bool) {
	var relay peer.ID
	found := false
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_P2P:
			if id, err := peer.IDFromBytes(c.RawValue()); err == nil {
				relay = id
			}
		case ma.P_CIRCUIT:
			found = true
			return false
		}
		return true
	})
	return relay, found
}

// ConnInfo is one open connection, as `meshtalk peers` shows it.
type ConnInfo struct {
	PeerID peer.ID `json:"peer_id"`
	// Name is what the node calls the peer (filled by the node, not here).
	Name  string  `json:"name,omitempty"`
	Path  string  `json:"path"`
	Relay peer.ID `json:"relay,omitempty"`
	// Transport is what carries the connection: "quic" or "tcp"; for a
	// relayed one, the transport of the connection to the relay.
	Transport string `json:"transport"`
	Addr      string `json:"addr"`
	Direction string `json:"direction"`
	// LatencyMS is the smoothed round-trip time, 0 when not yet measured.
	LatencyMS float64   `json:"latency_ms"`
	Opened    time.Time `json:"opened"`
}

// Conns lists h's open connections with their paths, sorted by peer.
func (p *Paths) Conns(h host.Host) []ConnInfo {
	conns := h.Network().Conns()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		path := p.Of(c)
		transport := Transport(c.RemoteMultiaddr())
		if path.Kind == PathRelayed {
			transport = ""
			for _, rc := range h.Network().ConnsToPeer(path.Relay) {
				if _, relayed := CircuitRelay(rc.RemoteMultiaddr()); !relayed {
					transport = Transport(rc.RemoteMultiaddr())
					break
				}
			}
		}
		out = append(out, ConnInfo{
			PeerID:    c.RemotePeer(),
			Path:      path.Kind,
			Relay:     path.Relay,
			Transport: transport,
			Addr:      c.RemoteMultiaddr().String(),
			Direction: c.Stat().Direction.String(),
			LatencyMS: float64(h.Peerstore().LatencyEWMA(c.RemotePeer()).Microseconds()) / 1000,
			Opened:    c.Stat().Opened,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PeerID < out[j].PeerID })
	return out
}

// Transport names what carries a connection to a: "quic" (QUIC-v1 over
// UDP), "tcp", or the last protocol of the address before /p2p.
func Transport(a ma.Multiaddr) string {
	name := ""
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_QUIC_V1, ma.P_QUIC:
			name = "quic"
			return false
		case ma.P_P2P, ma.P_CIRCUIT:
			return false
		}
		name = c.Protocol().Name
		return true
	})
	return name
}

// PingResult is one round trip.
type PingResult struct {
	// PeerID and Name are the peer pinged (filled by the node).
	PeerID peer.ID       `json:"peer_id,omitempty"`
	Name   string        `json:"name,omitempty"`
	Seq    int           `json:"seq"`
	RTT    time.Duration `json:"rtt_ns"`
	Path   Path          `json:"path"`
	Error  string        `json:"error,omitempty"`
}

// Ping measures count round trips to target with libp2p's ping protocol,
// interval apart, calling fn after each. Every round trip opens a fresh
// stream so that it takes the best connection of the moment: a series
// shows a relayed path turning into a hole-punched one. A peer that cannot
// be reached within dialTimeout gives an error wrapping ErrNoRoute.
func (s *Service) Ping(ctx context.Context, target peer.AddrInfo, count int, interval, dialTimeout time.Duration, fn func(PingResult)) error {
	if target.ID == s.h.ID() {
		return errors.New("discovery: cannot ping this node itself")
	}
	if len(target.Addrs) > 0 {
		s.h.Peerstore().AddAddrs(target.ID, target.Addrs, 10*time.Minute)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	// Relayed connections are limited; ping is small and may use them.
	dctx = network.WithAllowLimitedConn(dctx, "ping")
	if err := s.h.Connect(dctx, peer.AddrInfo{ID: target.ID}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w %s within %v: %v", ErrNoRoute, target.ID, dialTimeout, err)
	}
	for seq := 1; seq <= count; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
			}
		}
		fn(s.pingOnce(ctx, target.ID, seq))
	}
	return nil
}

func (s *Service) pingOnce(ctx context.Context, p peer.ID, seq int) PingResult {
	res := PingResult{Seq: seq}
	ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "ping"), 10*time.Second)
	defer cancel()
	st, err := s.h.NewStream(ctx, p, ping.ID)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		st.SetDeadline(d)
	}
	res.Path = s.paths.Of(st.Conn())
	buf := make([]byte, 2*ping.PingSize)
	rand.Read(buf[:ping.PingSize])
	start := time.Now()
	if _, err := st.Write(buf[:ping.PingSize]); err != nil {
		res.Error = err.Error()
		return res
	}
	if _, err := io.ReadFull(st, buf[ping.PingSize:]); err != nil {
		res.Error = err.Error()
		return res
	}
	res.RTT = time.Since(start)
	if string(buf[:ping.PingSize]) != string(buf[ping.PingSize:]) {
		res.Error = "ping: the peer echoed other bytes"
		return res
	}
	s.h.Peerstore().RecordLatency(p, res.RTT)
	return res
}
