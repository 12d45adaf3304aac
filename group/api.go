package group

// The group actions of the Service: what the API and the command line
// call (create, invite, join is in sync.go, add, kick, leave, rename,
// send, history).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/group/pb"
	"github.com/meshtalk/meshtalk/history"
)

// Info is a group as the API shows it.
type Info struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Avatar     []byte `json:"avatar,omitempty"`
	AvatarType string `json:"avatar_type,omitempty"`
	// Role is this node's role; Status its standing (member, left,
	// removed).
	Role    string    `json:"role"`
	Status  string    `json:"status"`
	Members int       `json:"members"`
	Epoch   uint64    `json:"epoch"`
	Created time.Time `json:"created"`
	// AlreadyMember answers a join with an invite to a group this node
	// is a member of already: nothing was done.
	AlreadyMember bool `json:"already_member,omitempty"`
}

func (gs *Service) info(g *group) *Info {
	st := g.state()
	gi := &Info{ID: g.id, Name: st.Name, Avatar: st.Avatar, AvatarType: st.AvatarType, Status: st.Status,
		Members: len(st.Members), Epoch: st.Epoch, Created: st.Created}
	if m := st.Members[gs.self]; m != nil {
		gi.Role = m.Role
	}
	return gi
}

// Member is one member as the API shows it.
type Member struct {
	PeerID peer.ID   `json:"peer_id"`
	Name   string    `json:"name,omitempty"`
	Role   string    `json:"role"`
	Online bool      `json:"online"`
	Self   bool      `json:"self,omitempty"`
	Since  time.Time `json:"since"`
}

// Create creates a group with this node as its admin. avatar is an
// image file (nil: none).
func (gs *Service) Create(ctx context.Context, name string, avatar []byte) (*Info, error) {
	if name == "" || len(name) > MaxNameBytes {
		return nil, fmt.Errorf("group: %w group name: 1 to %d bytes", ErrInvalid, MaxNameBytes)
	}
	o := &op{Kind: OpCreate, Actor: gs.self, Name: name, Addrs: gs.myAddrs(), TimeMS: gs.cfg.Now().UnixMilli(), Nonce: make([]byte, 16)}
	if avatar != nil {
		var err error
		if o.Avatar, o.AvatarType, err = history.MakeAvatar(avatar); err != nil {
			return nil, err
		}
	}
	rand.Read(o.Nonce)
	key := newKey()
	o.KeyHash = keyHash(nil, 0, key)
	if err := signOp(gs.priv, o); err != nil {
		return nil, err
	}
	st, err := stateFromCreate(o)
	if err != nil {
		return nil, err
	}
	st.KeyPool[hex.EncodeToString(o.KeyHash)] = key
	st.fillKeys()
	gid, _ := parseGID(st.ID)
	g := &group{id: st.ID, gid: gid, heads: map[peer.ID]*seqSet{}, dag: newDAG(o)}
	gs.opMu.Lock()
	err = gs.persist(g, st, []*op{o})
	gs.opMu.Unlock()
	if err != nil {
		return nil, err
	}
	gs.mu.Lock()
	gs.all[g.id] = g
	gs.mu.Unlock()
	gs.refreshFellows()
	if err := gs.subscribe(g); err != nil {
		return nil, err
	}
	gs.emit(EventUpdate, UpdateEvent{ID: g.id, Name: st.Name, Op: OpCreate, Actor: gs.self, Status: st.Status})
	return gs.info(g), nil
}

// List lists the groups this node knows, by name.
func (gs *Service) List(ctx context.Context) ([]*Info, error) {
	var out []*Info
	for _, g := range gs.list() {
		out = append(out, gs.info(g))
	}
	slices.SortFunc(out, func(a, b *Info) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out, nil
}

// Get returns one group.
func (gs *Service) Get(ctx context.Context, id string) (*Info, error) {
	g, err := gs.find(id)
	if err != nil {
		return nil, err
	}
	return gs.info(g), nil
}

func (gs *Service) find(id string) (*group, error) {
	if g := gs.get(id); g != nil {
		return g, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoGroup, id)
}

// member finds a group this node is a member of.
func (gs *Service) member(id string) (*group, error) {
	g, err := gs.find(id)
	if err != nil {
		return nil, err
	}
	if st := g.state(); st.Status != StatusMember {
		return nil, fmt.Errorf("%w %q (%s)", ErrNotMember, st.Name, st.Status)
	}
	return g, nil
}

// admin finds a group this node is an admin of, for the action what.
func (gs *Service) admin(id, what string) (*group, *state, error) {
	g, err := gs.member(id)
	if err != nil {
		return nil, nil, err
	}
	st := g.state()
	if !st.isAdmin(gs.self) {
		return nil, nil, fmt.Errorf("%w: %s %q", ErrNotAdmin, what, st.Name)
	}
	return g, st, nil
}

// Members lists a group's members with their presence.
func (gs *Service) Members(ctx context.Context, id string) ([]*Member, error) {
	g, err := gs.find(id)
	if err != nil {
		return nil, err
	}
	st := g.state()
	out := []*Member{}
	for p, m := range st.Members {
		mi := &Member{PeerID: p, Role: m.Role, Since: m.Since, Self: p == gs.h.ID(), Online: p == gs.h.ID() || gs.online(p)}
		mi.Name = gs.cfg.Friends.PeerName(ctx, p)
		out = append(out, mi)
	}
	slices.SortFunc(out, func(a, b *Member) int { return strings.Compare(string(a.PeerID), string(b.PeerID)) })
	return out, nil
}

// Invite makes an invite code for a group: uses 0 means any number, ttl
// how long it is valid. Only an admin may invite.
func (gs *Service) Invite(ctx context.Context, id string, uses uint32, ttl time.Duration) (string, error) {
	g, st, err := gs.admin(id, "invite to")
	if err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", fmt.Errorf("group: %w invite: the validity must be positive", ErrInvalid)
	}
	iv := &invite{GroupID: g.gid, ID: make([]byte, 16), Uses: uses, Expires: gs.cfg.Now().Add(ttl), Admin: gs.self}
	rand.Read(iv.ID)
	if iv.Signature, err = gs.priv.Sign(iv.signed()); err != nil {
		return "", err
	}
	code := &inviteCode{Invite: iv, Name: st.Name, Members: []peer.AddrInfo{{ID: gs.self, Addrs: gs.h.Addrs()}}}
	// Members online first: they are the likeliest to admit the newcomer.
	var others []peer.ID
	for p := range st.Members {
		if p != gs.self {
			others = append(others, p)
		}
	}
	slices.SortFunc(others, func(a, b peer.ID) int {
		oa, ob := gs.online(a), gs.online(b)
		switch {
		case oa && !ob:
			return -1
		case ob && !oa:
			return 1
		}
		return strings.Compare(string(a), string(b))
	})
	for _, p := range others {
		info := peer.AddrInfo{ID: p, Addrs: gs.h.Peerstore().Addrs(p)}
		if len(info.Addrs) == 0 {
			if ai, ok := peerAddrsFromWire(&pb.PeerAddrs{Peer: []byte(p), Addrs: st.Members[p].Addrs}); ok {
				info = ai
			}
		}
		code.Members = append(code.Members, info)
	}
	s, err := encodeInviteCode(code)
	if err != nil {
		return "", err
	}
	// The invite is whole in its code; the record is only for Invites,
	// and is synced like everything else this node answers with.
	rec := MadeInvite{ID: hex.EncodeToString(iv.ID), Code: s, Uses: uses, Expires: iv.Expires, Created: gs.cfg.Now()}
	if err := history.PutJSON(ctx, gs.ds, groupKey(g.id, "invites/"+rec.ID), rec); err != nil {
		return "", err
	}
	if err := gs.sync(ctx); err != nil {
		return "", err
	}
	return s, nil
}

// MadeInvite is an invite this node made, with how it stands.
type MadeInvite struct {
	ID      string    `json:"id"`
	Code    string    `json:"code"`
	Uses    uint32    `json:"uses"` // 0: any number
	Expires time.Time `json:"expires"`
	Created time.Time `json:"created"`
	// Used is how many joined with it; State is InviteOpen, InviteUsedUp,
	// InviteExpired or InviteRevoked.
	Used  uint32 `json:"used"`
	State string `json:"state"`
}

// States of a MadeInvite.
const (
	InviteOpen    = "open"
	InviteUsedUp  = "used_up"
	InviteExpired = "expired"
	InviteRevoked = "revoked"
)

// Invites lists the invites this node made to a group, newest first,
// each with how many joined with it and whether it still admits anyone.
func (gs *Service) Invites(ctx context.Context, id string) ([]*MadeInvite, error) {
	g, err := gs.find(id)
	if err != nil {
		return nil, err
	}
	st := g.state()
	now := gs.cfg.Now()
	out := []*MadeInvite{}
	err = history.QueryJSON(ctx, gs.ds, query.Query{Prefix: "/groups/" + g.id + "/invites/"}, func(_ string, iv *MadeInvite) bool {
		iv.Used = st.InviteUses[iv.ID]
		switch {
		case st.Revoked[iv.ID]:
			iv.State = InviteRevoked
		case iv.Uses != 0 && iv.Used >= iv.Uses:
			iv.State = InviteUsedUp
		case !now.Before(iv.Expires):
			iv.State = InviteExpired
		default:
			iv.State = InviteOpen
		}
		out = append(out, iv)
		return true
	})
	slices.SortFunc(out, func(a, b *MadeInvite) int { return b.Created.Compare(a.Created) })
	return out, err
}

// RevokeInvite withdraws an invite of a group (an admin only): ref is
// the invite code or its ID (InviteID). The revoke is a signed op: every
// member refuses the invite from then on.
func (gs *Service) RevokeInvite(ctx context.Context, id, ref string) error {
	g, _, err := gs.admin(id, "revoke an invite of")
	if err != nil {
		return err
	}
	ivID, err := inviteIDOf(ref)
	if err != nil {
		return err
	}
	if c, err := decodeInviteCode(ref); err == nil && !sameBytes(c.Invite.GroupID, g.gid) {
		return fmt.Errorf("group: %w: the invite is of another group", ErrInvalid)
	}
	if g.state().Revoked[hex.EncodeToString(ivID)] {
		return nil
	}
	_, err = gs.appendOp(ctx, g, &op{Kind: OpRevoke, InviteID: ivID}, nil)
	return err
}

// InviteID is the ID of an invite (hex) given its code or its ID.
func InviteID(ref string) (string, error) {
	id, err := inviteIDOf(ref)
	return hex.EncodeToString(id), err
}

func inviteIDOf(ref string) ([]byte, error) {
	ref = strings.TrimSpace(ref)
	if strings.HasPrefix(ref, inviteCodeTag) {
		c, err := decodeInviteCode(ref)
		if err != nil {
			return nil, err
		}
		return c.Invite.ID, nil
	}
	b, err := hex.DecodeString(ref)
	if err != nil || len(b) != inviteIDLen {
		return nil, fmt.Errorf("%w: neither an invite code nor an invite ID (%d hex digits)", ErrBadInvite, 2*inviteIDLen)
	}
	return b, nil
}

// Add adds a friend to a group directly (an admin only); the friend
// receives the group when it is reachable.
func (gs *Service) Add(ctx context.Context, id string, p peer.ID) (*Info, error) {
	g, st, err := gs.admin(id, "add to")
	if err != nil {
		return nil, err
	}
	if st.isMember(p) {
		return gs.info(g), nil
	}
	addrs, friend, err := gs.cfg.Friends.FriendAddrs(ctx, p)
	if err != nil {
		return nil, err
	}
	if !friend {
		return nil, fmt.Errorf("%w: %s (only friends can be added directly; send an invite code instead)", ErrNotFriend, p)
	}
	// A new epoch: the newcomer reads nothing sent before its add.
	if _, err := gs.startEpoch(ctx, g, &op{Kind: OpAdd, Target: p, Addrs: addrs}, false); err != nil {
		return nil, err
	}
	gs.opMu.Lock()
	next := g.state().clone()
	next.Owe = append(next.Owe, p)
	err = gs.persist(g, next, nil)
	gs.opMu.Unlock()
	if err != nil {
		return nil, err
	}
	gs.goPushGroup(g, p)
	return gs.info(g), nil
}

// Kick removes a member (an admin only) and starts a new key epoch.
func (gs *Service) Kick(ctx context.Context, id string, p peer.ID) error {
	g, st, err := gs.admin(id, "remove from")
	if err != nil {
		return err
	}
	if !st.isMember(p) {
		return fmt.Errorf("%w: %s is not in %q", ErrNotMember, p, st.Name)
	}
	if p == gs.self {
		return fmt.Errorf("group: %w: to leave a group, use leave", ErrInvalid)
	}
	return gs.rekey(ctx, g, OpRemove, p)
}

// Promote makes a member an admin (an admin only).
func (gs *Service) Promote(ctx context.Context, id string, p peer.ID) (*Info, error) {
	g, st, err := gs.admin(id, "promote in")
	if err != nil {
		return nil, err
	}
	if !st.isMember(p) {
		return nil, fmt.Errorf("%w: %s is not in %q", ErrNotMember, p, st.Name)
	}
	if st.isAdmin(p) {
		return nil, fmt.Errorf("group: %w: %s is an admin of %q already", ErrInvalid, p, st.Name)
	}
	if _, err := gs.appendOp(ctx, g, &op{Kind: OpPromote, Target: p}, nil); err != nil {
		return nil, err
	}
	return gs.info(g), nil
}

// Leave leaves a group: the members are told, the history stays.
func (gs *Service) Leave(ctx context.Context, id string) error {
	g, err := gs.member(id)
	if err != nil {
		return err
	}
	// sendMu: no message of this node is numbered past the head the
	// leave freezes.
	gs.sendMu.Lock()
	gs.opMu.Lock()
	_, held := g.headOf(gs.self)
	o := &op{Kind: OpLeave, LastSeq: held.maxOrZero()}
	st := gs.fillOp(g, o)
	if err := signOp(gs.priv, o); err != nil {
		gs.opMu.Unlock()
		gs.sendMu.Unlock()
		return err
	}
	applied, _, err := gs.applyOpsLocked(g, []*op{o}, nil)
	gs.opMu.Unlock()
	gs.sendMu.Unlock()
	if err != nil {
		return err
	}
	// Told directly to the members online (the topic goes with the
	// subscription), and on the topic for the rest of the mesh.
	frame := &pb.SyncFrame{GroupId: g.gid, Ops: []*pb.SignedOp{signedOpWire(o)}, End: true}
	gs.mu.RLock()
	t := g.topic
	gs.mu.RUnlock()
	if t != nil {
		data, _ := proto.Marshal(&pb.TopicMessage{Body: &pb.TopicMessage_Op{Op: signedOpWire(o)}})
		t.Publish(ctx, data)
	}
	var wg sync.WaitGroup
	for p := range st.Members {
		if p != gs.self && gs.online(p) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				gs.push(ctx, p, frame)
			}()
		}
	}
	wg.Wait()
	gs.afterOps(g, applied)
	return nil
}

// Rename changes a group's name and avatar (an admin only); nil
// leaves one as it is.
func (gs *Service) Rename(ctx context.Context, id string, name *string, avatar []byte) (*Info, error) {
	g, st, err := gs.admin(id, "rename")
	if err != nil {
		return nil, err
	}
	o := &op{Kind: OpRename, Name: st.Name, Avatar: st.Avatar, AvatarType: st.AvatarType}
	if name != nil {
		if *name == "" || len(*name) > MaxNameBytes {
			return nil, fmt.Errorf("group: %w group name: 1 to %d bytes", ErrInvalid, MaxNameBytes)
		}
		o.Name = *name
	}
	if avatar != nil {
		if o.Avatar, o.AvatarType, err = history.MakeAvatar(avatar); err != nil {
			return nil, err
		}
	}
	if _, err := gs.appendOp(ctx, g, o, nil); err != nil {
		return nil, err
	}
	return gs.info(g), nil
}

// Send stores a message to a group durably, then publishes it. It
// waits while the publishing queue is full.
func (gs *Service) Send(ctx context.Context, id string, d history.Draft) (*history.Message, error) {
	g, err := gs.member(id)
	if err != nil {
		return nil, err
	}
	content, err := d.Content()
	if err != nil {
		return nil, err
	}
	w := history.Wire{Content: content}
	probe := w
	probe.ID = "00000000000000000000000000"
	if err := probe.Check(checkManifest); err != nil {
		return nil, fmt.Errorf("group: %w message: %s", ErrInvalid, err)
	}
	return gs.sendWire(ctx, g, w)
}

// sendWire seals a message (or an edit, a delete, a receipt), stores it
// and announces it here, then publishes it and parks it for the members
// away. It returns the message stored, or the one a change changed (nil:
// a receipt, or a change that changed nothing).
func (gs *Service) sendWire(ctx context.Context, g *group, w history.Wire) (*history.Message, error) {
	if err := gs.awaitFreshKey(ctx, g); err != nil {
		return nil, err
	}
	gs.sendMu.Lock()
	m, env, err := gs.sealAndStore(g, w)
	gs.sendMu.Unlock()
	if err != nil {
		return nil, err
	}
	switch {
	case w.Shown():
		gs.emit(EventMessage, m)
	case m != nil:
		gs.emitChange(m)
	}
	if err := gs.publishTopic(ctx, g, &pb.TopicMessage{Body: &pb.TopicMessage_Envelope{Envelope: env.toWire()}}); err != nil {
		// Stored: members get it when they pull.
		gs.log.Debug("publish", "group", g.id, "err", err)
	}
	// After the publishing: finding who is away asks after every member
	// (100 µs in a group of fifty).
	// A parked hop is about a message shown; a receipt has no m, and an
	// edit's m is the message it changed.
	traced := ""
	if w.Shown() {
		traced = m.ID
	}
	gs.parkForOffline(g, env, traced)
	return m, nil
}

// awaitFreshKey waits, while someone who left still holds the current
// epoch's key, for the new epoch that shuts them out (rekeyAfterLeave
// starts it, the members in turn): nothing is sealed with a key a former
// member holds. It waits this node's own turn and a little more, then
// fails. It waits as well for the key of an epoch that a member just
// started (an add, a removal), which is on its way.
func (gs *Service) awaitFreshKey(ctx context.Context, g *group) error {
	st := g.state()
	if len(st.departed()) == 0 && st.Keys[st.Epoch] != nil {
		return nil
	}
	rank := max(0, slices.Index(st.rekeyOrder(), gs.self))
	deadline := time.NewTimer(time.Duration(rank+1)*rekeyStagger + keyWait)
	defer deadline.Stop()
	for {
		changed := g.watch()
		st = g.state()
		if st.Status != StatusMember {
			return fmt.Errorf("%w %q (%s)", ErrNotMember, st.Name, st.Status)
		}
		if len(st.departed()) == 0 && st.Keys[st.Epoch] != nil {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("group: group %q: a member left and the new key has not arrived yet: try again once a member is online", st.Name)
		case <-ctx.Done():
			return ctx.Err()
		case <-gs.ctx.Done():
			return ErrClosed
		}
	}
}

func (gs *Service) sealAndStore(g *group, w history.Wire) (*history.Message, *envelope, error) {
	st := g.state()
	if len(st.departed()) > 0 {
		return nil, nil, fmt.Errorf("group: group %q: a member left and the new key has not arrived yet: try again", st.Name)
	}
	key := st.Keys[st.Epoch]
	if key == nil {
		return nil, nil, fmt.Errorf("group: group %q: the key of epoch %d has not arrived yet: try again once a member is online", st.Name, st.Epoch)
	}
	head, held := g.headOf(gs.self)
	seq := head.max() + 1
	now := gs.cfg.Now()
	w.SentAtMS, w.HLC = now.UnixMilli(), gs.clk.Now()
	if w.ID = history.GroupMessageID(g.gid, gs.self, seq, w.SentAtMS); w.ID == "" {
		return nil, nil, fmt.Errorf("group: the clock reads %v, which no message ID can hold", now)
	}
	env, err := sealEnvelope(gs.priv, gs.self, g.gid, seq, st.Epoch, key, w.ToWire())
	if err != nil {
		return nil, nil, err
	}
	head.add(seq)
	m := groupMessage(g.id, gs.self, gs.self, w)
	ctx := gs.ctx
	b, err := gs.ds.Batch(ctx)
	if err != nil {
		return nil, nil, err
	}
	raw, _ := proto.Marshal(env.toWire())
	if err := b.Put(ctx, groupEnvKey(g.id, history.PeerString(gs.self), seq), raw); err != nil {
		return nil, nil, err
	}
	if headRecordDue(held, head) {
		if err := history.PutJSON(ctx, b, groupHeadKey(g.id, history.PeerString(gs.self)), head); err != nil {
			return nil, nil, err
		}
	}
	if w.Shown() {
		err = gs.hist.Put(ctx, b, m)
	} else {
		m, err = gs.applyOwn(ctx, b, g, w)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := b.Commit(ctx); err != nil {
		return nil, nil, err
	}
	if err := gs.sync(ctx); err != nil {
		return nil, nil, err
	}
	g.hmu.Lock()
	g.heads[gs.self] = head
	g.hmu.Unlock()
	if w.Shown() {
		gs.own.add(m.ID, gs.cfg.Now())
	}
	return m, env, nil
}

// History returns up to limit messages of a group, older than the
// message before (empty: the newest), in conversation order.
func (gs *Service) History(ctx context.Context, id string, before string, limit int) (*history.Page, error) {
	if _, err := gs.find(id); err != nil {
		return nil, err
	}
	page, err := gs.hist.Page(ctx, history.GroupConv(id), before, limit)
	if err != nil {
		return nil, err
	}
	for _, m := range page.Messages {
		if err := gs.WithReceipts(ctx, m); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// Summary is the newest message of a group's conversation (with its
// receipts) and how many of its messages are unread.
func (gs *Service) Summary(ctx context.Context, id string) (*history.Summary, error) {
	if _, err := gs.find(id); err != nil {
		return nil, err
	}
	sum, err := gs.hist.Summary(ctx, history.GroupConv(id))
	if err != nil || sum.Last == nil {
		return sum, err
	}
	return sum, gs.WithReceipts(ctx, sum.Last)
}

// MarkRead marks every received message of a group read and, when read
// receipts are on, tells the group.
func (gs *Service) MarkRead(ctx context.Context, id string) (int, error) {
	if _, err := gs.find(id); err != nil {
		return 0, err
	}
	read, err := gs.hist.MarkRead(ctx, history.GroupConv(id))
	if err != nil || len(read) == 0 {
		return 0, err
	}
	if err := gs.sync(ctx); err != nil {
		return 0, err
	}
	if gs.cfg.ReadReceipts {
		if g, err := gs.member(id); err == nil {
			if err := gs.sendReceipts(ctx, g, history.ReceiptRead, read); err != nil {
				return 0, err
			}
		}
	}
	return len(read), nil
}

// Search finds messages of group id whose text contains text
// (case-insensitive); newest first, at most limit.
func (gs *Service) Search(ctx context.Context, text string, id string, limit int) ([]*history.Message, error) {
	return gs.hist.Search(ctx, text, history.MsgPrefix(history.GroupConv(id)), limit)
}
