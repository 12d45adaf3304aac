package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/discovery"
	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/atomicfile"
	"github.com/meshtalk/meshtalk/internal/gcpace"
	"github.com/meshtalk/meshtalk/internal/lifecycle"
	"github.com/meshtalk/meshtalk/relay"
	"github.com/meshtalk/meshtalk/transfer"
)

// chatKey is the datastore namespace of the chat and group services (their
// key schemas are in chat/store.go, history/store.go and group/service.go).
var chatKey = datastore.NewKey("/chat")

// transferKey is the datastore namespace of the transfer service (its key
// schema is in transfer/service.go).
var transferKey = datastore.NewKey("/transfer")

// Version is the meshtalk release this code is.
const Version = "0.1.0-dev"

// Options are what a caller chooses for one start of a node; everything
// that persists between starts is in the home's config.toml.
type Options struct {
	// Home is the node's home folder (required). It is created if needed.
	Home Home
	// Passphrase protects the identity key. Empty means no passphrase.
	Passphrase []byte
	// Role is a personal node (the default) or a relay.
	Role Role
	// Configure, when set, adjusts the configuration read from config.toml
	// before the node uses it: command-line flags and tests change
	// settings through it. The result is validated like the file.
	Configure func(*Config)
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Clock is the wall clock of the node's services; nil is time.Now.
	// Tests skew it.
	Clock func() time.Time
	// After is the timer of chat's couriers (backoff and park_after);
	// nil is time.After. Tests give a fake one.
	After func(time.Duration) <-chan time.Time
	// Gater decides which connections the host makes and takes; nil
	// admits all. Tests partition nodes with it.
	Gater connmgr.ConnectionGater
}

// Node is a running meshtalk node: identity, datastore and libp2p host,
// with the services of its role. Create it with New and stop it with Close.
type Node struct {
	home   Home
	role   Role
	cfg    Config
	disc   *discovery.Service
	chat   *chat.Service
	groups *group.Service
	xfer   *transfer.Service
	calls  *calls        // a personal node's
	relays *relay.Server // on a relay
	relayc *relay.Client // on a personal node
	key    crypto.PrivKey
	ds     *pebbleds.Datastore
	pstore *shutStore  // the peerstore's part of ds
	chatDS *countingDS // the chat and group services' part of ds
	host   host.Host
	events *Events
	react  reactions // what emit hands to runReactions
	// running is set once every service is started: from then on emit
	// may read the services' fields (set while New ran) to name peers.
	running atomic.Bool
	log     *slog.Logger // the node's own (component=node)
	logs    *slog.Logger // the one its services' loggers derive from
	started time.Time
	clock   func() time.Time // nil: time.Now
	// fetched counts the pictures fetched by themselves today (stored).
	fetched fetchBudget
	after   func(time.Duration) <-chan time.Time
	gater   connmgr.ConnectionGater // nil: all admitted
	lock    *homeLock

	life      *lifecycle.Group // the node's own goroutines
	stopReq   chan struct{}    // closed by RequestStop
	stopOnce  sync.Once
	stopMu    sync.Mutex
	stopped   *StopReport // what ParkOnStop did, once it has
	closeOnce sync.Once
	closeErr  error
	gcStop    func() // ends this node's share of the process's GC pacing
}

// New starts a node on opts.Home: it takes the home's lock, writes a
// default config.toml and creates the identity on first start, opens the
// datastore, starts the libp2p host and the services of the node's role.
// On error nothing is left running and no existing file has been changed.
func New(ctx context.Context, opts Options) (_ *Node, err error) {
	if opts.Home == "" {
		return nil, errors.New("node: no home folder given")
	}
	logs := opts.Logger
	if logs == nil {
		logs = slog.New(slog.DiscardHandler)
	}
	n := &Node{home: opts.Home, role: opts.Role, events: NewEvents(), react: reactions{wake: make(chan struct{}, 1)}, stopReq: make(chan struct{}),
		logs: logs, log: logs.With("component", "node"), started: time.Now(), clock: opts.Clock, after: opts.After, gater: opts.Gater}
	if n.lock, err = lockHome(opts.Home); err != nil {
		return nil, err
	}
	// Every step that starts something pushes its undo; on error the one
	// unwinder runs them, in reverse order.
	undo := undoStack{func() { n.lock.release() }}
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	if err := n.loadHome(opts); err != nil {
		return nil, err
	}
	steps := []func(context.Context, *undoStack) error{n.openStore, n.startHost, n.startServices}
	for _, step := range steps {
		if err := step(ctx, &undo); err != nil {
			return nil, err
		}
	}
	n.gcStop = gcpace.Start()
	n.running.Store(true)
	n.log.Info("node started", "peer_id", n.host.ID(), "addrs", n.host.Addrs())
	return n, nil
}

// undoStack is what New has started so far, to be released in reverse
// order when a later step fails.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }

func (u undoStack) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// loadHome reads (or on first start writes) config.toml, applies the
// start's overrides, loads (or creates) the identity and makes the home's
// folders.
func (n *Node) loadHome(opts Options) (err error) {
	if err := writeDefaultConfig(opts.Home.ConfigPath(), opts.Role); err != nil {
		return err
	}
	if n.cfg, err = LoadConfig(opts.Home.ConfigPath(), opts.Role); err != nil {
		return err
	}
	if opts.Configure != nil {
		opts.Configure(&n.cfg)
		if field, err := n.cfg.validate(); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrConfig, field, err)
		}
	}
	if n.key, _, err = LoadOrCreateIdentity(opts.Home.IdentityPath(), opts.Passphrase); err != nil {
		return err
	}
	for _, dir := range []string{opts.Home.BlobsPath(), opts.Home.DatastorePath()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("node: create home: %w", err)
		}
	}
	return nil
}

// openStore opens the datastore, and the peerstore's part of it.
func (n *Node) openStore(_ context.Context, undo *undoStack) (err error) {
	if n.ds, err = openDatastore(n.home.DatastorePath()); err != nil {
		return err
	}
	undo.push(func() { n.ds.Close() })
	n.pstore = &shutStore{inner: namespace.Wrap(n.ds, peerstoreKey)}
	undo.push(n.pstore.shut) // before the datastore closes
	return nil
}

// startHost starts discovery, the libp2p host, and the node's own
// goroutines: the host's libp2p events into the event stream, and the
// node's reactions to its services' events.
func (n *Node) startHost(ctx context.Context, undo *undoStack) (err error) {
	if n.disc, err = discovery.New(ctx, n.discoveryConfig(n.logs)); err != nil {
		return err
	}
	undo.push(func() { n.disc.Close() })
	extra := n.disc.HostOptions()
	if n.gater != nil {
		extra = append(extra, libp2p.ConnectionGater(n.gater))
	}
	if n.host, err = newHost(ctx, n.key, n.cfg, n.role, n.pstore, extra, n.disc.MappedAddrs); err != nil {
		return err
	}
	// Runs before the discovery undo: the host goes first.
	undo.push(func() { n.host.Close() })

	// The host's bus carries libp2p's own events; the node turns the
	// ones it shows into its event stream. The services' events come
	// through n.emit instead.
	sub, err := n.host.EventBus().Subscribe([]any{
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtLocalReachabilityChanged),
	})
	if err != nil {
		return fmt.Errorf("node: subscribe: %w", err)
	}
	n.life = lifecycle.New()
	undo.push(n.life.Close)
	n.life.Watch(sub, n.forwardEvent)
	n.life.Go(func() { n.runReactions(n.life.Context()) })
	return n.disc.Start(ctx, n.host)
}

// startServices starts file transfer and the services of the node's
// role: a relay's server, or a personal node's chat, groups and relay
// client.
func (n *Node) startServices(ctx context.Context, undo *undoStack) (err error) {
	blobs, err := transfer.NewBlobs(n.home.BlobsPath())
	if err != nil {
		return err
	}
	if n.xfer, err = transfer.New(ctx, n.host, namespace.Wrap(n.ds, transferKey), blobs, transfer.Config{Emit: n.emit, Logger: n.logs, UploadBytesPerSecond: n.cfg.Files.UploadKiBPerSecond << 10}); err != nil {
		return err
	}
	undo.push(func() { n.xfer.Close() })
	if n.role == RoleRelay {
		if n.relays, err = relay.NewServer(ctx, n.host, namespace.Wrap(n.ds, relayKey), n.serverConfig()); err != nil {
			return err
		}
		undo.push(func() { n.relays.Close() })
		return nil
	}
	if err := n.startChat(ctx, blobs, undo); err != nil {
		return err
	}
	if err := n.startRelayClient(ctx); err != nil {
		return err
	}
	undo.push(func() { n.relayc.Close() })
	if err := n.startCalls(ctx); err != nil {
		return err
	}
	undo.push(func() { n.closeCalls() })
	if err := n.xfer.Resume(ctx); err != nil {
		n.log.Warn("resume downloads", "err", err)
	}
	return nil
}

// startChat starts the chat and group services. They share the /chat
// namespace (history's keys are both's) and one clock.
func (n *Node) startChat(ctx context.Context, blobs *transfer.Blobs, undo *undoStack) (err error) {
	n.chatDS = &countingDS{Batching: namespace.Wrap(n.ds, chatKey)}
	chatDS := n.chatDS
	clk := history.NewClock(n.clock)
	n.chat, err = chat.New(ctx, n.host, chatDS, chat.Config{
		Keeper:       n.disc,
		Now:          n.clock,
		After:        n.after,
		Clock:        clk,
		ReadReceipts: n.cfg.Chat.ReadReceipts,
		Path: func(c network.Conn) (string, peer.ID) {
			p := n.disc.Paths().Of(c)
			return p.Kind, p.Relay
		},
		Blobs:  blobs,
		Emit:   n.emit,
		Logger: n.logs,
	})
	if err != nil {
		return err
	}
	undo.push(func() { n.chat.Close() })
	n.groups, err = group.New(ctx, n.host, chatDS, group.Config{
		Friends: n.chat,
		Keeper:  n.disc,
		Now:     n.clock,
		Clock:   clk,
		Emit:    n.emit,
		Logger:  n.logs,
		// One setting for friends and groups.
		ReadReceipts: n.cfg.Chat.ReadReceipts,
	})
	if err != nil {
		return err
	}
	undo.push(func() { n.groups.Close() })
	return nil
}

func writeDefaultConfig(path string, role Role) error {
	err := atomicfile.Write(path, []byte(DefaultConfigText(role)), 0o600, false)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("node: write default config: %w", err)
	}
	return nil
}

// forwardEvent publishes a libp2p event of the host that the node shows
// on its event stream.
func (n *Node) forwardEvent(e any) {
	switch ev := e.(type) {
	case event.EvtPeerConnectednessChanged:
		typ := EventPeerDisconnected
		if ev.Connectedness == network.Connected || ev.Connectedness == network.Limited {
			typ = EventPeerConnected
		}
		n.events.Publish(Event{Type: typ, Data: PeerEventData{PeerID: ev.Peer.String()}})
	case event.EvtLocalReachabilityChanged:
		n.events.Publish(Event{Type: EventReachability, Data: ReachabilityEventData{Reachability: discovery.ReachabilityString(ev.Reachability)}})
	}
}

// discoveryConfig turns the [discovery] settings into the discovery
// service's configuration (config.toml is validated already).
func (n *Node) discoveryConfig(log *slog.Logger) discovery.Config {
	d := n.cfg.Discovery
	if d.Reachability == "auto" && len(n.cfg.Network.Listen) == 0 {
		// Listening on nothing, the node can only be reached through its
		// relays: no need to wait for AutoNAT to say so.
		d.Reachability = "private"
	}
	return discovery.Config{
		MDNS:         d.MDNS,
		DHTMode:      d.DHT,
		Bootstrap:    addrInfos(d.Bootstrap),
		Relays:       addrInfos(d.Relays),
		Reachability: d.Reachability,
		PortMap:      n.cfg.Network.PortMap && listensBeyondLoopback(n.cfg.Network.Listen),
		Emit:         n.emit,
		Logger:       log,
	}
}

// addrInfos parses validated /p2p/ multiaddrs, merging those of one peer.
// listensBeyondLoopback says whether a listen address is one a router
// could forward to: a node on loopback only (the tests' nodes) has no
// port to map, and must not go looking for a router on the network.
func listensBeyondLoopback(listen []string) bool {
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err == nil && !manet.IsIPLoopback(a) {
			return true
		}
	}
	return false
}

func addrInfos(ss []string) []peer.AddrInfo {
	var addrs []ma.Multiaddr
	for _, s := range ss {
		addrs = append(addrs, ma.StringCast(s))
	}
	infos, _ := peer.AddrInfosFromP2pAddrs(addrs...)
	return infos
}

// Role is what the node is for.
func (n *Node) Role() Role { return n.role }

// RelayServer is a relay's accounts, presence, mailbox and file drop;
// nil on a personal node.
func (n *Node) RelayServer() *relay.Server { return n.relays }

// RelayClient is a personal node's link to its relays; nil on a relay.
func (n *Node) RelayClient() *relay.Client { return n.relayc }

// Transfer is the node's file transfer service (on a relay: for file
// drops).
func (n *Node) Transfer() *transfer.Service { return n.xfer }

// Chat is the node's contacts, profile and direct messages; nil on a
// relay.
func (n *Node) Chat() *chat.Service { return n.chat }

// GroupService is the node's groups service; nil on a relay.
func (n *Node) GroupService() *group.Service { return n.groups }

// Discovery is the node's peer discovery and reachability service.
func (n *Node) Discovery() *discovery.Service { return n.disc }

// Home is the node's home folder.
func (n *Node) Home() Home { return n.home }

// Config is the configuration the node runs with (config.toml with the
// start's overrides applied).
func (n *Node) Config() Config { return n.cfg }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Events is the node's event hub.
func (n *Node) Events() *Events { return n.events }

// Started is when the node started.
func (n *Node) Started() time.Time { return n.started }

// Close stops the node: it closes every connection and stream, stops its
// goroutines, flushes and closes the datastore and releases the home. It
// is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.life.Close()
		n.events.Close()
		var errs []error
		// Calls hang up first, while the host is up.
		errs = append(errs, n.closeCalls())
		// The relay client logs out first, while the host is up.
		if n.relayc != nil {
			errs = append(errs, n.relayc.Close())
		}
		if n.relays != nil {
			errs = append(errs, n.relays.Close())
		}
		// Groups ask chat who is a friend: they close first.
		if n.groups != nil {
			errs = append(errs, n.groups.Close())
		}
		if n.chat != nil {
			errs = append(errs, n.chat.Close())
		}
		if n.xfer != nil {
			errs = append(errs, n.xfer.Close())
		}
		errs = append(errs, n.disc.Close(), n.host.Close())
		n.pstore.shut() // libp2p's late peerstore writers fail from here on
		errs = append(errs, n.ds.Close(), n.lock.release())
		n.gcStop()
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped")
	})
	return n.closeErr
}
