package group_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nodetest.IgnoredGoroutines()...)
}

var bg = context.Background()

// events subscribes to n's event stream for the rest of the test.
func events(t *testing.T, n *node.Node) <-chan node.Event {
	ch, cancel := n.Events().Subscribe(8192)
	t.Cleanup(cancel)
	return ch
}

// waitEvent waits for an event of typ whose data match accepts.
func waitEvent(t *testing.T, ch <-chan node.Event, typ string, match func(any) bool) any {
	t.Helper()
	ev := nodetest.WaitEvent(t, ch, typ, func(ev node.Event) bool {
		return match == nil || match(ev.Data)
	})
	return ev.Data
}
