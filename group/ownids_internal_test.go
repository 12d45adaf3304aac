package group

import (
	"fmt"
	"testing"
	"time"
)

// TestOwnIDsBounded: the set of own message IDs holds at most maxOwnIDs;
// when it starts again, what it forgot counts as from before (looked up).
func TestOwnIDsBounded(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	o := ownIDs{since: t0}
	o.add("first", t0.Add(time.Second))
	if mine, before := o.has("first", t0.Add(time.Second)); !mine || before {
		t.Fatalf("first: mine %v, before %v", mine, before)
	}
	for i := 1; i < maxOwnIDs; i++ {
		o.add(fmt.Sprint(i), t0.Add(2*time.Second))
	}
	o.add("last", t0.Add(3*time.Second)) // full: starts again at 3 s
	if len(o.ids) != 1 {
		t.Fatalf("%d IDs after starting again", len(o.ids))
	}
	if mine, before := o.has("first", t0.Add(time.Second)); mine || !before {
		t.Fatalf("first, forgotten: mine %v, before %v (want a lookup)", mine, before)
	}
	if mine, before := o.has("someone else's", t0.Add(4*time.Second)); mine || before {
		t.Fatalf("a newer message not ours: mine %v, before %v", mine, before)
	}
}
