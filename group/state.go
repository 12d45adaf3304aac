package group

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Member roles.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// This node's standing in a group (Info.Status).
const (
	StatusMember  = "member"
	StatusLeft    = "left"
	StatusRemoved = "removed"
)

// state is a group as its log of operations makes it, plus what this
// node keeps beside (keys, its standing, friends it still has to tell). It
// is replaced, never changed in place: readers hold a snapshot.
type state struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name"`
	Avatar     []byte                   `json:"avatar,omitempty"`
	AvatarType string                   `json:"avatar_type,omitempty"`
	Members    map[peer.ID]*groupMember `json:"members"`
	Epoch      uint64                   `json:"epoch"`
	KeyHashes  map[uint64][]byte        `json:"key_hashes"`
	// EpochMembers is everyone who was a member during each epoch: the
	// authors whose messages of that epoch count, and who may be handed
	// its key.
	EpochMembers map[uint64][]peer.ID `json:"epoch_members"`
	// Ops is how many ops the group's op DAG holds, void ones included.
	Ops uint64 `json:"ops"`
	// Heads are the DAG's heads (the ops no op follows), SHA-256 of each
	// SignedOp, ascending: the parents of this node's next op.
	Heads [][]byte `json:"heads"`
	// LastTimeMS is the latest time of an op: an op counts as no earlier
	// than the ops it follows (apply, opTime).
	LastTimeMS int64 `json:"last_time_ms,omitempty"`
	// Void lists (hex hash) the ops without effect: their actor could not
	// do them at their place in the order (doc.go).
	Void []string `json:"void,omitempty"`
	// EpochOps is, by epoch, the op (hex hash) that started it.
	EpochOps map[uint64]string `json:"epoch_ops,omitempty"`
	// Claims is, for an epoch whose op named another number (it was
	// started on a branch that the order put after another epoch), the
	// number its op named: the one its key hash and its key on the wire
	// carry.
	Claims map[uint64]uint64 `json:"claims,omitempty"`
	// Forked lists the epoch numbers that two branches used for
	// different keys: a message sealed on the other branch may not open
	// here, through no fault of whoever forwards it.
	Forked     map[uint64]bool   `json:"forked,omitempty"`
	InviteUses map[string]uint32 `json:"invite_uses,omitempty"`
	Created    time.Time         `json:"created"`
	// Frozen is, by peer ID (text), the last seq that counts of each
	// member removed or gone: what the remove or leave op fixed
	// (mayWrite). An add lifts it.
	Frozen map[string]uint64 `json:"frozen,omitempty"`
	// Removed lists (by peer ID, text) who was removed and not added back
	// since: only an admin's explicit add brings them back, not an invite.
	Removed map[string]bool `json:"removed,omitempty"`
	// Revoked lists the invites (hex ID) an admin withdrew.
	Revoked map[string]bool `json:"revoked,omitempty"`
	// Schema is the stored form's version (stateSchema); an older one is
	// rebuilt from the log at start (Service.migrate).
	Schema int `json:"schema,omitempty"`

	// Not from the log.
	// KeyPool is every key this node holds, by the hex of its key hash:
	// Keys is drawn from it (fillKeys) whenever the order changes.
	KeyPool map[string][]byte `json:"key_pool,omitempty"`
	Keys    map[uint64][]byte `json:"keys"`
	Status  string            `json:"status"`
	// Owe lists friends this node added who have not received the group
	// yet.
	Owe []peer.ID `json:"owe,omitempty"`
}

// groupStateJSON is state as stored: JSON writes a map key of a
// string type as it is, but reads it back through UnmarshalText, so
// members are keyed by the peer ID's text form.
type groupStateJSON state

type storedGroupState struct {
	*groupStateJSON
	Members map[string]*groupMember `json:"members"`
}

func (st *state) MarshalJSON() ([]byte, error) {
	out := storedGroupState{groupStateJSON: (*groupStateJSON)(st), Members: map[string]*groupMember{}}
	for p, m := range st.Members {
		out.Members[p.String()] = m
	}
	return json.Marshal(out)
}

func (st *state) UnmarshalJSON(b []byte) error {
	in := storedGroupState{groupStateJSON: (*groupStateJSON)(st)}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	st.Members = map[peer.ID]*groupMember{}
	for k, m := range in.Members {
		p, err := peer.Decode(k)
		if err != nil {
			return err
		}
		st.Members[p] = m
	}
	return nil
}

type groupMember struct {
	Role  string    `json:"role"`
	Addrs []string  `json:"addrs,omitempty"`
	Since time.Time `json:"since"`
	// AddedEpoch is the epoch of the member's latest add (create: 0): of
	// that epoch it is served only what was sent after Since.
	AddedEpoch uint64 `json:"added_epoch,omitempty"`
	// AdminAt is the place in the order of the op that made the member
	// an admin (create: 0): the lower, the more senior (dag.fold).
	AdminAt uint64 `json:"admin_at,omitempty"`
}

// stateSchema is the version of the stored state: 2 added Frozen,
// Removed, Revoked and the members' AddedEpoch (issue 17); 3 the op DAG
// (Heads, Void, EpochOps, Claims, Forked, KeyPool, AdminAt; ops stored by
// hash), rebuilt from the schema 2 log at start (Service.migrate).
const stateSchema = 3

// cloneMap is a copy of m, empty rather than nil.
func cloneMap[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return M{}
	}
	return maps.Clone(m)
}

func (st *state) clone() *state {
	c := *st
	c.Members = make(map[peer.ID]*groupMember, len(st.Members))
	for p, m := range st.Members {
		mm := *m
		c.Members[p] = &mm
	}
	c.KeyHashes = maps.Clone(st.KeyHashes)
	c.EpochMembers = maps.Clone(st.EpochMembers)
	for epoch, members := range c.EpochMembers {
		c.EpochMembers[epoch] = slices.Clone(members)
	}
	c.InviteUses = maps.Clone(st.InviteUses)
	c.Frozen, c.Removed, c.Revoked = cloneMap(st.Frozen), cloneMap(st.Removed), cloneMap(st.Revoked)
	c.Keys = maps.Clone(st.Keys)
	c.KeyPool = cloneMap(st.KeyPool)
	c.Heads = slices.Clone(st.Heads)
	c.Void = slices.Clone(st.Void)
	c.EpochOps, c.Claims, c.Forked = cloneMap(st.EpochOps), cloneMap(st.Claims), cloneMap(st.Forked)
	c.Owe = slices.Clone(st.Owe)
	if c.InviteUses == nil {
		c.InviteUses = map[string]uint32{}
	}
	if c.Keys == nil {
		c.Keys = map[uint64][]byte{}
	}
	return &c
}

func (st *state) isMember(p peer.ID) bool { return st.Members[p] != nil }
func (st *state) isAdmin(p peer.ID) bool {
	m := st.Members[p]
	return m != nil && m.Role == RoleAdmin
}

// wasMember reports whether p was a member during epoch.
func (st *state) wasMember(p peer.ID, epoch uint64) bool {
	return slices.Contains(st.EpochMembers[epoch], p)
}

// mayWrite reports whether a message of author numbered seq, sealed in
// epoch, counts: its author was a member in that epoch, and is one still
// or numbered it no later than the head its remove or leave op froze. A
// removed member keeps the keys of its epochs; this is what stops it from
// sealing more with them, by any path (gossip, pull, mailbox).
func (st *state) mayWrite(author peer.ID, epoch, seq uint64) bool {
	if !st.wasMember(author, epoch) {
		return false
	}
	return st.isMember(author) || seq <= st.Frozen[author.String()]
}

// wasEver reports whether p was a member in some epoch.
func (st *state) wasEver(p peer.ID) bool {
	for _, members := range st.EpochMembers {
		if slices.Contains(members, p) {
			return true
		}
	}
	return false
}

// departed lists who holds the current epoch's key but is no longer a
// member (a leave since the epoch began): until a new epoch, they can read
// what is sent.
func (st *state) departed() []peer.ID {
	var out []peer.ID
	for _, p := range st.EpochMembers[st.Epoch] {
		if !st.isMember(p) {
			out = append(out, p)
		}
	}
	return out
}

// rekeyOrder is who starts a new epoch after a leave, first to last: the
// admins, then the other members, each by ID.
func (st *state) rekeyOrder() []peer.ID {
	order := st.admins()
	var others []peer.ID
	for p, m := range st.Members {
		if m.Role != RoleAdmin {
			others = append(others, p)
		}
	}
	slices.Sort(others)
	return append(order, others...)
}

func (st *state) admins() []peer.ID {
	var out []peer.ID
	for p, m := range st.Members {
		if m.Role == RoleAdmin {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// stateFromCreate starts a group's state from its create op.
func stateFromCreate(o *op) (*state, error) {
	if o.Kind != OpCreate {
		return nil, fmt.Errorf("%w: the log does not start with create", ErrBadFrame)
	}
	gid := groupIDOf(o)
	t := time.UnixMilli(o.TimeMS)
	st := &state{
		ID: hex.EncodeToString(gid), Name: o.Name, Avatar: o.Avatar, AvatarType: o.AvatarType,
		Members:      map[peer.ID]*groupMember{o.Actor: {Role: RoleAdmin, Addrs: o.Addrs, Since: t}},
		KeyHashes:    map[uint64][]byte{0: o.KeyHash},
		EpochMembers: map[uint64][]peer.ID{0: {o.Actor}},
		Ops:          1, Heads: [][]byte{o.hash[:]}, LastTimeMS: o.TimeMS, Created: t,
		InviteUses: map[string]uint32{}, Keys: map[uint64][]byte{}, KeyPool: map[string][]byte{}, Status: StatusMember,
		Frozen: map[string]uint64{}, Removed: map[string]bool{}, Revoked: map[string]bool{}, Schema: stateSchema,
		EpochOps: map[uint64]string{0: hex.EncodeToString(o.hash[:])}, Claims: map[uint64]uint64{}, Forked: map[uint64]bool{},
	}
	return st, nil
}

// claimOf is the epoch number that the op that started epoch named.
func (st *state) claimOf(epoch uint64) uint64 {
	if c, ok := st.Claims[epoch]; ok {
		return c
	}
	return epoch
}

// epochOf is the epoch o started (ok false: none, or it is void).
func (st *state) epochOf(o *op) (uint64, bool) {
	h := hex.EncodeToString(o.hash[:])
	for epoch, oh := range st.EpochOps {
		if oh == h && epoch > 0 {
			return epoch, true
		}
	}
	return 0, false
}

// fillKeys draws each epoch's key from the pool: the key whose hash the
// op that started the epoch names. A key of a void op is never drawn.
func (st *state) fillKeys() {
	st.Keys = map[uint64][]byte{}
	for epoch, h := range st.KeyHashes {
		if k := st.KeyPool[hex.EncodeToString(h)]; k != nil {
			st.Keys[epoch] = k
		}
	}
}

// carry keeps what is not from the log (keys, standing, friends owed)
// of old in st, a state folded anew.
func (st *state) carry(old *state) {
	st.KeyPool, st.Status, st.Owe = maps.Clone(old.KeyPool), old.Status, slices.Clone(old.Owe)
	if st.KeyPool == nil {
		st.KeyPool = map[string][]byte{}
	}
	st.fillKeys()
}

// apply applies o, at time t (its time, or that of an op it follows if
// later: dag.fold) and place pos in the order, if its actor may do it
// there; else it changes nothing and says why (the op is void there).
// An op that starts an epoch starts the next one, whatever number it
// named (Claims).
func (st *state) apply(o *op, t time.Time, pos uint64) error {
	deny := func(why string) error {
		return fmt.Errorf("%w: %s op by %s: %s", ErrNotAdmin, o.Kind, o.Actor, why)
	}
	if hex.EncodeToString(o.GroupID) != st.ID {
		return fmt.Errorf("%w: op of another group", ErrBadFrame)
	}
	if !st.isMember(o.Actor) {
		return deny("not a member")
	}
	if err := st.check(o, t, deny); err != nil {
		return err
	}
	switch o.Kind {
	case OpAdd:
		if o.Invite != nil {
			st.InviteUses[hex.EncodeToString(o.Invite.ID)]++
		}
		st.Members[o.Target] = &groupMember{Role: RoleMember, Addrs: o.Addrs, Since: t, AddedEpoch: st.Epoch}
		if len(o.KeyHash) > 0 {
			// The add starts an epoch: the newcomer gets its key only, and
			// so reads nothing sent before.
			st.startEpoch(o)
			st.Members[o.Target].AddedEpoch = st.Epoch
		} else if !slices.Contains(st.EpochMembers[st.Epoch], o.Target) {
			st.EpochMembers[st.Epoch] = append(st.EpochMembers[st.Epoch], o.Target)
		}
		delete(st.Frozen, o.Target.String())
		delete(st.Removed, o.Target.String())
	case OpRemove, OpRekey:
		if o.Kind == OpRemove {
			delete(st.Members, o.Target)
			st.Frozen[o.Target.String()] = o.LastSeq
			st.Removed[o.Target.String()] = true
		}
		st.startEpoch(o)
	case OpLeave:
		delete(st.Members, o.Actor)
		st.Frozen[o.Actor.String()] = o.LastSeq
	case OpPromote:
		st.Members[o.Target].Role = RoleAdmin
		st.Members[o.Target].AdminAt = pos
	case OpRevoke:
		st.Revoked[hex.EncodeToString(o.InviteID)] = true
	case OpRename:
		st.Name, st.Avatar, st.AvatarType = o.Name, o.Avatar, o.AvatarType
	}
	return nil
}

// check is whether o's actor (a member) may do o at time t, changing
// nothing.
func (st *state) check(o *op, t time.Time, deny func(string) error) error {
	switch o.Kind {
	case OpAdd:
		if st.isMember(o.Target) {
			return deny("already a member")
		}
		if !st.isAdmin(o.Actor) && o.Invite == nil {
			return deny("not an admin, and no invite")
		}
		iv := o.Invite
		if iv == nil {
			return nil
		}
		// An add by invite obeys the invite, whoever admits: an admin
		// too cannot stretch a code past its uses or its expiry.
		switch {
		case st.Removed[o.Target.String()]:
			return deny("the target was removed: only an admin's explicit add brings it back")
		case st.Revoked[hex.EncodeToString(iv.ID)]:
			return deny("the invite was revoked")
		case hex.EncodeToString(iv.GroupID) != st.ID || !st.isAdmin(iv.Admin):
			return deny("the invite is not this group's admins'")
		case !t.Before(iv.Expires):
			return deny("the invite had expired")
		case iv.Uses != 0 && st.InviteUses[hex.EncodeToString(iv.ID)] >= iv.Uses:
			return deny("the invite was used up")
		}
	case OpRemove, OpRekey:
		// After a leave, any member may start the epoch that shuts the
		// leaver out: an admin may be away for days.
		if !st.isAdmin(o.Actor) && (o.Kind == OpRemove || len(st.departed()) == 0) {
			return deny("not an admin")
		}
		if o.Kind == OpRemove && (!st.isMember(o.Target) || o.Target == o.Actor) {
			return deny("the target is not another member")
		}
	case OpLeave:
	case OpPromote:
		if !st.isAdmin(o.Actor) || !st.isMember(o.Target) {
			return deny("not an admin, or the target is not a member")
		}
	case OpRevoke, OpRename:
		if !st.isAdmin(o.Actor) {
			return deny("not an admin")
		}
	default:
		return fmt.Errorf("%w: op %q", ErrBadFrame, o.Kind)
	}
	return nil
}

// startEpoch starts the epoch o starts: the next one.
func (st *state) startEpoch(o *op) {
	st.Epoch++
	st.KeyHashes[st.Epoch] = o.KeyHash
	st.EpochMembers[st.Epoch] = slices.Sorted(maps.Keys(st.Members))
	st.EpochOps[st.Epoch] = hex.EncodeToString(o.hash[:])
	if o.Epoch != st.Epoch {
		st.Claims[st.Epoch] = o.Epoch
		st.Forked[st.Epoch], st.Forked[o.Epoch] = true, true
	}
}

// opTime is the time a new op following st's heads takes: now, or the
// latest op's time when this node's clock is behind the actor of that
// one, so that the times never go back along the DAG.
func (st *state) opTime(now time.Time) int64 { return max(now.UnixMilli(), st.LastTimeMS) }

// maxOpAhead bounds how far ahead of this node's clock an op may be
// dated: as with message clocks (maxSkew), a clock off by minutes is
// normal, one off by hours is not, and a far-future op would hold every
// later op (and every invite) hostage.
const maxOpAhead = time.Hour
