package history

import (
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/oklog/ulid/v2"
)

func TestHLCMonotonicAndClamped(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewClock(func() time.Time { return now })
	a := c.Now()
	if b := c.Now(); b <= a {
		t.Fatalf("not monotonic: %d then %d", a, b)
	}
	// A peer 10 minutes ahead moves the clock along...
	ahead := Physical(now.Add(10 * time.Minute))
	c.Observe(ahead)
	if got := c.Now(); got <= ahead {
		t.Fatalf("after observing %d the clock reads %d", ahead, got)
	}
	// ...a reading from the far future or the top of the range does not.
	c.Observe(math.MaxUint64)
	got := c.Now()
	if got > Physical(now.Add(maxSkew))+10 || got < ahead {
		t.Fatalf("a huge reading moved the clock to %d", got)
	}
}

// TestDerivedIDs: an ID is a canonical ULID whose time is the sent-at
// time, the same for the same fields, and different when any field (or
// the protocol) differs.
func TestDerivedIDs(t *testing.T) {
	p1, p2 := peer.ID("\x00\x05peer1"), peer.ID("\x00\x05peer2")
	gid := make([]byte, 16) // a group ID's length
	const ms = 1_700_000_000_123
	base := DMID(p1, p2, ms, 42)
	if !ValidID(base) || ulid.MustParse(base).Time() != ms {
		t.Fatalf("%q: not a ULID of time %d", base, ms)
	}
	if DMID(p1, p2, ms, 42) != base {
		t.Fatal("the same fields made another ID")
	}
	seen := map[string]string{base: "base"}
	for name, id := range map[string]string{
		"hlc":       DMID(p1, p2, ms, 43),
		"direction": DMID(p2, p1, ms, 42),
		"group":     GroupMessageID(gid, p1, 42, ms),
		"other gid": GroupMessageID(append([]byte{1}, gid[1:]...), p1, 42, ms),
		"seq":       GroupMessageID(gid, p1, 43, ms),
		"author":    GroupMessageID(gid, p2, 42, ms),
	} {
		if !ValidID(id) {
			t.Fatalf("%s: %q is not a ULID", name, id)
		}
		if other, ok := seen[id]; ok {
			t.Fatalf("%s and %s share the ID %s", name, other, id)
		}
		seen[id] = name
	}
	// Only the time part follows the time.
	later := DMID(p1, p2, ms+1, 42)
	if later[10:] != base[10:] || later <= base {
		t.Fatalf("a later sent-at time: %s after %s", later, base)
	}
	for _, bad := range []int64{-1, int64(ulid.MaxTime()) + 1} {
		if id := DMID(p1, p2, bad, 1); id != "" {
			t.Fatalf("sent-at %d made the ID %q", bad, id)
		}
	}
}
