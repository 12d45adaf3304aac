package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/discovery"
)

// ConnInfo is one open connection and the path it takes.
type ConnInfo = discovery.ConnInfo

// PingResult is one round trip of Ping.
type PingResult = discovery.PingResult

// Paths of a connection (ConnInfo.Path).
const (
	PathDirect      = discovery.PathDirect
	PathHolePunched = discovery.PathHolePunched
	PathRelayed     = discovery.PathRelayed
)

// Identity is who the node is and how to reach it.
type Identity struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	// FriendCode carries the peer ID and the addresses in one word.
	FriendCode string `json:"friend_code"`
}

// Status is the node's state: version, role, addresses, reachability,
// relays and connections.
type Status struct {
	Version     string   `json:"version"`
	Role        string   `json:"role"`
	PeerID      string   `json:"peer_id"`
	ListenAddrs []string `json:"listen_addrs"`
	// Reachability is "public", "private" or "unknown" (AutoNAT's view).
	Reachability string `json:"reachability"`
	// HolePunchReady: the node knows a public address of its own and
	// answers hole punching (DCUtR); go-libp2p waits for one first.
	HolePunchReady bool `json:"hole_punch_ready"`
	// PortMap is what the node's router forwards to it.
	PortMap       PortMapStatus `json:"port_map"`
	Relays        []RelayStatus `json:"relays"`
	Peers         []ConnInfo    `json:"peers"`
	Started       time.Time     `json:"started"`
	UptimeSeconds float64       `json:"uptime_seconds"`
}

// PortMapStatus is port mapping ([network] port_map): whether the node
// asks its router, which router, and the external addresses it mapped.
type PortMapStatus struct {
	// Enabled: port_map is on and the node listens beyond loopback.
	Enabled bool `json:"enabled"`
	// Router is the default gateway, the router asked; RouterFound says
	// whether a router answered (UPnP IGD or NAT-PMP).
	Router      string `json:"router,omitempty"`
	RouterFound bool   `json:"router_found"`
	// Mapped are the ports it forwards here; the external addresses are
	// announced.
	Mapped []PortMapping `json:"mapped"`
}

// PortMapping is one listen address and the router's external address
// for it.
type PortMapping struct {
	Internal string `json:"internal"`
	External string `json:"external"`
}

// RelayStatus is one relay the node uses.
type RelayStatus struct {
	PeerID    string `json:"peer_id"`
	Connected bool   `json:"connected"`
	// Reserved: the node holds a reservation and announces an address
	// through this relay.
	Reserved bool `json:"reserved"`
	// Name is this node's account there; LoggedIn says whether it is
	// logged in now, Error why not.
	Name     string `json:"name,omitempty"`
	LoggedIn bool   `json:"logged_in"`
	Error    string `json:"error,omitempty"`
}

// Identity is the node's peer ID, addresses and friend code. A relay's
// addresses end in /p2p/<peer ID>.
func (n *Node) Identity() (*Identity, error) {
	addrs := n.host.Addrs()
	code, err := discovery.EncodeFriendCode(peer.AddrInfo{ID: n.host.ID(), Addrs: addrs})
	if err != nil {
		return nil, err
	}
	id := &Identity{PeerID: n.host.ID().String(), Addrs: addrStrings(addrs), FriendCode: code}
	if n.role == RoleRelay {
		// What an operator hands out, ready for --relay.
		for i, a := range id.Addrs {
			id.Addrs[i] = a + "/p2p/" + id.PeerID
		}
	}
	return id, nil
}

// Status is the node's state now.
func (n *Node) Status() *Status {
	h := n.host
	return &Status{
		Version:        Version,
		Role:           n.role.String(),
		PeerID:         h.ID().String(),
		ListenAddrs:    listenAddrs(h.Network().ListenAddresses()),
		Reachability:   n.disc.Reachability(),
		HolePunchReady: slices.Contains(h.Mux().Protocols(), holepunch.Protocol),
		PortMap:        n.portMapStatus(),
		Relays:         n.relayStatus(),
		Peers:          n.Peers(),
		Started:        n.started.UTC(),
		UptimeSeconds:  time.Since(n.started).Seconds(),
	}
}

func (n *Node) portMapStatus() PortMapStatus {
	pm := n.disc.PortMap()
	out := PortMapStatus{Enabled: pm.Enabled, Router: pm.Router, RouterFound: pm.Found, Mapped: []PortMapping{}}
	for _, m := range pm.Mappings {
		out.Mapped = append(out.Mapped, PortMapping{Internal: m.Internal.String(), External: m.External.String()})
	}
	return out
}

// relayStatus lists the relays of config.toml and, on a personal node,
// those it registered on, with its account there.
func (n *Node) relayStatus() []RelayStatus {
	out := []RelayStatus{}
	connected := func(p peer.ID) bool { return n.host.Network().Connectedness(p) == network.Connected }
	if n.relayc != nil {
		for _, status := range n.relayc.Status() {
			out = append(out, RelayStatus{
				PeerID: status.PeerID.String(), Connected: connected(status.PeerID), Reserved: n.disc.Reserved(status.PeerID),
				Name: status.Name, LoggedIn: status.LoggedIn, Error: status.Error,
			})
		}
		return out
	}
	for _, r := range n.cfg.Discovery.Relays {
		info, err := peer.AddrInfoFromString(r)
		if err != nil {
			continue
		}
		out = append(out, RelayStatus{PeerID: info.ID.String(), Connected: connected(info.ID), Reserved: n.disc.Reserved(info.ID)})
	}
	return out
}

// Peers lists the open connections with their paths and the peers'
// names, sorted by peer ID.
func (n *Node) Peers() []ConnInfo {
	conns := n.disc.Paths().Conns(n.host)
	for i := range conns {
		conns[i].Name = n.NameOf(context.Background(), conns[i].PeerID)
	}
	return conns
}

// PingOptions say whom Ping measures and how. Zero values take the
// defaults: 4 round trips, 1s apart, 15s to reach the peer.
type PingOptions struct {
	// Peer is any name ResolvePeer takes: a peer ID, a friend code, a
	// multiaddr ending in /p2p/<peer ID>, a username, a nickname.
	Peer     string
	Count    int
	Interval time.Duration
	Timeout  time.Duration
}

// Ping measures round trips to a peer, calling fn after each. A peer that
// cannot be reached within the timeout is an error wrapping ErrNoRoute;
// a bad peer or option one wrapping ErrBadRequest. Once fn has been
// called, the round trips that fail carry their error in the result.
func (n *Node) Ping(ctx context.Context, opts PingOptions, fn func(PingResult)) error {
	target, err := n.resolvePeerInfo(ctx, opts.Peer)
	if err != nil {
		return err
	}
	name := n.NameOf(ctx, target.ID)
	inner := fn
	fn = func(r PingResult) {
		r.PeerID, r.Name = target.ID, name
		inner(r)
	}
	if opts.Count == 0 {
		opts.Count = 4
	}
	if opts.Count < 1 || opts.Count > 1000 {
		return badRequest(errors.New("node: count must be between 1 and 1000"))
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"interval", &opts.Interval, time.Second}, {"timeout", &opts.Timeout, 15 * time.Second}} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 || *d.v > time.Hour {
			return badRequest(fmt.Errorf("node: %s must be a duration such as 1s, up to 1h", d.name))
		}
	}
	err = n.disc.Ping(ctx, target, opts.Count, opts.Interval, opts.Timeout, fn)
	if err != nil && !errors.Is(err, ErrNoRoute) {
		return badRequest(err)
	}
	return err
}

// CheckPeer says whether s can name a peer as Ping and AddFriend take it:
// only a friend code or a multiaddr is checked here (a peer ID, a name
// or a prefix is the node's to resolve).
func CheckPeer(s string) error {
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(strings.ToLower(s), "mt1") {
		return nil
	}
	_, err := discovery.ParsePeer(s)
	return err
}

// TreatAsPublic makes the address ranges cidrs count as public
// ([discovery] public_ranges). It is process-wide: the binary calls it
// once, before it starts a node.
func TreatAsPublic(cidrs []string) error { return discovery.TreatAsPublic(cidrs) }

// listenAddrs are the addresses the node listens on, without the relay
// transport's bare /p2p-circuit: that is no address anyone can dial (the
// relayed ones are under Relays, and in the friend code).
func listenAddrs(addrs []ma.Multiaddr) []string {
	return slices.DeleteFunc(addrStrings(addrs), func(s string) bool { return s == "/p2p-circuit" })
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
