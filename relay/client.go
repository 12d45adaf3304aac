package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/internal/lifecycle"
	"github.com/meshtalk/meshtalk/relay/pb"
	"github.com/meshtalk/meshtalk/transfer"
)

// Sink is where a Client hands what its relays deliver (node's gives
// direct letters to chat and group letters to group): the relay package
// never reads what letters carry.
type Sink interface {
	// Letter takes one opened letter of kind KindDM or KindGroup. A nil
	// error lets the relay delete it; an error keeps it there for the
	// next delivery (for a failure that may pass, like a full disk).
	Letter(ctx context.Context, l *Letter) error
	// Presence tells a friend's presence as a relay sees it.
	Presence(p Presence)
	// Friend says whether p is a friend: only friends' files are fetched.
	Friend(p peer.ID) bool
	// FileDropped tells that a dropped file has arrived.
	FileDropped(f DroppedFile)
}

// ClientConfig holds a Client's dependencies and settings.
type ClientConfig struct {
	// Relays are the relays from config.toml; the client also logs in
	// to every relay it has registered on.
	Relays []peer.AddrInfo
	// Key is the node's identity key: it signs proofs and letters, and
	// the sealing keys derive from it.
	Key crypto.PrivKey
	// Sink receives letters and presence; nil drops them.
	Sink Sink
	// Profile is what the relay shows of this user; nil shows nothing.
	Profile func() Profile
	// Transfer sends and fetches dropped files; nil turns file drop off.
	Transfer *transfer.Service
	// DropDir is where dropped files land; StagingDir holds sealed files
	// on their way.
	DropDir, StagingDir string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Client is a personal node's side of the relay protocols: it logs in
// to its relays and stays logged in, keeps their presence allow-lists in
// step, deposits sealed letters, and takes what the relays deliver.
type Client struct {
	h    host.Host
	ds   datastore.Batching
	cfg  ClientConfig
	log  *slog.Logger
	keys *SealingKeys

	life *lifecycle.Group
	ctx  context.Context // life's: cancelled when Close begins
	once sync.Once

	// dropWait bounds the wait for a relay's answer to a drop (it fetches
	// the whole file first): this much, plus the file's time at
	// dropMinRate. syncDir makes a dropped file's name durable. Tests
	// change them.
	dropWait time.Duration
	syncDir  func(dir string) error

	mu     sync.Mutex
	relays map[peer.ID]*relayState
	order  []peer.ID // relays in the order they were added
	allow  []peer.ID // friends: see presence, may deposit
	// members may deposit (the members of this node's groups).
	members []peer.ID

	// names caches UserName's answers (peer.ID -> string, "" for none):
	// every message names its author. rememberKey keeps it current.
	names sync.Map
}

// relayState is what the client knows of one relay.
type relayState struct {
	info       peer.AddrInfo
	name       string // the account's name there, when registered
	loggedIn   bool
	lastErr    string
	relogin    bool // log in again (registered meanwhile)
	allowDirty bool // send the allow-list again
	removed    bool // RemoveRelay: its session loop ends
	wake       chan struct{}
}

// clientAccount is a relay this node registered on.
type clientAccount struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
}

// NewClient starts the client on h, storing in ds (the /relay namespace).
// ctx bounds the start (reading the accounts) only: the client runs until
// Close.
func NewClient(ctx context.Context, h host.Host, ds datastore.Batching, cfg ClientConfig) (*Client, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	keys, err := DeriveSealingKeys(cfg.Key)
	if err != nil {
		return nil, err
	}
	c := &Client{h: h, ds: ds, cfg: cfg, log: cfg.Logger.With("component", "relay-client"), keys: keys, relays: map[peer.ID]*relayState{},
		dropWait: ioTimeout, syncDir: syncDir}
	for _, info := range cfg.Relays {
		c.addRelayLocked(info, "")
	}
	accts, err := c.accounts(ctx)
	if err != nil {
		return nil, err
	}
	for id, a := range accts {
		info := peer.AddrInfo{ID: id}
		for _, s := range a.Addrs {
			if m, err := ma.NewMultiaddr(s); err == nil {
				info.Addrs = append(info.Addrs, m)
			}
		}
		c.addRelayLocked(info, a.Name)
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	c.life = lifecycle.New()
	c.ctx = c.life.Context()
	h.SetStreamHandler(MailboxProtocol, c.life.Handler(c.handleDeliver))
	h.SetStreamHandler(AccountProtocol, c.life.Handler(c.handlePush))
	h.SetStreamHandler(AccountProtocolV1, c.life.Handler(c.handlePush))
	c.life.Watch(sub, c.relayConnChanged)
	for _, id := range c.order {
		c.startRelay(c.relays[id])
	}
	c.resumeDrops()
	return c, nil
}

// addRelayLocked adds a relay (or its name); mu held or not started.
func (c *Client) addRelayLocked(info peer.AddrInfo, name string) *relayState {
	rs := c.relays[info.ID]
	if rs == nil {
		rs = &relayState{info: info, wake: make(chan struct{}, 1)}
		c.relays[info.ID] = rs
		c.order = append(c.order, info.ID)
	} else if len(rs.info.Addrs) == 0 {
		rs.info.Addrs = info.Addrs
	}
	if name != "" {
		rs.name = name
	}
	return rs
}

func (c *Client) accounts(ctx context.Context) (map[peer.ID]clientAccount, error) {
	out := map[peer.ID]clientAccount{}
	err := scan(ctx, c.ds, "/client/accounts/", func(key string, v []byte) {
		id, err := peer.Decode(datastore.RawKey(key).BaseNamespace())
		var a clientAccount
		if err == nil && json.Unmarshal(v, &a) == nil {
			out[id] = a
		}
	})
	return out, err
}

func (c *Client) startRelay(rs *relayState) { c.life.Go(func() { c.runRelay(rs) }) }

func wake(rs *relayState) {
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

// relayConnChanged wakes a relay's session loop when its connection goes.
func (c *Client) relayConnChanged(e any) {
	ev := e.(event.EvtPeerConnectednessChanged)
	if ev.Connectedness != network.NotConnected {
		return
	}
	// The relay ends the session with the connection: log in again, even
	// if a new connection is up by now.
	c.mu.Lock()
	rs := c.relays[ev.Peer]
	if rs != nil {
		rs.loggedIn = false
	}
	c.mu.Unlock()
	if rs != nil {
		wake(rs)
	}
}

// runRelay keeps this node logged in to one relay: it logs in, and again
// whenever the connection comes back, backing off while it fails.
func (c *Client) runRelay(rs *relayState) {
	backoff := time.Second
	for {
		c.mu.Lock()
		if rs.removed {
			c.mu.Unlock()
			return
		}
		need := !rs.loggedIn || rs.relogin
		dirty := rs.allowDirty
		rs.relogin, rs.allowDirty = false, false
		allow, members := c.allow, c.members
		c.mu.Unlock()
		var retry <-chan time.Time
		if need {
			err := c.login(rs)
			c.mu.Lock()
			if rs.removed {
				// Removed while it logged in.
				c.mu.Unlock()
				if err == nil {
					ctx, cancel := context.WithTimeout(c.ctx, ioTimeout)
					c.logout(ctx, rs.info.ID)
					cancel()
				}
				return
			}
			rs.loggedIn = err == nil
			rs.lastErr = ""
			if err != nil {
				rs.lastErr = err.Error()
			}
			c.mu.Unlock()
			if err != nil {
				c.log.Info("relay login", "relay", rs.info.ID, "err", err)
				if !errors.Is(err, ErrNotRegistered) {
					// Full jitter: many clients of a relay that restarts
					// do not come back all at once.
					retry = time.After(rand.N(backoff) + 100*time.Millisecond)
					backoff = min(2*backoff, time.Minute)
				}
			} else {
				backoff = time.Second
			}
		} else if dirty {
			ctx, cancel := context.WithTimeout(c.ctx, ioTimeout)
			err := c.call(ctx, rs.info.ID, func(s *accountStream) error {
				_, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Allow{Allow: &pb.SetAllow{Peers: peersToWire(allow), Members: peersToWire(members)}}})
				return err
			})
			cancel()
			if err != nil {
				// Who may see this node's presence must follow the friend
				// list: try again.
				c.log.Info("relay allow-list", "relay", rs.info.ID, "err", err)
				c.mu.Lock()
				rs.allowDirty = true
				if errors.Is(err, ErrNotLoggedIn) {
					rs.loggedIn = false
				}
				c.mu.Unlock()
				retry = time.After(rand.N(backoff) + 100*time.Millisecond)
				backoff = min(2*backoff, time.Minute)
			}
		}
		select {
		case <-c.ctx.Done():
			return
		case <-rs.wake:
		case <-retry:
		}
		if c.h.Network().Connectedness(rs.info.ID) != network.Connected {
			c.mu.Lock()
			rs.loggedIn = false
			c.mu.Unlock()
		}
	}
}

// login connects to the relay, proves who this node is, and sends its
// allow-list; presence of the allowed peers comes back.
func (c *Client) login(rs *relayState) error {
	ctx, cancel := context.WithTimeout(c.ctx, ioTimeout)
	defer cancel()
	if err := c.h.Connect(ctx, rs.info); err != nil {
		return fmt.Errorf("relay: %s: %w", rs.info.ID, err)
	}
	c.mu.Lock()
	allow, members := c.allow, c.members
	c.mu.Unlock()
	var prof *pb.Profile
	if c.cfg.Profile != nil {
		p := c.cfg.Profile()
		prof = &pb.Profile{Nickname: p.Nickname, Status: p.Status}
	}
	var prs []*pb.Presence
	err := c.call(ctx, rs.info.ID, func(s *accountStream) error {
		proof, err := s.prove("login", "")
		if err != nil {
			return err
		}
		rep, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Login{Login: &pb.Login{SealingKey: c.keys.wire, Profile: prof, Proof: proof}}})
		if err != nil {
			return err
		}
		c.mu.Lock()
		rs.name = rep.GetUser().GetName()
		c.mu.Unlock()
		if _, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Allow{Allow: &pb.SetAllow{Peers: peersToWire(allow), Members: peersToWire(members)}}}); err != nil {
			return err
		}
		if len(allow) == 0 {
			return nil
		}
		rep, err = s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Presence{Presence: &pb.PresenceQuery{Peers: peersToWire(allow)}}})
		prs = rep.GetPresence()
		return err
	})
	if err != nil {
		return err
	}
	c.log.Info("logged in", "relay", rs.info.ID)
	c.tellPresence(prs)
	return nil
}

func (c *Client) tellPresence(prs []*pb.Presence) {
	if c.cfg.Sink == nil {
		return
	}
	for _, w := range prs {
		if pr, err := presenceFromWire(w); err == nil {
			c.cfg.Sink.Presence(pr)
		}
	}
}

// accountStream is one account-protocol stream to a relay.
type accountStream struct {
	st    network.Stream
	r     *bufio.Reader
	relay peer.ID
	key   crypto.PrivKey
	me    peer.ID
}

// call runs f over a new account stream to relay.
func (c *Client) call(ctx context.Context, relay peer.ID, f func(*accountStream) error) error {
	st, err := c.h.NewStream(network.WithAllowLimitedConn(ctx, "relay"), relay, AccountProtocol, AccountProtocolV1)
	if err != nil {
		return fmt.Errorf("relay: %s: %w", relay, err)
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	} else {
		st.SetDeadline(time.Now().Add(ioTimeout))
	}
	if err := f(&accountStream{st: st, r: bufio.NewReader(st), relay: relay, key: c.cfg.Key, me: c.h.ID()}); err != nil {
		st.Reset()
		return err
	}
	return nil
}

// do sends one request and reads its reply; a refusal is an error.
func (s *accountStream) do(req *pb.AccountRequest) (*pb.AccountReply, error) {
	if err := writeFrame(s.st, req); err != nil {
		return nil, fmt.Errorf("relay: %s: %w", s.relay, err)
	}
	var rep pb.AccountReply
	if err := readFrame(s.r, MaxAccountFrame, &rep); err != nil {
		return nil, fmt.Errorf("relay: %s: %w", s.relay, err)
	}
	return &rep, errOf(rep.Code, rep.Message)
}

// prove asks for a challenge and signs op over it.
func (s *accountStream) prove(op, name string) ([]byte, error) {
	rep, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Challenge{Challenge: &pb.ChallengeRequest{}}})
	if err != nil {
		return nil, err
	}
	if len(rep.Nonce) != nonceSize {
		return nil, fmt.Errorf("%w: challenge of %d bytes", ErrBadRequest, len(rep.Nonce))
	}
	return s.key.Sign(proofPayload(op, s.relay, s.me, rep.Nonce, name))
}

// Register takes name on relay (invite: the relay's token, when it
// registers by invitation) and logs in there from now on.
func (c *Client) Register(ctx context.Context, relay peer.AddrInfo, name, invite string) (*User, error) {
	if _, err := FoldName(name); err != nil {
		return nil, err
	}
	if err := c.h.Connect(ctx, relay); err != nil {
		return nil, fmt.Errorf("relay: %s: %w", relay.ID, err)
	}
	var prof *pb.Profile
	if c.cfg.Profile != nil {
		p := c.cfg.Profile()
		prof = &pb.Profile{Nickname: p.Nickname, Status: p.Status}
	}
	var u *User
	err := c.call(ctx, relay.ID, func(s *accountStream) error {
		proof, err := s.prove("register", name)
		if err != nil {
			return err
		}
		rep, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Register{Register: &pb.Register{Name: name, Invite: invite, SealingKey: c.keys.wire, Profile: prof, Proof: proof}}})
		if err != nil {
			return err
		}
		u, err = userFromWire(rep.User)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(relay.Addrs) == 0 {
		relay.Addrs = c.h.Peerstore().Addrs(relay.ID)
	}
	a := clientAccount{Name: u.Name}
	for _, m := range relay.Addrs {
		a.Addrs = append(a.Addrs, m.String())
	}
	b, _ := json.Marshal(a)
	if err := c.ds.Put(ctx, clientAccountKey(relay.ID), b); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if err := c.ds.Sync(ctx, datastore.NewKey("/")); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	c.mu.Lock()
	_, known := c.relays[relay.ID]
	rs := c.addRelayLocked(relay, u.Name)
	rs.relogin = true
	c.mu.Unlock()
	if known {
		wake(rs)
	} else {
		c.startRelay(rs)
	}
	return u, nil
}

// AddRelay logs in to relay from now on, as to the relays of
// ClientConfig (the node saves it in its config for the next start).
func (c *Client) AddRelay(relay peer.AddrInfo) {
	c.mu.Lock()
	_, known := c.relays[relay.ID]
	rs := c.addRelayLocked(relay, "")
	c.mu.Unlock()
	if !known {
		c.startRelay(rs)
	}
}

// RemoveRelay logs out of relay at once and stops using it: no session,
// no presence, no mailbox there. It forgets that this node has an
// account there, so that the next start does not log in again; the
// account stays on the relay (AddRelay logs in to it again).
func (c *Client) RemoveRelay(ctx context.Context, relay peer.ID) error {
	c.mu.Lock()
	rs := c.relays[relay]
	var was bool
	if rs != nil {
		was = rs.loggedIn
		rs.removed, rs.loggedIn = true, false
		delete(c.relays, relay)
		c.order = slices.DeleteFunc(c.order, func(id peer.ID) bool { return id == relay })
	}
	c.mu.Unlock()
	if rs == nil {
		return nil
	}
	wake(rs)
	if err := c.ds.Delete(ctx, clientAccountKey(relay)); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if !was {
		return nil
	}
	return c.logout(ctx, relay)
}

// logout ends this node's session on relay.
func (c *Client) logout(ctx context.Context, relay peer.ID) error {
	return c.call(ctx, relay, func(s *accountStream) error {
		_, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Logout{Logout: &pb.Logout{}}})
		return err
	})
}

// Unregister gives up this node's name on relay.
func (c *Client) Unregister(ctx context.Context, relay peer.ID) error {
	err := c.call(ctx, relay, func(s *accountStream) error {
		proof, err := s.prove("unregister", "")
		if err != nil {
			return err
		}
		_, err = s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Unregister{Unregister: &pb.Unregister{Proof: proof}}})
		return err
	})
	if err != nil {
		return err
	}
	if err := c.ds.Delete(ctx, clientAccountKey(relay)); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	c.mu.Lock()
	if rs := c.relays[relay]; rs != nil {
		rs.name, rs.loggedIn = "", false
	}
	c.mu.Unlock()
	return nil
}

// Lookup finds a user by name, or by peer ID when name is a peer ID's
// text, on relay ("" tries each relay this node is logged in to).
func (c *Client) Lookup(ctx context.Context, name string, relay peer.ID) (*User, error) {
	req := &pb.Lookup{Name: name}
	if id, err := peer.Decode(name); err == nil {
		req = &pb.Lookup{PeerId: []byte(id)}
	} else if _, err := FoldName(name); err != nil {
		return nil, err
	}
	relays := c.loggedInRelays()
	if relay != "" {
		relays = []peer.ID{relay}
	}
	if len(relays) == 0 {
		return nil, fmt.Errorf("%w: not logged in to any relay; add one with `meshtalk run --relay ADDR` and register with `meshtalk account register`", ErrNoRelay)
	}
	var errs []error
	for _, r := range relays {
		var u *User
		err := c.call(ctx, r, func(s *accountStream) error {
			rep, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Lookup{Lookup: req}})
			if err != nil {
				return err
			}
			u, err = userFromWire(rep.User)
			return err
		})
		if err == nil && req.PeerId != nil && u.PeerID != peer.ID(req.PeerId) {
			// A relay that answers for someone else is lying.
			err = fmt.Errorf("%w: relay %s answered for %s when asked for %s", ErrBadRequest, r, u.PeerID, peer.ID(req.PeerId))
		}
		if err == nil {
			c.rememberKey(ctx, u)
			return u, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	for _, err := range errs {
		if !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("relay: %q is not known on any of your relays that answered: %w", name, errors.Join(errs...))
		}
	}
	return nil, fmt.Errorf("%w: %q is not known on any of your relays", ErrNotFound, name)
}

func (c *Client) rememberKey(ctx context.Context, u *User) {
	if u.SealingKey != nil {
		c.ds.Put(ctx, sealingKeyKey(u.PeerID), u.SealingKey)
	}
	if u.Name != "" {
		// Best effort, like the key: a lost name is looked up again.
		c.ds.Put(ctx, userNameKey(u.PeerID), []byte(u.Name))
		c.names.Store(u.PeerID, u.Name)
	}
}

// UserName is the username a relay last answered for p ("": none).
func (c *Client) UserName(ctx context.Context, p peer.ID) string {
	if v, ok := c.names.Load(p); ok {
		return v.(string)
	}
	b, err := c.ds.Get(ctx, userNameKey(p))
	switch {
	case err == nil:
	case errors.Is(err, datastore.ErrNotFound):
		b = nil
	default:
		return "" // not cached: asked again next time
	}
	// A name remembered meanwhile wins over this reading.
	v, _ := c.names.LoadOrStore(p, string(b))
	return v.(string)
}

// UserNames are the usernames this node's relays answered in lookups,
// by peer: what a user may call a peer besides its nickname.
func (c *Client) UserNames(ctx context.Context) (map[peer.ID]string, error) {
	out := map[peer.ID]string{}
	err := scan(ctx, c.ds, "/client/names/", func(key string, v []byte) {
		if id, err := peer.Decode(datastore.RawKey(key).BaseNamespace()); err == nil {
			out[id] = string(v)
		}
	})
	return out, err
}

// sealingKeyOf is p's sealing public key: known, or looked up.
func (c *Client) sealingKeyOf(ctx context.Context, p peer.ID) ([]byte, error) {
	if b, err := c.ds.Get(ctx, sealingKeyKey(p)); err == nil {
		return b, nil
	}
	u, err := c.Lookup(ctx, p.String(), "")
	if err != nil {
		return nil, err
	}
	if u.PeerID != p {
		return nil, fmt.Errorf("%w: asked for %s's sealing key, got %s's", ErrBadSeal, p, u.PeerID)
	}
	if u.SealingKey == nil {
		return nil, fmt.Errorf("%w: %s published no sealing key", ErrNotFound, p)
	}
	return u.SealingKey, nil
}

// Ready reports whether the client is logged in to a relay: a deposit
// (Park, ParkGroup) looks the recipient up there first, so without one it
// can only fail.
func (c *Client) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range c.order {
		if c.relays[id].loggedIn {
			return true
		}
	}
	return false
}

func (c *Client) loggedInRelays() []peer.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []peer.ID
	for _, id := range c.order {
		if c.relays[id].loggedIn {
			out = append(out, id)
		}
	}
	return out
}

// SetAllow sets who may see this node's presence on its relays and leave
// it mail and files there (node keeps it equal to the friend list), and
// members, who may only leave it mail and files (the members of its
// groups that are not friends).
func (c *Client) SetAllow(peers, members []peer.ID) {
	peers, members = sortedPeers(peers), sortedPeers(members)
	c.mu.Lock()
	same := slices.Equal(peers, c.allow) && slices.Equal(members, c.members)
	c.allow, c.members = peers, members
	var woken []*relayState
	if !same {
		for _, rs := range c.relays {
			rs.allowDirty = true
			woken = append(woken, rs)
		}
	}
	c.mu.Unlock()
	for _, rs := range woken {
		wake(rs)
	}
}

func sortedPeers(peers []peer.ID) []peer.ID {
	peers = slices.Clone(peers)
	slices.Sort(peers)
	return slices.Compact(peers)
}

// RelayStatus is what the client knows of one relay.
type RelayStatus struct {
	PeerID   peer.ID  `json:"peer_id"`
	Addrs    []string `json:"addrs"`
	Name     string   `json:"name,omitempty"`
	LoggedIn bool     `json:"logged_in"`
	Error    string   `json:"error,omitempty"`
}

// Status tells each relay and whether this node is logged in there.
func (c *Client) Status() []RelayStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]RelayStatus, 0, len(c.order))
	for _, id := range c.order {
		rs := c.relays[id]
		status := RelayStatus{PeerID: id, Name: rs.name, LoggedIn: rs.loggedIn, Error: rs.lastErr}
		for _, m := range rs.info.Addrs {
			status.Addrs = append(status.Addrs, m.String())
		}
		out = append(out, status)
	}
	return out
}

// ParkGroup deposits a group's encoded envelopes for each of members
// (group's Mailbox): a member without an account on this node's
// relays is skipped. It returns the relay that took them for each member
// parked, and the other failures.
func (c *Client) ParkGroup(ctx context.Context, members []peer.ID, envelopes [][]byte) (map[peer.ID]peer.ID, error) {
	var errs []error
	parked := map[peer.ID]peer.ID{}
	for _, m := range members {
		relay, err := c.deposit(ctx, m, KindGroup, envelopes)
		switch {
		case err == nil:
			parked[m] = relay
		case !errors.Is(err, ErrNotFound):
			errs = append(errs, fmt.Errorf("relay: %s: %w", m, err))
		}
	}
	return parked, errors.Join(errs...)
}

// Park deposits encoded direct messages for p (chat's Mailbox) and
// returns the relay that holds them.
func (c *Client) Park(ctx context.Context, p peer.ID, msgs [][]byte) (peer.ID, error) {
	return c.deposit(ctx, p, KindDM, msgs)
}

// maxLetter bounds the items of one letter, so that it stays under
// MaxSealed once sealed (the seal and the signature add about 1.3 KiB).
const maxLetter = MaxSealed - 16<<10

// Deposit seals items of kind to p and deposits them on the first relay
// that holds p's account; it returns once that relay has them on disk.
// Items go in as few letters as fit.
func (c *Client) Deposit(ctx context.Context, p peer.ID, kind Kind, items [][]byte) error {
	_, err := c.deposit(ctx, p, kind, items)
	return err
}

// deposit is Deposit, returning the relay that took the items.
func (c *Client) deposit(ctx context.Context, p peer.ID, kind Kind, items [][]byte) (peer.ID, error) {
	pub, err := c.sealingKeyOf(ctx, p)
	if err != nil {
		return "", err
	}
	var letters [][][]byte
	size := 0
	for _, it := range items {
		if len(it) > maxLetter {
			return "", fmt.Errorf("%w: an item of %d bytes; a letter holds %d", ErrTooLarge, len(it), maxLetter)
		}
		if len(letters) == 0 || size+len(it)+8 > maxLetter {
			letters, size = append(letters, nil), 0
		}
		letters[len(letters)-1] = append(letters[len(letters)-1], it)
		size += len(it) + 8
	}
	var sealed [][]byte
	for _, l := range letters {
		b, err := SealLetter(c.cfg.Key, p, pub, kind, l, c.cfg.Now())
		if err != nil {
			return "", err
		}
		sealed = append(sealed, b)
	}
	relays := c.loggedInRelays()
	if len(relays) == 0 {
		return "", fmt.Errorf("%w: not logged in to any relay", ErrNoRelay)
	}
	for _, r := range relays {
		err := errors.Join(DepositSealed(ctx, c.h, r, p, sealed)...)
		if err == nil {
			return r, nil
		}
		if errors.Is(err, ErrNotLoggedIn) {
			c.relogin(r)
		}
		if !errors.Is(err, ErrNotFound) {
			return "", err
		}
	}
	return "", fmt.Errorf("%w: %s has no account on your relays", ErrNotFound, p)
}

// relogin makes the session loop of relay log in again.
func (c *Client) relogin(relay peer.ID) {
	c.mu.Lock()
	rs := c.relays[relay]
	if rs != nil {
		rs.loggedIn = false
	}
	c.mu.Unlock()
	if rs != nil {
		wake(rs)
	}
}

// DepositSealed deposits sealed envelopes for p on relay over one stream,
// pipelined, and returns each one's outcome.
func DepositSealed(ctx context.Context, h host.Host, relay, p peer.ID, sealed [][]byte) []error {
	errs := make([]error, len(sealed))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	st, err := h.NewStream(network.WithAllowLimitedConn(ctx, "relay"), relay, MailboxProtocol)
	if err != nil {
		return fail(fmt.Errorf("relay: %s: %w", relay, err))
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	st.SetDeadline(time.Now().Add(ioTimeout))
	w := bufio.NewWriter(st)
	for _, s := range sealed {
		if err := writeFrame(w, &pb.MailboxRequest{Body: &pb.MailboxRequest_Deposit{Deposit: &pb.Deposit{Recipient: []byte(p), Sealed: s}}}); err != nil {
			st.Reset()
			return fail(err)
		}
	}
	if err := w.Flush(); err != nil {
		st.Reset()
		return fail(err)
	}
	st.CloseWrite()
	r := bufio.NewReader(st)
	for i := range sealed {
		var rep pb.MailboxReply
		if err := readFrame(r, MaxMailboxFrame, &rep); err != nil {
			return fail(fmt.Errorf("relay: %s: %w", relay, err))
		}
		errs[i] = errOf(rep.Code, rep.Message)
	}
	return errs
}

// handleDeliver takes a push from one of this node's relays: it opens
// each envelope, hands it on, and acks what is stored.
func (c *Client) handleDeliver(st network.Stream) {
	relay := st.Conn().RemotePeer()
	c.mu.Lock()
	_, ok := c.relays[relay]
	c.mu.Unlock()
	if !ok {
		st.Reset()
		return
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(2 * ioTimeout))
	var d pb.Deliver
	if err := readFrame(bufio.NewReader(st), MaxMailboxFrame, &d); err != nil {
		st.Reset()
		return
	}
	var ack pb.DeliverAck
	for _, e := range d.Envelopes {
		if err := c.take(relay, e.Sealed); err != nil {
			c.log.Warn("mailbox: keep an envelope for later", "relay", relay, "err", err)
			continue
		}
		ack.Ids = append(ack.Ids, e.Id)
	}
	writeFrame(st, &ack)
}

// take opens and hands on one envelope; nil means it may be deleted.
func (c *Client) take(relay peer.ID, sealed []byte) error {
	l, err := c.keys.OpenLetter(sealed)
	if err != nil {
		// It will never open: drop it.
		c.log.Warn("mailbox: drop an envelope", "relay", relay, "err", err)
		return nil
	}
	switch l.Kind {
	case KindFileDrop, KindFolderDrop:
		return c.acceptDrop(relay, l)
	case KindDM, KindGroup:
		if c.cfg.Sink == nil {
			return nil
		}
		l.Relay = relay
		return c.cfg.Sink.Letter(c.ctx, l)
	}
	c.log.Warn("mailbox: drop a letter of unknown kind", "kind", l.Kind, "from", l.From)
	return nil
}

// handlePush takes presence news from one of this node's relays.
func (c *Client) handlePush(st network.Stream) {
	c.mu.Lock()
	_, ok := c.relays[st.Conn().RemotePeer()]
	c.mu.Unlock()
	if !ok {
		st.Reset()
		return
	}
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(ioTimeout))
	var p pb.AccountPush
	if err := readFrame(bufio.NewReader(st), MaxAccountFrame, &p); err != nil {
		st.Reset()
		return
	}
	c.tellPresence(p.Presence)
}

// Close logs out of every relay (a clean stop), removes the handlers and
// waits for every goroutine.
func (c *Client) Close() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var wg sync.WaitGroup
		for _, r := range c.loggedInRelays() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.logout(ctx, r)
			}()
		}
		wg.Wait()
		cancel()
		c.h.RemoveStreamHandler(MailboxProtocol)
		c.h.RemoveStreamHandler(AccountProtocol)
		c.h.RemoveStreamHandler(AccountProtocolV1)
		c.life.Close()
	})
	return nil
}

// scan calls f with each key and value under prefix.
func scan(ctx context.Context, ds datastore.Read, prefix string, f func(key string, v []byte)) error {
	res, err := ds.Query(ctx, query.Query{Prefix: prefix})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return fmt.Errorf("relay: %w", r.Error)
		}
		f(r.Key, r.Value)
	}
	return nil
}

// Presence asks relay for the presence of peers; it tells only of those
// that allow this node to see them.
func (c *Client) Presence(ctx context.Context, relay peer.ID, peers []peer.ID) ([]Presence, error) {
	var out []Presence
	err := c.call(ctx, relay, func(s *accountStream) error {
		rep, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Presence{Presence: &pb.PresenceQuery{Peers: peersToWire(peers)}}})
		if err != nil {
			return err
		}
		for _, w := range rep.Presence {
			pr, err := presenceFromWire(w)
			if err != nil {
				return err
			}
			out = append(out, pr)
		}
		return nil
	})
	return out, err
}
