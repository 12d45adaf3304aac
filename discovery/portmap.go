package discovery

import (
	"net"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-netroute"
	ma "github.com/multiformats/go-multiaddr"
)

// portMap asks the node's router for a port mapping of each listen port,
// through go-libp2p's NAT manager (UPnP IGD and NAT-PMP, found through
// the default gateway and SSDP; it renews the mappings and follows a
// router that restarts). portMap only keeps hold of that manager, so the
// node can announce and show what the router mapped.
type portMap struct {
	mu  sync.Mutex
	mgr basichost.NATManager
	net network.Network
}

// hostOption is the libp2p option that starts go-libp2p's NAT manager
// and hands it to pm.
func (pm *portMap) hostOption() libp2p.Option {
	return libp2p.NATManager(func(n network.Network) basichost.NATManager {
		m := basichost.NewNATManager(n)
		pm.mu.Lock()
		pm.mgr, pm.net = m, n
		pm.mu.Unlock()
		return m
	})
}

// mapped returns the router's external address for each listen address
// it mapped, in the order of the listen addresses.
func (pm *portMap) mapped() (found bool, mappings []PortMapping) {
	pm.mu.Lock()
	m, n := pm.mgr, pm.net
	pm.mu.Unlock()
	if m == nil || !m.HasDiscoveredNAT() {
		return false, nil
	}
	for _, l := range n.ListenAddresses() {
		if ext := m.GetMapping(l); ext != nil && !slices.ContainsFunc(mappings, func(p PortMapping) bool { return p.External.Equal(ext) }) {
			mappings = append(mappings, PortMapping{Internal: l, External: ext})
		}
	}
	return true, mappings
}

// PortMapping is one port the router forwards to this node.
type PortMapping struct {
	// Internal is the listen address, External what the router maps to it.
	Internal ma.Multiaddr
	External ma.Multiaddr
}

// PortMapStatus is what port mapping achieved so far.
type PortMapStatus struct {
	// Enabled: the node asks its router (Config.PortMap).
	Enabled bool
	// Router is the default gateway: the router NAT-PMP asks, and usually
	// the box that answers UPnP's search too. Empty without a default
	// route.
	Router string
	// Found: a router answered, over UPnP IGD or NAT-PMP.
	Found bool
	// Mappings are the ports it mapped, with their external addresses.
	Mappings []PortMapping
}

// PortMap says whether the node's router maps its ports, and to which
// external addresses.
func (s *Service) PortMap() PortMapStatus {
	if !s.cfg.PortMap {
		return PortMapStatus{}
	}
	st := PortMapStatus{Enabled: true, Router: defaultGateway()}
	st.Found, st.Mappings = s.pmap.mapped()
	return st
}

// MappedAddrs adds the router's external addresses to addrs, the
// addresses the host announces. go-libp2p lists them among its own but
// drops every public address once the node is private and has relay
// addresses; a mapped port is reachable all the same, and it is what
// lets a peer behind a symmetric NAT connect directly.
func (s *Service) MappedAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	if !s.cfg.PortMap {
		return addrs
	}
	_, mappings := s.pmap.mapped()
	for _, m := range mappings {
		if !slices.ContainsFunc(addrs, m.External.Equal) {
			addrs = append(addrs, m.External)
		}
	}
	return addrs
}

// defaultGateway is the IPv4 default gateway: the next hop of the route a
// packet to a reserved address (240.0.0.1, class E, routed nowhere)
// would take, which is the default route. Nothing is sent. go-libp2p
// asks go-netroute for the route to 0.0.0.0 instead, which go-netroute
// v0.4.0 refuses on Linux.
func defaultGateway() string {
	r, err := netroute.New()
	if err != nil {
		return ""
	}
	_, gw, _, err := r.Route(net.IPv4(240, 0, 0, 1))
	if err != nil || gw == nil {
		return ""
	}
	return gw.String()
}
