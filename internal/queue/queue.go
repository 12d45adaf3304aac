// Package queue takes work off a channel in batches: a goroutine that
// writes what others ask for with one sync, or one deposit, for many
// requests takes all that waits at a moment at once.
package queue

import "context"

// Take waits for an item of ch and returns it with those that wait behind
// it, max at most. It reports false, and nothing, when ctx is done first
// or ch is closed and empty.
func Take[T any](ctx context.Context, ch <-chan T, max int) ([]T, bool) {
	var items []T
	select {
	case <-ctx.Done():
		return nil, false
	case it, ok := <-ch:
		if !ok {
			return nil, false
		}
		items = append(items, it)
	}
	for len(items) < max {
		select {
		case it, ok := <-ch:
			if !ok {
				return items, true
			}
			items = append(items, it)
		default:
			return items, true
		}
	}
	return items, true
}
