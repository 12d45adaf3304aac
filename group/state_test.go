package group

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"slices"
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

// The times of a group's log never go back: an op counts as no earlier
// than the one it follows, so a member cannot date its add back to slip
// in an invite that has expired since.
func TestGroupOpTimes(t *testing.T) {
	adminKey, admin := testPeer(t)
	memberKey, member := testPeer(t)
	_, newcomer := testPeer(t)
	const hour = int64(time.Hour / time.Millisecond)
	t0 := int64(1_700_000_000_000)

	create := &op{Kind: OpCreate, Actor: admin, Name: "g", TimeMS: t0, Nonce: make([]byte, 16), KeyHash: keyHash(nil, 0, newKey())}
	if err := signOp(adminKey, create); err != nil {
		t.Fatal(err)
	}
	st, err := stateFromCreate(create)
	if err != nil {
		t.Fatal(err)
	}
	gid := groupIDOf(create)
	d := newDAG(create)
	// next signs an op of kind by key, following every op of d, dated at,
	// and checks it as a member would (admit), without taking it; step
	// takes it.
	var last *op
	next := func(key crypto.PrivKey, actor peer.ID, kind string, target peer.ID, at int64, iv *invite) (*state, error) {
		o := &op{Kind: kind, GroupID: gid, Parents: d.headList(), Actor: actor, Target: target, TimeMS: at, Invite: iv}
		if err := signOp(key, o); err != nil {
			t.Fatal(err)
		}
		last = o
		return d.admit(o, st)
	}
	step := func(key crypto.PrivKey, actor peer.ID, kind string, target peer.ID, at int64, iv *invite) (*state, error) {
		next, err := next(key, actor, kind, target, at, iv)
		if err == nil {
			d.add(last, nil)
		}
		return next, err
	}
	// The admin adds a member an hour in.
	if st, err = step(adminKey, admin, OpAdd, member, t0+hour, nil); err != nil {
		t.Fatal(err)
	}
	// An invite that expires at two hours; the admin renames the group at
	// three.
	iv := &invite{GroupID: gid, ID: make([]byte, 16), Uses: 0, Expires: time.UnixMilli(t0 + 2*hour), Admin: admin}
	if st, err = step(adminKey, admin, OpRename, "", t0+3*hour, nil); err != nil {
		t.Fatal(err)
	}
	// The member admits the newcomer with the expired invite, dated back
	// to before the expiry: it counts as of the rename, and is refused.
	if _, err := next(memberKey, member, OpAdd, newcomer, t0+90*time.Minute.Milliseconds(), iv); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("a backdated add by an expired invite: %v, want it refused", err)
	}
	// Dated honestly, the invite has expired.
	if _, err := next(memberKey, member, OpAdd, newcomer, t0+3*hour, iv); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("an add by an expired invite: %v, want it refused", err)
	}
	// An op dated before the one it follows (its actor's clock is
	// behind) still applies, and the log's time does not go back.
	if st2, err := next(adminKey, admin, OpPromote, member, t0+2*hour, nil); err != nil || st2.LastTimeMS != t0+3*hour {
		t.Fatalf("an op dated before the one before: %v, log time %d, want %d", err, st2.LastTimeMS, t0+3*hour)
	}
	// A node whose clock is behind the log's still dates its ops after it.
	if got := st.opTime(time.UnixMilli(t0)); got != t0+3*hour {
		t.Fatalf("opTime with a clock behind the log = %d, want %d", got, t0+3*hour)
	}
	if got := st.opTime(time.UnixMilli(t0 + 4*hour)); got != t0+4*hour {
		t.Fatalf("opTime = %d, want now", got)
	}
}

// verifySig accepts what crypto/ed25519 accepts and nothing else: a good
// signature, not a changed message or signature, not a signature whose S
// is not reduced (S+L signs the same, and crypto/ed25519 refuses it).
func TestVerifySigAsStdlib(t *testing.T) {
	priv, id := testPeer(t)
	msg := []byte("meshtalk")
	sig, err := priv.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.GetPublic().Raw()
	// L, the group order, little-endian: S+L is the same scalar, unreduced.
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	unreduced := slices.Clone(sig)
	carry := 0
	for i := range 32 {
		v := int(unreduced[32+i]) + int(l[i]) + carry
		unreduced[32+i], carry = byte(v), v>>8
	}
	flipped := slices.Clone(sig)
	flipped[10] ^= 1
	for _, c := range []struct {
		name string
		msg  []byte
		sig  []byte
		want bool
	}{
		{"good", msg, sig, true},
		{"other message", []byte("meshtalK"), sig, false},
		{"changed signature", msg, flipped, false},
		{"unreduced S", msg, unreduced, false},
		{"short signature", msg, sig[:63], false},
	} {
		got, err := verifySig(id, c.msg, c.sig)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if std := ed25519.Verify(raw, c.msg, c.sig); got != c.want || std != c.want {
			t.Errorf("%s: verifySig %v, crypto/ed25519 %v, want %v", c.name, got, std, c.want)
		}
	}
}
