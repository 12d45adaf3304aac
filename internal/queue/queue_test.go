package queue

import (
	"context"
	"slices"
	"testing"
)

func TestTake(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan int, 10)
	for i := range 5 {
		ch <- i
	}
	if got, ok := Take(ctx, ch, 3); !ok || !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("first batch: %v %v, want [0 1 2]", got, ok)
	}
	if got, ok := Take(ctx, ch, 3); !ok || !slices.Equal(got, []int{3, 4}) {
		t.Fatalf("second batch: %v %v, want what waits, [3 4]", got, ok)
	}
	ch <- 5
	close(ch)
	if got, ok := Take(ctx, ch, 3); !ok || !slices.Equal(got, []int{5}) {
		t.Fatalf("before the close: %v %v, want [5]", got, ok)
	}
	if got, ok := Take(ctx, ch, 3); ok || got != nil {
		t.Fatalf("closed: %v %v, want nothing", got, ok)
	}
	cancel()
	if got, ok := Take(ctx, make(chan int), 3); ok || got != nil {
		t.Fatalf("ctx done: %v %v, want nothing", got, ok)
	}
}
