package group

import (
	"testing"
	"time"
)

// TestReceiptPeriodScales: a group of up to receiptMembers gathers its
// delivered receipts for the delay; one of fifty, for five times as long,
// so that the group sees about as many receipts a second.
func TestReceiptPeriodScales(t *testing.T) {
	for _, c := range []struct {
		members int
		want    time.Duration
	}{{1, time.Second}, {receiptMembers + 1, time.Second}, {50, 5 * time.Second}, {200, 20 * time.Second}} {
		if got := scaledReceiptDelay(time.Second, c.members); got != c.want {
			t.Errorf("%d members: %v, want %v", c.members, got, c.want)
		}
	}
}

// TestReceiptQueueDue: each group's receipt is due on its own; take
// returns only the groups due, and when the next one is.
func TestReceiptQueueDue(t *testing.T) {
	q := receiptQueue{wake: make(chan struct{}, 1)}
	q.add("small", "m1", func() time.Duration { return time.Second })
	q.add("large", "m2", func() time.Duration { return time.Hour })
	q.add("small", "m3", func() time.Duration { t.Fatal("a period asked for a group already due"); return 0 })
	now := time.Now()
	if ids, next := q.take(now); ids != nil || next.After(now.Add(time.Second)) || next.Before(now) {
		t.Fatalf("before anything is due: %v, next in %v", ids, next.Sub(now))
	}
	ids, next := q.take(now.Add(2 * time.Second))
	if len(ids) != 1 || len(ids["small"]) != 2 || ids["small"][0] != "m1" || ids["small"][1] != "m3" {
		t.Fatalf("after 2 s: %v, want small's two", ids)
	}
	if d := next.Sub(now); d < 59*time.Minute {
		t.Fatalf("the large group's is due in %v, want an hour", d)
	}
	if ids, _ := q.take(now.Add(2 * time.Hour)); len(ids["large"]) != 1 {
		t.Fatalf("after 2 h: %v, want large's", ids)
	}
	if ids, next := q.take(now.Add(3 * time.Hour)); ids != nil || !next.IsZero() {
		t.Fatalf("empty: %v, next %v", ids, next)
	}
}
