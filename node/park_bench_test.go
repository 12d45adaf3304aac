package node_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// BenchmarkPark measures offline delivery through a relay on loopback,
// with 200 messages to a friend the relay says is logged out:
//
//	park-p50-ms, park-p99-ms      from Send returning to the message
//	                              deposited on the relay (its parked hop,
//	                              recorded once the relay has it on disk),
//	                              one message at a time
//	fetch-p50-ms, fetch-p99-ms    from the friend's start (it logs in to
//	                              the relay at once) to each of the 200
//	                              in its history
//
// Run it with -benchtime=1x: each iteration is the whole scenario.
func BenchmarkPark(b *testing.B) {
	const n = 200
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		relay := nodetest.Start(b, nodetest.Options{Role: node.RoleRelay})
		addr := nodetest.Addr(b, relay)
		withRelay := func(c *node.Config) { c.Discovery.Relays = []string{addr} }
		a := nodetest.Start(b, nodetest.Options{Configure: withRelay})
		bHome := node.Home(b.TempDir())
		bob := nodetest.Start(b, nodetest.Options{Home: bHome, Configure: withRelay})
		for i, nd := range []*node.Node{a, bob} {
			if _, err := nd.Register(ctx, addr, fmt.Sprintf("user%d", i), ""); err != nil {
				b.Fatal(err)
			}
		}
		nodetest.Befriend(b, a, bob)
		bob.Close() // a clean stop: the relay tells A that B logged out
		nodetest.Eventually(b, 30*time.Second, "A hears B logged out", func() bool { return !a.Chat().Online(bob.ID()) })
		b.StartTimer()

		park := make([]float64, 0, n)
		for i := range n {
			m, err := a.Chat().Send(ctx, bob.ID(), chat.Draft{Text: fmt.Sprintf("parked %d", i)})
			if err != nil {
				b.Fatal(err)
			}
			returned := time.Now()
			var at time.Time
			nodetest.Eventually(b, 30*time.Second, "parked", func() bool {
				at = parkedAt(a, m.ID)
				return !at.IsZero()
			})
			park = append(park, float64(at.Sub(returned).Microseconds())/1000)
		}

		// The friend comes back: the figure runs from its start (it logs
		// in to the relay at once, and the relay hands over its mailbox
		// right at the login).
		evs := make(chan time.Time, n)
		started := time.Now()
		bob = nodetest.Start(b, nodetest.Options{Home: bHome, Configure: withRelay})
		ch, cancel := bob.Events().Subscribe(4 * n)
		go func() {
			for ev := range ch {
				if ev.Type == chat.EventMessage {
					evs <- time.Now()
				}
			}
		}()
		fetch := make([]float64, 0, n)
		for range n {
			select {
			case t := <-evs:
				fetch = append(fetch, float64(t.Sub(started).Microseconds())/1000)
			case <-time.After(60 * time.Second):
				b.Fatalf("%d of %d messages in B's history within 60s", len(fetch), n)
			}
		}
		cancel()
		b.ReportMetric(pct(park, 50), "park-p50-ms")
		b.ReportMetric(pct(park, 99), "park-p99-ms")
		b.ReportMetric(pct(fetch, 50), "fetch-p50-ms")
		b.ReportMetric(pct(fetch, 99), "fetch-p99-ms")
	}
}

// parkedAt is when message id was parked (zero: not yet).
func parkedAt(n *node.Node, id string) time.Time {
	t, err := n.Chat().Trace(context.Background(), id)
	if err != nil {
		return time.Time{}
	}
	for _, h := range t.Hops {
		if h.Event == history.HopParked {
			return h.At
		}
	}
	return time.Time{}
}

func pct(xs []float64, p int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
