package group

// Test hooks for the tests in package group_test.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pspb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/group/pb"
	"github.com/meshtalk/meshtalk/history"
	historypb "github.com/meshtalk/meshtalk/history/pb"
)

// KeyWait is how long an admin waits for the key of an epoch another
// member started before it starts its own.
const KeyWait = keyWait

// Rejects is how many group messages s rejected: by its topic
// validators, or that came by pull or from a mailbox.
func Rejects(s *Service) int64 { return s.rejects.Load() }

// Postponed is how many ops s set aside for being dated too far
// ahead.
func Postponed(s *Service) int64 { return s.postponed.Load() }

// ForgeEnvelope is a topic message from s as author, sealed with a key of
// its own making: what a non-member could publish. Its key hint names
// the group's key of its epoch, if s holds one (a member's junk: it
// claims to open with the key every member holds).
func ForgeEnvelope(s *Service, gid, text string) []byte { return forgeEnvelope(s, gid, text, true) }

// ForgeBranchEnvelope is a topic message of member s sealed with a key of
// its own making in its epoch, and named for that key: what another
// branch's epoch of the same number would carry.
func ForgeBranchEnvelope(s *Service, gid, text string) []byte {
	return forgeEnvelope(s, gid, text, false)
}

// ForgeBranchEnvelopeAt is ForgeBranchEnvelope in the given epoch: what
// a member removed on one branch, still a member on another, seals there.
func ForgeBranchEnvelopeAt(s *Service, gid string, epoch uint64, text string) []byte {
	id, _ := parseGID(gid)
	env, err := sealEnvelope(s.priv, s.h.ID(), id, 1, epoch, newKey(),
		&historypb.Message{Id: history.GroupMessageID(id, s.h.ID(), 1, 1), Kind: history.KindText, Text: text, Hlc: 1, SentAtMs: 1})
	if err != nil {
		panic(err)
	}
	b, _ := proto.Marshal(&pb.TopicMessage{Body: &pb.TopicMessage_Envelope{Envelope: env.toWire()}})
	return b
}

// Epoch is a group's current epoch at s.
func Epoch(s *Service, gid string) uint64 { return s.get(gid).state().Epoch }

// Validate is s's topic validator's answer to data that from sent on a
// group's topic.
func Validate(s *Service, gid string, from peer.ID, data []byte) pubsub.ValidationResult {
	return s.validate(s.get(gid), from, &pubsub.Message{Message: &pspb.Message{Data: data}, ReceivedFrom: from})
}

func forgeEnvelope(s *Service, gid, text string, groupHint bool) []byte {
	id, _ := parseGID(gid)
	var epoch uint64 // the group's current epoch, as far as s knows
	var key []byte
	if g := s.get(gid); g != nil {
		epoch, key = g.state().Epoch, g.state().Keys[g.state().Epoch]
	}
	env, err := sealEnvelope(s.priv, s.h.ID(), id, 1, epoch, newKey(),
		&historypb.Message{Id: history.GroupMessageID(id, s.h.ID(), 1, 1), Kind: history.KindText, Text: text, Hlc: 1, SentAtMs: 1})
	if err != nil {
		panic(err)
	}
	if key != nil && groupHint {
		env.KeyHint = keyHint(id, epoch, key)
		if env.Signature, err = s.priv.Sign(env.signed()); err != nil {
			panic(err)
		}
	}
	b, _ := proto.Marshal(&pb.TopicMessage{Body: &pb.TopicMessage_Envelope{Envelope: env.toWire()}})
	return b
}

// ForgeMessage is a message of member s to a group that carries the
// ID id instead of its own: s numbers it, seals it with the group's key,
// signs it, and keeps the envelope as its own, so that it serves it to the
// members that pull. It returns the topic message and the envelope (as a
// mailbox would hold it).
func ForgeMessage(s *Service, gid, id, text string) (topic, envelope []byte) {
	return forgeMessage(s, gid, s.get(gid).state().Epoch, id, text)
}

// ForgeOldEpochMessage is a message of s to a group sealed with the key of
// epoch that s kept (a member removed since, say), numbered and kept as s's
// own: it returns the envelope as a mailbox would hold it.
func ForgeOldEpochMessage(s *Service, gid string, epoch uint64, text string) []byte {
	_, env := forgeMessage(s, gid, epoch, "", text)
	return env
}

// EnvelopeEpoch is the epoch of an encoded envelope.
func EnvelopeEpoch(b []byte) uint64 {
	var e pb.Envelope
	proto.Unmarshal(b, &e)
	return e.GetEpoch()
}

func forgeMessage(s *Service, gid string, epoch uint64, id, text string) (topic, envelope []byte) {
	gs := s
	g := gs.get(gid)
	st := g.state()
	gs.sendMu.Lock()
	defer gs.sendMu.Unlock()
	head, _ := g.headOf(gs.self)
	seq := head.max() + 1
	now := s.cfg.Now()
	if id == "" {
		id = history.GroupMessageID(g.gid, gs.self, seq, now.UnixMilli())
	}
	env, err := sealEnvelope(gs.priv, gs.self, g.gid, seq, epoch, st.Keys[epoch],
		&historypb.Message{Id: id, Kind: history.KindText, Text: text, Hlc: s.clk.Now(), SentAtMs: now.UnixMilli()})
	if err != nil {
		panic(err)
	}
	head.add(seq)
	envelope, _ = proto.Marshal(env.toWire())
	if err := s.ds.Put(s.ctx, groupEnvKey(gid, history.PeerString(gs.self), seq), envelope); err != nil {
		panic(err)
	}
	if err := history.PutJSON(s.ctx, s.ds, groupHeadKey(gid, history.PeerString(gs.self)), head); err != nil {
		panic(err)
	}
	g.hmu.Lock()
	g.heads[gs.self] = head
	g.hmu.Unlock()
	topic, _ = proto.Marshal(&pb.TopicMessage{Body: &pb.TopicMessage_Envelope{Envelope: env.toWire()}})
	return topic, envelope
}

// ForgeOp is an op of kind on target signed by s, following s's copy of
// the log: a member that is not an admin forging a removal, say.
func ForgeOp(s *Service, gid, kind string, target peer.ID, badSignature bool) []byte {
	return ForgeOpAt(s, gid, kind, target, badSignature, time.Time{})
}

// ForgeOpAt is ForgeOp dated at (zero: as s would date it).
func ForgeOpAt(s *Service, gid, kind string, target peer.ID, badSignature bool, at time.Time) []byte {
	g := s.get(gid)
	st := g.state()
	o := &op{GroupID: g.gid, Parents: st.Heads, Actor: s.h.ID(), Kind: kind, Target: target, TimeMS: st.opTime(time.Now())}
	if !at.IsZero() {
		o.TimeMS = at.UnixMilli()
	}
	if kind == OpRemove || kind == OpRekey {
		o.Epoch, o.KeyHash = st.Epoch+1, keyHash(g.gid, st.Epoch+1, newKey())
	}
	if err := signOp(s.priv, o); err != nil {
		panic(err)
	}
	so := signedOpWire(o)
	if badSignature {
		so.Signature[0] ^= 1
	}
	b, _ := proto.Marshal(&pb.TopicMessage{Body: &pb.TopicMessage_Op{Op: so}})
	return b
}

// PublishTopic publishes raw data on a group's topic from s, once s sees
// a peer on it, whether or not s is a member.
func PublishTopic(ctx context.Context, s *Service, gid string, data []byte) error {
	name := Topic(gid)
	g := s.get(gid)
	var t interface {
		Publish(context.Context, []byte, ...pubsub.PubOpt) error
		ListPeers() []peer.ID
	}
	if g != nil && g.topic != nil {
		t = g.topic
	} else {
		tt, err := s.ps.Join(name)
		if err != nil {
			return err
		}
		defer tt.Close()
		t = tt
	}
	for len(t.ListPeers()) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return t.Publish(ctx, data)
}

// TryDecrypt tries every key s holds for a group on the envelope that
// holder stored of author's message seq.
func TryDecrypt(ctx context.Context, holder, s *Service, gid string, author peer.ID, seq uint64) (epoch uint64, err error) {
	raw, err := holder.ds.Get(ctx, groupEnvKey(gid, author.String(), seq))
	if err != nil {
		return 0, err
	}
	var w pb.Envelope
	if err := proto.Unmarshal(raw, &w); err != nil {
		return 0, err
	}
	env, err := envelopeFromWire(&w)
	if err != nil {
		return 0, err
	}
	g := s.get(gid)
	if g == nil {
		return env.Epoch, ErrNoGroup
	}
	st := g.state()
	for _, k := range append(slices.Collect(maps.Values(st.Keys)), slices.Collect(maps.Values(st.KeyPool))...) {
		if _, err := env.open(k); err == nil {
			return env.Epoch, nil
		}
	}
	return env.Epoch, ErrBadFrame
}

// KeyPrint is a group's current epoch at s and a fingerprint of its key
// ("" when s holds none).
func KeyPrint(s *Service, gid string) string {
	st := s.get(gid).state()
	k := st.Keys[st.Epoch]
	if k == nil {
		return fmt.Sprintf("%d:none", st.Epoch)
	}
	sum := sha256.Sum256(k)
	return fmt.Sprintf("%d:%x", st.Epoch, sum[:8])
}

// Void is how many ops of a group's DAG are void at s.
func Void(s *Service, gid string) int { return len(s.get(gid).state().Void) }

// Equivocate has s (an admin) sign two rekeys on the same parents and
// hand one to each of to[0] and to[1] only, each with its key: what an
// admin that sends different ops to different members does. s keeps
// both.
func Equivocate(ctx context.Context, s *Service, gid string, to [2]peer.ID) error {
	g := s.get(gid)
	s.opMu.Lock()
	var ops [2]*op
	var keys [2][]byte
	for i := range ops {
		o := &op{Kind: OpRekey}
		past := s.fillOp(g, o)
		o.TimeMS += int64(i)
		keys[i] = newKey()
		o.Epoch, o.KeyHash = past.Epoch+1, keyHash(g.gid, past.Epoch+1, keys[i])
		if err := signOp(s.priv, o); err != nil {
			s.opMu.Unlock()
			return err
		}
		ops[i] = o
	}
	_, _, err := s.applyOpsLocked(g, ops[:], []epochKey{{ops[0].Epoch, keys[0]}, {ops[1].Epoch, keys[1]}})
	s.opMu.Unlock()
	if err != nil {
		return err
	}
	for i, p := range to {
		f := &pb.SyncFrame{GroupId: g.gid, Ops: []*pb.SignedOp{signedOpWire(ops[i])}, Keys: []*pb.EpochKey{{Epoch: ops[i].Epoch, Key: keys[i]}}, End: true}
		if err := s.push(ctx, p, f); err != nil {
			return err
		}
	}
	return nil
}

// Seq is the highest seq s holds of author in a group.
func Seq(s *Service, gid string, author peer.ID) uint64 {
	g := s.get(gid)
	if g == nil {
		return 0
	}
	head := g.headsSnapshot()[author]
	if head == nil {
		return 0
	}
	return head.max()
}

// ClaimHead has s claim, in memory, to hold author's messages 1 to contig
// of a group: what a member that lies to a newcomer would name.
func ClaimHead(s *Service, gid string, author peer.ID, contig uint64) {
	g := s.get(gid)
	g.hmu.Lock()
	g.heads[author] = &seqSet{Contig: contig}
	g.hmu.Unlock()
}

// Has reports whether s holds author's message seq of a group.
func Has(s *Service, gid string, author peer.ID, seq uint64) bool {
	g := s.get(gid)
	return g != nil && g.has(author, seq)
}

// RawTopic joins a plain topic on s's gossipsub (no validator, no
// encryption, no storage): the benchmark's baseline on the same nodes.
func RawTopic(s *Service, name string) (*pubsub.Topic, error) { return s.ps.Join(name) }

// SignedGossip starts a second gossipsub on s's host, set as the node's
// own but for gossipsub's default signing (each message signed by its
// publisher and checked at every hop) and for a protocol ID of its own,
// so that the two do not meet: gossipsub as it comes, the benchmark's
// baseline.
func SignedGossip(s *Service) (*pubsub.PubSub, error) {
	feature := func(f pubsub.GossipSubFeature, _ protocol.ID) bool {
		return pubsub.GossipSubDefaultFeatures(f, pubsub.GossipSubID_v13)
	}
	return pubsub.NewGossipSub(s.ctx, s.h, append(s.gossipOptions(),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithGossipSubProtocols([]protocol.ID{"/meshtalk/bench/meshsub/1.3.0"}, feature))...)
}

// TopicPeers is how many peers s sees on a group's topic.
func TopicPeers(s *Service, gid string) int {
	return len(s.ps.ListPeers(Topic(gid)))
}

// Pulled is how many messages s stored that came by pull.
func Pulled(s *Service) int64 { return s.pulled.Load() }

// GapPull schedules, now, the pull that a gap in an author's numbers
// would; GapPullsDropped counts those that found no gap left.
func GapPull(s *Service, gid string, p peer.ID) { s.gapPull(gid, p, 0) }

func GapPullsDropped(s *Service) int64 { return s.needless.Load() }

// PullsIdle reports whether s has no pull scheduled or under way.
func PullsIdle(s *Service) bool {
	gs := s
	gs.pullMu.Lock()
	defer gs.pullMu.Unlock()
	return len(gs.pulls) == 0 && !gs.pulling.Load()
}

// ParkedSeq is the seq of an encoded group envelope as the mailbox holds
// it.
func ParkedSeq(b []byte) uint64 {
	var e pb.Envelope
	proto.Unmarshal(b, &e)
	return e.GetSeq()
}

// Heads describes what s holds of each author of a group.
func Heads(s *Service, gid string) string {
	g := s.get(gid)
	if g == nil {
		return "no group"
	}
	out := ""
	for a, head := range g.headsSnapshot() {
		out += fmt.Sprintf("%s: contig %d extra %v; ", a.String()[len(a.String())-6:], head.Contig, head.Extra)
	}
	st := g.state()
	return out + fmt.Sprintf("ops %d members %d", st.Ops, len(st.Members))
}

// Score is p's latest gossipsub score as s sees it (ok: s scores p).
func Score(s *Service, p peer.ID) (float64, bool) { return s.score(p) }

// ScoreReads counts the score snapshots s took (one a second).
func ScoreReads(s *Service) int64 { return s.scoreReads.Load() }

// Graylisted reports whether s graylists p: it drops what p sends.
func Graylisted(s *Service, p peer.ID) bool {
	score, ok := s.score(p)
	return ok && score < graylistThreshold
}

// RawTopicPeers is the peers s knows to be subscribed to a topic.
func RawTopicPeers(s *Service, name string) []peer.ID { return s.ps.ListPeers(name) }

// LeaveTopic has s leave a group's topic while it stays a member: it
// publishes (PublishTopic) as a non-subscriber then, straight to the
// topic's peers, past the mesh, as a misbehaving member could.
func LeaveTopic(s *Service, gid string) { s.unsubscribe(s.get(gid)) }

// SendChange sends an edit (text set) or a delete of message target to a
// group from s, unchecked: what a member that forges one would send.
func SendChange(ctx context.Context, s *Service, gid, target, text string) error {
	c := history.Content{Kind: history.KindDelete, Target: target}
	if text != "" {
		c.Kind, c.Text = history.KindEdit, text
	}
	g, err := s.member(gid)
	if err != nil {
		return err
	}
	_, err = s.sendWire(ctx, g, history.Wire{Content: c})
	return err
}

// StoredEnvelope is the envelope of author's message seq of a group as
// s keeps it (as a mailbox would hold it).
func StoredEnvelope(s *Service, gid string, author peer.ID, seq uint64) []byte {
	b, err := s.ds.Get(s.ctx, groupEnvKey(gid, history.PeerString(author), seq))
	if err != nil {
		panic(err)
	}
	return b
}

// ForgeInviteAdd is a topic message carrying an add of target by s with
// the invite code, dated at: what a member that backdates an add would
// publish.
func ForgeInviteAdd(s *Service, gid, code string, target peer.ID, at time.Time) []byte {
	c, err := decodeInviteCode(code)
	if err != nil {
		panic(err)
	}
	g := s.get(gid)
	st := g.state()
	o := &op{GroupID: g.gid, Parents: st.Heads, Actor: s.h.ID(), Kind: OpAdd, Target: target,
		Invite: c.Invite, TimeMS: at.UnixMilli()}
	if err := signOp(s.priv, o); err != nil {
		panic(err)
	}
	b, _ := proto.Marshal(&pb.TopicMessage{Body: &pb.TopicMessage_Op{Op: signedOpWire(o)}})
	return b
}

// Ops is how many ops of a group's log s holds.
func Ops(s *Service, gid string) uint64 { return s.get(gid).state().Ops }

// KeepPushed has s take members as a join answer or a push to a group
// would name them.
func KeepPushed(s *Service, gid string, members []peer.AddrInfo) {
	var w []*pb.PeerAddrs
	for _, m := range members {
		pa := &pb.PeerAddrs{Peer: []byte(m.ID)}
		for _, a := range m.Addrs {
			pa.Addrs = append(pa.Addrs, a.String())
		}
		w = append(w, pa)
	}
	s.keepPushed(s.get(gid).state(), w)
}

// PullEverything asks p for a group's messages as a member that holds
// none would, and returns the seqs p answers by author (it stores
// nothing).
func PullEverything(ctx context.Context, s *Service, gid string, p peer.ID) (map[peer.ID][]uint64, error) {
	g := s.get(gid)
	got := map[peer.ID][]uint64{}
	_, err := s.exchange(ctx, p, &pb.SyncRequest{Body: &pb.SyncRequest_Pull{Pull: &pb.Pull{GroupId: g.gid, Ops: g.state().Ops}}},
		func(f *pb.SyncFrame) error {
			for _, e := range f.GetEnvelopes() {
				a, _ := peer.IDFromBytes(e.GetAuthor())
				got[a] = append(got[a], e.GetSeq())
			}
			return nil
		})
	return got, err
}

// ForgeForkedOp is an op of kind on target signed by s that follows an
// op nobody holds (its parent is s's head with a bit flipped): what a
// member hears of a branch whose ops have not reached it.
func ForgeForkedOp(s *Service, gid, kind string, target peer.ID) []byte {
	g := s.get(gid)
	st := g.state()
	prev := bytes.Clone(st.Heads[0])
	prev[0] ^= 1
	o := &op{GroupID: g.gid, Parents: [][]byte{prev}, Actor: s.h.ID(), Kind: kind, Target: target, TimeMS: st.opTime(time.Now())}
	if err := signOp(s.priv, o); err != nil {
		panic(err)
	}
	b, _ := proto.Marshal(&pb.TopicMessage{Body: &pb.TopicMessage_Op{Op: signedOpWire(o)}})
	return b
}

// DowngradeState stores s's state of a group as a node before schema 3
// stored it: the ops as a linear log by index (the group's DAG must be a
// chain), none of the DAG's fields, nor schema 2's Frozen, Removed,
// Revoked and the members' AddedEpoch.
func DowngradeState(s *Service, gid string) {
	g := s.get(gid)
	s.opMu.Lock()
	defer s.opMu.Unlock()
	st := g.state().clone()
	st.Frozen, st.Removed, st.Revoked, st.Schema = nil, nil, nil, 0
	st.Heads, st.Void, st.EpochOps, st.Claims, st.Forked, st.KeyPool = nil, nil, nil, nil, nil, nil
	for _, m := range st.Members {
		m.AddedEpoch, m.AdminAt = 0, 0
	}
	for i, o := range g.dag.sorted() {
		if err := s.ds.Put(s.ctx, groupLogKey(gid, uint64(i)), o.raw); err != nil {
			panic(err)
		}
		if err := s.ds.Delete(s.ctx, groupOpKey(gid, o.hash)); err != nil {
			panic(err)
		}
	}
	if err := s.persist(g, st, nil); err != nil {
		panic(err)
	}
}

// Removed reports whether s's state of a group holds p as removed, and
// the state's schema.
func Removed(s *Service, gid string, p peer.ID) (removed bool, schema int) {
	st := s.get(gid).state()
	return st.Removed[p.String()], st.Schema
}

// Subscribed reports whether s is on a group's topic.
func Subscribed(s *Service, gid string) bool {
	g := s.get(gid) // not under s.mu: get read-locks it
	s.mu.RLock()
	defer s.mu.RUnlock()
	return g.topic != nil
}

// Pull has s pull what it lacks of a group from p, and store it.
func Pull(ctx context.Context, s *Service, gid string, p peer.ID) error { return s.pull(ctx, gid, p) }

// SetRefresh changes how often s pulls each group from a member in turn
// (Config.Refresh); 0 or below: never.
func SetRefresh(s *Service, every time.Duration) { s.setRefresh(every) }

// Forward hands p topic messages of group gid from s, as a forward
// (forward.go) does, and returns p's refusal, if any.
func Forward(s *Service, p peer.ID, gid string, msgs ...[]byte) error {
	id, _ := parseGID(gid)
	return s.tell(context.Background(), p, &pb.SyncRequest{Body: &pb.SyncRequest_Forward{Forward: &pb.Forward{GroupId: id, Messages: msgs}}})
}

// ParkQueued is how many envelopes wait in the park queue.
func ParkQueued(s *Service) int { return len(s.parkq) }
