package nodetest

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/meshtalk/meshtalk/node"
)

// BenchPing is the raw-libp2p baseline of a benchmark: libp2p ping round
// trips from a to c, perIter of them each iteration, reported as their
// mean in rtt-ms.
func BenchPing(b *testing.B, a, c *node.Node, perIter int) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := ping.Ping(ctx, a.Host(), c.ID())
	var total time.Duration
	for b.Loop() {
		for range perIter {
			r := <-res
			if r.Error != nil {
				b.Fatal(r.Error)
			}
			total += r.RTT
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(perIter*b.N)/1000, "rtt-ms")
}
