package group

// The op DAG and the order that folds it into a state (the rule and its
// proof sketch are in doc.go).

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// dag is a group's op set: every op this node holds, each with every op
// it follows (its parents) held as well. Ops are only added, never
// removed. Not safe for concurrent use (Service.opMu guards it).
type dag struct {
	create   *op
	ops      map[[32]byte]*op
	children map[[32]byte][][32]byte
	heads    map[[32]byte]bool
	// commits are the key hashes (hex) the ops name: the keys worth
	// keeping, a void op's too (a later op may make it count).
	commits map[string]bool
	// order is the order of the last fold of the whole set (nil: stale).
	order []*op
	// holders is, by epoch op, whom its actor handed the key (taint):
	// the ops are immutable, so is this.
	holders map[[32]byte][]peer.ID
	// admitted is, by head, the state its op was admitted in (the fold
	// of its ancestors and itself), while it is a head: the op that
	// follows it alone, on a branch beside another, is checked against
	// it instead of a fold of all its ancestors anew (which made two
	// interleaved branches quadratic).
	// It holds at most maxAdmitted: an admin's many forks cost a fold
	// each, not a state each.
	admitted map[[32]byte]*state
	// folds counts the folds of a part of the set (a test reads it).
	folds int
}

// maxAdmitted bounds the heads whose admitted state a DAG keeps.
const maxAdmitted = 8

func newDAG(create *op) *dag {
	d := &dag{create: create, ops: map[[32]byte]*op{create.hash: create}, children: map[[32]byte][][32]byte{},
		heads: map[[32]byte]bool{create.hash: true}, commits: map[string]bool{hex.EncodeToString(create.KeyHash): true},
		order: []*op{create}, holders: map[[32]byte][]peer.ID{}, admitted: map[[32]byte]*state{}}
	return d
}

// hash32 is b as a hash (ok: 32 bytes).
func hash32(b []byte) (h [32]byte, ok bool) {
	if len(b) != len(h) {
		return h, false
	}
	return [32]byte(b), true
}

func (d *dag) has(h [32]byte) bool { return d.ops[h] != nil }

// ready reports whether every parent of o is held.
func (d *dag) ready(o *op) bool {
	for _, p := range o.parentHashes() {
		if h, ok := hash32(p); !ok || !d.has(h) {
			return false
		}
	}
	return o.Kind != OpCreate
}

// followsAll reports whether parents are exactly the heads: an op with
// them follows every op held, and comes last in the order.
func (d *dag) followsAll(parents [][]byte) bool {
	if len(parents) != len(d.heads) {
		return false
	}
	for _, p := range parents {
		if h, ok := hash32(p); !ok || !d.heads[h] {
			return false
		}
	}
	return true
}

// add adds o, whose parents are held; admitted is the state admit
// returned for it (nil: o taken as stored), which the DAG keeps while o
// is a head: nobody may change it after. The order stays valid when o
// follows every op; otherwise it must be folded anew (fold).
func (d *dag) add(o *op, admitted *state) {
	last := d.order != nil && d.followsAll(o.parentHashes())
	d.ops[o.hash] = o
	for _, p := range o.parentHashes() {
		h := [32]byte(p)
		d.children[h] = append(d.children[h], o.hash)
		delete(d.heads, h)
		delete(d.admitted, h)
	}
	d.heads[o.hash] = true
	if admitted != nil && len(d.heads) <= maxAdmitted {
		d.admitted[o.hash] = admitted
	}
	if len(o.KeyHash) > 0 {
		d.commits[hex.EncodeToString(o.KeyHash)] = true
	}
	if last {
		d.order = append(d.order, o)
	} else {
		d.order = nil
	}
}

// headList is the heads, ascending: the parents of this node's next op.
func (d *dag) headList() [][]byte { return sortedHashes(d.heads) }

func sortedHashes(set map[[32]byte]bool) [][]byte {
	out := make([][]byte, 0, len(set))
	for h := range set {
		out = append(out, bytes.Clone(h[:]))
	}
	slices.SortFunc(out, bytes.Compare)
	return out
}

// ancestors is the ops roots name that are held, and every op they
// follow.
func (d *dag) ancestors(roots [][]byte) map[[32]byte]bool {
	seen := map[[32]byte]bool{}
	var stack [][32]byte
	for _, r := range roots {
		if h, ok := hash32(r); ok && d.has(h) && !seen[h] {
			seen[h] = true
			stack = append(stack, h)
		}
	}
	for len(stack) > 0 {
		o := d.ops[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		for _, p := range o.parentHashes() {
			if h := [32]byte(p); !seen[h] {
				seen[h] = true
				stack = append(stack, h)
			}
		}
	}
	return seen
}

// sorted is every op in the order (parents first).
func (d *dag) sorted() []*op {
	if d.order == nil {
		d.fold(nil, false)
	}
	return d.order
}

// since is, in the order, the ops held that theirs (the heads of another
// member's DAG) do not hold; unknown reports whether theirs names ops
// this node does not hold.
func (d *dag) since(theirs [][]byte) (ops []*op, unknown bool) {
	for _, h := range theirs {
		if k, ok := hash32(h); !ok || !d.has(k) {
			unknown = true
		}
	}
	if d.followsAll(theirs) {
		return nil, false // in step
	}
	held := d.ancestors(theirs)
	for _, o := range d.sorted() {
		if !held[o.hash] {
			ops = append(ops, o)
		}
	}
	return ops, unknown
}

// rank is where o's actor stands in st for the order: an admin by
// seniority (AdminAt), then everyone else.
func rank(st *state, o *op) uint64 {
	if m := st.Members[o.Actor]; m != nil && m.Role == RoleAdmin {
		return m.AdminAt
	}
	return math.MaxUint64
}

// before reports whether a comes before b among ops ready at once in
// st: the more senior actor first, then the earlier time, then the
// lower hash.
func before(st *state, a, b *op) bool {
	if ra, rb := rank(st, a), rank(st, b); ra != rb {
		return ra < rb
	}
	if a.TimeMS != b.TimeMS {
		return a.TimeMS < b.TimeMS
	}
	return bytes.Compare(a.hash[:], b.hash[:]) < 0
}

// fold is the state that the ops of only (nil: all) make, applied in
// the order of the rule (doc.go): an op comes once every op it follows
// has; of the ops ready at once, the first by before. An op its actor
// may not do at its place is void: counted, without effect. With taint,
// an epoch whose op's actor did not know every op before it in the
// order counts among its members whoever that actor handed its key
// (departed then names those no longer members, and a new epoch is due).
// The order of a fold of all is kept (sorted).
func (d *dag) fold(only map[[32]byte]bool, taint bool) *state {
	if only != nil {
		d.folds++
	}
	in := func(h [32]byte) bool { return only == nil || only[h] }
	st, _ := stateFromCreate(d.create)
	eff := map[[32]byte]int64{d.create.hash: d.create.TimeMS}
	missing := map[[32]byte]int{}
	placed := map[[32]byte]bool{d.create.hash: true} // the heads of what is placed
	order := []*op{d.create}
	var ready []*op
	release := func(h [32]byte) {
		for _, c := range d.children[h] {
			if !in(c) {
				continue
			}
			if _, ok := missing[c]; !ok {
				missing[c] = len(d.ops[c].parentHashes())
			}
			if missing[c]--; missing[c] == 0 {
				ready = append(ready, d.ops[c])
			}
		}
	}
	release(d.create.hash)
	for len(ready) > 0 {
		i := 0
		for j := range ready {
			if before(st, ready[j], ready[i]) {
				i = j
			}
		}
		o := ready[i]
		ready = slices.Delete(ready, i, i+1)
		t := o.TimeMS
		for _, p := range o.parentHashes() {
			t = max(t, eff[[32]byte(p)])
		}
		eff[o.hash] = t
		knewAll := len(o.parentHashes()) == len(placed)
		for _, p := range o.parentHashes() {
			knewAll = knewAll && placed[[32]byte(p)]
			delete(placed, [32]byte(p))
		}
		placed[o.hash] = true
		if err := st.apply(o, time.UnixMilli(t), st.Ops); err != nil {
			st.Void = append(st.Void, hex.EncodeToString(o.hash[:]))
			if o.startsEpoch() {
				st.Forked[o.Epoch] = true // its key sealed messages on its branch
			}
		} else if taint && o.startsEpoch() && !knewAll {
			d.taint(st, o)
		}
		st.Ops++
		st.LastTimeMS = max(st.LastTimeMS, t)
		order = append(order, o)
		release(o.hash)
	}
	st.Heads = sortedHashes(placed)
	if only == nil {
		d.order = order
	}
	return st
}

// taint counts among the members of the epoch o just started in st
// whoever o's actor handed its key: the members as o's actor held the
// group when it appended o (the state of o's ancestors, with o).
func (d *dag) taint(st *state, o *op) {
	held, ok := d.holders[o.hash]
	if !ok {
		// Who is a member does not depend on taint (it only makes a
		// rekey by a member valid), so the past is folded without.
		past := d.fold(d.ancestors(o.parentHashes()), false)
		t := time.UnixMilli(max(o.TimeMS, past.LastTimeMS))
		if past.apply(o, t, past.Ops) == nil {
			held = slices.Collect(maps.Keys(past.Members))
		}
		d.holders[o.hash] = held
	}
	holders := append(slices.Clone(st.EpochMembers[st.Epoch]), held...)
	slices.Sort(holders)
	st.EpochMembers[st.Epoch] = slices.Compact(holders)
}

// admit checks o (parents held, not held itself) against the group as
// its actor held it: the fold of o's ancestors, which is cur (the fold
// of all) when o follows every op held (cur nil: fold anyway), and the
// state its parent was admitted in when o follows one head alone. It
// returns that state with o applied. An op that fails is one its actor
// could not sign honestly: refused, whatever else is held.
func (d *dag) admit(o *op, cur *state) (*state, error) {
	var past *state
	parents := o.parentHashes()
	switch {
	case cur != nil && d.followsAll(parents):
		past = cur.clone()
	case len(parents) == 1 && d.admitted[[32]byte(parents[0])] != nil:
		past = d.admitted[[32]byte(parents[0])].clone()
	default:
		past = d.fold(d.ancestors(parents), true)
	}
	if o.startsEpoch() && o.Epoch != past.Epoch+1 {
		return nil, fmt.Errorf("%w: %s op starts epoch %d after %d", ErrBadFrame, o.Kind, o.Epoch, past.Epoch)
	}
	t := time.UnixMilli(max(o.TimeMS, past.LastTimeMS))
	if err := past.apply(o, t, past.Ops); err != nil {
		return nil, err
	}
	past.Ops++
	past.LastTimeMS, past.Heads = t.UnixMilli(), [][]byte{bytes.Clone(o.hash[:])}
	return past, nil
}

// poolKeys pools the keys of keys that d's ops commit to and st does not
// hold yet, and returns how many.
func (st *state) poolKeys(d *dag, gid []byte, keys []epochKey) int {
	n := 0
	for _, k := range keys {
		if h := hex.EncodeToString(keyHash(gid, k.claim, k.key)); d.commits[h] && st.KeyPool[h] == nil {
			st.KeyPool[h] = k.key
			n++
		}
	}
	return n
}

// dagFromOps checks a whole op set from its create op (each op against
// the ops it follows), in any order, and folds it.
func dagFromOps(ops []*op) (*dag, *state, error) {
	d, err := buildDAG(ops, true)
	if err != nil {
		return nil, nil, err
	}
	return d, d.fold(nil, true), nil
}

// buildDAG is the DAG of ops, in any order; with check each op is
// checked against the ops it follows (admit), else taken as it is (ops
// this node stored, checked when they came).
func buildDAG(ops []*op, check bool) (*dag, error) {
	var create *op
	for _, o := range ops {
		if o.Kind == OpCreate {
			if create != nil && create.hash != o.hash {
				return nil, fmt.Errorf("%w: two create ops", ErrBadFrame)
			}
			create = o
		}
	}
	if create == nil {
		return nil, fmt.Errorf("%w: the ops hold no create op", ErrBadFrame)
	}
	// cur is the fold of all held while the ops come in order: each op
	// that follows all is checked against it, not against a fold anew.
	cur, err := stateFromCreate(create)
	if err != nil {
		return nil, err
	}
	d := newDAG(create)
	// Each op is taken once it is ready: at once, or when the last op
	// it follows comes (waiting holds it under each missing parent), so
	// the ops are added in an order that respects the DAG in one pass,
	// whatever their order here (a pass per op, ops given backwards,
	// was quadratic in up to maxJoinItems ops).
	take := func(o *op) error {
		if !check {
			d.add(o, nil)
			return nil
		}
		follows := d.followsAll(o.parentHashes())
		if cur == nil && follows {
			cur = d.fold(nil, true)
		}
		next, err := d.admit(o, cur)
		if err != nil {
			return err
		}
		d.add(o, next)
		if cur = nil; follows {
			cur = next
		}
		return nil
	}
	waiting := map[[32]byte][]*op{}
	for _, o := range ops {
		if o.Kind == OpCreate || d.has(o.hash) {
			continue
		}
		if !d.ready(o) {
			for _, p := range o.parentHashes() {
				if h, ok := hash32(p); ok && !d.has(h) {
					waiting[h] = append(waiting[h], o)
				}
			}
			continue
		}
		for next := []*op{o}; len(next) > 0; {
			o := next[len(next)-1]
			next = next[:len(next)-1]
			if d.has(o.hash) || !d.ready(o) {
				continue
			}
			if err := take(o); err != nil {
				return nil, err
			}
			next = append(next, waiting[o.hash]...)
			delete(waiting, o.hash)
		}
	}
	missing := 0
	for _, o := range ops {
		if o.Kind != OpCreate && !d.has(o.hash) {
			missing++
		}
	}
	if missing > 0 {
		return nil, fmt.Errorf("%w: %d ops follow ops not held", ErrBadFrame, missing)
	}
	return d, nil
}

// without is the DAG of d's ops but drop, ops added last (no op held
// follows them but another of drop): d as it was before they came.
func (d *dag) without(drop []*op) *dag {
	ops := make([]*op, 0, len(d.ops))
	for h, o := range d.ops {
		if !slices.ContainsFunc(drop, func(x *op) bool { return x.hash == h }) {
			ops = append(ops, o)
		}
	}
	nd, err := buildDAG(ops, false)
	if err != nil {
		return d // not so: the ops held follow them
	}
	return nd
}

// standing is this node's standing in a state folded anew, from the one
// before: a member while the fold says so, else left if it left (or had),
// else removed.
func standing(prev *state, next *state, self peer.ID, fresh []*op) string {
	switch {
	case next.isMember(self):
		return StatusMember
	case prev.Status == StatusLeft || slices.ContainsFunc(fresh, func(o *op) bool { return o.Kind == OpLeave && o.Actor == self }):
		return StatusLeft
	}
	return StatusRemoved
}
