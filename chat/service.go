package chat

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/lifecycle"
	"github.com/meshtalk/meshtalk/transfer"
)

// ErrClosed is returned by a closed Service.
var ErrClosed = errors.New("chat: closed")

// Keeper holds connections to chosen peers (node gives discovery's
// keep-alive): friends stay connected, so messages go out at once and
// presence is live.
type Keeper interface {
	Keep(peer.AddrInfo)
	Unkeep(peer.ID)
}

// Config holds the Service's optional dependencies and settings.
type Config struct {
	// Keeper keeps friends connected; nil keeps nobody.
	Keeper Keeper
	// Now is the clock; nil is time.Now. Tests skew it.
	Now func() time.Time
	// After is the couriers' timer (backoff and park_after); nil is
	// time.After. Tests give a fake one.
	After func(time.Duration) <-chan time.Time
	// Path tells how a connection reaches its peer (node gives
	// discovery's Paths): the kind (direct, hole-punched, relayed) and,
	// for a relayed one, the relay. Nil says "direct".
	Path func(network.Conn) (kind string, relay peer.ID)
	// Clock stamps messages; nil is a clock of the service's own. node
	// gives chat and groups one clock.
	Clock *history.Clock
	// ReadReceipts sends "read" receipts to friends when this node reads
	// their messages.
	ReadReceipts bool
	// Blobs keeps avatars (the node's blob store).
	Blobs *transfer.Blobs
	// Emit publishes the service's events (EventMessage, ...); nil
	// discards them. It must not block.
	Emit func(typ string, data any)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Service is a person's contacts, profile and direct messages: the
// contact and DM protocols (wire.go), the durable outbox with one courier
// per contact, history and presence.
type Service struct {
	h    host.Host
	ds   datastore.Batching
	cfg  Config
	log  *slog.Logger
	clk  *history.Clock
	hist *history.Store
	run  *lifecycle.Group
	ctx  context.Context // run's

	// mu guards the couriers and the mailbox.
	mu        sync.Mutex
	mb        Mailbox // nil: direct delivery only
	parkAfter time.Duration
	couriers  map[peer.ID]*courier

	sends chan *sendReq  // to the committer
	sent  chan []Message // from the committer, to runAnnouncer
	// clockCeil is the clock stored (keyClock): every reading sent is
	// at or below it. Set before the first send, then the committer's.
	clockCeil uint64

	received     sync.Map   // peer.ID -> *receivedMark (dm.go)
	ackedMarks   sync.Map   // peer.ID -> *ackedMark (outbox.go)
	relayOnline  sync.Map   // peer.ID -> bool: logged in at a relay
	contactMu    sync.Mutex // serialises contact read-modify-writes
	cacheMu      sync.RWMutex
	contactCache map[peer.ID]*Contact // nil value: known to have no record

	// profile is this node's own profile as stored (no avatar bytes):
	// read once, then putProfile's. Every message of this node's own
	// that a client is shown is named from it. profileMu is held while
	// it is read from the store or written there.
	profileMu sync.Mutex
	profile   atomic.Pointer[Profile]

	strangers  *rate.Limiter // all friend requests from strangers
	reqMu      sync.Mutex
	perPeerReq map[peer.ID]*rate.Limiter // friend requests per stranger
	// pendingAvatars: the avatars of friend requests that wait (avatars.go).
	pendingAvatars map[peer.ID]heldAvatar
	maxPending     int // friend requests that may wait in all

	closeOnce sync.Once
}

// New starts the chat service on h, storing in ds (the /chat namespace).
func New(ctx context.Context, h host.Host, ds datastore.Batching, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = history.NewClock(cfg.Now)
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Path == nil {
		cfg.Path = func(network.Conn) (string, peer.ID) { return "direct", "" }
	}
	if cfg.Emit == nil {
		cfg.Emit = func(string, any) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkSchema(ctx, ds); err != nil {
		return nil, err
	}
	s := &Service{
		h: h, ds: ds, cfg: cfg, log: log.With("component", "chat"),
		clk:          cfg.Clock,
		run:          lifecycle.New(),
		couriers:     map[peer.ID]*courier{},
		sends:        make(chan *sendReq),
		sent:         make(chan []Message, 64),
		contactCache: map[peer.ID]*Contact{},
		strangers:    rate.NewLimiter(rate.Every(time.Second), 20),
		perPeerReq:   map[peer.ID]*rate.Limiter{},

		pendingAvatars: map[peer.ID]heldAvatar{},
		maxPending:     defaultMaxPending,
	}
	s.ctx = s.run.Context()
	s.hist = history.New(ds, history.Config{FileInfo: fileInfo, Pending: s.pending})
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	h.SetStreamHandler(ContactProtocol, s.run.Handler(s.handleContact))
	h.SetStreamHandler(DMProtocol, s.run.Handler(s.handleDM))
	s.run.Watch(sub, s.presenceChanged)
	s.run.Go(s.runCommitter)
	s.run.Go(s.runAnnouncer)

	// Resume: a courier for every contact with something to deliver, and
	// keep-alive for every friend.
	contacts, err := s.Contacts(ctx, false)
	if err != nil {
		s.Close()
		return nil, err
	}
	// The clock goes on from the latest reading stored, so that a reply
	// after a restart still sorts after what it answers, and what this
	// node sends next sorts after (and never takes the ID of) what it sent.
	if b, err := ds.Get(ctx, keyClock); err == nil && len(b) == 8 {
		s.clockCeil = binary.BigEndian.Uint64(b)
		s.clk.Resume(s.clockCeil)
	}
	// A conversation's latest reading may be a peer's: Observe bounds it.
	for _, c := range contacts {
		if h, err := s.lastHLC(ctx, c.PeerID); err == nil {
			s.clk.Observe(h)
		}
	}
	s.collect(ctx)
	for _, c := range contacts {
		if c.State == StateFriend || c.State == StatePendingOut || c.Owe != "" {
			s.keep(c)
			s.kick(c.PeerID)
		}
	}
	return s, nil
}

// Close removes the stream handlers, resets the streams in use, and waits
// for every goroutine the service started, handlers included: nothing
// touches the datastore after Close returns.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.h.RemoveStreamHandler(ContactProtocol)
		s.h.RemoveStreamHandler(DMProtocol)
		s.run.Close()
	})
	return nil
}

// sync makes every write so far durable.
func (s *Service) sync(ctx context.Context) error {
	return s.ds.Sync(ctx, datastore.NewKey("/"))
}

func (s *Service) keep(c *Contact) {
	if s.cfg.Keeper == nil {
		return
	}
	info := peer.AddrInfo{ID: c.PeerID}
	for _, a := range c.Addrs {
		if ai, err := peer.AddrInfoFromString(a + "/p2p/" + c.PeerID.String()); err == nil {
			info.Addrs = append(info.Addrs, ai.Addrs...)
		}
	}
	s.cfg.Keeper.Keep(info)
}

func (s *Service) unkeep(p peer.ID) {
	if s.cfg.Keeper != nil {
		s.cfg.Keeper.Unkeep(p)
	}
}

// Online reports whether p is online: a live connection to p exists, or
// a relay says p is logged in there.
func (s *Service) Online(p peer.ID) bool {
	if s.connected(p) {
		return true
	}
	on, _ := s.relayOnline.Load(p)
	return on == true
}

func (s *Service) connected(p peer.ID) bool {
	c := s.h.Network().Connectedness(p)
	return c == network.Connected || c == network.Limited
}

// relaySaysAway reports whether a relay says p is logged out: what is
// queued for p is parked at once, and still tried directly (p may be on
// the LAN, without its relay).
func (s *Service) relaySaysAway(p peer.ID) bool {
	on, known := s.relayOnline.Load(p)
	return known && on == false
}

// SetRelayPresence records a friend's presence as a relay tells it: how
// friends learn of each other with no direct connection. A change is
// announced as friend.presence.
func (s *Service) SetRelayPresence(p peer.ID, online bool, lastSeen time.Time) {
	c, err := s.contact(s.ctx, p)
	if err != nil || c == nil || c.State != StateFriend {
		return
	}
	was, _ := s.relayOnline.Swap(p, online)
	if !online && lastSeen.After(c.LastSeen) {
		c, _ = s.storeContact(s.ctx, p, func(c *Contact) error {
			c.LastSeen = lastSeen
			return nil
		})
	}
	if was != online && !s.connected(p) && c != nil {
		s.publish(EventPresence, PresenceEvent{PeerID: p, Online: online, LastSeen: c.LastSeen})
	}
	if online || was != online {
		// Online: deliver now. Away: park what waits.
		s.kick(p)
	}
}

// presenceChanged turns a connection change of a contact into a presence
// event, records its last-seen time and wakes the courier of a peer that
// comes back.
func (s *Service) presenceChanged(e any) {
	ev := e.(event.EvtPeerConnectednessChanged)
	online := ev.Connectedness == network.Connected || ev.Connectedness == network.Limited
	c, err := s.contact(s.ctx, ev.Peer)
	if err != nil || c == nil {
		return
	}
	if !online && c.State == StateFriend {
		s.storeContact(s.ctx, ev.Peer, func(c *Contact) error {
			c.LastSeen = s.cfg.Now()
			return nil
		})
	}
	if c.State == StateFriend {
		s.publish(EventPresence, PresenceEvent{PeerID: ev.Peer, Online: online, LastSeen: c.LastSeen})
	}
	if online {
		s.kick(ev.Peer)
	}
}

// Event types.
const (
	EventMessage       = "message.received"
	EventMessageState  = "message.state"
	EventFriendRequest = "friend.request"
	EventFriendUpdate  = "friend.update"
	EventPresence      = "friend.presence"
	EventProfile       = "friend.profile"
)

// PresenceEvent is the data of friend.presence.
type PresenceEvent struct {
	PeerID peer.ID `json:"peer_id"`
	// Name is the friend's name, as the node shows it (the node fills it
	// in).
	Name     string    `json:"name,omitempty"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// StateEvent is the data of message.state.
type StateEvent struct {
	ID     string  `json:"id"`
	PeerID peer.ID `json:"peer_id"`
	State  string  `json:"state"`
	// ParkedOn is set, with state queued, when the message was left in
	// that relay's mailbox for the friend (history.Message.ParkedOn).
	ParkedOn peer.ID `json:"parked_on,omitempty"`
}

// ContactEvent is the data of friend.request, friend.update and
// friend.profile.
type ContactEvent struct {
	PeerID  peer.ID `json:"peer_id"`
	State   string  `json:"state,omitempty"`
	Name    string  `json:"name,omitempty"`
	Message string  `json:"message,omitempty"`
	Version uint64  `json:"version,omitempty"`
}

func (s *Service) publish(typ string, data any) { s.cfg.Emit(typ, data) }

// loadOrNew returns m's *T for p, storing a new zero one if there is
// none. It makes one only on a miss (LoadOrStore alone made one on every
// call, and the acked marks are looked up for every message).
func loadOrNew[T any](m *sync.Map, p peer.ID) *T {
	if v, ok := m.Load(p); ok {
		return v.(*T)
	}
	v, _ := m.LoadOrStore(p, new(T))
	return v.(*T)
}
