package node_test

import (
	"context"
	"strings"
	"testing"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestParkOnStopSaysWhatStayed: a clean stop with no relay to park in
// says what stayed queued, for whom; a second call reports the same.
func TestParkOnStopSaysWhatStayed(t *testing.T) {
	ctx := context.Background()
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	b.Close()
	if _, err := a.SendMessage(ctx, b.ID().String(), node.Draft{Text: "stays"}); err != nil {
		t.Fatal(err)
	}
	rep := a.ParkOnStop(ctx)
	if rep.Parked != 0 || rep.Queued[b.ID()] != 1 || !strings.Contains(rep.String(), "still queued: 1 direct (for 1 friend(s))") {
		t.Fatalf("report: %+v %q", rep, rep)
	}
	if again := a.ParkOnStop(ctx); again.Queued[b.ID()] != 1 {
		t.Fatalf("second report: %+v", again)
	}
	// The API's stop: the same report, and the runner is asked to stop.
	r, err := a.Stop(ctx)
	if err != nil || r.Queued[b.ID()] != 1 {
		t.Fatalf("stop: %+v %v", r, err)
	}
	select {
	case <-a.StopRequested():
	default:
		t.Fatal("Stop did not ask the runner to stop")
	}
}
