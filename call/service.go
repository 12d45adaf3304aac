package call

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/meshtalk/meshtalk/internal/lifecycle"
)

// Event types the service emits.
const (
	// EventRinging: a friend rings this node; every endpoint rings. Data:
	// Info, with the caller's offer in Pending.
	EventRinging = "call.ringing"
	// EventCalling: the friend this node calls rings. Data: Info.
	EventCalling = "call.calling"
	// EventAccepted: the call was answered (here, by Info.Endpoint, or
	// by the friend); every other endpoint stops ringing. Data: Info.
	EventAccepted = "call.accepted"
	// EventEnded: the call ended (Info.Reason says how). Data: Info.
	EventEnded = "call.ended"
	// EventSignal: the friend's endpoint sent an offer, an answer or a
	// candidate, for the endpoint that holds the call. Data: SignalEvent.
	EventSignal = "call.signal"
)

// Call states.
const (
	StateCalling = "calling" // outgoing, the offer is on its way
	StateRinging = "ringing"
	StateActive  = "active"
	StateEnded   = "ended"
)

// Reasons a call ended (Info.Reason).
const (
	ReasonHangup   = "hangup"   // answered, then hung up (Info.EndedBy says by whom)
	ReasonMissed   = "missed"   // rang and nobody answered, or the caller gave up
	ReasonDeclined = "declined" // the callee declined
	ReasonBusy     = "busy"     // the callee was in another call
	ReasonRefused  = "refused"  // not a friend, or too many rings (Info.Error)
	ReasonLost     = "lost"     // the signaling stream broke: the peer stopped or the connection dropped
	ReasonFailed   = "failed"   // the media could not connect or broke (Info.Error)
	ReasonError    = "error"    // a protocol error (Info.Error)
)

// Defaults of Config.
const (
	DefaultRingTimeout = 45 * time.Second
	// DefaultRingEvery and DefaultRingBurst: a peer may ring this often,
	// after a burst.
	DefaultRingEvery = 10 * time.Second
	DefaultRingBurst = 3
	// keptEnded is how many ended calls List still shows.
	keptEnded = 50
	// ioTimeout bounds a frame's write, and the wait for the first frame.
	ioTimeout = 10 * time.Second
)

// Errors.
var (
	ErrClosed      = errors.New("call: service closed")
	ErrNoCall      = errors.New("call: no such call")
	ErrNotFriend   = errors.New("call: only friends can ring each other")
	ErrRateLimited = errors.New("call: too many rings, try again later")
	ErrBusy        = errors.New("call: busy in another call")
	ErrDeclined    = errors.New("call: declined")
	ErrTaken       = errors.New("call: already answered on another endpoint")
	ErrState       = errors.New("call: not possible in the call's state")
	ErrEnded       = errors.New("call: ended")
	ErrBadFrame    = errors.New("call: bad frame")
	ErrTooLarge    = errors.New("call: frame too large")
	ErrForged      = errors.New("call: forged frame (of another call)")
	ErrOutOfOrder  = errors.New("call: frame out of order")
	ErrRemote      = errors.New("call: the peer reported a protocol error")
	ErrUnreachable = errors.New("call: the friend cannot be reached now (offline, or no path to them)")
)

// Friends is what calls need of this node's contacts (node gives the chat
// service).
type Friends interface {
	IsFriend(p peer.ID) bool
}

// Config holds the Service's optional dependencies and settings.
type Config struct {
	// Friends is this node's contacts; nil: nobody can ring or be rung.
	Friends Friends
	// RingTimeout is how long a call rings before it is missed; 0 is
	// DefaultRingTimeout. Tests shorten it.
	RingTimeout time.Duration
	// RingEvery and RingBurst limit the rings of one peer; 0 is the
	// default.
	RingEvery time.Duration
	RingBurst int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Emit publishes the service's events; nil discards them. It must
	// not block.
	Emit func(typ string, data any)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Info is a call as the node shows it.
type Info struct {
	ID       string    `json:"id"`
	Peer     peer.ID   `json:"peer_id"`
	Outgoing bool      `json:"outgoing"`
	State    string    `json:"state"`
	Audio    bool      `json:"audio"`
	Video    bool      `json:"video"`
	Endpoint string    `json:"endpoint,omitempty"` // the local endpoint that holds it
	Started  time.Time `json:"started"`
	Accepted time.Time `json:"accepted,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
	Reason   string    `json:"reason,omitempty"`
	EndedBy  string    `json:"ended_by,omitempty"` // "local" or "remote"
	Error    string    `json:"error,omitempty"`
	// Pending is what the friend's endpoint sent before an endpoint here
	// took the call (incoming, ringing): the offer, then candidates.
	Pending []Signal `json:"pending,omitempty"`
}

// Duration is how long the call was answered for (0: never).
func (i Info) Duration() time.Duration {
	if i.Accepted.IsZero() || i.Ended.IsZero() {
		return 0
	}
	return i.Ended.Sub(i.Accepted)
}

// SignalEvent is the Data of EventSignal.
type SignalEvent struct {
	CallID   string `json:"call_id"`
	Endpoint string `json:"endpoint,omitempty"` // the endpoint it is for ("": not taken yet)
	Signal   Signal `json:"signal"`
}

// Endpoint is the local end of a call: a page of the web UI, or the
// node's own WebRTC endpoint.
type Endpoint struct {
	// ID names it ("node" for the node's own, a page's random ID).
	ID string
	// Deliver, when set, gets the friend's signals for the call (they go
	// out as EventSignal too). It must not block.
	Deliver func(Signal)
}

// Service runs call signaling: it rings friends and is rung by them.
type Service struct {
	h   host.Host
	cfg Config
	log *slog.Logger
	run *lifecycle.Group

	mu       sync.Mutex
	calls    map[string]*call // live calls, and the latest ended ones
	ended    []string         // IDs of ended calls in calls, oldest first
	limiters map[peer.ID]*rate.Limiter
	closed   bool
	once     sync.Once
}

// New starts the service and its stream handler.
func New(_ context.Context, h host.Host, cfg Config) (*Service, error) {
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = DefaultRingTimeout
	}
	if cfg.RingEvery <= 0 {
		cfg.RingEvery = DefaultRingEvery
	}
	if cfg.RingBurst <= 0 {
		cfg.RingBurst = DefaultRingBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Emit == nil {
		cfg.Emit = func(string, any) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{h: h, cfg: cfg, log: log.With("component", "call"), run: lifecycle.New(),
		calls: make(map[string]*call), limiters: make(map[peer.ID]*rate.Limiter)}
	h.SetStreamHandler(ProtocolID, s.run.Handler(s.handle))
	return s, nil
}

// Close hangs up every call and stops the service. It is idempotent.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.h.RemoveStreamHandler(ProtocolID)
		s.mu.Lock()
		s.closed = true
		live := s.liveLocked()
		s.mu.Unlock()
		for _, c := range live {
			c.hangup(ReasonHangup, "closing")
		}
		s.run.Close()
	})
	return nil
}

// NewID returns a new random call ID.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Get returns the call id.
func (s *Service) Get(id string) (Info, error) {
	s.mu.Lock()
	c := s.calls[id]
	s.mu.Unlock()
	if c == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrNoCall, id)
	}
	return c.snapshot(), nil
}

// List returns the live calls and the latest ended ones, newest first.
func (s *Service) List() []Info {
	s.mu.Lock()
	all := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		all = append(all, c)
	}
	s.mu.Unlock()
	out := make([]Info, 0, len(all))
	for _, c := range all {
		i := c.snapshot()
		i.Pending = nil
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b Info) int { return b.Started.Compare(a.Started) })
	return out
}

// liveLocked is the calls not ended; s.mu is held.
func (s *Service) liveLocked() []*call {
	var live []*call
	for _, c := range s.calls {
		if !c.isEnded() {
			live = append(live, c)
		}
	}
	return live
}

// Dial rings friend p with offer (an OFFER signal: the endpoint's SDP
// and what the call carries) as call id (NewID). It returns once p rings,
// or with ErrBusy, ErrNotFriend, ErrRateLimited. ep is the local endpoint
// that placed the call.
func (s *Service) Dial(ctx context.Context, id string, p peer.ID, offer Signal, ep Endpoint) (Info, error) {
	if !ValidID(id) {
		return Info{}, fmt.Errorf("%w: bad call ID %q", ErrState, truncate(id))
	}
	if offer.Kind != KindOffer || offer.SDP == "" || (!offer.Audio && !offer.Video) {
		return Info{}, fmt.Errorf("%w: a call starts with an offer with an SDP and audio or video", ErrState)
	}
	if s.cfg.Friends == nil || !s.cfg.Friends.IsFriend(p) {
		return Info{}, fmt.Errorf("%w: %s is not a friend", ErrNotFriend, p)
	}
	c := &call{s: s, id: id, peer: p, outgoing: true, ep: ep, done: make(chan struct{}),
		info: Info{ID: id, Peer: p, Outgoing: true, State: StateCalling, Audio: offer.Audio, Video: offer.Video, Endpoint: ep.ID, Started: s.cfg.Now()}}
	// The offer goes first: signals the endpoint trickles meanwhile wait
	// for it.
	c.wmu.Lock()
	if err := s.add(c); err != nil {
		c.wmu.Unlock()
		return Info{}, err
	}
	err := c.open(ctx, offer)
	c.wmu.Unlock()
	if err != nil {
		c.end(ReasonLost, "local", err)
		return Info{}, err
	}
	if err := c.awaitRinging(); err != nil {
		return Info{}, err
	}
	if !s.run.Go(c.readLoop) {
		c.end(ReasonHangup, "local", ErrClosed)
		return Info{}, ErrClosed
	}
	return c.snapshot(), nil
}

// add registers c, a call of this node's, unless another call is live.
func (s *Service) add(c *call) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.calls[c.id]; ok {
		return fmt.Errorf("%w: call ID %s is in use", ErrState, c.id)
	}
	if live := s.liveLocked(); len(live) > 0 {
		return fmt.Errorf("%w: with %s", ErrBusy, live[0].peer)
	}
	s.calls[c.id] = c
	return nil
}

// forget keeps an ended call for List, dropping the oldest beyond
// keptEnded.
func (s *Service) forget(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = append(s.ended, c.id)
	for len(s.ended) > keptEnded {
		delete(s.calls, s.ended[0])
		s.ended = s.ended[1:]
	}
}

func (s *Service) lookup(id string) (*call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.calls[id]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNoCall, id)
}

// Accept answers the ringing call id on endpoint ep: answer gets what
// the caller sent so far (the offer, then candidates) and returns the
// endpoint's SDP answer. The first endpoint to accept takes the call;
// later ones get ErrTaken.
func (s *Service) Accept(id string, ep Endpoint, answer func(pending []Signal) (string, error)) (Info, error) {
	c, err := s.lookup(id)
	if err != nil {
		return Info{}, err
	}
	return c.accept(ep, answer)
}

// Decline declines the ringing call id.
func (s *Service) Decline(id string) error {
	c, err := s.lookup(id)
	if err != nil {
		return err
	}
	return c.decline()
}

// Hangup ends call id: a ringing call of this node's is cancelled (a
// missed call for the friend), an incoming ringing one declined, an
// active one hung up.
func (s *Service) Hangup(id string) error {
	c, err := s.lookup(id)
	if err != nil {
		return err
	}
	if c.snapshot().State == StateRinging && !c.outgoing {
		return c.decline()
	}
	if !c.hangup(ReasonHangup, ReasonHangup) {
		return fmt.Errorf("%w: %s", ErrEnded, id)
	}
	return nil
}

// Fail ends call id because its media failed (the endpoint says why).
func (s *Service) Fail(id string, why error) {
	if c, err := s.lookup(id); err == nil {
		c.hangupAs(ReasonFailed, "failed", why)
	}
}

// Signal sends the friend an offer, an answer or a candidate of call id's
// endpoint ep.
func (s *Service) Signal(id, ep string, sig Signal) error {
	c, err := s.lookup(id)
	if err != nil {
		return err
	}
	return c.signal(ep, sig)
}

// allowRing reports whether p may ring now.
func (s *Service) allowRing(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[p]
	if l == nil {
		// One limiter per friend that rang: bounded by the friend list.
		l = rate.NewLimiter(rate.Every(s.cfg.RingEvery), s.cfg.RingBurst)
		s.limiters[p] = l
	}
	return l.Allow()
}

// handle serves a stream a friend opened: a call that rings here.
func (s *Service) handle(st network.Stream) {
	p := st.Conn().RemotePeer()
	c := &call{s: s, peer: p, done: make(chan struct{})}
	c.setStream(st)
	st.SetReadDeadline(time.Now().Add(ioTimeout))
	f, err := c.read()
	if err != nil {
		c.refuse(err)
		return
	}
	st.SetReadDeadline(time.Time{})
	if f.Kind != KindOffer || f.Seq != 1 {
		c.refuse(fmt.Errorf("%w: a call starts with an offer, not %s %d", ErrOutOfOrder, f.Kind, f.Seq))
		return
	}
	c.id, c.recvSeq = f.CallID, 1
	switch {
	case s.cfg.Friends == nil || !s.cfg.Friends.IsFriend(p):
		c.refuse(fmt.Errorf("%w: %s rang", ErrNotFriend, p))
		return
	case !s.allowRing(p):
		c.refuse(fmt.Errorf("%w: %s rang", ErrRateLimited, p))
		return
	}
	c.info = Info{ID: c.id, Peer: p, State: StateRinging, Audio: f.Audio, Video: f.Video, Started: s.cfg.Now(), Pending: []Signal{f.Signal}}
	if err := s.add(c); err != nil {
		if errors.Is(err, ErrBusy) {
			c.write(Signal{Kind: KindBusy})
			c.info.State, c.info.Reason, c.info.Ended, c.info.EndedBy = StateEnded, ReasonBusy, s.cfg.Now(), "local"
			s.cfg.Emit(EventEnded, c.info)
			st.Close()
		} else {
			c.refuse(fmt.Errorf("%w: %v", ErrBadFrame, err))
		}
		return
	}
	if err := c.write(Signal{Kind: KindRinging}); err != nil {
		c.end(ReasonLost, "remote", err)
		return
	}
	s.cfg.Emit(EventRinging, c.snapshot())
	// The caller ends an unanswered ring; this end gives up a little
	// later in case the caller vanished.
	t := time.AfterFunc(s.cfg.RingTimeout+s.cfg.RingTimeout/8+time.Second, func() { c.timeout(false) })
	defer t.Stop()
	c.readLoop()
}
