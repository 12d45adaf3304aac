package group

// Both sides of /meshtalk/groupsync/2.0.0 (specified in wire.go):
// pulls, joins by invite, and pushes of new ops and keys.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/group/pb"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/queue"
)

// Timing of groupsync.
const (
	// pullRetry is the wait before a failed pull is tried again.
	pullRetry = 2 * time.Second
	// settleCap bounds how long a settle pull waits for a quiet group.
	settleCap       = 20 * time.Second
	syncDialTimeout = 10 * time.Second
	syncIOTimeout   = 30 * time.Second
)

func (gs *Service) handleSync(stream network.Stream) {
	defer stream.Close()
	from := stream.Conn().RemotePeer()
	stream.SetReadDeadline(time.Now().Add(syncIOTimeout))
	var req pb.SyncRequest
	if err := readFrame(bufio.NewReader(stream), MaxSyncFrame, &req); err != nil {
		stream.Reset()
		return
	}
	stream.SetWriteDeadline(time.Now().Add(syncIOTimeout))
	w := bufio.NewWriter(stream)
	switch body := req.Body.(type) {
	case *pb.SyncRequest_Pull:
		gs.servePull(from, body.Pull, w)
	case *pb.SyncRequest_Join:
		gs.serveJoin(from, body.Join, w)
	case *pb.SyncRequest_Push:
		gs.servePush(from, body.Push, w)
	case *pb.SyncRequest_Forward:
		gs.serveForward(from, body.Forward, w)
	default:
		refuseSync(w, CodeBadFrame, "unknown request")
	}
	w.Flush()
}

func refuseSync(w *bufio.Writer, code uint32, msg string) {
	writeFrame(w, &pb.SyncFrame{Code: code, Message: msg, End: true})
}

// servePull answers what a member lacks: ops, keys of the epochs it was
// in, and envelopes, in order per author.
func (gs *Service) servePull(from peer.ID, req *pb.Pull, w *bufio.Writer) {
	g := gs.get(gidString(req.GetGroupId()))
	if g == nil {
		refuseSync(w, CodeNotMember, "not a member of this group")
		return
	}
	st := g.state()
	ctx := gs.ctx
	// Only the log (signed ops, no keys, no messages) goes to a member
	// removed while it was away, so that it learns it; and from a node
	// that left, to the members, so that they learn of the leave even if
	// its publication reached nobody.
	left := st.Status == StatusLeft && st.wasEver(from)
	if st.Status != StatusMember && !left {
		refuseSync(w, CodeNotMember, "not a member of this group")
		return
	}
	gs.opMu.Lock()
	ops, unknown := g.dag.since(req.GetOpHeads())
	gs.opMu.Unlock()
	if unknown && st.Status == StatusMember {
		// The requester holds ops this node does not (another branch,
		// which may be why it is no member here): they are pulled.
		gs.wantPull(g.id, from, 0)
	}
	if left || !st.isMember(from) {
		if st.wasEver(from) && len(ops) > 0 {
			f := &pb.SyncFrame{GroupId: g.gid}
			for _, o := range ops[:min(len(ops), maxServeOps)] {
				f.Ops = append(f.Ops, signedOpWire(o))
			}
			writeFrame(w, f)
		}
		refuseSync(w, CodeNotMember, "not a member of this group")
		return
	}
	frame, size, err := addOps(w, &pb.SyncFrame{GroupId: g.gid}, ops)
	if err != nil {
		return
	}
	flush := func() error {
		if err := writeFrame(w, frame); err != nil {
			return err
		}
		frame, size = &pb.SyncFrame{GroupId: g.gid}, 0
		return nil
	}
	for epoch, k := range st.Keys {
		if st.wasMember(from, epoch) {
			frame.Keys = append(frame.Keys, &pb.EpochKey{Epoch: st.claimOf(epoch), Key: k})
		}
	}
	theirs := map[peer.ID]*seqSet{}
	for _, head := range req.GetHeads() {
		if a, s, err := headFromWire(head); err == nil {
			theirs[a] = s
		}
	}
	for author, ours := range g.headsSnapshot() {
		t := theirs[author]
		if t == nil {
			t = &seqSet{}
		}
		as := history.PeerString(author)
		// What this node holds, in order: the run up to Contig, then the
		// extra ones (never a loop over numbers it does not hold).
		// At most maxServeSeqs numbers a round, whatever heads say (a
		// head adopted at join comes from a peer): the asker pulls again
		// for the rest.
		seqs := make([]uint64, 0, 64)
		for seq := t.Contig + 1; seq <= ours.Contig && seq != 0 && len(seqs) < maxServeSeqs; seq++ {
			seqs = append(seqs, seq)
		}
		seqs = append(seqs, slices.Sorted(maps.Keys(ours.Extra))...)
		for _, seq := range seqs {
			if t.has(seq) {
				continue
			}
			raw, err := gs.ds.Get(ctx, groupEnvKey(g.id, as, seq))
			if err != nil {
				continue
			}
			var e pb.Envelope
			if proto.Unmarshal(raw, &e) != nil || !st.wasMember(from, e.GetEpoch()) {
				continue
			}
			frame.Envelopes = append(frame.Envelopes, &e)
			size += len(raw)
			if len(frame.Envelopes) >= maxSyncBatch || size >= maxSyncBytes {
				if flush() != nil {
					return
				}
			}
		}
	}
	frame.End = true
	writeFrame(w, frame)
}

// serveJoin admits the holder of a valid invite: it appends the add op and
// answers the log, the current key, what it holds, and the members.
func (gs *Service) serveJoin(from peer.ID, req *pb.Join, w *bufio.Writer) {
	iv, err := inviteFromWire(req.GetInvite())
	if err != nil {
		refuseSync(w, CodeBadInvite, err.Error())
		return
	}
	g := gs.get(gidString(iv.GroupID))
	if g == nil || g.state().Status != StatusMember {
		refuseSync(w, CodeNotMember, "this node is not a member of the group")
		return
	}
	if st := g.state(); !st.isMember(from) {
		now := gs.cfg.Now()
		switch {
		case !st.isAdmin(iv.Admin):
			refuseSync(w, CodeBadInvite, "the invite was signed by someone who is not an admin of the group")
			return
		case st.Removed[from.String()]:
			refuseSync(w, CodeRemoved, "you were removed from the group; only an admin's explicit add brings you back")
			return
		case st.Revoked[hex.EncodeToString(iv.ID)]:
			refuseSync(w, CodeInviteRevoked, "an admin revoked the invite")
			return
		case !now.Before(iv.Expires):
			refuseSync(w, CodeInviteExpired, "the invite expired at "+iv.Expires.UTC().Format(time.RFC3339))
			return
		case iv.Uses != 0 && st.InviteUses[hex.EncodeToString(iv.ID)] >= iv.Uses:
			refuseSync(w, CodeInviteUsedUp, fmt.Sprintf("the invite was for %d and is used up", iv.Uses))
			return
		}
		var addrs []string
		for _, a := range req.GetAddrs() {
			if len(addrs) < maxAddrs && len(a) <= 256 {
				addrs = append(addrs, a)
			}
		}
		// A new epoch: the newcomer reads nothing sent before its add.
		if _, err := gs.startEpoch(gs.ctx, g, &op{Kind: OpAdd, Target: from, Addrs: addrs, Invite: iv}, false); err != nil {
			refuseSync(w, CodeInviteUsedUp, err.Error())
			return
		}
	}
	gs.writeGroup(w, g, from)
}

// addOps adds ops to frame, writing it to w and beginning another
// whenever they would take it past maxSyncBytes; it returns the frame to
// go on with and the bytes of the ops in it.
func addOps(w io.Writer, frame *pb.SyncFrame, ops []*op) (*pb.SyncFrame, int, error) {
	size := 0
	for _, o := range ops {
		if size += len(o.raw); size > maxSyncBytes {
			if err := writeFrame(w, frame); err != nil {
				return nil, 0, err
			}
			frame, size = &pb.SyncFrame{GroupId: frame.GroupId}, len(o.raw)
		}
		frame.Ops = append(frame.Ops, signedOpWire(o))
	}
	return frame, size, nil
}

// writeGroup answers a newcomer the whole group: the log, the key of the
// current epoch, this node's heads (the newcomer starts there) each with
// the envelope it ends on (headProofs), and the members' addresses.
func (gs *Service) writeGroup(w *bufio.Writer, g *group, to peer.ID) error {
	gs.opMu.Lock()
	st := g.state()
	ops := slices.Clone(g.dag.sorted())
	gs.opMu.Unlock()
	frame, size, err := addOps(w, &pb.SyncFrame{GroupId: g.gid}, ops)
	if err != nil {
		return err
	}
	if k := st.Keys[st.Epoch]; k != nil {
		frame.Keys = []*pb.EpochKey{{Epoch: st.claimOf(st.Epoch), Key: k}}
	}
	for a, head := range g.headsSnapshot() {
		frame.Heads = append(frame.Heads, head.toWire(a))
		if head.Contig == 0 {
			continue
		}
		b, err := gs.ds.Get(gs.ctx, groupEnvKey(g.id, history.PeerString(a), head.Contig))
		var e pb.Envelope
		if err != nil || proto.Unmarshal(b, &e) != nil {
			continue // the newcomer goes without this head
		}
		if size += len(b); size > maxSyncBytes {
			if err := writeFrame(w, frame); err != nil {
				return err
			}
			frame, size = &pb.SyncFrame{GroupId: g.gid}, len(b)
		}
		frame.Envelopes = append(frame.Envelopes, &e)
	}
	for p, m := range st.Members {
		if p == to {
			continue
		}
		pa := &pb.PeerAddrs{Peer: []byte(p), Addrs: m.Addrs}
		if p == gs.self {
			pa.Addrs = gs.myAddrs()
		} else if live := gs.h.Peerstore().Addrs(p); len(live) > 0 {
			pa.Addrs = nil
			for _, a := range live[:min(len(live), maxAddrs)] {
				pa.Addrs = append(pa.Addrs, a.String())
			}
		}
		frame.Members = append(frame.Members, pa)
	}
	frame.End = true
	return writeFrame(w, frame)
}

// servePush takes ops and keys from a member: a new epoch, a leave, or a
// whole group this node was added to by a friend.
func (gs *Service) servePush(from peer.ID, f *pb.SyncFrame, w *bufio.Writer) {
	// Who may push is checked before any signature is: a stranger must
	// not make this node verify thousands of ops it signed itself.
	id := gidString(f.GetGroupId())
	g := gs.get(id)
	if g == nil {
		// Added directly: only a friend may do that.
		if _, friend, err := gs.cfg.Friends.FriendAddrs(gs.ctx, from); err != nil || !friend {
			refuseSync(w, CodeNotFriends, "only friends add this node to groups")
			return
		}
	} else if !g.state().isMember(from) {
		refuseSync(w, CodeNotMember, "not a member of this group")
		return
	}
	ops, keys, err := decodeOpsKeys(f)
	if err != nil {
		refuseSync(w, CodeBadFrame, err.Error())
		return
	}
	if g == nil {
		if _, err := gs.adopt(id, ops, keys, f.GetHeads(), f.GetEnvelopes(), f.GetMembers(), from); err != nil {
			refuseSync(w, CodeBadFrame, err.Error())
			return
		}
		writeFrame(w, &pb.SyncFrame{End: true})
		return
	}
	gs.opMu.Lock()
	applied, gap, err := gs.applyOpsLocked(g, ops, keys)
	gs.opMu.Unlock()
	gs.afterOps(g, applied)
	if err != nil {
		refuseSync(w, CodeBadFrame, err.Error())
		return
	}
	if st := g.state(); gap || (st.Status == StatusMember && st.Keys[st.Epoch] == nil) {
		gs.wantPull(g.id, from, 0)
	}
	writeFrame(w, &pb.SyncFrame{End: true})
}

// epochKey is a key as the wire carries it: with the epoch number the
// op that starts its epoch names (two branches may name one number).
type epochKey struct {
	claim uint64
	key   []byte
}

func decodeOpsKeys(f *pb.SyncFrame) ([]*op, []epochKey, error) {
	var ops []*op
	for _, so := range f.GetOps() {
		o, err := opFromWire(so)
		if err != nil {
			return nil, nil, err
		}
		ops = append(ops, o)
	}
	var keys []epochKey
	for _, k := range f.GetKeys() {
		if len(k.GetKey()) != keyLen {
			return nil, nil, fmt.Errorf("%w: key length", ErrBadFrame)
		}
		keys = append(keys, epochKey{k.GetEpoch(), k.GetKey()})
	}
	return ops, keys, nil
}

// adopt takes a whole group this node was admitted to: it checks the log
// from its create op, the keys and the heads against it, and joins the
// topic.
func (gs *Service) adopt(want string, ops []*op, keys []epochKey, heads []*pb.Head, envs []*pb.Envelope, members []*pb.PeerAddrs, via peer.ID) (*group, error) {
	d, st, err := dagFromOps(ops)
	if err != nil {
		return nil, err
	}
	// The log must be the group asked for: the members named in a code
	// are not signed, and one could answer with a group of its own.
	if st.ID != want {
		return nil, fmt.Errorf("%w: the log is of group %s, not %s", ErrBadFrame, st.ID, want)
	}
	if !st.isMember(gs.self) {
		return nil, fmt.Errorf("%w: the log does not add this node", ErrNotMember)
	}
	if !st.isMember(via) {
		return nil, fmt.Errorf("%w: %s is not a member", ErrNotMember, via)
	}
	gid, _ := parseGID(st.ID)
	st.poolKeys(d, gid, keys)
	st.fillKeys()
	hs, tails := headProofs(gid, heads, envs)
	gs.opMu.Lock()
	if old := gs.get(st.ID); old != nil && old.state().Status == StatusMember {
		gs.opMu.Unlock()
		return old, nil
	}
	g := &group{id: st.ID, gid: gid, heads: hs, dag: d}
	err = gs.persist(g, st, d.sorted())
	for a, head := range hs {
		if err == nil {
			err = history.PutJSON(gs.ctx, gs.ds, groupHeadKey(g.id, history.PeerString(a)), head)
		}
		// Kept, so that this node can show its heads to the next newcomer.
		if err == nil {
			err = gs.ds.Put(gs.ctx, groupEnvKey(g.id, history.PeerString(a), head.Contig), tails[a])
		}
	}
	if err == nil {
		err = gs.sync(gs.ctx)
	}
	if err == nil {
		gs.mu.Lock()
		gs.all[g.id] = g
		gs.mu.Unlock()
		gs.refreshFellows()
	}
	gs.opMu.Unlock()
	if err != nil {
		return nil, err
	}
	gs.keepPushed(st, members)
	gs.keepMembers(st)
	if err := gs.subscribe(g); err != nil {
		return nil, err
	}
	gs.emit(EventUpdate, UpdateEvent{ID: g.id, Name: st.Name, Op: "join", Actor: via, Target: gs.self, Status: st.Status})
	if st.Keys[st.Epoch] == nil {
		gs.wantPull(g.id, via, 0)
	}
	return g, nil
}

// maxPushedMembers bounds the members of a join answer or a push whose
// addresses are taken (the rest are kept at the addresses of the log).
const maxPushedMembers = 1024

// keepPushed keeps connected the members a join answer or a push named,
// at the addresses it gave. The list is unsigned: only members of the
// verified log st are taken, at most maxPushedMembers.
func (gs *Service) keepPushed(st *state, members []*pb.PeerAddrs) {
	for _, m := range members[:min(len(members), maxPushedMembers)] {
		if info, ok := peerAddrsFromWire(m); ok && info.ID != gs.self && st.isMember(info.ID) {
			if len(info.Addrs) > 0 {
				gs.h.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.TempAddrTTL)
			}
			var as []string
			for _, a := range info.Addrs {
				as = append(as, a.String())
			}
			gs.keep(info.ID, as)
		}
	}
}

// Join joins a group with an invite code: it asks the members the
// code names, one after the other, to admit this node.
func (gs *Service) Join(ctx context.Context, code string) (*Info, error) {
	c, err := decodeInviteCode(code)
	if err != nil {
		return nil, err
	}
	if !gs.cfg.Now().Before(c.Invite.Expires) {
		return nil, fmt.Errorf("%w (it expired at %s)", ErrInviteExpired, c.Invite.Expires.UTC().Format(time.RFC3339))
	}
	if g := gs.get(gidString(c.Invite.GroupID)); g != nil && g.state().Status == StatusMember {
		gi := gs.info(g)
		gi.AlreadyMember = true
		return gi, nil
	}
	lastErr := fmt.Errorf("%w: the invite names none", ErrUnreachable)
	// Every member named is dialled at once; they are asked in the order
	// they answer, so that one that is away costs no dial timeout.
	dctx, cancel := context.WithTimeout(ctx, syncDialTimeout)
	defer cancel()
	reached := make(chan peer.AddrInfo, len(c.Members))
	var dials sync.WaitGroup
	defer dials.Wait()
	defer cancel()
	asked := 0
	for _, m := range c.Members {
		if m.ID == gs.self {
			continue
		}
		asked++
		dials.Add(1)
		go func() {
			defer dials.Done()
			if len(m.Addrs) > 0 {
				gs.h.Peerstore().AddAddrs(m.ID, m.Addrs, peerstore.TempAddrTTL)
			}
			if err := gs.h.Connect(dctx, m); err != nil {
				m.ID = ""
			}
			reached <- m
		}()
	}
	for range asked {
		var m peer.AddrInfo
		select {
		case m = <-reached:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if m.ID == "" {
			lastErr = fmt.Errorf("%w: none of the members the invite names answered", ErrUnreachable)
			continue
		}
		var ops []*op
		var keys []epochKey
		var heads []*pb.Head
		var envs []*pb.Envelope
		var members []*pb.PeerAddrs
		last, err := gs.exchange(ctx, m.ID, &pb.SyncRequest{Body: &pb.SyncRequest_Join{Join: &pb.Join{Invite: c.Invite.toWire(), Addrs: gs.myAddrs()}}},
			func(f *pb.SyncFrame) error {
				o, k, err := decodeOpsKeys(f)
				if err != nil {
					return err
				}
				ops = append(ops, o...)
				keys = append(keys, k...)
				heads = append(heads, f.GetHeads()...)
				envs = append(envs, f.GetEnvelopes()...)
				members = append(members, f.GetMembers()...)
				// A join is a log, keys, heads and their envelopes, and
				// members: bounded, whatever the admitting member sends.
				if len(ops)+len(keys)+len(heads)+len(envs)+len(members) > maxJoinItems {
					return fmt.Errorf("%w: a join answer of over %d items", ErrBadFrame, maxJoinItems)
				}
				return nil
			})
		if err != nil {
			lastErr = fmt.Errorf("%w: %s: %v", ErrUnreachable, m.ID, err)
			continue
		}
		switch last.GetCode() {
		case 0:
		case CodeInviteExpired:
			return nil, fmt.Errorf("%w (%s)", ErrInviteExpired, last.GetMessage())
		case CodeInviteUsedUp:
			return nil, fmt.Errorf("%w (%s)", ErrInviteUsedUp, last.GetMessage())
		case CodeBadInvite:
			return nil, fmt.Errorf("%w: %s", ErrBadInvite, last.GetMessage())
		case CodeInviteRevoked: // the answer's message says what the error says
			return nil, ErrInviteRevoked
		case CodeRemoved:
			return nil, ErrRemoved
		default:
			lastErr = fmt.Errorf("%w: %s: %s", ErrRefused, m.ID, last.GetMessage())
			continue
		}
		g, err := gs.adopt(gidString(c.Invite.GroupID), ops, keys, heads, envs, members, m.ID)
		if err != nil {
			return nil, err
		}
		return gs.info(g), nil
	}
	return nil, lastErr
}

// headProofs are the heads a newcomer takes from the member that admits
// it, and the envelopes they end on. A newcomer starts from what that
// member holds: it takes the messages numbered past each author's head.
// A head is taken only with the envelope numbered as it ends, signed by
// its author: a member that named a head past what its author sent would
// have the newcomer drop that author's next messages as held. Each
// envelope is checked once, and only when a head names it; tails are the
// envelopes, encoded, by author.
func headProofs(gid []byte, heads []*pb.Head, envs []*pb.Envelope) (hs map[peer.ID]*seqSet, tails map[peer.ID][]byte) {
	want := map[peer.ID]uint64{}
	for _, head := range heads {
		if a, s, err := headFromWire(head); err == nil && s.Contig > 0 {
			want[a] = s.Contig
		}
	}
	hs, tails = map[peer.ID]*seqSet{}, map[peer.ID][]byte{}
	for _, w := range envs {
		e, err := envelopeFromWire(w)
		if err != nil || !sameBytes(e.GroupID, gid) || want[e.Author] != e.Seq || hs[e.Author] != nil || e.verify() != nil {
			continue
		}
		if raw, err := proto.Marshal(w); err == nil {
			hs[e.Author], tails[e.Author] = &seqSet{Contig: e.Seq}, raw
		}
	}
	return hs, tails
}

// exchange sends one request to p and hands each answer frame to fn; it
// returns the last frame (end set).
func (gs *Service) exchange(ctx context.Context, p peer.ID, req *pb.SyncRequest, fn func(*pb.SyncFrame) error) (*pb.SyncFrame, error) {
	ctx = network.WithAllowLimitedConn(ctx, "groupsync")
	dctx, cancel := context.WithTimeout(ctx, syncDialTimeout)
	stream, err := gs.h.NewStream(dctx, p, SyncProtocol)
	cancel()
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	stop := context.AfterFunc(ctx, func() { stream.Reset() })
	defer stop()
	stream.SetWriteDeadline(time.Now().Add(syncIOTimeout))
	if err := writeFrame(stream, req); err != nil {
		stream.Reset()
		return nil, err
	}
	stream.CloseWrite()
	r := bufio.NewReader(stream) // most answers are a frame or two; a lull's pulls are one per author
	for {
		stream.SetReadDeadline(time.Now().Add(syncIOTimeout))
		var f pb.SyncFrame
		if err := readFrame(r, MaxSyncFrame, &f); err != nil {
			stream.Reset()
			return nil, err
		}
		if f.GetCode() == 0 && fn != nil {
			if err := fn(&f); err != nil {
				stream.Reset()
				return nil, err
			}
		}
		if f.GetEnd() || f.GetCode() != 0 {
			return &f, nil
		}
	}
}

// push hands a member ops and keys.
func (gs *Service) push(ctx context.Context, p peer.ID, f *pb.SyncFrame) error {
	return gs.tell(ctx, p, &pb.SyncRequest{Body: &pb.SyncRequest_Push{Push: f}})
}

// tell sends p a request whose answer is one frame, end set, with a
// code: a refusal is ErrRefused with p's message.
func (gs *Service) tell(ctx context.Context, p peer.ID, req *pb.SyncRequest) error {
	ctx, cancel := context.WithTimeout(ctx, syncIOTimeout)
	defer cancel()
	last, err := gs.exchange(ctx, p, req, nil)
	if err != nil {
		return err
	}
	if last.GetCode() != 0 {
		return fmt.Errorf("%w: %s", ErrRefused, last.GetMessage())
	}
	return nil
}

// goPushGroup hands a friend added directly the whole group, in the
// background; once it has it, it is no longer owed.
func (gs *Service) goPushGroup(g *group, p peer.ID) {
	if !gs.online(p) {
		return // when it connects
	}
	gs.run.Go(func() {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := gs.writeGroup(w, g, p); err != nil {
			return
		}
		w.Flush()
		// writeGroup writes frames for a stream; a push carries one frame,
		// so they are merged.
		f := &pb.SyncFrame{GroupId: g.gid}
		pushed := 0
		r := bufio.NewReader(&buf)
		for {
			var part pb.SyncFrame
			if err := readFrame(r, MaxSyncFrame, &part); err != nil {
				break
			}
			f.Ops = append(f.Ops, part.Ops...)
			f.Keys = append(f.Keys, part.Keys...)
			f.Heads = append(f.Heads, part.Heads...)
			f.Members = append(f.Members, part.Members...)
			// A push is one frame: the heads' envelopes go while they
			// fit in half of one; a head without goes untaken.
			for _, e := range part.Envelopes {
				if pushed += proto.Size(e); pushed <= maxSyncBytes/2 {
					f.Envelopes = append(f.Envelopes, e)
				}
			}
		}
		f.End = true
		if err := gs.push(gs.ctx, p, f); err != nil {
			gs.log.Debug("hand a group to a friend", "group", g.id, "peer", p, "err", err)
			return
		}
		gs.opMu.Lock()
		defer gs.opMu.Unlock()
		next := g.state().clone()
		owe := next.Owe[:0]
		for _, q := range next.Owe {
			if q != p {
				owe = append(owe, q)
			}
		}
		next.Owe = owe
		gs.persist(g, next, nil)
	})
}

// pull asks p for what this node lacks of a group, and stores it.
func (gs *Service) pull(ctx context.Context, id string, p peer.ID) error {
	g := gs.get(id)
	if g == nil || g.state().Status != StatusMember {
		return nil
	}
	gs.opMu.Lock()
	req := &pb.Pull{GroupId: g.gid, OpHeads: g.dag.headList()}
	gs.opMu.Unlock()
	for a, head := range g.headsSnapshot() {
		req.Heads = append(req.Heads, head.toWire(a))
	}
	var lastDone chan error
	last, err := gs.exchange(ctx, p, &pb.SyncRequest{Body: &pb.SyncRequest_Pull{Pull: req}}, func(f *pb.SyncFrame) error {
		ops, keys, err := decodeOpsKeys(f)
		if err != nil {
			return err
		}
		if len(ops) > 0 || len(keys) > 0 {
			gs.opMu.Lock()
			applied, _, err := gs.applyOpsLocked(g, ops, keys)
			gs.opMu.Unlock()
			gs.afterOps(g, applied)
			if err != nil {
				return err
			}
		}
		done, err := gs.ingestEnvelopes(ctx, g, f.GetEnvelopes(), p, nil)
		if done != nil {
			lastDone = done
		}
		return err
	})
	if err != nil {
		return err
	}
	if lastDone != nil {
		select {
		case err := <-lastDone:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if last.GetCode() != 0 {
		return fmt.Errorf("%w: %s", ErrRefused, last.GetMessage())
	}
	return nil
}

// wantPull schedules a pull of group id from p, delay from now. A pull
// already due sooner stays; a settle pull (the end of a burst) is one per
// group, and each message postpones it, so that it comes once the group is
// quiet (or settleCap after the first), and asks each author heard. A gap
// pull (a gap in an author's numbers) is dropped when it comes due if
// gossip has filled every gap meanwhile: under load gossip reorders, and
// pulling what is on its way would add to the load that reordered it.
func (gs *Service) wantPull(id string, p peer.ID, delay time.Duration) {
	gs.schedulePull(id, p, delay, pullPlain)
}

func (gs *Service) gapPull(id string, p peer.ID, delay time.Duration) {
	gs.schedulePull(id, p, delay, pullGap)
}

func (gs *Service) settlePull(id string, p peer.ID, delay time.Duration) {
	gs.schedulePull(id, p, delay, pullSettle)
}

// The kinds of pull (wantPull).
const (
	pullPlain = iota
	pullGap
	pullSettle
)

type pullDue struct {
	due, first time.Time
	// The authors heard since the last settle pull: it asks each, since
	// only an author surely holds all it sent (a lost tail shows no gap).
	authors map[peer.ID]bool
	// gapOnly: only gap pulls asked for it.
	gapOnly bool
}

func (gs *Service) schedulePull(id string, p peer.ID, delay time.Duration, kind int) {
	if p == "" || p == gs.self {
		return
	}
	now := time.Now()
	k := pullKey{id, p}
	settle := kind == pullSettle
	if settle {
		// One settle pull per group: it gathers the authors heard, and
		// asks each when it comes due.
		k.p = ""
	}
	gs.pullMu.Lock()
	cur, ok := gs.pulls[k]
	switch {
	case !ok:
		cur = pullDue{due: now.Add(delay), first: now, gapOnly: kind == pullGap}
		if settle {
			cur.authors = map[peer.ID]bool{p: true}
		}
		gs.pulls[k] = cur
	case settle:
		// Once the group is quiet: mid-stream it would fetch what gossip
		// is still bringing (a loss there shows as a gap in the author's
		// numbers). But at least every settleCap, for the last message of
		// an author who went quiet while others talk on.
		cur.authors[p] = true
		if d := now.Add(delay); d.After(cur.due) && d.Before(cur.first.Add(settleCap)) {
			cur.due = d
		}
		gs.pulls[k] = cur
	default:
		if d := now.Add(delay); d.Before(cur.due) {
			cur.due = d
		}
		cur.gapOnly = cur.gapOnly && kind == pullGap
		gs.pulls[k] = cur
	}
	wake := gs.pullNext.IsZero() || gs.pulls[k].due.Before(gs.pullNext)
	gs.pullMu.Unlock()
	if wake {
		select {
		case gs.pullWake <- struct{}{}:
		default:
		}
	}
}

// runPuller runs the pulls when they are due, one at a time, from peers
// that are connected.
func (gs *Service) runPuller() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		// due: the pulls to make, each once; a false value is a gap pull
		// that gossip may have made needless.
		due := map[pullKey]bool{}
		next := now.Add(time.Hour)
		gs.pullMu.Lock()
		gs.pulling.Store(true)
		for k, d := range gs.pulls {
			if !d.due.After(now) {
				delete(gs.pulls, k)
				if k.p != "" {
					due[k] = due[k] || !d.gapOnly
				}
				for a := range d.authors {
					due[pullKey{k.id, a}] = true
				}
			} else if d.due.Before(next) {
				next = d.due
			}
		}
		gs.pullNext = time.Time{}
		if len(due) == 0 {
			gs.pullNext = next
		}
		gs.pullMu.Unlock()
		for k, needed := range due {
			if !gs.online(k.p) {
				continue
			}
			if !needed && !gs.hasGaps(k.id) {
				gs.needless.Add(1)
				continue
			}
			ctx, cancel := context.WithTimeout(gs.ctx, 2*syncIOTimeout)
			err := gs.pull(ctx, k.id, k.p)
			cancel()
			if err != nil && gs.ctx.Err() == nil {
				gs.log.Debug("group pull", "group", k.id, "peer", k.p, "err", err)
				// A pull that failed on the way (not a refusal) is tried
				// again while the peer stays online.
				if !errors.Is(err, ErrRefused) {
					gs.wantPull(k.id, k.p, pullRetry)
				}
			}
		}
		if len(due) > 0 {
			continue
		}
		gs.pulling.Store(false)
		timer.Reset(time.Until(next))
		select {
		case <-gs.ctx.Done():
			return
		case <-gs.pullWake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

// hasGaps reports whether this node lacks a message of group id that a
// later one of the same author shows it should have.
func (gs *Service) hasGaps(id string) bool {
	g := gs.get(id)
	if g == nil {
		return false
	}
	g.hmu.Lock()
	defer g.hmu.Unlock()
	for _, head := range g.heads {
		if len(head.Extra) > 0 {
			return true
		}
	}
	return false
}

// ingestEnvelopes checks envelopes that did not come by gossip (a pull, a
// mailbox) as the validator would, and hands the good ones to the store.
// It returns a channel closed once the last is stored (nil: none).
func (gs *Service) ingestEnvelopes(ctx context.Context, g *group, envs []*pb.Envelope, from peer.ID, via *history.Hop) (chan error, error) {
	st := g.state()
	var last chan error
	for _, we := range envs {
		env, err := envelopeFromWire(we)
		if err != nil || !sameBytes(env.GroupID, g.gid) {
			gs.rejects.Add(1)
			continue
		}
		if g.has(env.Author, env.Seq) || !g.near(env.Author, env.Seq) {
			continue
		}
		key := st.Keys[env.Epoch]
		if key == nil {
			continue
		}
		if env.foreignKey(key) {
			// Sealed on another branch with its key of the number: no
			// fault of who hands it on (see validate).
			continue
		}
		if !st.mayWrite(env.Author, env.Epoch, env.Seq) || env.verify() != nil {
			if !st.Forked[env.Epoch] {
				gs.rejects.Add(1)
			}
			continue
		}
		w, err := env.open(key)
		if err != nil {
			if !st.Forked[env.Epoch] || len(env.KeyHint) > 0 {
				gs.rejects.Add(1)
			}
			continue
		}
		done := make(chan error, 1)
		select {
		case gs.ingest <- &ingestItem{g: g, env: env, w: w, from: from, done: done, via: via}:
			last = done
		case <-ctx.Done():
			return last, ctx.Err()
		case <-gs.ctx.Done():
			return last, ErrClosed
		}
	}
	return last, nil
}

// maxJoinItems bounds what a newcomer takes in from one join answer.
const maxJoinItems = 1 << 16

// maxServeOps bounds the ops served to a former member (it learns how
// it left; it pulls again for more).
const maxServeOps = 1024

// maxServeSeqs bounds the sequence numbers of one author a pull looks up.
const maxServeSeqs = 4096

// Mailbox is the path through a relay for members who are offline: the
// relay's offline mailbox (node gives the relay client's ParkGroup, so
// that group never imports relay).
// What is parked is the envelope as its author sealed and signed it, so
// the relay reads nothing, and a member that fetches it checks it like a
// message from gossip. Delivery stays exactly-once whichever path
// delivers: dedup is by (author, seq).
type Mailbox interface {
	// ParkGroup stores encoded envelopes (group/pb Envelope) of a group for
	// members, and returns once the mailbox holds them durably, with the
	// relay that holds them for each member parked.
	ParkGroup(ctx context.Context, members []peer.ID, envelopes [][]byte) (map[peer.ID]peer.ID, error)
	// Ready reports whether the mailbox can take envelopes now (a relay
	// client logged in to no relay cannot): while it cannot, nothing is
	// parked, and the members catch up from the others.
	Ready() bool
}

// SetMailbox parks this node's group messages for the members that
// are offline when they are sent (nil: gossip and catch-up only).
func (gs *Service) SetMailbox(m Mailbox) {
	gs.mbMu.Lock()
	gs.mb = m
	gs.mbMu.Unlock()
}

// parkForOffline hands an envelope (of message id) to the mailbox for the
// members that are offline, in the background.
func (gs *Service) parkForOffline(g *group, env *envelope, id string) {
	gs.mbMu.Lock()
	mb := gs.mb
	gs.mbMu.Unlock()
	if mb == nil || !mb.Ready() {
		return
	}
	var away []peer.ID
	for p := range g.state().Members {
		if p != gs.self && !gs.online(p) {
			away = append(away, p)
		}
	}
	if len(away) == 0 {
		return
	}
	raw, err := proto.Marshal(env.toWire())
	if err != nil {
		return
	}
	select {
	case gs.parkq <- parkJob{mb: mb, away: away, raw: raw, id: id}:
	default:
		// The relay is far behind: the members catch up from the
		// others when they come back.
		gs.log.Info("group mailbox: queue full, not parked", "group", g.id)
	}
}

// parkJob is an envelope to park for the members that are away; id is
// the message whose trace records it (empty: a change or a receipt).
type parkJob struct {
	mb   Mailbox
	away []peer.ID
	raw  []byte
	id   string
}

// runParker parks queued envelopes, one worker for all groups: what
// waits at a moment for the same members goes in one deposit each.
func (gs *Service) runParker() {
	for {
		jobs, ok := queue.Take(gs.ctx, gs.parkq, 256)
		if !ok {
			return
		}
		if gs.parking.Acquire(gs.ctx, 1) != nil {
			return
		}
		gs.parkJobs(gs.ctx, jobs)
		gs.parking.Release(1)
	}
}

// parkJobs parks jobs, grouped by who is away, and records for each
// message and member the relay that holds it (the message's trace); it
// returns how many envelopes it parked for at least one member.
func (gs *Service) parkJobs(ctx context.Context, jobs []parkJob) int {
	type batch struct {
		mb   Mailbox
		away []peer.ID
		raws [][]byte
		ids  []string
	}
	var order []string
	byAway := map[string]*batch{}
	for _, j := range jobs {
		k := fmt.Sprint(j.away)
		b := byAway[k]
		if b == nil {
			b = &batch{mb: j.mb, away: j.away}
			byAway[k] = b
			order = append(order, k)
		}
		b.raws = append(b.raws, j.raw)
		b.ids = append(b.ids, j.id)
	}
	n := 0
	for _, k := range order {
		b := byAway[k]
		parked, err := b.mb.ParkGroup(ctx, b.away, b.raws)
		if err != nil {
			gs.log.Info("group mailbox", "err", err)
		}
		if len(parked) == 0 {
			continue
		}
		n += len(b.raws)
		now := gs.cfg.Now()
		if wb, err := gs.ds.Batch(ctx); err == nil {
			for _, id := range b.ids {
				if id == "" {
					continue
				}
				for member, relay := range parked {
					history.PutHop(ctx, wb, id, history.Hop{Event: history.HopParked, At: now, Relay: relay, Peer: member})
				}
			}
			wb.Commit(ctx)
		}
	}
	return n
}

// DrainParker parks what waits in the parker's queue now (a clean stop),
// after the batch being parked, if any; it returns how many envelopes it
// parked and how many stayed queued when ctx ended first.
func (gs *Service) DrainParker(ctx context.Context) (parked, left int) {
	if err := gs.parking.Acquire(ctx, 1); err != nil {
		return 0, len(gs.parkq)
	}
	defer gs.parking.Release(1)
	var jobs []parkJob
	for {
		select {
		case j := <-gs.parkq:
			jobs = append(jobs, j)
			continue
		default:
		}
		break
	}
	if ctx.Err() != nil {
		return 0, len(jobs)
	}
	parked = gs.parkJobs(ctx, jobs)
	return parked, len(jobs) - parked
}

// ReceiveParked is ReceiveLetter from a mailbox whose relay is not known.
func (gs *Service) ReceiveParked(ctx context.Context, envelopes [][]byte) error {
	return gs.ReceiveLetter(ctx, "", envelopes)
}

// ReceiveLetter takes envelopes that relay's mailbox held for this node:
// each is checked like a message from gossip (member, signature, key) and
// stored once, its trace saying it came through the mailbox; it returns
// when they are stored.
func (gs *Service) ReceiveLetter(ctx context.Context, relay peer.ID, envelopes [][]byte) error {
	byGroup := map[string][]*pb.Envelope{}
	for _, b := range envelopes {
		var e pb.Envelope
		if err := proto.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("%w: %v", ErrBadFrame, err)
		}
		id := gidString(e.GetGroupId())
		byGroup[id] = append(byGroup[id], &e)
	}
	for id, envs := range byGroup {
		g := gs.get(id)
		if g == nil || g.state().Status != StatusMember {
			continue
		}
		via := &history.Hop{Event: history.HopReceived, At: gs.cfg.Now(), Path: history.PathMailbox, Relay: relay}
		done, err := gs.ingestEnvelopes(ctx, g, envs, "", via)
		if err != nil {
			return err
		}
		if done != nil {
			select {
			case err := <-done:
				if err != nil {
					return err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
