// Package discovery finds and reaches peers, with libp2p's own protocols:
// it adds no wire protocol of meshtalk's.
//
//   - service.go is the Service, made in two steps because libp2p builds
//     its host from options: New, then HostOptions (the DHT as the host's
//     peer routing, the circuit relay client, hole punching, forced
//     reachability), then Start on the built host. It runs mDNS on the
//     local network (a peer found is added to the peerstore and emitted as
//     EventPeerFound), the Kademlia DHT across the internet under its own
//     protocol prefix (DHTPrefix, kept apart from the public IPFS DHT;
//     bootstrap peers and relays join it; FindPeer looks a peer ID up),
//     and follows the host's reachability: what AutoNAT says, or what
//     config.toml forces ("public" or "private").
//   - relays.go holds a circuit relay v2 reservation on each configured
//     relay, renews it, takes it again when the connection is lost, and
//     announces the relayed addresses through the event libp2p's
//     AutoRelay uses, so that a relay on a LAN or a VPN serves like one on
//     the internet.
//   - paths.go tells how each connection reaches its peer (direct,
//     relayed, or opened by a hole punch: Paths is the hole punching
//     service's tracer), lists connections for `meshtalk peers`, and pings
//     over libp2p's ping protocol, a fresh stream per round trip so that
//     a series shows a relayed path turning into a direct one.
//   - keepalive.go holds connections to the peers chat and group ask for
//     (friends, group members): protected from the connection manager and
//     re-dialed with backoff when lost.
//   - friendcode.go is the friend code, the copy-pasteable word that
//     carries a peer ID and its addresses; peerref.go reads what a user
//     types to name a peer (peer ID, friend code or /p2p/ multiaddr).
//   - publicranges.go lets a lab or a private WAN treat reserved address
//     ranges as public, so that nodes there hole-punch.
//
// The Service publishes its events through Config.Emit and runs its
// goroutines in an internal/lifecycle Group that Close stops.
package discovery
