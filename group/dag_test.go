package group

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/group/pb"
)

// opNet signs ops of a few actors on one group's DAG, for tests of the
// fold without hosts.
type opNet struct {
	t    *testing.T
	keys map[peer.ID]crypto.PrivKey
	gid  []byte
	d    *dag
	all  []*op
	at   int64
}

func newOpNet(t *testing.T, n int) (*opNet, []peer.ID) {
	net := &opNet{t: t, keys: map[peer.ID]crypto.PrivKey{}, at: 1_700_000_000_000}
	var ids []peer.ID
	for range n {
		k, id := testPeer(t)
		net.keys[id] = k
		ids = append(ids, id)
	}
	create := &op{Kind: OpCreate, Actor: ids[0], Name: "g", TimeMS: net.at, Nonce: make([]byte, 16), KeyHash: keyHash(nil, 0, newKey())}
	if err := signOp(net.keys[ids[0]], create); err != nil {
		t.Fatal(err)
	}
	net.gid, net.d, net.all = groupIDOf(create), newDAG(create), []*op{create}
	return net, ids
}

// sign is an op of kind by actor on target following parents (nil: the
// DAG's heads), dated at (0: a moment after the last), checked against
// its ancestors; it is not added.
func (n *opNet) sign(actor peer.ID, kind string, target peer.ID, parents [][]byte, at int64) *op {
	n.t.Helper()
	if parents == nil {
		parents = n.d.headList()
	}
	if at == 0 {
		n.at += 1000
		at = n.at
	}
	past := n.d.fold(n.d.ancestors(parents), true)
	o := &op{Kind: kind, GroupID: n.gid, Parents: parents, Actor: actor, Target: target, TimeMS: at}
	if kind == OpRemove || kind == OpRekey || kind == OpAdd {
		o.Epoch, o.KeyHash = past.Epoch+1, keyHash(n.gid, past.Epoch+1, newKey())
	}
	if err := signOp(n.keys[actor], o); err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.d.admit(o, nil); err != nil {
		n.t.Fatalf("%s by %s: %v", kind, actor, err)
	}
	return o
}

// do signs an op (sign) and adds it.
func (n *opNet) do(actor peer.ID, kind string, target peer.ID, parents [][]byte, at int64) *op {
	n.t.Helper()
	o := n.sign(actor, kind, target, parents, at)
	n.d.add(o, nil)
	n.all = append(n.all, o)
	return o
}

// renameOp signs the i-th of a series of renames by actor, following
// parents, without adding it to the DAG.
func (n *opNet) renameOp(actor peer.ID, parents [][]byte, i int) *op {
	n.t.Helper()
	o := &op{Kind: OpRename, GroupID: n.gid, Parents: parents, Actor: actor, Name: fmt.Sprint("g", i), TimeMS: n.at + int64(i+1)}
	if err := signOp(n.keys[actor], o); err != nil {
		n.t.Fatal(err)
	}
	return o
}

// logOf is the part of a state the log makes, for comparing folds.
func logOf(t *testing.T, st *state) string {
	c := st.clone()
	c.Keys, c.KeyPool, c.Status, c.Owe = nil, nil, "", nil
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkFold checks that the ops make the same state and order whatever
// order they come in (here: backwards, so that each op comes before the
// ops it follows).
func checkFold(t *testing.T, d *dag, st *state, ops []*op) {
	t.Helper()
	shuffled := slices.Clone(ops)
	slices.Reverse(shuffled)
	d2, st2, err := dagFromOps(shuffled)
	if err != nil {
		t.Fatalf("the same ops in another order: %v", err)
	}
	if a, b := logOf(t, st), logOf(t, st2); a != b {
		t.Fatalf("two folds of one op set differ:\n%s\n%s", a, b)
	}
	o1, o2 := d.sorted(), d2.sorted()
	if len(o1) != len(o2) {
		t.Fatalf("orders of %d and %d ops", len(o1), len(o2))
	}
	for i := range o1 {
		if o1[i].hash != o2[i].hash {
			t.Fatalf("the orders differ at %d", i)
		}
	}
}

func isVoid(st *state, o *op) bool { return slices.Contains(st.Void, hex.EncodeToString(o.hash[:])) }

// Two admins remove each other while partitioned: the senior admin's
// removal stands, whatever the ops' times, and the other's op is void: a
// removed admin's competing op never undoes its own removal. Every
// member folding the same ops, in any order, reaches the same state.
func TestFoldMutualRemoval(t *testing.T) {
	for _, backdated := range []bool{false, true} {
		net, ids := newOpNet(t, 4)
		a, b, c, d := ids[0], ids[1], ids[2], ids[3]
		for _, p := range []peer.ID{b, c, d} {
			net.do(a, OpAdd, p, nil, 0)
		}
		net.do(a, OpPromote, b, nil, 0)
		fork := net.d.headList()
		at := int64(0)
		if backdated {
			at = net.at - 500 // before a's ops: it would come first by time
		}
		byB := net.do(b, OpRemove, a, fork, at)
		byA := net.do(a, OpRemove, b, fork, 0)
		st := net.d.fold(nil, true)
		if !st.isMember(a) || st.isMember(b) || !isVoid(st, byB) || isVoid(st, byA) {
			t.Fatalf("backdated %v: a member %v, b member %v, b's op void %v, a's void %v", backdated,
				st.isMember(a), st.isMember(b), isVoid(st, byB), isVoid(st, byA))
		}
		if !st.isMember(c) || !st.isMember(d) || st.EpochOps[st.Epoch] != hex.EncodeToString(byA.hash[:]) {
			t.Fatalf("the members or the epoch: %v", st.EpochOps)
		}
		checkFold(t, net.d, st, net.all)
		// b's later ops, on its branch, are void too.
		late := net.do(b, OpRename, "", [][]byte{byB.hash[:]}, 0)
		st = net.d.fold(nil, true)
		if !isVoid(st, late) || st.isMember(b) {
			t.Fatal("a removed admin's later op counts")
		}
		checkFold(t, net.d, st, net.all)
	}
}

// An admin sends two different ops to two members (equivocation): both
// are kept, in one order, and a later op that merges the branches
// follows both.
func TestFoldEquivocation(t *testing.T) {
	net, ids := newOpNet(t, 4)
	a, b, c, d := ids[0], ids[1], ids[2], ids[3]
	net.do(a, OpAdd, b, nil, 0)
	net.do(a, OpAdd, c, nil, 0)
	fork := net.d.headList()
	x := net.do(a, OpRemove, c, fork, 0)
	y := net.do(a, OpAdd, d, fork, 0)
	st := net.d.fold(nil, true)
	if isVoid(st, x) || isVoid(st, y) || st.isMember(c) || !st.isMember(d) || st.Epoch != 4 {
		t.Fatalf("equivocation: c %v d %v epoch %d void %v", st.isMember(c), st.isMember(d), st.Epoch, st.Void)
	}
	// The add's key went to c, which the order removed before it: the
	// epoch counts c among its holders, and a new one is due.
	if !slices.Contains(st.departed(), c) {
		t.Fatalf("the add's key reached c, removed first in the order: departed %v", st.departed())
	}
	checkFold(t, net.d, st, net.all)
	if len(st.Heads) != 2 {
		t.Fatalf("heads %d, want 2", len(st.Heads))
	}
	merge := net.do(b, OpRekey, "", nil, 0)
	st2 := net.d.fold(nil, true)
	if isVoid(st2, merge) || len(st2.Heads) != 1 || len(st2.departed()) != 0 {
		t.Fatalf("the rekey that merges: void %v, heads %d, departed %v", isVoid(st2, merge), len(st2.Heads), st2.departed())
	}
	checkFold(t, net.d, st2, net.all)
}

// An epoch started on one branch by an admin that did not know of a
// removal on the other is counted as held by the removed member: a new
// epoch is due (departed), whichever order the branches take.
func TestFoldTaintedEpoch(t *testing.T) {
	net, ids := newOpNet(t, 5)
	a, b, c, d, e := ids[0], ids[1], ids[2], ids[3], ids[4]
	for _, p := range []peer.ID{b, c, d} {
		net.do(a, OpAdd, p, nil, 0)
	}
	net.do(a, OpPromote, b, nil, 0)
	fork := net.d.headList()
	net.do(a, OpRemove, d, fork, 0)
	addE := net.do(b, OpAdd, e, fork, 0)
	st := net.d.fold(nil, true)
	if isVoid(st, addE) || st.isMember(d) || !st.isMember(e) {
		t.Fatalf("d member %v, e member %v, void %v", st.isMember(d), st.isMember(e), st.Void)
	}
	if !slices.Contains(st.departed(), d) {
		t.Fatalf("b handed its add's key to d, whom the order removed first: departed %v", st.departed())
	}
	if st.Claims[st.Epoch] != st.Epoch-1 || !st.Forked[st.Epoch-1] {
		t.Fatalf("b's epoch named %d and came %d: claims %v forked %v", st.Epoch-1, st.Epoch, st.Claims, st.Forked)
	}
	checkFold(t, net.d, st, net.all)
}

// A schema 2 log (ops in 1.x form: index and prev) folds as the linear
// log it is.
func TestFoldLinearLog(t *testing.T) {
	net, ids := newOpNet(t, 3)
	a, b, c := ids[0], ids[1], ids[2]
	ops := []*op{net.all[0]}
	prev := net.all[0]
	for i, step := range []struct {
		kind   string
		target peer.ID
	}{{OpAdd, b}, {OpAdd, c}, {OpPromote, b}, {OpRemove, c}} {
		o := &op{Kind: step.kind, GroupID: net.gid, Index: uint64(i + 1), Prev: bytes.Clone(prev.hash[:]), Actor: a, Target: step.target,
			TimeMS: net.at + int64(i)}
		if step.kind == OpRemove {
			o.Epoch, o.KeyHash = 1, keyHash(net.gid, 1, newKey())
		}
		if err := signOp(net.keys[a], o); err != nil {
			t.Fatal(err)
		}
		ops, prev = append(ops, o), o
	}
	d, st, err := dagFromOps(ops)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops != 5 || st.Epoch != 1 || !st.isAdmin(b) || st.isMember(c) || len(st.Void) != 0 || len(st.Heads) != 1 {
		t.Fatalf("the linear log: ops %d epoch %d void %v", st.Ops, st.Epoch, st.Void)
	}
	checkFold(t, d, st, ops)
}

// TestLongLogBackwards: a log of many ops, each following the one
// before, given backwards (each op before the ops it follows), folds as
// it does in order; the DAG is built in one pass over them, not one a
// pass (that was quadratic in the up to maxJoinItems ops of a join).
func TestLongLogBackwards(t *testing.T) {
	net, ids := newOpNet(t, 1)
	a := ids[0]
	n := 4000
	if testing.Short() {
		n = 500
	}
	ops := []*op{net.all[0]}
	prev := net.all[0]
	for i := range n {
		o := net.renameOp(a, [][]byte{bytes.Clone(prev.hash[:])}, i)
		ops, prev = append(ops, o), o
	}
	_, st, err := dagFromOps(ops)
	if err != nil {
		t.Fatal(err)
	}
	back := slices.Clone(ops)
	slices.Reverse(back)
	_, st2, err := dagFromOps(back)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops != uint64(n+1) || st.Name != fmt.Sprint("g", n-1) || logOf(t, st) != logOf(t, st2) {
		t.Fatalf("in order: %d ops, name %q; backwards: %d ops, name %q", st.Ops, st.Name, st2.Ops, st2.Name)
	}
	gap := append(slices.Clone(back[:len(back)-2]), back[len(back)-1]) // all but the first op after the create
	if _, _, err := dagFromOps(gap); err == nil || !strings.Contains(err.Error(), "follow ops not held") {
		t.Fatalf("all but the first op after the create: %v", err)
	}
}

// TestInterleavedBranchesFoldOnce: two admins' branches, interleaved, each
// op following its own branch's last: every op is checked against the
// state its parent was admitted in, not against a fold of all its
// ancestors anew (a fold per op made 4,000 such ops take 5 s, quadratic),
// and the set folds as it does in any other order.
func TestInterleavedBranchesFoldOnce(t *testing.T) {
	net, ids := newOpNet(t, 2)
	a, b := ids[0], ids[1]
	net.do(a, OpAdd, b, nil, 0)
	net.do(a, OpPromote, b, nil, 0)
	base := net.d.headList()
	n := 2000
	if testing.Short() {
		n = 300
	}
	ops := slices.Clone(net.all)
	last := map[peer.ID][]byte{a: base[0], b: base[0]}
	for i := range n {
		actor := ids[i%2]
		o := net.renameOp(actor, [][]byte{last[actor]}, i)
		ops, last[actor] = append(ops, o), bytes.Clone(o.hash[:])
	}
	d, st, err := dagFromOps(ops)
	if err != nil {
		t.Fatal(err)
	}
	if d.folds > 2 {
		t.Fatalf("%d folds of a part of the set for %d ops on two branches", d.folds, n)
	}
	// Each head's kept state is the fold of its ancestors and itself.
	for h, kept := range d.admitted {
		if got, want := logOf(t, kept), logOf(t, d.fold(d.ancestors([][]byte{h[:]}), true)); got != want {
			t.Fatalf("the state kept for head %x differs from its fold:\n%s\n%s", h[:4], got, want)
		}
	}
	if len(d.admitted) != 2 {
		t.Fatalf("%d states kept for 2 heads", len(d.admitted))
	}
	back := slices.Clone(ops)
	slices.Reverse(back)
	if _, st2, err := dagFromOps(back); err != nil || logOf(t, st) != logOf(t, st2) || st.Ops != uint64(len(ops)) {
		t.Fatalf("backwards: %v; %d ops", err, st.Ops)
	}
}

// TestManyForksKeepFewStates: an admin's many sibling ops (each a head)
// do not each keep a state in the DAG.
func TestManyForksKeepFewStates(t *testing.T) {
	net, ids := newOpNet(t, 1)
	a := ids[0]
	ops := slices.Clone(net.all)
	base := net.d.headList()
	for i := range 40 {
		ops = append(ops, net.renameOp(a, base, i))
	}
	d, _, err := dagFromOps(ops)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.heads) != 40 || len(d.admitted) > maxAdmitted {
		t.Fatalf("%d heads, %d admitted states kept (at most %d)", len(d.heads), len(d.admitted), maxAdmitted)
	}
}

// TestStoredOpsNotVerifiedAgain: an op from a peer has its signature
// checked; one this node stored (checked when it came) is only parsed,
// so that a start does not check a long log's signatures again.
func TestStoredOpsNotVerifiedAgain(t *testing.T) {
	net, ids := newOpNet(t, 2)
	o := net.do(ids[0], OpAdd, ids[1], nil, 0)
	var so pb.SignedOp
	if err := proto.Unmarshal(o.raw, &so); err != nil {
		t.Fatal(err)
	}
	so.Signature = make([]byte, len(so.Signature))
	if _, err := opFromWire(&so); !errors.Is(err, errBadSignature) {
		t.Fatalf("from a peer, a bad signature: %v", err)
	}
	raw, _ := proto.Marshal(&so)
	got, err := decodeStoredOp(raw)
	if err != nil || got.Kind != OpAdd || got.Target != ids[1] {
		t.Fatalf("stored: %+v, %v", got, err)
	}
}
