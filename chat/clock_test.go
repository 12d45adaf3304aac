package chat

import (
	"math"
	"testing"
	"time"
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
