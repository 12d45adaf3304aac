package group

// The group service: gossipsub, the topic validator, paced publishing and
// storage. The protocols are specified in wire.go, the membership rules
// in state.go, catch-up in sync.go.
//
// The group datastore keys, in the /chat namespace beside the keys of
// chat/store.go and history/store.go:
//
//	/grouplist/<group ID>                 "": the groups this node knows
//	/groups/<group ID>/state              state (JSON): the log applied, the
//	                                      keys, this node's standing
//	/groups/<group ID>/op/<hash hex>      pb.SignedOp: the op DAG, each op by
//	                                      the SHA-256 of its SignedOp (schema 3;
//	                                      schema 2 kept the linear log at
//	                                      /groups/<group ID>/ops/<index %016x>)
//	/groups/<group ID>/heads/<author>     seqSet (JSON): the envelopes held of
//	                                      one author, as of its last record
//	                                      (see headRecordDue)
//	/groups/<group ID>/env/<author>/<seq %016x> pb.Envelope, as its author sealed it:
//	                                      what this node serves to members who pull
//	/msgs/g:<group ID>/<hlc %016x>/<msg ID> pb.StoredMessage (group set): the history,
//	                                      decrypted, beside the direct conversations
//
// An envelope, its history record, its /msgid index and, when due
// (headRecordDue), its author's head are written in one batch. The batch
// is synced before anything is acknowledged: before Send returns for
// this node's own messages, before a pull or a relay's letter is
// answered for what they brought. What gossip brought is acknowledged to
// nobody and is not synced (see store).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pspb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/group/pb"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/lifecycle"
	"github.com/meshtalk/meshtalk/internal/queue"
)

// Event types.
const (
	// EventMessage: a group message was stored, received or this node's
	// own (the type of a direct message's event too). Data: *history.Message.
	EventMessage = "message.received"
	// EventUpdate: a group changed (created, joined, a member added or
	// removed, renamed, this node removed, branches merged: op "merge").
	// Data: UpdateEvent.
	EventUpdate = "group.update"
)

// UpdateEvent is the data of group.update.
type UpdateEvent struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Op     string  `json:"op"`
	Actor  peer.ID `json:"actor,omitempty"`
	Target peer.ID `json:"target,omitempty"`
	Status string  `json:"status"`
}

// Defaults of the group settings in Config.
const (
	// DefaultRate paces publishing, in messages per second.
	DefaultRate = 400
	// groupSettle is how long after the latest message of a group a member
	// pulls from its author, to catch a lost tail.
	groupSettle = time.Second
	// groupQueue is the depth of gossipsub's per-peer and validation
	// queues (its default of 32 drops most of a burst).
	groupQueue = 8192
	// DefaultReceiptDelay: see Config.ReceiptDelay.
	DefaultReceiptDelay = time.Second
	// DefaultRefresh: see Config.Refresh.
	DefaultRefresh = 30 * time.Second
)

func groupKey(id, rest string) datastore.Key { return datastore.RawKey("/groups/" + id + "/" + rest) }
func groupListKey(id string) datastore.Key   { return datastore.RawKey("/grouplist/" + id) }
func groupHeadKey(id, author string) datastore.Key {
	return datastore.RawKey("/groups/" + id + "/heads/" + author)
}
func groupOpKey(id string, h [32]byte) datastore.Key {
	return datastore.RawKey(fmt.Sprintf("/groups/%s/op/%x", id, h))
}

// groupLogKey is where schema 2 kept op i of the linear log.
func groupLogKey(id string, i uint64) datastore.Key {
	return datastore.RawKey(fmt.Sprintf("/groups/%s/ops/%016x", id, i))
}
func groupEnvKey(id, author string, seq uint64) datastore.Key {
	return datastore.RawKey(fmt.Sprintf("/groups/%s/env/%s/%016x", id, author, seq))
}

// Friends is what groups need to know of this node's contacts (node
// gives the chat service).
type Friends interface {
	// Online reports whether p is online: connected, or logged in at a
	// relay.
	Online(p peer.ID) bool
	// PeerName is the name p's profile shows, "" when none is known.
	PeerName(ctx context.Context, p peer.ID) string
	// FriendAddrs reports whether p is a friend, with the addresses this
	// node knows for p.
	FriendAddrs(ctx context.Context, p peer.ID) (addrs []string, friend bool, err error)
}

// Keeper holds connections to chosen peers (node gives discovery's
// keep-alive): members stay connected.
type Keeper interface {
	Keep(peer.AddrInfo)
	Unkeep(peer.ID)
}

// Config holds the Service's optional dependencies and settings.
type Config struct {
	// Friends is this node's contacts; nil: nobody is a friend, and only
	// connected peers are online.
	Friends Friends
	// Keeper keeps members connected; nil keeps nobody.
	Keeper Keeper
	// Now is the clock; nil is time.Now. Tests skew it.
	Now func() time.Time
	// Clock stamps messages; nil is a clock of the service's own. node
	// gives chat and groups one clock.
	Clock *history.Clock
	// Rate paces this node's publishing to its groups, in messages per
	// second; 0 is DefaultRate.
	Rate float64
	// ReadReceipts tells a group which of its messages were read here
	// (MarkRead).
	ReadReceipts bool
	// ReceiptDelay gathers the delivered receipts of this long into one
	// receipt per group; 0 is DefaultReceiptDelay, below 0 sends none.
	ReceiptDelay time.Duration
	// Refresh is how often each group is pulled from one of its online
	// members, each in turn (refresh.go); 0 is DefaultRefresh, below 0
	// never.
	Refresh time.Duration
	// Emit publishes the service's events (group.update, and
	// message.received with a *history.Message for group messages); nil
	// discards them. It must not block.
	Emit func(typ string, data any)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Service is this node's groups: gossipsub and the group topics, the
// membership logs, groupsync (both sides) and the groups' history.
type Service struct {
	h    host.Host
	ds   datastore.Batching
	cfg  Config
	log  *slog.Logger
	clk  *history.Clock
	hist *history.Store
	run  *lifecycle.Group
	ctx  context.Context // run's

	closeOnce sync.Once

	ps   *pubsub.PubSub
	priv crypto.PrivKey
	self peer.ID

	// opMu serialises changes of a group's state (ops, keys, standing).
	opMu sync.Mutex
	// sendMu serialises this node's own messages: numbering and storing.
	sendMu sync.Mutex

	mu  sync.RWMutex
	all map[string]*group

	ingest  chan *ingestItem
	pubq    chan pubItem
	limiter *rate.Limiter

	pullMu   sync.Mutex
	pulls    map[pullKey]pullDue
	pulling  atomic.Bool // runPuller is making pulls that came due
	pullWake chan struct{}
	// pullNext is when runPuller's timer wakes it (zero: it is awake): a
	// pull due later needs no wake-up (every stored message asks for a
	// settle pull, which only postpones it).
	pullNext time.Time
	// refresh is Config.Refresh (tests shorten it), refreshWake tells
	// runRefresh it changed.
	refresh     atomic.Int64
	refreshWake chan struct{}

	mbMu sync.Mutex
	mb   Mailbox // nil: gossip and catch-up only
	// parkq feeds runParker; parking is held while a batch is parked,
	// so that DrainParker waits for it, as long as its context allows
	// (a relay that does not answer holds a batch up to its I/O timeout).
	parkq   chan parkJob
	parking *semaphore.Weighted
	// forwardq feeds runForwarder (forward.go).
	forwardq chan forwardJob

	rejects atomic.Int64 // messages rejected, from the topic, a pull or a mailbox (tests read it)
	pulled  atomic.Int64 // messages stored that came by pull, not gossip
	// gap pulls dropped because gossip had filled every gap (tests read it)
	needless atomic.Int64
	// postponed counts ops set aside for being dated too far ahead.
	postponed atomic.Int64
	// scores is each peer's latest gossipsub score (scoreReads counts
	// them), fellows the standing of the peers that share a group with
	// this node or did (score.go).
	scores     atomic.Pointer[map[peer.ID]float64]
	scoreReads atomic.Int64
	fellows    fellows
	// topics is the groups by topic name, for gossipsub's filters
	// (filter.go).
	topics atomic.Pointer[map[string]*group]

	// receipts gathers delivered receipts for runReceipts (changes.go).
	receipts receiptQueue
	// own is what this node sent lately: receipts are kept for its own
	// messages only, so that a member does not store every member's
	// receipts of every message (changes.go).
	own ownIDs
}

// group is one group this node knows.
type group struct {
	id  string
	gid []byte

	st atomic.Pointer[state]
	// dag is the op set st is the fold of (under Service.opMu).
	dag *dag
	// changed is closed (and replaced) each time st is: see watch.
	chMu    sync.Mutex
	changed chan struct{}

	hmu   sync.Mutex
	heads map[peer.ID]*seqSet

	// Set while this node is a member (under Service.mu).
	topic  *pubsub.Topic
	cancel context.CancelFunc
	done   chan struct{}
	// out: this node is off the topic because it is no member (it left,
	// or was removed); afterOps puts it back once it is again (under
	// Service.mu).
	out bool
}

func (g *group) state() *state { return g.st.Load() }

// watch is a channel closed at the next change of the state.
func (g *group) watch() <-chan struct{} {
	g.chMu.Lock()
	defer g.chMu.Unlock()
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

// setState replaces the state and wakes its watchers.
func (g *group) setState(st *state) {
	g.st.Store(st)
	g.chMu.Lock()
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
	g.chMu.Unlock()
}

func (g *group) has(author peer.ID, seq uint64) bool {
	g.hmu.Lock()
	defer g.hmu.Unlock()
	head := g.heads[author]
	return head != nil && head.has(seq)
}

// maxSeqAhead bounds how far past what this node holds of an author a
// message's number may be: a member cannot make others keep or serve a
// run of numbers it never sent.
const maxSeqAhead = 1 << 16

// near reports whether seq is within maxSeqAhead of what this node holds
// of author.
func (g *group) near(author peer.ID, seq uint64) bool {
	g.hmu.Lock()
	defer g.hmu.Unlock()
	var c uint64
	if head := g.heads[author]; head != nil {
		c = head.Contig
	}
	// Written so that no head, however large a peer made it, overflows.
	return seq <= c || seq-c <= maxSeqAhead
}

// headRecordEvery bounds how many envelopes of an author start-up finds
// past its head's record (headRecordDue).
const headRecordEvery = 64

// headRecordDue reports whether a head that went from before (nil: none)
// to now is written to the store. A head that only grew contiguously
// need not be, but every headRecordEvery numbers: the envelopes past
// its record are stored under their numbers, in the same batches, and
// start-up finds them one by one. Writing the head of every message was
// a quarter of what a group message put in the store.
func headRecordDue(before, now *seqSet) bool {
	return before == nil || len(before.Extra) > 0 || len(now.Extra) > 0 ||
		before.Contig/headRecordEvery != now.Contig/headRecordEvery
}

// headOf is a copy of what this node holds of author, to change, and the
// head itself (nil: nothing held), which is never changed in place: for
// headRecordDue.
func (g *group) headOf(author peer.ID) (head, held *seqSet) {
	g.hmu.Lock()
	defer g.hmu.Unlock()
	held = g.heads[author]
	return held.clone(), held
}

func (s *seqSet) clone() *seqSet {
	c := &seqSet{}
	if s == nil {
		return c
	}
	c.Contig = s.Contig
	if len(s.Extra) > 0 {
		c.Extra = make(map[uint64]bool, len(s.Extra))
		for k := range s.Extra {
			c.Extra[k] = true
		}
	}
	return c
}

func (g *group) headsSnapshot() map[peer.ID]*seqSet {
	g.hmu.Lock()
	defer g.hmu.Unlock()
	out := make(map[peer.ID]*seqSet, len(g.heads))
	for p, head := range g.heads {
		out[p] = head.clone()
	}
	return out
}

// ingestItem is one verified, decrypted envelope on its way to the store.
type ingestItem struct {
	g    *group
	env  *envelope
	w    history.Wire
	from peer.ID      // who handed it on
	done chan<- error // gets the store's outcome (nil: nobody waits)
	// via is how it came, when a relay's mailbox held it (nil: from a
	// member, by gossip or a pull).
	via *history.Hop
}

type pubItem struct {
	g    *group
	data []byte
}

type pullKey struct {
	id string
	p  peer.ID
}

// New starts gossipsub and every group this node is a member of, on h,
// storing in ds (the /chat namespace, beside chat's keys).
func New(ctx context.Context, h host.Host, ds datastore.Batching, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = history.NewClock(cfg.Now)
	}
	if cfg.Emit == nil {
		cfg.Emit = func(string, any) {}
	}
	if cfg.Friends == nil {
		cfg.Friends = noFriends{h}
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gs := &Service{h: h, ds: ds, cfg: cfg, log: log.With("component", "group"), clk: cfg.Clock, run: lifecycle.New(), own: ownIDs{since: cfg.Now()},
		hist: history.New(ds, history.Config{FileInfo: fileInfo}),
		self: h.ID(), all: map[string]*group{},
		ingest: make(chan *ingestItem, groupQueue), pubq: make(chan pubItem, 1024),
		pulls: map[pullKey]pullDue{}, pullWake: make(chan struct{}, 1), refreshWake: make(chan struct{}, 1),
		receipts: receiptQueue{wake: make(chan struct{}, 1)}}
	gs.ctx = gs.run.Context()
	gs.refresh.Store(int64(cfg.Refresh))
	if err := gs.start(ctx); err != nil {
		gs.Close()
		return nil, err
	}
	return gs, nil
}

// Close removes the stream handler, resets the streams in use, and waits
// for every goroutine the service started: nothing touches the datastore
// after Close returns.
func (gs *Service) Close() error {
	gs.closeOnce.Do(func() {
		gs.h.RemoveStreamHandler(SyncProtocol)
		gs.run.Close()
	})
	return nil
}

// start starts gossipsub, the service's goroutines and every group this
// node is a member of.
func (gs *Service) start(ctx context.Context) error {
	rateLimit := gs.cfg.Rate
	if rateLimit <= 0 {
		rateLimit = DefaultRate
	}
	gs.limiter = rate.NewLimiter(rate.Limit(rateLimit), max(1, int(rateLimit/10)))
	gs.priv = gs.h.Peerstore().PrivKey(gs.h.ID())
	if gs.priv == nil {
		return errors.New("group: the host has no private key")
	}
	// The inspector runs on a goroutine of gossipsub's own: it only
	// hands the scores over, without blocking, to watchScores.
	scores := make(chan map[peer.ID]float64, 1)
	inspect := func(m map[peer.ID]float64) {
		select {
		case scores <- m:
		default:
		}
	}
	var err error
	gs.ps, err = pubsub.NewGossipSub(gs.ctx, gs.h, append(append(gs.gossipOptions(), gs.filterOptions()...),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(inspect), scoreInspectPeriod),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pspb.Message) string {
			sum := sha256.Sum256(m.Data)
			return string(sum[:20])
		}),
	)...)
	if err != nil {
		return fmt.Errorf("group: gossipsub: %w", err)
	}
	sub, err := gs.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("group: %w", err)
	}
	gs.h.SetStreamHandler(SyncProtocol, gs.run.Handler(gs.handleSync))
	gs.parkq, gs.parking = make(chan parkJob, 4096), semaphore.NewWeighted(1)
	gs.forwardq = make(chan forwardJob, 4096)
	gs.run.Go(gs.runIngest)
	gs.run.Go(gs.runPublisher)
	gs.run.Go(gs.runForwarder)
	gs.run.Go(gs.runPuller)
	gs.run.Go(gs.runRefresh)
	gs.run.Watch(sub, gs.peerChanged)
	gs.run.Go(gs.runParker)
	gs.run.Go(gs.runReceipts)
	gs.run.Go(func() { gs.watchScores(scores) })

	var ids []string
	err = history.Scan(ctx, gs.ds, query.Query{Prefix: "/grouplist/", KeysOnly: true}, func(key string, _ []byte) (bool, error) {
		ids = append(ids, strings.TrimPrefix(key, "/grouplist/"))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		var st state
		if err := history.GetJSON(ctx, gs.ds, groupKey(id, "state"), &st); err != nil {
			return err
		}
		heads := map[peer.ID]*seqSet{}
		err := history.QueryJSON(ctx, gs.ds, query.Query{Prefix: "/groups/" + id + "/heads/"}, func(key string, head *seqSet) bool {
			if p, err := peer.Decode(key[strings.LastIndexByte(key, '/')+1:]); err == nil {
				heads[p] = head
			}
			return true
		})
		if err != nil {
			return err
		}
		// The envelopes stored past a head's record.
		for p, head := range heads {
			for {
				ok, err := gs.ds.Has(ctx, groupEnvKey(id, history.PeerString(p), head.Contig+1))
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				head.add(head.Contig + 1)
			}
		}
		gid, _ := parseGID(id)
		g := &group{id: id, gid: gid, heads: heads, out: st.Status != StatusMember}
		g.st.Store(st.clone())
		if st.Schema < stateSchema {
			if err := gs.migrate(ctx, g); err != nil {
				return err
			}
		} else if err := gs.loadDAG(ctx, g); err != nil {
			return err
		}
		gs.mu.Lock()
		gs.all[id] = g
		gs.mu.Unlock()
		gs.refreshFellows()
		if st := g.state(); st.Status == StatusMember {
			if err := gs.subscribe(g); err != nil {
				return err
			}
			gs.keepMembers(st)
			if len(st.departed()) > 0 {
				gs.rekeyAfterLeave(g)
			}
		}
	}
	return nil
}

// loadDAG reads a group's op DAG from the store.
func (gs *Service) loadDAG(ctx context.Context, g *group) error {
	var ops []*op
	err := history.Scan(ctx, gs.ds, query.Query{Prefix: "/groups/" + g.id + "/op/"}, func(_ string, raw []byte) (bool, error) {
		o, err := decodeStoredOp(raw)
		if err != nil {
			return false, err
		}
		ops = append(ops, o)
		return true, nil
	})
	if err == nil {
		g.dag, err = buildDAG(ops, false)
	}
	if err != nil {
		return fmt.Errorf("group: ops of %s: %w", g.id, err)
	}
	return nil
}

// migrate rebuilds a group's state stored before stateSchema from its
// linear log (schema 2 and before), keeping what is not from the log
// (keys, standing, friends owed), and stores the log's ops by hash. An
// op that today's rules refuse (a removed member back by invite, say) is
// void: the fold never fails.
func (gs *Service) migrate(ctx context.Context, g *group) error {
	old := g.state()
	ops := make([]*op, 0, old.Ops)
	for i := range old.Ops {
		raw, err := gs.ds.Get(ctx, groupLogKey(g.id, i))
		if err != nil {
			return fmt.Errorf("group: migrate %s: %w", g.id, err)
		}
		o, err := decodeStoredOp(raw)
		if err != nil {
			return fmt.Errorf("group: migrate %s: %w", g.id, err)
		}
		ops = append(ops, o)
	}
	d, err := buildDAG(ops, false)
	if err != nil {
		return fmt.Errorf("group: migrate %s: %w", g.id, err)
	}
	next := d.fold(nil, true)
	pool := map[string][]byte{}
	for epoch, k := range old.Keys {
		if h := old.KeyHashes[epoch]; h != nil {
			pool[hex.EncodeToString(h)] = k
		}
	}
	next.carry(&state{KeyPool: pool, Status: old.Status, Owe: old.Owe})
	g.dag = d
	// The old log goes in the batch that stores what replaces it: deleted
	// after it, a crash between the two left it behind for good (the
	// migrated state is not migrated again).
	oldLog := make([]datastore.Key, 0, old.Ops)
	for i := range old.Ops {
		oldLog = append(oldLog, groupLogKey(g.id, i))
	}
	return gs.persist(g, next, ops, oldLog...)
}

// gossipOptions are the node's gossipsub settings but for how messages
// are signed and named: an envelope carries its author's signature, which
// the validator checks (once), so gossipsub's own signing is off, and a
// message is named by its hash.
func (gs *Service) gossipOptions() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithGossipSubParams(groupMeshParams()),
		pubsub.WithPeerScore(gs.scoreParams(), groupScoreThresholds()),
		pubsub.WithPeerOutboundQueueSize(groupQueue),
		pubsub.WithValidateQueueSize(groupQueue),
		pubsub.WithMaxMessageSize(MaxTopicMessage + 4096),
	}
}

// groupMeshParams thins gossipsub's mesh from 6 (5 to 12) peers to 3 (2
// to 4). A message travels the mesh only (flood publishing is off: an
// author's 49 copies at once cost more than they save), and every member
// passes each message on to each of its mesh peers, most of whom have it
// already: a mesh link is a copy of every message at both its ends. With
// 50 members at 100 msg/s the default mesh (8 to 10 links a member in
// practice) took the whole of two cores, this one half as much, and a
// message still reaches all 50 in about four hops (4 links took more
// cores and gave no shorter tail; measured with BenchmarkGroup). A
// member the mesh misses still hears of the message from gossip (IHAVE)
// and pulls what it lacks (groupsync). No outbound quota (Dout 0, which
// D 3 requires): a mesh peer is a member the validator vouches for, not
// any peer that connects.
func groupMeshParams() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.D, p.Dlo, p.Dhi, p.Dscore, p.Dout = 3, 2, 4, 1, 0
	// Gossip (IHAVE) goes to Dlazy (6) peers a heartbeat, not to a quarter
	// of the group: it only backs up the mesh, and each message ID it
	// names is looked up at each peer that hears it, for three heartbeats.
	p.GossipFactor = 0
	return p
}

// subscribe joins g's topic and starts its reader.
func (gs *Service) subscribe(g *group) error {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if g.topic != nil {
		return nil
	}
	name := Topic(g.id)
	// Inline: the validator runs on gossipsub's validation workers, not
	// on a goroutine of its own per message.
	if err := gs.ps.RegisterTopicValidator(name, func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		return gs.validate(g, from, m)
	}, pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("group: group %s: %w", g.id, err)
	}
	t, err := gs.ps.Join(name)
	if err != nil {
		gs.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("group: group %s: %w", g.id, err)
	}
	// Scored from here on: what the validator rejects costs its sender.
	if err := t.SetScoreParams(groupTopicScore()); err != nil {
		t.Close()
		gs.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("group: group %s: %w", g.id, err)
	}
	evts, err := t.EventHandler()
	if err != nil {
		t.Close()
		gs.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("group: group %s: %w", g.id, err)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(groupQueue))
	if err != nil {
		evts.Cancel()
		t.Close()
		gs.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("group: group %s: %w", g.id, err)
	}
	ctx, cancel := context.WithCancel(gs.ctx)
	g.topic, g.cancel, g.done = t, cancel, make(chan struct{})
	done := g.done
	if !gs.run.Go(func() { gs.read(ctx, g, sub, evts, done) }) {
		close(done)
		sub.Cancel()
		evts.Cancel()
		cancel()
		return ErrClosed
	}
	return nil
}

// watchJoins pulls from a member that joins the topic: what it published
// before it knew of this node reached nobody here, and no gap shows it.
func (gs *Service) watchJoins(ctx context.Context, g *group, evts *pubsub.TopicEventHandler) {
	defer evts.Cancel()
	for {
		ev, err := evts.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin && g.state().isMember(ev.Peer) {
			gs.wantPull(g.id, ev.Peer, time.Second)
		}
	}
}

// unsubscribe leaves g's topic (this node left or was removed).
func (gs *Service) unsubscribe(g *group) { gs.leaveTopic(g, false) }

// leaveTopic leaves g's topic; onlyOut: only if this node is still out
// (an order that made its removal void may have put it back meanwhile).
func (gs *Service) leaveTopic(g *group, onlyOut bool) {
	gs.mu.Lock()
	if onlyOut && !g.out {
		gs.mu.Unlock()
		return
	}
	t, cancel, done := g.topic, g.cancel, g.done
	g.topic, g.cancel, g.done = nil, nil, nil
	gs.mu.Unlock()
	if t == nil {
		return
	}
	cancel()
	<-done
	t.Close()
	gs.ps.UnregisterTopicValidator(Topic(g.id))
}

// read hands what the validator accepted on to the store.
func (gs *Service) read(ctx context.Context, g *group, sub *pubsub.Subscription, evts *pubsub.TopicEventHandler, done chan struct{}) {
	defer close(done)
	defer sub.Cancel()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		gs.watchJoins(ctx, g, evts)
	}()
	defer func() { <-watched }()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if !gs.take(ctx, g, m.ReceivedFrom, m.ValidatorData) {
			return
		}
	}
}

// take hands on what the topic validator accepted from a peer (gossip's
// forwarder, or a member's forward): an envelope to be stored, an op to
// apply. It returns false if ctx ended first.
func (gs *Service) take(ctx context.Context, g *group, from peer.ID, validated any) bool {
	switch v := validated.(type) {
	case *ingestItem:
		select {
		case gs.ingest <- v:
		case <-ctx.Done():
			return false
		}
	case *op:
		if v.Actor != gs.self {
			if _, gap, err := gs.applyOps(g, []*op{v}); err == nil && gap {
				gs.wantPull(g.id, from, 0)
			}
		}
	}
	return true
}

// validate is the topic validator (see wire.go). It verifies each
// message once; what it decoded travels on as ValidatorData.
func (gs *Service) validate(g *group, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	reject := func() pubsub.ValidationResult {
		gs.rejects.Add(1)
		return pubsub.ValidationReject
	}
	if len(m.Data) > MaxTopicMessage {
		return reject()
	}
	var tm pb.TopicMessage
	if err := proto.Unmarshal(m.Data, &tm); err != nil {
		return reject()
	}
	st := g.state()
	switch body := tm.Body.(type) {
	case *pb.TopicMessage_Envelope:
		env, err := envelopeFromWire(body.Envelope)
		if err != nil || !sameBytes(env.GroupID, g.gid) {
			return reject()
		}
		if env.Author == gs.self && from == gs.self {
			return pubsub.ValidationAccept // sealed and stored here a moment ago
		}
		if !st.isMember(env.Author) && !st.mayWrite(env.Author, env.Epoch, env.Seq) {
			if st.wasMember(env.Author, env.Epoch) || st.Forked[env.Epoch] ||
				(st.wasEver(env.Author) && gs.otherBranch(g, st, env, from)) {
				// A member removed or gone since, past the head its
				// remove or leave froze: its frame may have been on its
				// way, no fault of who forwarded it, but it does not count.
				// So for a member of another branch's epoch of that
				// number (an add the order made void, a removal on this
				// branch that the other has not made).
				gs.log.Debug("ignored a frame of a former member", "group", g.id, "author", env.Author)
				return pubsub.ValidationIgnore
			}
			return reject()
		}
		// One this node holds already (a pull was quicker) is still
		// checked and accepted, so that gossip carries it on to the peers
		// that wait for it from here; the store keeps it once.
		if !g.near(env.Author, env.Seq) {
			return pubsub.ValidationIgnore
		}
		key := st.Keys[env.Epoch]
		if key == nil {
			// An epoch this node has no key for yet: a pull brings it.
			gs.wantPull(g.id, from, 0)
			return pubsub.ValidationIgnore
		}
		if err := env.verify(); err != nil {
			return reject()
		}
		if gs.otherBranch(g, st, env, from) {
			return pubsub.ValidationIgnore
		}
		w, err := env.open(key)
		if err != nil {
			if st.Forked[env.Epoch] && len(env.KeyHint) == 0 {
				// Sealed before there were key hints, maybe on the other
				// branch.
				return pubsub.ValidationIgnore
			}
			return reject() // junk sealed for this node's key
		}
		m.ValidatorData = &ingestItem{g: g, env: env, w: w, from: from}
		return pubsub.ValidationAccept
	case *pb.TopicMessage_Op:
		o, err := opFromWire(body.Op)
		if err != nil || o.Kind == OpCreate {
			return reject()
		}
		if o.Actor == gs.self && from == gs.self {
			m.ValidatorData = o
			return pubsub.ValidationAccept
		}
		switch gs.checkTopicOp(g, from, o) {
		case pubsub.ValidationReject:
			return reject()
		case pubsub.ValidationIgnore:
			return pubsub.ValidationIgnore
		}
		m.ValidatorData = o
		return pubsub.ValidationAccept
	}
	return reject()
}

// otherBranch reports whether env names (by its key hint) another key of
// its epoch's number than this node's: it was sealed on another branch of
// the op DAG, and its forwarder could not know that this node cannot open
// it. A branch this node has not heard of yet: a pull from the forwarder
// brings its ops.
func (gs *Service) otherBranch(g *group, st *state, env *envelope, from peer.ID) bool {
	key := st.Keys[env.Epoch]
	if key == nil || !env.foreignKey(key) {
		return false
	}
	if !st.Forked[env.Epoch] {
		gs.wantPull(g.id, from, 0)
	}
	return true
}

// checkTopicOp is the validator's answer to an op of another node: it
// checks the op against the group as its actor held it (its ancestors),
// which every member holding them sees alike. An op already held, or one
// that follows ops this node does not hold (another branch, or ops on
// their way), is ignored, not rejected: it is not the forwarder's fault,
// nor invalid as such; this node pulls what it lacks.
func (gs *Service) checkTopicOp(g *group, from peer.ID, o *op) pubsub.ValidationResult {
	gs.opMu.Lock()
	defer gs.opMu.Unlock()
	switch {
	case g.dag.has(o.hash):
		return pubsub.ValidationIgnore
	case !g.dag.ready(o):
		gs.log.Info("ignored a group op that follows ops not held here", "group", g.id, "op", o.Kind, "actor", o.Actor)
		gs.wantPull(g.id, from, 0)
		return pubsub.ValidationIgnore
	}
	if err := gs.checkOpTime(o); err != nil || gs.staleAdd(o) {
		// A matter of clocks, not of validity: members whose clocks
		// differ may disagree, so nobody is penalised for it.
		return pubsub.ValidationIgnore
	}
	if _, err := g.dag.admit(o, g.state()); err != nil {
		return pubsub.ValidationReject
	}
	return pubsub.ValidationAccept
}

// runIngest stores verified envelopes, from gossip and from pulls: all
// that wait at a moment go into one batch and one sync.
func (gs *Service) runIngest() {
	for {
		batch, ok := queue.Take(gs.ctx, gs.ingest, 1024)
		if !ok {
			return
		}
		err := gs.store(batch)
		if err != nil {
			gs.log.Error("store group messages", "err", err)
		}
		// A waiter (a pull, a mailbox letter) learns whether its
		// messages are stored: a letter is acked to the relay only then.
		for _, it := range batch {
			if it.done != nil {
				it.done <- err
			}
		}
	}
}

// headChange is what a stored batch changed of a group's heads.
type headChange struct {
	g      *group
	heads  map[peer.ID]*seqSet // the authors that changed
	before map[peer.ID]*seqSet // what they were (nil: no head)
}

// store stores the envelopes of batch not stored yet, once each.
func (gs *Service) store(batch []*ingestItem) error {
	ctx := gs.ctx
	release := gs.hist.Writing() // until the batch is committed: history.Store.Put
	defer release()
	b, err := gs.ds.Batch(ctx)
	if err != nil {
		return err
	}
	changed := map[string]*headChange{}
	var fresh []*history.Message
	var news changeNews // what the edits, deletes and receipts changed
	for _, it := range batch {
		// This node's own messages are stored as they are sealed
		// (sealAndStore), which owns this node's head: a copy that comes
		// back must not write it, or a stale snapshot could reuse a seq.
		if it.env.Author == gs.self {
			continue
		}
		g := it.g
		c := changed[g.id]
		if c == nil {
			c = &headChange{g: g, heads: map[peer.ID]*seqSet{}, before: map[peer.ID]*seqSet{}}
			changed[g.id] = c
		}
		head := c.heads[it.env.Author]
		if head == nil {
			head, c.before[it.env.Author] = g.headOf(it.env.Author)
			c.heads[it.env.Author] = head
		}
		if head.has(it.env.Seq) {
			continue
		}
		head.add(it.env.Seq)
		raw, err := proto.Marshal(it.env.toWire())
		if err != nil {
			return err
		}
		if err := b.Put(ctx, groupEnvKey(g.id, history.PeerString(it.env.Author), it.env.Seq), raw); err != nil {
			return err
		}
		gs.clk.Observe(it.w.HLC)
		if !it.w.Shown() {
			if err := gs.storeChange(ctx, b, it, fresh, &news); err != nil {
				return err
			}
			continue
		}
		// open checked the ID, derived from (group, author, seq): no other
		// message can have it, and the head says this one is new.
		m := groupMessage(g.id, it.env.Author, gs.self, it.w)
		// The trace's received hop: when, and through which mailbox.
		if m.Via = it.via; m.Via == nil {
			m.Via = &history.Hop{Event: history.HopReceived, At: gs.cfg.Now()}
		}
		if err := gs.hist.Put(ctx, b, m); err != nil {
			return err
		}
		fresh = append(fresh, m)
		if it.done != nil {
			gs.pulled.Add(1)
		}
	}
	for _, c := range changed {
		for a, head := range c.heads {
			if !headRecordDue(c.before[a], head) {
				continue
			}
			if err := history.PutJSON(ctx, b, groupHeadKey(c.g.id, history.PeerString(a)), head); err != nil {
				return err
			}
		}
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	release()
	// What someone waits for (a pull, a relay's letter, acked once
	// stored) is synced. What gossip brought is acknowledged to nobody:
	// if the machine loses the write, it loses the author's head with it,
	// and the next pull brings the message again.
	if slices.ContainsFunc(batch, func(it *ingestItem) bool { return it.done != nil }) {
		if err := gs.sync(ctx); err != nil {
			return err
		}
	}
	for _, c := range changed {
		c.g.hmu.Lock()
		for a, head := range c.heads {
			c.g.heads[a] = head
		}
		c.g.hmu.Unlock()
	}
	for _, m := range fresh {
		gs.emit(EventMessage, m)
	}
	gs.announceChanges(fresh, news)
	gs.pullGaps(batch, changed)
	return nil
}

// pullGaps pulls from an author (or whoever forwarded its message) where
// a stored batch left a gap in the author's numbering, and settles the
// pulls that the batch answered.
func (gs *Service) pullGaps(batch []*ingestItem, changed map[string]*headChange) {
	// A gap in an author's numbering, or the end of a burst: pull.
	last := map[string]*ingestItem{}
	for _, it := range batch {
		last[it.g.id] = it
	}
	for id, it := range last {
		c := changed[id] // nil: only this node's own messages came back
		if c == nil {
			continue
		}
		if head := c.heads[it.env.Author]; head == nil || len(head.Extra) == 0 {
			continue
		}
		from := it.env.Author
		if !gs.online(from) {
			from = it.from
		}
		if from == "" || from == gs.self {
			continue
		}
		gs.gapPull(id, from, 200*time.Millisecond)
	}
	for _, it := range batch {
		if a := it.env.Author; a != gs.self {
			gs.settlePull(it.g.id, a, groupSettle)
		}
	}
}

// groupMessage is the history record of a group message.
func groupMessage(id string, author, self peer.ID, w history.Wire) *history.Message {
	state := history.MsgReceived
	if author == self {
		state = history.MsgSent
	}
	return &history.Message{ID: w.ID, From: author, Group: id, Content: w.Content, State: state,
		Time: time.UnixMilli(w.SentAtMS), HLC: w.HLC, Outgoing: author == self, File: fileInfo(w.Manifest)}
}

// runPublisher publishes this node's topic messages, paced so that the
// gossipsub queues of the peers keep up.
func (gs *Service) runPublisher() {
	ctx := gs.ctx
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-gs.pubq:
			if err := gs.limiter.Wait(ctx); err != nil {
				return
			}
			gs.mu.RLock()
			t := it.g.topic
			gs.mu.RUnlock()
			if t == nil {
				continue
			}
			if err := t.Publish(ctx, it.data); err != nil && ctx.Err() == nil {
				gs.log.Debug("publish", "group", it.g.id, "err", err)
			}
			gs.forward(it.g, it.data)
		}
	}
}

// publishTopic queues a topic message; it blocks while the queue is full
// (backpressure on the sender).
func (gs *Service) publishTopic(ctx context.Context, g *group, tm *pb.TopicMessage) error {
	data, err := proto.Marshal(tm)
	if err != nil {
		return err
	}
	select {
	case gs.pubq <- pubItem{g: g, data: data}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-gs.ctx.Done():
		return ErrClosed
	}
}

// peerChanged pulls from a member that connects, and hands a friend
// added while away its group.
func (gs *Service) peerChanged(e any) {
	ev := e.(event.EvtPeerConnectednessChanged)
	if ev.Connectedness != network.Connected && ev.Connectedness != network.Limited {
		return
	}
	for _, g := range gs.list() {
		st := g.state()
		// A former member too: on another branch of the DAG it may be a
		// member still, with ops this node lacks.
		if st.Status != StatusMember || !st.wasEver(ev.Peer) {
			continue
		}
		gs.wantPull(g.id, ev.Peer, 100*time.Millisecond)
		if slices.Contains(st.Owe, ev.Peer) {
			gs.goPushGroup(g, ev.Peer)
		}
	}
}

func (gs *Service) list() []*group {
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	out := make([]*group, 0, len(gs.all))
	for _, g := range gs.all {
		out = append(out, g)
	}
	return out
}

func (gs *Service) get(id string) *group {
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	return gs.all[id]
}

// keepMembers keeps the members connected (the Keeper dials them).
func (gs *Service) keepMembers(st *state) {
	for p, m := range st.Members {
		if p != gs.self {
			gs.keep(p, m.Addrs)
		}
	}
}

// letGo stops keeping p connected, unless p is a friend or a member of
// a group this node is in.
func (gs *Service) letGo(p peer.ID) {
	if gs.cfg.Keeper == nil || p == gs.self {
		return
	}
	for _, g := range gs.list() {
		if st := g.state(); st.Status == StatusMember && st.isMember(p) {
			return
		}
	}
	if _, friend, err := gs.cfg.Friends.FriendAddrs(gs.ctx, p); err != nil || friend {
		return
	}
	gs.cfg.Keeper.Unkeep(p)
}

func (gs *Service) keep(p peer.ID, addrs []string) {
	if gs.cfg.Keeper == nil || p == gs.self {
		return
	}
	info := peer.AddrInfo{ID: p}
	for _, a := range addrs {
		if ai, err := peer.AddrInfoFromString(a + "/p2p/" + p.String()); err == nil {
			info.Addrs = append(info.Addrs, ai.Addrs...)
		}
	}
	gs.cfg.Keeper.Keep(info)
}

func (gs *Service) myAddrs() []string {
	var out []string
	for _, a := range gs.h.Addrs() {
		if len(out) == maxAddrs {
			break
		}
		out = append(out, a.String())
	}
	return out
}

// checkOpTime is the error of an op of another node dated more than
// maxOpAhead ahead of this node's clock: it waits (apply makes the log's
// times never go back, so such an op would hold every later one).
func (gs *Service) checkOpTime(o *op) error {
	if ahead := time.UnixMilli(o.TimeMS).Sub(gs.cfg.Now()); o.Actor != gs.self && ahead > maxOpAhead {
		gs.postponed.Add(1)
		return fmt.Errorf("%w: %s op is dated %v ahead of this node's clock", ErrBadFrame, o.Kind, ahead.Round(time.Minute))
	}
	return nil
}

// staleAdd reports whether o is an add by an invite that has expired by
// this node's clock, dated more than maxOpAhead before that clock: what
// a member would publish who backdated an add to use an expired invite
// while no op had happened since it expired (apply checks the invite
// against the op's own time only). Such an add is not taken when it is
// the latest op this node hears of; an add that later ops follow was
// taken by the members who appended those.
func (gs *Service) staleAdd(o *op) bool {
	if o.Kind != OpAdd || o.Invite == nil || o.Actor == gs.self {
		return false
	}
	now := gs.cfg.Now()
	return !now.Before(o.Invite.Expires) && now.Sub(time.UnixMilli(o.TimeMS)) > maxOpAhead
}

// applyOps applies ops that follow g's log, in order, durably. It stops
// at the first that does not follow (gap: the caller pulls) and fails on
// one that may not follow.
func (gs *Service) applyOps(g *group, ops []*op) (applied []*op, gap bool, err error) {
	gs.opMu.Lock()
	applied, gap, err = gs.applyOpsLocked(g, ops, nil)
	gs.opMu.Unlock()
	gs.afterOps(g, applied)
	return applied, gap, err
}

func (gs *Service) applyOpsLocked(g *group, ops []*op, keys []epochKey) (applied []*op, gap bool, err error) {
	st := g.state()
	d := g.dag
	// cur is the fold of all held while each op follows every op before
	// it (the usual case: one op, or a log handed in order); after one
	// that does not, the whole set is folded anew.
	cur, linear := st, true
	var fresh []*op
	for i, o := range ops {
		if d.has(o.hash) {
			continue
		}
		if !d.ready(o) {
			gap = true // the caller pulls what it follows
			continue
		}
		if i == len(ops)-1 && gs.staleAdd(o) {
			gs.log.Info("ignored a backdated add with an expired invite", "group", g.id, "actor", o.Actor, "target", o.Target)
			break
		}
		if terr := gs.checkOpTime(o); terr != nil {
			// Not refused: not yet. A later pull applies it once this
			// node's clock is near enough.
			gs.log.Info("postponed a group op", "group", g.id, "op", o.Kind, "actor", o.Actor, "err", terr)
			break
		}
		follows := d.followsAll(o.parentHashes())
		var next *state
		if next, err = d.admit(o, cur); err != nil { // cur nil: not linear
			gs.log.Info("refused a group op", "group", g.id, "op", o.Kind, "actor", o.Actor, "err", err)
			break
		}
		d.add(o, next)
		fresh = append(fresh, o)
		if cur, linear = next, linear && follows; !linear {
			cur = nil
		}
	}
	var next *state
	switch {
	case !linear:
		next = d.fold(nil, true)
		next.carry(st)
	case len(fresh) == 0:
		next = st.clone()
	default:
		next = cur.clone() // cur is the last op's admitted state, which the DAG keeps
	}
	pooled := next.poolKeys(d, g.gid, keys)
	next.fillKeys()
	next.Status = standing(st, next, gs.self, fresh)
	if len(fresh) == 0 && pooled == 0 {
		return nil, gap, err
	}
	if perr := gs.persist(g, next, fresh); perr != nil {
		// The ops are in the DAG but not stored (nor in the state): out
		// again, or this node's next op would follow one that a restart
		// does not find, and the group would not load.
		g.dag = d.without(fresh)
		return nil, gap, perr
	}
	for _, o := range fresh {
		if !slices.Contains(next.Void, hex.EncodeToString(o.hash[:])) {
			applied = append(applied, o)
		}
	}
	if !linear && next.Status == StatusMember {
		// The branches merged: whom the order makes members may have
		// changed beyond the ops just taken (an op made void).
		gs.keepMembers(next)
		gs.emit(EventUpdate, UpdateEvent{ID: g.id, Name: next.Name, Op: "merge", Status: next.Status})
		if len(next.departed()) > 0 {
			// The order put an epoch after ops its actor did not know:
			// whoever it handed the key may no longer be a member. A new
			// epoch is due.
			gs.rekeyAfterLeave(g)
		}
	}
	return applied, gap, err
}

// persist stores a group's new state with the ops that made it, synced,
// and deletes the keys of drop in the same batch.
func (gs *Service) persist(g *group, st *state, ops []*op, drop ...datastore.Key) error {
	ctx := gs.ctx
	b, err := gs.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	for _, o := range ops {
		if err := b.Put(ctx, groupOpKey(g.id, o.hash), o.raw); err != nil {
			return err
		}
	}
	if err := history.PutJSON(ctx, b, groupKey(g.id, "state"), st); err != nil {
		return err
	}
	if err := b.Put(ctx, groupListKey(g.id), nil); err != nil {
		return err
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	if err := gs.sync(ctx); err != nil {
		return err
	}
	g.setState(st)
	gs.refreshFellows()
	return nil
}

// afterOps does what applied ops call for here: events, connections, a
// new key after a leave, and leaving the topic when this node is out.
func (gs *Service) afterOps(g *group, applied []*op) {
	st := g.state()
	for _, o := range applied {
		gs.emit(EventUpdate, UpdateEvent{ID: g.id, Name: st.Name, Op: o.Kind, Actor: o.Actor, Target: o.Target, Status: st.Status})
		switch o.Kind {
		case OpAdd:
			gs.keep(o.Target, o.Addrs)
			if epoch, ok := st.epochOf(o); ok && o.Actor != gs.self && st.Status == StatusMember && st.isAdmin(gs.self) {
				gs.rekeyIfKeyless(g, epoch)
			}
		case OpLeave:
			gs.letGo(o.Actor)
			if o.Actor != gs.self && st.Status == StatusMember {
				gs.rekeyAfterLeave(g)
			}
		case OpRemove, OpRekey:
			if o.Kind == OpRemove {
				gs.letGo(o.Target)
			}
			if epoch, ok := st.epochOf(o); ok && o.Actor != gs.self && st.Status == StatusMember && st.isAdmin(gs.self) {
				gs.rekeyIfKeyless(g, epoch)
			}
		}
	}
	if st.Status != StatusMember {
		gs.setOut(g, true)
		// Not here: the reader of the topic may be the caller.
		gs.run.Go(func() { gs.leaveTopic(g, true) })
		for p := range st.Members {
			gs.letGo(p)
		}
	} else if gs.setOut(g, false) || slices.ContainsFunc(applied, func(o *op) bool { return o.Kind == OpAdd && o.Target == gs.self }) {
		// Back in after a leave or a removal (an add, or an order that
		// made the removal void): the topic and the members again. Only
		// then: a member that is off the topic for no such reason (one
		// that publishes past the mesh, say) stays off, whatever a pull
		// that brings nothing new calls this for.
		gs.keepMembers(st)
		if err := gs.subscribe(g); err != nil {
			gs.log.Warn("rejoin a group's topic", "group", g.id, "err", err)
		}
	}
	if st.Keys[st.Epoch] == nil && st.Status == StatusMember && len(applied) > 0 {
		gs.wantPull(g.id, applied[len(applied)-1].Actor, 0)
	}
}

// setOut records whether this node is out of g (no member, so off its
// topic) and reports whether it was.
func (gs *Service) setOut(g *group, out bool) (was bool) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	was, g.out = g.out, out
	return was
}

// appendOp signs a new op of this node, applies and stores it, and
// publishes it on the topic. key is the key of the epoch it starts.
func (gs *Service) appendOp(ctx context.Context, g *group, o *op, key []byte) (*op, error) {
	gs.opMu.Lock()
	st := g.state()
	if st.Status != StatusMember {
		gs.opMu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotMember, st.Name)
	}
	past := gs.fillOp(g, o)
	if key != nil {
		o.Epoch, o.KeyHash = past.Epoch+1, keyHash(g.gid, past.Epoch+1, key)
	}
	if err := signOp(gs.priv, o); err != nil {
		gs.opMu.Unlock()
		return nil, err
	}
	var keys []epochKey
	if key != nil {
		keys = []epochKey{{o.Epoch, key}}
	}
	applied, _, err := gs.applyOpsLocked(g, []*op{o}, keys)
	gs.opMu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(applied) == 0 {
		return nil, fmt.Errorf("group: group op not applied")
	}
	var so pb.SignedOp
	proto.Unmarshal(o.raw, &so)
	if err := gs.publishTopic(ctx, g, &pb.TopicMessage{Body: &pb.TopicMessage_Op{Op: &so}}); err != nil {
		return nil, err
	}
	if key == nil {
		// Ops are few and matter: each member online also gets it directly,
		// in case gossip drops it (a member that just joined, say). A new
		// epoch's op goes with its key (rekey).
		frame := &pb.SyncFrame{GroupId: g.gid, Ops: []*pb.SignedOp{&so}, End: true}
		for p := range g.state().Members {
			if p == gs.self || p == o.Target || !gs.online(p) {
				continue
			}
			gs.run.Go(func() {
				if err := gs.push(gs.ctx, p, frame); err != nil {
					gs.log.Debug("push op", "peer", p, "err", err)
				}
			})
		}
	}
	gs.afterOps(g, applied)
	return o, nil
}

// fillOp dates a new op of this node and names its parents: the heads
// of the DAG (at most maxParents of them: the next op follows the rest).
// It returns the group as the op follows it. Under opMu.
func (gs *Service) fillOp(g *group, o *op) *state {
	st := g.state()
	heads := g.dag.headList()
	if len(heads) > maxParents {
		heads = heads[:maxParents]
		st = g.dag.fold(g.dag.ancestors(heads), true)
	}
	o.GroupID, o.Parents, o.Actor, o.TimeMS = g.gid, heads, gs.self, st.opTime(gs.cfg.Now())
	return st
}

// rekeyStagger is how long each member in rekeyOrder lets the one before
// it start the new epoch after a leave.
const rekeyStagger = 2 * time.Second

// rekeyAfterLeave starts a new epoch, so that a member who left reads
// nothing sent after: the first admin at once, and if it is away, the
// next in rekeyOrder a moment later, and so on. Whoever sees a new epoch
// begin (or no one departed) does nothing.
func (gs *Service) rekeyAfterLeave(g *group) {
	st := g.state()
	gs.rekeyInTurn(g, slices.Index(st.rekeyOrder(), gs.self), 0, st.Epoch, "after a leave",
		func(st *state) bool { return len(st.departed()) > 0 })
}

// keyWait is how long an admin waits for the key of an epoch that another
// member started before it starts one of its own.
const keyWait = 15 * time.Second

// rekeyIfKeyless starts a new epoch if the key of epoch (started by
// another member) has not reached this admin within keyWait: a member
// that started an epoch and kept its key to itself, or lost it, must not
// silence the group. The admins take their turn rekeyStagger apart.
func (gs *Service) rekeyIfKeyless(g *group, epoch uint64) {
	gs.rekeyInTurn(g, slices.Index(g.state().admins(), gs.self), keyWait, epoch, "after a keyless epoch",
		func(st *state) bool { return st.Keys[epoch] == nil })
}

// rekeyInTurn starts a new epoch after wait plus rank turns of
// rekeyStagger, if the group is still at epoch, this node still a member
// and need still says so (rank < 0: not this node's turn ever).
func (gs *Service) rekeyInTurn(g *group, rank int, wait time.Duration, epoch uint64, why string, need func(*state) bool) {
	if rank < 0 {
		return
	}
	gs.run.Go(func() {
		t := time.NewTimer(wait + time.Duration(rank)*rekeyStagger)
		defer t.Stop()
		select {
		case <-t.C:
		case <-gs.ctx.Done():
			return
		}
		if st := g.state(); st.Epoch != epoch || st.Status != StatusMember || !need(st) {
			return
		}
		if err := gs.rekey(gs.ctx, g, OpRekey, ""); err != nil {
			gs.log.Info("rekey "+why, "group", g.id, "err", err)
		}
	})
}

// rekey starts a new epoch (remove target, or rekey) and hands its key to
// each remaining member.
func (gs *Service) rekey(ctx context.Context, g *group, kind string, target peer.ID) error {
	o := &op{Kind: kind, Target: target}
	if kind == OpRemove {
		// The removed member's head is frozen at what this node holds of
		// it: nothing it numbers later counts (state.mayWrite).
		_, held := g.headOf(target)
		o.LastSeq = held.maxOrZero()
	}
	_, err := gs.startEpoch(ctx, g, o, true)
	return err
}

// startEpoch appends o (a remove, a rekey or an add) with a new epoch's
// key and hands the key to each remaining member online; a removed
// member learns of its removal without it, and a newcomer gets it with
// the group. With wait it returns once the pushes are done, else they go
// on in the background.
func (gs *Service) startEpoch(ctx context.Context, g *group, o *op, wait bool) (*op, error) {
	key := newKey()
	o, err := gs.appendOp(ctx, g, o, key)
	if err != nil {
		return nil, err
	}
	if !wait {
		ctx = gs.ctx
	}
	st := g.state()
	frame := &pb.SyncFrame{GroupId: g.gid, Ops: []*pb.SignedOp{signedOpWire(o)}, Keys: []*pb.EpochKey{{Epoch: o.Epoch, Key: key}}, End: true}
	var wg sync.WaitGroup
	gopush := func(p peer.ID, f *pb.SyncFrame) {
		wg.Add(1)
		if !gs.run.Go(func() {
			defer wg.Done()
			if err := gs.push(ctx, p, f); err != nil {
				gs.log.Debug("push key", "peer", p, "err", err)
			}
		}) {
			wg.Done()
		}
	}
	if o.Kind == OpRemove && gs.online(o.Target) {
		gopush(o.Target, &pb.SyncFrame{GroupId: g.gid, Ops: frame.Ops, End: true})
	}
	for p := range st.Members {
		if p == gs.self || (o.Kind == OpAdd && p == o.Target) || !gs.online(p) {
			continue // it gets the key when it pulls, or with the group
		}
		gopush(p, frame)
	}
	if wait {
		wg.Wait()
	}
	return o, nil
}

func signedOpWire(o *op) *pb.SignedOp {
	var so pb.SignedOp
	proto.Unmarshal(o.raw, &so)
	return &so
}

// online reports whether p is online (Friends.Online).
func (gs *Service) online(p peer.ID) bool { return gs.cfg.Friends.Online(p) }

// emit publishes an event (Config.Emit).
func (gs *Service) emit(typ string, data any) { gs.cfg.Emit(typ, data) }

// sync makes every write so far durable.
func (gs *Service) sync(ctx context.Context) error {
	return gs.ds.Sync(ctx, datastore.NewKey("/"))
}

// noFriends is the Friends of a node without contacts.
type noFriends struct{ h host.Host }

func (n noFriends) Online(p peer.ID) bool {
	c := n.h.Network().Connectedness(p)
	return c == network.Connected || c == network.Limited
}
func (noFriends) PeerName(context.Context, peer.ID) string { return "" }
func (noFriends) FriendAddrs(context.Context, peer.ID) ([]string, bool, error) {
	return nil, false, nil
}
