package chat

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/oklog/ulid/v2"

	"github.com/meshtalk/meshtalk/chat/pb"
)

func TestHLCMonotonicAndClamped(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := &hlc{now: func() time.Time { return now }}
	a := c.Now()
	if b := c.Now(); b <= a {
		t.Fatalf("not monotonic: %d then %d", a, b)
	}
	// A peer 10 minutes ahead moves the clock along...
	ahead := hlcPhysical(now.Add(10 * time.Minute))
	c.Observe(ahead)
	if got := c.Now(); got <= ahead {
		t.Fatalf("after observing %d the clock reads %d", ahead, got)
	}
	// ...a reading from the far future or the top of the range does not.
	c.Observe(math.MaxUint64)
	got := c.Now()
	if got > hlcPhysical(now.Add(maxSkew))+10 || got < ahead {
		t.Fatalf("a huge reading moved the clock to %d", got)
	}
}

// TestDerivedIDs: an ID is a canonical ULID whose time is the sent-at
// time, the same for the same fields, and different when any field (or
// the protocol) differs.
func TestDerivedIDs(t *testing.T) {
	p1, p2 := peer.ID("\x00\x05peer1"), peer.ID("\x00\x05peer2")
	gid := make([]byte, groupIDLen)
	const ms = 1_700_000_000_123
	base := dmID(p1, p2, ms, 42)
	if !validID(base) || ulid.MustParse(base).Time() != ms {
		t.Fatalf("%q: not a ULID of time %d", base, ms)
	}
	if dmID(p1, p2, ms, 42) != base {
		t.Fatal("the same fields made another ID")
	}
	seen := map[string]string{base: "base"}
	for name, id := range map[string]string{
		"hlc":       dmID(p1, p2, ms, 43),
		"direction": dmID(p2, p1, ms, 42),
		"group":     groupMessageID(gid, p1, 42, ms),
		"other gid": groupMessageID(append([]byte{1}, gid[1:]...), p1, 42, ms),
		"seq":       groupMessageID(gid, p1, 43, ms),
		"author":    groupMessageID(gid, p2, 42, ms),
	} {
		if !validID(id) {
			t.Fatalf("%s: %q is not a ULID", name, id)
		}
		if other, ok := seen[id]; ok {
			t.Fatalf("%s and %s share the ID %s", name, other, id)
		}
		seen[id] = name
	}
	// Only the time part follows the time.
	later := dmID(p1, p2, ms+1, 42)
	if later[10:] != base[10:] || later <= base {
		t.Fatalf("a later sent-at time: %s after %s", later, base)
	}
	for _, bad := range []int64{-1, int64(ulid.MaxTime()) + 1} {
		if id := dmID(p1, p2, bad, 1); id != "" {
			t.Fatalf("sent-at %d made the ID %q", bad, id)
		}
	}
}

// TestEnvelopeIDChecked: a member opens a group message only under the ID
// derived from its envelope; the author's own signature does not help.
func TestEnvelopeIDChecked(t *testing.T) {
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(priv)
	gid, key := make([]byte, groupIDLen), newKey()
	const ms = 1_700_000_000_000
	for _, tc := range []struct {
		name string
		id   string
		ok   bool
	}{
		{"derived", groupMessageID(gid, self, 3, ms), true},
		{"another seq's", groupMessageID(gid, self, 2, ms), false},
		{"another time's", groupMessageID(gid, self, 3, ms+1), false},
		{"a DM's", dmID(self, self, ms, 3), false},
	} {
		env, err := sealEnvelope(priv, self, gid, 3, 0, key, &pb.Message{Id: tc.id, Kind: KindText, Text: "hi", Hlc: 1, SentAtMs: ms})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.open(key); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadFrame)) {
			t.Fatalf("%s ID: open: %v", tc.name, err)
		}
	}
}
