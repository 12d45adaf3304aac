package node

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoreds"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// peerstoreKey is the datastore namespace of the persistent peerstore
// (libp2p's pstoreds owns the layout below it): known peers, their keys,
// addresses and protocols survive a restart.
var peerstoreKey = datastore.NewKey("/node/peerstore")

// newHost builds the libp2p host: QUIC-v1 and TCP, Noise and TLS, yamux,
// the resource and connection managers sized from cfg, identify and ping,
// and a peerstore in ds (the node's datastore under peerstoreKey). The
// host announces cfg.Network.Announce when set, else its own addresses as
// addrs adjusts them (nil: unchanged).
func newHost(ctx context.Context, key crypto.PrivKey, cfg Config, role Role, ds datastore.Batching, extra []libp2p.Option, addrs func([]ma.Multiaddr) []ma.Multiaddr) (host.Host, error) {
	var announce []ma.Multiaddr
	for _, s := range cfg.Network.Announce {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("node: announce address: %w", err)
		}
		announce = append(announce, a)
	}
	pstore, err := pstoreds.NewPeerstore(ctx, ds, pstoreds.DefaultOpts())
	if err != nil {
		return nil, fmt.Errorf("node: peerstore: %w", err)
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	concrete := limits.Scale(cfg.Resources.MaxMemoryMiB<<20, cfg.Resources.MaxFileDescriptors)
	// The scaled limits admit 64 connections plus 64 per GiB: a relay
	// with thousands of logged-in users would turn most away. Let in at
	// least what the connection manager is told to keep, with headroom.
	sys := concrete.ToPartialLimitConfig().System
	need := rcmgr.LimitVal(2 * cfg.Connections.HighWater)
	sys.Conns, sys.ConnsInbound, sys.ConnsOutbound = max(sys.Conns, need), max(sys.ConnsInbound, need), max(sys.ConnsOutbound, need)
	concrete = rcmgr.PartialLimitConfig{System: sys}.Build(concrete)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(concrete))
	if err != nil {
		pstore.Close()
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.Connections.LowWater, cfg.Connections.HighWater,
		connmgr.WithGracePeriod(time.Duration(cfg.Connections.GracePeriod)))
	if err != nil {
		pstore.Close()
		rm.Close()
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		// TLS 1.3 first: on TCP it moves bulk with AES-GCM, which the
		// CPU does in hardware, where Noise's ChaCha20-Poly1305 took
		// about half the CPU of a transfer (BenchmarkFileCLI reports
		// both). Noise stays for peers that offer only it.
		libp2p.Security(tls.ID, tls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Peerstore(pstore),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.Ping(true),
		libp2p.UserAgent("meshtalk/" + Version),
		libp2p.DisableMetrics(),
	}
	if len(cfg.Network.Listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.Network.Listen...))
	}
	if role == RoleRelay {
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(relayResources(cfg.Relay))), libp2p.EnableNATService())
	}
	opts = append(opts, extra...)
	switch {
	case len(announce) > 0:
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	case addrs != nil:
		opts = append(opts, libp2p.AddrsFactory(addrs))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		// libp2p closes these only on some of its failures; Close twice is
		// harmless.
		cm.Close()
		rm.Close()
		pstore.Close()
		return nil, fmt.Errorf("node: start libp2p host: %w", err)
	}
	return h, nil
}

// relayResources turns [relay] into the circuit relay service's limits.
// go-libp2p's defaults (2 minutes and 128 KiB a relayed connection) would
// cut a file transfer short; ours are sized for chat and files.
func relayResources(c RelayConfig) relayv2.Resources {
	r := relayv2.DefaultResources()
	r.MaxReservations = c.MaxReservations
	r.MaxReservationsPerIP = c.MaxReservationsPerIP
	r.MaxReservationsPerASN = max(r.MaxReservationsPerASN, c.MaxReservationsPerIP)
	r.MaxCircuits = c.MaxCircuitsPerPeer
	r.ReservationTTL = time.Duration(c.ReservationTTL)
	r.BufferSize = c.BufferKiB << 10
	r.Limit = nil
	if c.CircuitDuration > 0 || c.CircuitDataMiB > 0 {
		r.Limit = &relayv2.RelayLimit{Duration: time.Duration(c.CircuitDuration), Data: c.CircuitDataMiB << 20}
	}
	return r
}
