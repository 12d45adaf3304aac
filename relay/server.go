package relay

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/internal/lifecycle"
	"github.com/meshtalk/meshtalk/relay/pb"
	"github.com/meshtalk/meshtalk/transfer"
)

// Registration policies.
const (
	RegistrationOpen   = "open"
	RegistrationInvite = "invite"
	RegistrationClosed = "closed"
)

// ServerConfig is what an operator sets (config.toml's [relay]).
type ServerConfig struct {
	// Registration is open, invite (a token from NewInvite) or closed.
	Registration string
	// MailboxTTL is how long an envelope waits for its recipient.
	MailboxTTL time.Duration
	// RecipientMaxItems and RecipientMaxBytes bound one user's mailbox.
	RecipientMaxItems int
	RecipientMaxBytes int64
	// SenderMaxItems and SenderMaxBytes bound what one depositor has
	// waiting in all mailboxes.
	SenderMaxItems int
	SenderMaxBytes int64
	// DropTTL is how long a dropped file waits; DropMaxBytes bounds the
	// dropped bytes waiting for one recipient.
	DropTTL      time.Duration
	DropMaxBytes int64
	// RegistrationsPerIPPerHour and RegistrationsPerMinute bound new
	// accounts from one IP address and from everyone (0: the defaults).
	RegistrationsPerIPPerHour int
	RegistrationsPerMinute    int
	// SweepEvery is how often expired items are removed.
	SweepEvery time.Duration
	// Transfer fetches and serves dropped files; nil turns file drop off.
	Transfer *transfer.Service
	// DropDir holds dropped files while the relay fetches them.
	DropDir string
	// TURN is the relay's TURN server for call media (relay/turn.go);
	// zero: none.
	TURN TURNConfig
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultServerConfig is a relay's configuration when config.toml says
// nothing.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Registration:      RegistrationOpen,
		MailboxTTL:        30 * 24 * time.Hour,
		RecipientMaxItems: 10000,
		RecipientMaxBytes: 256 << 20,
		SenderMaxItems:    10000,
		SenderMaxBytes:    256 << 20,
		DropTTL:           7 * 24 * time.Hour,
		DropMaxBytes:      2 << 30,
		SweepEvery:        time.Minute,

		RegistrationsPerIPPerHour: 10,
		RegistrationsPerMinute:    60,
	}
}

// Server is the relay's side of the account and mailbox protocols: the
// classic IM server's Register, Login, Logout, online status and offline
// delivery, holding only sealed envelopes and encrypted blobs.
type Server struct {
	h   host.Host
	ds  datastore.Batching
	cfg ServerConfig
	log *slog.Logger
	met *metrics

	life *lifecycle.Group
	ctx  context.Context // life's: cancelled when Close begins
	once sync.Once

	deposits chan *depositReq
	inflight *semaphore.Weighted // bytes of deposits read, not answered
	delMu    sync.Mutex          // envelope and drop deletions

	// shortMu makes short-invite registrations one at a time (a user's
	// count, then the write).
	shortMu sync.Mutex
	// acctMu makes account writes one at a time (they do disk I/O, so
	// not under mu).
	acctMu sync.Mutex
	// mu guards everything below; no I/O under it.
	mu       sync.Mutex
	accounts map[peer.ID]*account
	names    map[string]peer.ID
	sessions map[peer.ID]time.Time
	rcpt     map[peer.ID]*usage // held for each recipient
	sender   map[peer.ID]*usage // held from each depositor
	drops    map[peer.ID]*usage // dropped files held for each recipient
	dropsBy  map[peer.ID]*usage // dropped files held from each sender
	// fetching: the drop keys being fetched now; they count in drops and
	// dropsBy until the fetch fails.
	fetching map[string]bool
	pushers  map[peer.ID]*pusher
	// shortLimits is each peer's rate of short-invite requests.
	shortLimits map[peer.ID]*rate.Limiter
	// registrations: new accounts from everyone, regByIP from each IP
	// address (register.go).
	registrations *rate.Limiter
	regByIP       map[string]*rate.Limiter

	turn *turnServer // nil: no TURN server (relay/turn.go)
}

// account is a user's record with its allow-list as a set, and the
// members of its groups, who may deposit for it too.
type account struct {
	rec     *pb.Account
	allow   map[peer.ID]bool
	members map[peer.ID]bool
}

// mayDeposit reports whether p may leave envelopes or files for a.
func (a *account) mayDeposit(p peer.ID) bool { return a.allow[p] || a.members[p] }

type usage struct {
	items int
	bytes int64
}

// NewServer starts the relay services on h, storing in ds (the /relay
// namespace). ctx bounds the start (loading the accounts and mailboxes)
// only: the services run until Close.
func NewServer(ctx context.Context, h host.Host, ds datastore.Batching, cfg ServerConfig) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = time.Minute
	}
	def := DefaultServerConfig()
	if cfg.RegistrationsPerIPPerHour <= 0 {
		cfg.RegistrationsPerIPPerHour = def.RegistrationsPerIPPerHour
	}
	if cfg.RegistrationsPerMinute <= 0 {
		cfg.RegistrationsPerMinute = def.RegistrationsPerMinute
	}
	if err := checkSchema(ctx, ds); err != nil {
		return nil, err
	}
	s := &Server{
		h: h, ds: ds, cfg: cfg, log: cfg.Logger.With("component", "relay"),
		deposits: make(chan *depositReq, 1024), inflight: semaphore.NewWeighted(maxInflight),
		accounts: map[peer.ID]*account{}, names: map[string]peer.ID{}, sessions: map[peer.ID]time.Time{},
		rcpt: map[peer.ID]*usage{}, sender: map[peer.ID]*usage{}, drops: map[peer.ID]*usage{}, dropsBy: map[peer.ID]*usage{}, fetching: map[string]bool{},
		pushers: map[peer.ID]*pusher{}, shortLimits: map[peer.ID]*rate.Limiter{},
		registrations: rate.NewLimiter(rate.Limit(float64(cfg.RegistrationsPerMinute)/60), cfg.RegistrationsPerMinute),
		regByIP:       map[string]*rate.Limiter{},
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.met = newMetrics(s)
	if err := s.startTURN(); err != nil {
		return nil, err
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	s.life = lifecycle.New()
	s.ctx = s.life.Context()
	h.SetStreamHandler(AccountProtocol, s.life.Handler(s.handleAccount))
	h.SetStreamHandler(AccountProtocolV1, s.life.Handler(s.handleAccount))
	h.SetStreamHandler(MailboxProtocol, s.life.Handler(s.handleMailbox))
	s.life.Watch(sub, s.clientConnChanged)
	s.life.Go(s.runCommitter)
	s.life.Go(s.runSweeper)
	return s, nil
}

// load reads the accounts and what the mailboxes hold.
func (s *Server) load(ctx context.Context) error {
	res, err := s.ds.Query(ctx, query.Query{Prefix: "/accounts/"})
	if err != nil {
		return fmt.Errorf("relay: load: %w", err)
	}
	for r := range res.Next() {
		if r.Error != nil {
			res.Close()
			return fmt.Errorf("relay: load: %w", r.Error)
		}
		id, err := peer.Decode(datastore.RawKey(r.Key).BaseNamespace())
		var rec pb.Account
		if err != nil || proto.Unmarshal(r.Value, &rec) != nil {
			s.log.Warn("skip a damaged account record", "key", r.Key)
			continue
		}
		s.accounts[id] = newAccount(&rec)
		s.names[rec.Name] = id
	}
	res.Close()
	res, err = s.ds.Query(ctx, query.Query{Prefix: "/mbox/"})
	if err != nil {
		return fmt.Errorf("relay: load: %w", err)
	}
	for r := range res.Next() {
		if r.Error != nil {
			res.Close()
			return fmt.Errorf("relay: load: %w", r.Error)
		}
		rcpt, _, _, ok := parseMboxKey(r.Key)
		var env pb.StoredEnvelope
		if !ok || proto.Unmarshal(r.Value, &env) != nil {
			continue
		}
		s.charge(rcpt, peer.ID(env.Sender), int64(len(env.Sealed)))
	}
	res.Close()
	res, err = s.ds.Query(ctx, query.Query{Prefix: "/drops/"})
	if err != nil {
		return fmt.Errorf("relay: load: %w", err)
	}
	for r := range res.Next() {
		var d pb.StoredDrop
		if r.Error != nil || proto.Unmarshal(r.Value, &d) != nil {
			continue
		}
		if m, err := transfer.DecodeManifest(d.Manifest); err == nil && d.Complete {
			s.chargeDrop(peer.ID(d.Recipient), peer.ID(d.Sender), int64(m.Size), 1)
		}
	}
	res.Close()
	return nil
}

func newAccount(rec *pb.Account) *account {
	a := &account{rec: rec, allow: map[peer.ID]bool{}, members: map[peer.ID]bool{}}
	for _, b := range rec.Allow {
		a.allow[peer.ID(b)] = true
	}
	for _, b := range rec.Members {
		a.members[peer.ID(b)] = true
	}
	return a
}

// charge counts an envelope held; uncharge, one gone.
func (s *Server) charge(rcpt, sender peer.ID, n int64) {
	for _, m := range []struct {
		m map[peer.ID]*usage
		p peer.ID
	}{{s.rcpt, rcpt}, {s.sender, sender}} {
		u := m.m[m.p]
		if u == nil {
			u = &usage{}
			m.m[m.p] = u
		}
		u.items++
		u.bytes += n
	}
}

func (s *Server) uncharge(rcpt, sender peer.ID, n int64) {
	for _, m := range []struct {
		m map[peer.ID]*usage
		p peer.ID
	}{{s.rcpt, rcpt}, {s.sender, sender}} {
		if u := m.m[m.p]; u != nil {
			u.items--
			u.bytes -= n
			if u.items <= 0 {
				delete(m.m, m.p)
			}
		}
	}
}

// Close removes the handlers and waits for every goroutine to stop.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.h.RemoveStreamHandler(AccountProtocol)
		s.h.RemoveStreamHandler(AccountProtocolV1)
		s.h.RemoveStreamHandler(MailboxProtocol)
		s.life.Close()
		if s.turn != nil {
			s.turn.close()
		}
	})
	return nil
}

// ---- accounts ----

// handleAccount serves one client stream: requests and replies in turn.
func (s *Server) handleAccount(st network.Stream) {
	defer st.Close()
	p := st.Conn().RemotePeer()
	r := bufio.NewReader(st)
	var nonce []byte // the challenge of this stream, good for one proof
	for {
		st.SetReadDeadline(time.Now().Add(ioTimeout))
		var req pb.AccountRequest
		if err := readFrameIn(r, s.frameLimit(p, MaxAccountFrame), &req, st.Scope()); err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Debug("account stream", "peer", p, "err", err)
				s.reply(st, &pb.AccountReply{}, err)
			}
			return
		}
		var rep pb.AccountReply
		var err error
		// A proof is good for the nonce issued just before it, once.
		used := nonce
		nonce = nil
		switch b := req.Body.(type) {
		case *pb.AccountRequest_Challenge:
			nonce = make([]byte, nonceSize)
			rand.Read(nonce)
			rep.Nonce = nonce
		case *pb.AccountRequest_Register:
			if err = s.allowRegistration(st.Conn().RemoteMultiaddr()); err == nil {
				rep.User, err = s.register(p, used, b.Register)
			}
		case *pb.AccountRequest_Login:
			rep.User, err = s.login(p, used, b.Login)
		case *pb.AccountRequest_Logout:
			s.endSession(p, false)
		case *pb.AccountRequest_Unregister:
			err = s.unregister(p, used, b.Unregister)
		case *pb.AccountRequest_Lookup:
			rep.User, err = s.lookup(p, b.Lookup)
		case *pb.AccountRequest_Allow:
			err = s.setAllow(p, b.Allow)
		case *pb.AccountRequest_Presence:
			rep.Presence, err = s.presence(p, b.Presence)
		case *pb.AccountRequest_ShortPut:
			rep.ShortCode, err = s.shortPut(s.ctx, p, b.ShortPut)
		case *pb.AccountRequest_Turn:
			rep.Turn, err = s.turnCredentials(p)
		case *pb.AccountRequest_ShortGet:
			var got *pb.AccountReply
			if got, err = s.shortLookup(s.ctx, p, b.ShortGet); err == nil {
				rep.Invite, rep.ExpiresMs = got.Invite, got.ExpiresMs
			}
		default:
			err = fmt.Errorf("%w: empty or unknown request", ErrBadRequest)
		}
		if !s.reply(st, &rep, err) {
			return
		}
	}
}

// maxUnauthFrame bounds a frame from a peer that has not logged in: a
// challenge, a registration or a login (a sealing key, a profile and a
// proof), DropDone.
const maxUnauthFrame = 16 << 10

// frameLimit is the largest frame p may send: max once logged in, else
// maxUnauthFrame.
func (s *Server) frameLimit(p peer.ID, max int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[p]; ok {
		return max
	}
	return maxUnauthFrame
}

func (s *Server) reply(st network.Stream, rep *pb.AccountReply, err error) bool {
	rep.Code, rep.Message = codeOf(err)
	if rep.Code == codeInternal {
		s.log.Warn("account request", "peer", st.Conn().RemotePeer(), "err", err)
	}
	st.SetWriteDeadline(time.Now().Add(ioTimeout))
	return writeFrame(st, rep) == nil
}

// checkProof verifies p's signature over op for nonce.
func (s *Server) checkProof(p peer.ID, nonce []byte, op, name string, proof []byte) error {
	if nonce == nil {
		return fmt.Errorf("%w: ask for a challenge first", ErrBadProof)
	}
	pk, err := p.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	ok, err := pk.Verify(proofPayload(op, s.h.ID(), p, nonce, name), proof)
	if err != nil || !ok {
		return fmt.Errorf("%w: the signature does not match this challenge", ErrBadProof)
	}
	return nil
}

// checkProfile bounds what a user shows in the directory.
func checkProfile(p *pb.Profile) error {
	if p != nil && (len(p.Nickname) > maxNickname || len(p.Status) > maxStatus) {
		return fmt.Errorf("%w: a nickname has at most %d bytes, a status %d", ErrBadRequest, maxNickname, maxStatus)
	}
	return nil
}

func (s *Server) register(p peer.ID, nonce []byte, r *pb.Register) (*pb.User, error) {
	folded, err := FoldName(r.Name)
	if err != nil {
		return nil, err
	}
	if err := s.checkProof(p, nonce, "register", r.Name, r.Proof); err != nil {
		return nil, err
	}
	if _, err := verifySealingKey(p, r.SealingKey); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := checkProfile(r.Profile); err != nil {
		return nil, err
	}
	if s.cfg.Registration == RegistrationClosed {
		return nil, fmt.Errorf("%w: this relay takes no new accounts", ErrClosed)
	}
	// Account writes go one at a time; the maps are read under mu only.
	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	s.mu.Lock()
	owner, taken := s.names[folded]
	a := s.accounts[p]
	s.mu.Unlock()
	if taken && owner != p {
		return nil, fmt.Errorf("%w: %q belongs to someone else; pick another name", ErrNameTaken, folded)
	}
	if a != nil && a.rec.Name != folded {
		return nil, fmt.Errorf("%w: already registered here as %q; unregister first", ErrBadRequest, a.rec.Name)
	}
	rec := &pb.Account{Name: folded, SealingKey: r.SealingKey, Profile: r.Profile, RegisteredMs: s.cfg.Now().UnixMilli()}
	if a != nil {
		rec.RegisteredMs, rec.Allow, rec.Members, rec.LastSeenMs = a.rec.RegisteredMs, a.rec.Allow, a.rec.Members, a.rec.LastSeenMs
	}
	batch, err := s.ds.Batch(s.ctx)
	if err != nil {
		return nil, err
	}
	// The invite is spent in the same synced batch as the account is
	// stored: only by a registration that succeeds, and never twice.
	if s.cfg.Registration == RegistrationInvite && a == nil {
		if err := s.spendInvite(batch, r.Invite); err != nil {
			return nil, err
		}
	}
	if err := s.putAccount(batch, p, rec); err != nil {
		return nil, err
	}
	if err := batch.Commit(s.ctx); err != nil {
		return nil, fmt.Errorf("relay: store account: %w", err)
	}
	if err := s.ds.Sync(s.ctx, datastore.NewKey("/")); err != nil {
		return nil, fmt.Errorf("relay: store account: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[p] = newAccount(rec)
	s.names[folded] = p
	s.log.Info("registered", "name", folded, "peer", p)
	return s.userLocked(p), nil
}

// putAccount adds p's record to batch.
func (s *Server) putAccount(batch datastore.Batch, p peer.ID, rec *pb.Account) error {
	b, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	if err := batch.Put(s.ctx, accountKey(p), b); err != nil {
		return err
	}
	return batch.Put(s.ctx, nameKey(rec.Name), []byte(p))
}

// updateAccount changes p's record with f and stores it, unsynced: what
// it holds besides the registration (profile, allow-list, last seen) is
// sent again at every login. It returns ErrNotRegistered when p has none.
func (s *Server) updateAccount(p peer.ID, f func(rec *pb.Account)) error {
	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	s.mu.Lock()
	a := s.accounts[p]
	s.mu.Unlock()
	if a == nil {
		return fmt.Errorf("%w: register a name on this relay first", ErrNotRegistered)
	}
	rec := proto.Clone(a.rec).(*pb.Account)
	f(rec)
	batch, err := s.ds.Batch(s.ctx)
	if err != nil {
		return err
	}
	if err := s.putAccount(batch, p, rec); err != nil {
		return err
	}
	if err := batch.Commit(s.ctx); err != nil {
		return fmt.Errorf("relay: store account: %w", err)
	}
	s.mu.Lock()
	if s.accounts[p] != nil {
		s.accounts[p] = newAccount(rec)
	}
	s.mu.Unlock()
	return nil
}

func (s *Server) unregister(p peer.ID, nonce []byte, r *pb.Unregister) error {
	if err := s.checkProof(p, nonce, "unregister", "", r.Proof); err != nil {
		return err
	}
	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	s.mu.Lock()
	a := s.accounts[p]
	s.mu.Unlock()
	if a == nil {
		return fmt.Errorf("%w: no account here", ErrNotRegistered)
	}
	batch, err := s.ds.Batch(s.ctx)
	if err != nil {
		return err
	}
	batch.Delete(s.ctx, accountKey(p))
	batch.Delete(s.ctx, nameKey(a.rec.Name))
	if err := batch.Commit(s.ctx); err != nil {
		return err
	}
	if err := s.ds.Sync(s.ctx, datastore.NewKey("/")); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.accounts, p)
	delete(s.names, a.rec.Name)
	_, on := s.sessions[p]
	delete(s.sessions, p)
	s.mu.Unlock()
	if on {
		s.h.ConnManager().Unprotect(p, sessionTag)
	}
	s.log.Info("unregistered", "name", a.rec.Name, "peer", p)
	return nil
}

func (s *Server) login(p peer.ID, nonce []byte, l *pb.Login) (*pb.User, error) {
	if err := s.checkProof(p, nonce, "login", "", l.Proof); err != nil {
		s.met.loginRefused.Inc()
		return nil, err
	}
	if err := checkProfile(l.Profile); err != nil {
		return nil, err
	}
	if l.SealingKey != nil {
		if _, err := verifySealingKey(p, l.SealingKey); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
	}
	s.mu.Lock()
	a := s.accounts[p]
	s.mu.Unlock()
	if a == nil {
		return nil, fmt.Errorf("%w: register a name on this relay first", ErrNotRegistered)
	}
	if l.SealingKey != nil && !proto.Equal(l.SealingKey, a.rec.SealingKey) || l.Profile != nil && !proto.Equal(l.Profile, a.rec.Profile) {
		if err := s.updateAccount(p, func(rec *pb.Account) {
			if l.SealingKey != nil {
				rec.SealingKey = l.SealingKey
			}
			if l.Profile != nil {
				rec.Profile = l.Profile
			}
		}); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	if s.accounts[p] == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: register a name on this relay first", ErrNotRegistered)
	}
	_, again := s.sessions[p]
	s.sessions[p] = s.cfg.Now()
	u := s.userLocked(p)
	s.mu.Unlock()
	// A logged-in user's connection is what keeps it logged in: the
	// connection manager must not trim it.
	s.h.ConnManager().Protect(p, sessionTag)
	s.met.logins.Inc()
	if !again {
		s.tellPresence(p)
	}
	s.wakePush(p)
	return u, nil
}

// endSession logs p out. A disconnect ends the session only if p has no
// connection left by the time it is handled: the client may have come
// back and logged in again meanwhile.
func (s *Server) endSession(p peer.ID, disconnected bool) {
	s.mu.Lock()
	if disconnected && s.h.Network().Connectedness(p) == network.Connected {
		s.mu.Unlock()
		return
	}
	_, ok := s.sessions[p]
	delete(s.sessions, p)
	s.mu.Unlock()
	if !ok {
		return
	}
	s.h.ConnManager().Unprotect(p, sessionTag)
	now := s.cfg.Now().UnixMilli()
	if err := s.updateAccount(p, func(rec *pb.Account) { rec.LastSeenMs = now }); err != nil && !errors.Is(err, ErrNotRegistered) {
		s.log.Warn("last seen", "peer", p, "err", err)
	}
	s.tellPresence(p)
}

// sessionTag protects logged-in users' connections.
const sessionTag = "meshtalk-relay-session"

// clientConnChanged ends the session of a client whose connections are
// gone.
func (s *Server) clientConnChanged(e any) {
	if ev := e.(event.EvtPeerConnectednessChanged); ev.Connectedness == network.NotConnected {
		s.endSession(ev.Peer, true)
	}
}

func (s *Server) loggedIn(p peer.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[p]; !ok {
		return fmt.Errorf("%w: log in first", ErrNotLoggedIn)
	}
	return nil
}

func (s *Server) lookup(p peer.ID, l *pb.Lookup) (*pb.User, error) {
	if err := s.loggedIn(p); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var id peer.ID
	if l.Name != "" {
		folded, err := FoldName(l.Name)
		if err != nil {
			return nil, err
		}
		id = s.names[folded]
	} else if pid, err := peer.IDFromBytes(l.PeerId); err == nil {
		id = pid
	}
	if s.accounts[id] == nil {
		return nil, fmt.Errorf("%w: %q has no account on this relay", ErrNotFound, l.Name+peer.ID(l.PeerId).String())
	}
	u := s.userLocked(id)
	if id != p && !s.accounts[id].allow[p] {
		// Nickname and status are for the peers it allows (its friends).
		u.Profile = nil
	}
	return u, nil
}

// userLocked is p's public record with its addresses through this relay;
// mu held.
func (s *Server) userLocked(p peer.ID) *pb.User {
	a := s.accounts[p]
	u := &pb.User{Name: a.rec.Name, PeerId: []byte(p), SealingKey: a.rec.SealingKey, Profile: a.rec.Profile, RegisteredMs: a.rec.RegisteredMs}
	circuit := ma.StringCast("/p2p/" + s.h.ID().String() + "/p2p-circuit/p2p/" + p.String())
	for _, addr := range s.h.Addrs() {
		u.Addrs = append(u.Addrs, []byte(addr.Encapsulate(circuit).String()))
	}
	return u
}

func (s *Server) setAllow(p peer.ID, a *pb.SetAllow) error {
	if err := s.loggedIn(p); err != nil {
		return err
	}
	peers, err := peersFromWire(a.Peers)
	if err != nil {
		return err
	}
	members, err := peersFromWire(a.Members)
	if err != nil {
		return err
	}
	return s.updateAccount(p, func(rec *pb.Account) { rec.Allow, rec.Members = peersToWire(peers), peersToWire(members) })
}

func (s *Server) presence(p peer.ID, q *pb.PresenceQuery) ([]*pb.Presence, error) {
	if err := s.loggedIn(p); err != nil {
		return nil, err
	}
	peers, err := peersFromWire(q.Peers)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*pb.Presence
	for _, id := range peers {
		if pr, ok := s.presenceLocked(id, p); ok {
			out = append(out, pr.toWire())
		}
	}
	return out, nil
}

// presenceLocked is id's presence as watcher may see it; mu held.
func (s *Server) presenceLocked(id, watcher peer.ID) (Presence, bool) {
	a := s.accounts[id]
	if a == nil || !a.allow[watcher] {
		return Presence{}, false
	}
	_, online := s.sessions[id]
	pr := Presence{PeerID: id, Online: online}
	if a.rec.LastSeenMs != 0 && !online {
		pr.LastSeen = time.UnixMilli(a.rec.LastSeenMs)
	}
	return pr, true
}

// tellPresence pushes p's presence to the logged-in peers it allows.
func (s *Server) tellPresence(p peer.ID) {
	s.mu.Lock()
	a := s.accounts[p]
	var to []peer.ID
	var prs []Presence
	if a != nil {
		for w := range a.allow {
			if _, ok := s.sessions[w]; ok {
				pr, _ := s.presenceLocked(p, w)
				to, prs = append(to, w), append(prs, pr)
			}
		}
	}
	s.mu.Unlock()
	for i, w := range to {
		msg := &pb.AccountPush{Presence: []*pb.Presence{prs[i].toWire()}}
		s.life.Go(func() {
			ctx, cancel := context.WithTimeout(s.ctx, ioTimeout)
			defer cancel()
			st, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "presence"), w, AccountProtocol, AccountProtocolV1)
			if err != nil {
				return
			}
			st.SetWriteDeadline(time.Now().Add(ioTimeout))
			if writeFrame(st, msg) != nil {
				st.Reset()
				return
			}
			st.Close()
		})
	}
}

// ---- invites ----

type invite struct {
	Uses    int       `json:"uses"`
	Expires time.Time `json:"expires"`
}

// NewInvite makes a registration token good for uses registrations
// until ttl from now.
func (s *Server) NewInvite(ctx context.Context, uses int, ttl time.Duration) (string, error) {
	if uses < 1 {
		uses = 1
	}
	raw := make([]byte, 20)
	rand.Read(raw)
	token := "mtinv-" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
	b, _ := json.Marshal(invite{Uses: uses, Expires: s.cfg.Now().Add(ttl)})
	if err := s.ds.Put(ctx, inviteKey(hashToken(token)), b); err != nil {
		return "", err
	}
	return token, s.ds.Sync(ctx, datastore.NewKey("/"))
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// spendInvite adds to batch the spending of one use of token; acctMu
// held.
func (s *Server) spendInvite(batch datastore.Batch, token string) error {
	if token == "" {
		return fmt.Errorf("%w: this relay registers by invitation; ask its operator for an invite", ErrBadInvite)
	}
	k := inviteKey(hashToken(token))
	b, err := s.ds.Get(s.ctx, k)
	if err != nil {
		return fmt.Errorf("%w: unknown or used up", ErrBadInvite)
	}
	var inv invite
	if json.Unmarshal(b, &inv) != nil || inv.Uses < 1 {
		return fmt.Errorf("%w: unknown or used up", ErrBadInvite)
	}
	if s.cfg.Now().After(inv.Expires) {
		return fmt.Errorf("%w: expired; ask the relay's operator for a new one", ErrBadInvite)
	}
	inv.Uses--
	if inv.Uses == 0 {
		return batch.Delete(s.ctx, k)
	}
	b, _ = json.Marshal(inv)
	return batch.Put(s.ctx, k, b)
}

// ---- for the operator ----

// UserInfo is one account as the operator sees it.
type UserInfo struct {
	Name         string    `json:"name"`
	PeerID       peer.ID   `json:"peer_id"`
	Registered   time.Time `json:"registered"`
	LoggedIn     bool      `json:"logged_in"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	MailboxItems int       `json:"mailbox_items"`
	MailboxBytes int64     `json:"mailbox_bytes"`
}

// Users lists the accounts by name.
func (s *Server) Users() []UserInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]UserInfo, 0, len(s.accounts))
	for p, a := range s.accounts {
		_, on := s.sessions[p]
		u := UserInfo{Name: a.rec.Name, PeerID: p, Registered: time.UnixMilli(a.rec.RegisteredMs), LoggedIn: on}
		if a.rec.LastSeenMs != 0 {
			u.LastSeen = time.UnixMilli(a.rec.LastSeenMs)
		}
		if m := s.rcpt[p]; m != nil {
			u.MailboxItems, u.MailboxBytes = m.items, m.bytes
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stats is what the relay holds and serves now.
type Stats struct {
	Accounts     int   `json:"accounts"`
	LoggedIn     int   `json:"logged_in"`
	MailboxItems int   `json:"mailbox_items"`
	MailboxBytes int64 `json:"mailbox_bytes"`
	DropFiles    int   `json:"drop_files"`
	DropBytes    int64 `json:"drop_bytes"`
	Circuits     int   `json:"circuits"`
}

// Stats counts what the relay holds.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	stats := Stats{Accounts: len(s.accounts), LoggedIn: len(s.sessions)}
	for _, u := range s.rcpt {
		stats.MailboxItems += u.items
		stats.MailboxBytes += u.bytes
	}
	for _, u := range s.drops {
		stats.DropFiles += u.items
		stats.DropBytes += u.bytes
	}
	s.mu.Unlock()
	stats.Circuits = countCircuits(s.h)
	return stats
}

// countCircuits counts the relayed connections the relay carries now:
// its streams of the circuit relay's hop protocol.
func countCircuits(h host.Host) int {
	n := 0
	for _, c := range h.Network().Conns() {
		for _, st := range c.GetStreams() {
			if st.Protocol() == "/libp2p/circuit/relay/0.2.0/hop" {
				n++
			}
		}
	}
	return n
}
