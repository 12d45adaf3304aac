package chat

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testPeer is a key and its peer ID.
func testPeer(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, id
}

// The times of a group's log never go back: an op dated before the one it
// follows is refused, so a member cannot date its add back to slip in an
// invite that has expired since.
func TestGroupOpTimes(t *testing.T) {
	adminKey, admin := testPeer(t)
	memberKey, member := testPeer(t)
	_, newcomer := testPeer(t)
	const hour = int64(time.Hour / time.Millisecond)
	t0 := int64(1_700_000_000_000)

	create := &groupOp{Kind: OpCreate, Actor: admin, Name: "g", TimeMS: t0, Nonce: make([]byte, 16), KeyHash: keyHash(nil, 0, newKey())}
	if err := signOp(adminKey, create); err != nil {
		t.Fatal(err)
	}
	st, err := stateFromCreate(create)
	if err != nil {
		t.Fatal(err)
	}
	gid := groupIDOf(create)
	// next signs an op of kind by key, following st, dated at, and applies
	// it to a clone of st.
	next := func(key crypto.PrivKey, actor peer.ID, kind string, target peer.ID, at int64, iv *invite) (*groupState, error) {
		o := &groupOp{Kind: kind, GroupID: gid, Index: st.Ops, Prev: st.LastHash, Actor: actor, Target: target, TimeMS: at, Invite: iv}
		if err := signOp(key, o); err != nil {
			t.Fatal(err)
		}
		c := st.clone()
		return c, c.apply(o)
	}
	// The admin adds a member an hour in.
	if st, err = next(adminKey, admin, OpAdd, member, t0+hour, nil); err != nil {
		t.Fatal(err)
	}
	// An invite that expires at two hours; the admin renames the group at
	// three.
	iv := &invite{GroupID: gid, ID: make([]byte, 16), Uses: 0, Expires: time.UnixMilli(t0 + 2*hour), Admin: admin}
	if st, err = next(adminKey, admin, OpRename, "", t0+3*hour, nil); err != nil {
		t.Fatal(err)
	}
	// The member admits the newcomer with the expired invite, dated back
	// to before the expiry: refused.
	if _, err := next(memberKey, member, OpAdd, newcomer, t0+90*time.Minute.Milliseconds(), iv); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("a backdated add by an expired invite: %v, want it refused as dated before the op it follows", err)
	}
	// Dated honestly, the invite has expired.
	if _, err := next(memberKey, member, OpAdd, newcomer, t0+3*hour, iv); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("an add by an expired invite: %v, want it refused", err)
	}
	// The same time as the op before is fine.
	if _, err := next(adminKey, admin, OpPromote, member, t0+3*hour, nil); err != nil {
		t.Fatalf("an op dated as the one before: %v", err)
	}
	// A node whose clock is behind the log's still dates its ops after it.
	if got := st.opTime(time.UnixMilli(t0)); got != t0+3*hour {
		t.Fatalf("opTime with a clock behind the log = %d, want %d", got, t0+3*hour)
	}
	if got := st.opTime(time.UnixMilli(t0 + 4*hour)); got != t0+4*hour {
		t.Fatalf("opTime = %d, want now", got)
	}
}
