package group

import (
	"bytes"
	"crypto/sha256"
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
	Ops          uint64               `json:"ops"`
	LastHash     []byte               `json:"last_hash"`
	// LastTimeMS is the time of the latest op: an op counts as no earlier
	// than the one it follows (apply, opTime).
	LastTimeMS int64             `json:"last_time_ms,omitempty"`
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
	Keys   map[uint64][]byte `json:"keys"`
	Status string            `json:"status"`
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
}

// stateSchema is the version of the stored state: 2 added Frozen,
// Removed, Revoked and the members' AddedEpoch (issue 17).
const stateSchema = 2

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
	c.Frozen, c.Removed, c.Revoked = maps.Clone(st.Frozen), maps.Clone(st.Removed), maps.Clone(st.Revoked)
	if c.Frozen == nil {
		c.Frozen = map[string]uint64{}
	}
	if c.Removed == nil {
		c.Removed = map[string]bool{}
	}
	if c.Revoked == nil {
		c.Revoked = map[string]bool{}
	}
	c.Keys = maps.Clone(st.Keys)
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
		Ops:          1, LastHash: o.hash[:], LastTimeMS: o.TimeMS, Created: t,
		InviteUses: map[string]uint32{}, Keys: map[uint64][]byte{}, Status: StatusMember,
		Frozen: map[string]uint64{}, Removed: map[string]bool{}, Revoked: map[string]bool{}, Schema: stateSchema,
	}
	return st, nil
}

// stateFromOps checks a whole log from its create op.
func stateFromOps(ops []*op) (*state, error) {
	if len(ops) == 0 {
		return nil, fmt.Errorf("%w: an empty log", ErrBadFrame)
	}
	st, err := stateFromCreate(ops[0])
	if err != nil {
		return nil, err
	}
	for _, o := range ops[1:] {
		if err := st.apply(o); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// apply checks that o may follow the log and applies it. st must be a
// clone: on error it is left half-changed.
func (st *state) apply(o *op) error {
	deny := func(why string) error {
		return fmt.Errorf("%w: %s op %d by %s: %s", ErrNotAdmin, o.Kind, o.Index, o.Actor, why)
	}
	if hex.EncodeToString(o.GroupID) != st.ID {
		return fmt.Errorf("%w: op of another group", ErrBadFrame)
	}
	if o.Index != st.Ops || !bytes.Equal(o.Prev, st.LastHash) {
		return fmt.Errorf("%w: op %d does not follow op %d", ErrBadFrame, o.Index, st.Ops-1)
	}
	if !st.isMember(o.Actor) {
		return deny("not a member")
	}
	// The time of an op is its actor's word, and an add by invite is
	// checked against it: an op counts as no earlier than the one it
	// follows, so that an add dated back cannot slip an invite in that has
	// expired since. (Refusing such an op outright would refuse honest
	// logs: two admins' clocks differ.)
	t := time.UnixMilli(max(o.TimeMS, st.LastTimeMS))
	switch o.Kind {
	case OpAdd:
		if st.isMember(o.Target) {
			return deny("already a member")
		}
		if !st.isAdmin(o.Actor) && o.Invite == nil {
			return deny("not an admin, and no invite")
		}
		if o.Invite != nil && st.Removed[o.Target.String()] {
			return deny("the target was removed: only an admin's explicit add brings it back")
		}
		if o.Invite != nil && st.Revoked[hex.EncodeToString(o.Invite.ID)] {
			return deny("the invite was revoked")
		}
		// An add by invite obeys the invite, whoever admits: an admin
		// too cannot stretch a code past its uses or its expiry.
		if iv := o.Invite; iv != nil {
			if hex.EncodeToString(iv.GroupID) != st.ID || !st.isAdmin(iv.Admin) {
				return deny("the invite is not this group's admins'")
			}
			if !t.Before(iv.Expires) {
				return deny("the invite had expired")
			}
			if iv.Uses != 0 && st.InviteUses[hex.EncodeToString(iv.ID)] >= iv.Uses {
				return deny("the invite was used up")
			}
		}
		if o.Invite != nil {
			st.InviteUses[hex.EncodeToString(o.Invite.ID)]++
		}
		st.Members[o.Target] = &groupMember{Role: RoleMember, Addrs: o.Addrs, Since: t, AddedEpoch: st.Epoch}
		if len(o.KeyHash) > 0 {
			// The add starts an epoch: the newcomer gets its key only, and
			// so reads nothing sent before.
			if o.Epoch != st.Epoch+1 {
				return fmt.Errorf("%w: add op starts epoch %d after %d", ErrBadFrame, o.Epoch, st.Epoch)
			}
			st.Epoch = o.Epoch
			st.KeyHashes[o.Epoch] = o.KeyHash
			st.EpochMembers[o.Epoch] = slices.Sorted(maps.Keys(st.Members))
			st.Members[o.Target].AddedEpoch = o.Epoch
		} else if !slices.Contains(st.EpochMembers[st.Epoch], o.Target) {
			st.EpochMembers[st.Epoch] = append(st.EpochMembers[st.Epoch], o.Target)
		}
		delete(st.Frozen, o.Target.String())
		delete(st.Removed, o.Target.String())
	case OpRemove, OpRekey:
		// After a leave, any member may start the epoch that shuts the
		// leaver out: an admin may be away for days.
		if !st.isAdmin(o.Actor) && (o.Kind == OpRemove || len(st.departed()) == 0) {
			return deny("not an admin")
		}
		if o.Epoch != st.Epoch+1 {
			return fmt.Errorf("%w: %s op starts epoch %d after %d", ErrBadFrame, o.Kind, o.Epoch, st.Epoch)
		}
		if o.Kind == OpRemove {
			if !st.isMember(o.Target) || o.Target == o.Actor {
				return deny("the target is not another member")
			}
			delete(st.Members, o.Target)
			st.Frozen[o.Target.String()] = o.LastSeq
			st.Removed[o.Target.String()] = true
		}
		st.Epoch = o.Epoch
		st.KeyHashes[o.Epoch] = o.KeyHash
		st.EpochMembers[o.Epoch] = slices.Sorted(maps.Keys(st.Members))
	case OpLeave:
		delete(st.Members, o.Actor)
		st.Frozen[o.Actor.String()] = o.LastSeq
	case OpPromote:
		if !st.isAdmin(o.Actor) || !st.isMember(o.Target) {
			return deny("not an admin, or the target is not a member")
		}
		st.Members[o.Target].Role = RoleAdmin
	case OpRevoke:
		if !st.isAdmin(o.Actor) {
			return deny("not an admin")
		}
		st.Revoked[hex.EncodeToString(o.InviteID)] = true
	case OpRename:
		if !st.isAdmin(o.Actor) {
			return deny("not an admin")
		}
		st.Name, st.Avatar, st.AvatarType = o.Name, o.Avatar, o.AvatarType
	default:
		return fmt.Errorf("%w: op %q", ErrBadFrame, o.Kind)
	}
	st.Ops++
	h := sha256.Sum256(o.raw)
	st.LastHash = h[:]
	st.LastTimeMS = t.UnixMilli()
	return nil
}

// opTime is the time a new op following st takes: now, or the time of the
// op before when this node's clock is behind the actor of that one, so
// that the log's times never go back.
func (st *state) opTime(now time.Time) int64 { return max(now.UnixMilli(), st.LastTimeMS) }

// maxOpAhead bounds how far ahead of this node's clock an op may be
// dated: as with message clocks (maxSkew), a clock off by minutes is
// normal, one off by hours is not, and a far-future op would hold every
// later op (and every invite) hostage.
const maxOpAhead = time.Hour
