package chat_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// benchNodesFlag is the group size of BenchmarkGroup: fifty, or what
// -bench-nodes says (to see where a machine saturates).
var benchNodesFlag = flag.Int("bench-nodes", 50, "BenchmarkGroup: the number of nodes in the group")

// BenchmarkGroup runs fifty in-process nodes in one group and measures,
// beside raw gossipsub on the same nodes (a plain topic: no validator,
// no encryption, no storage), in the same run:
//
//   - at 100 messages per second (senders in turn): the delivery fraction
//     and the end-to-end latency p50/p99, from the send call to the
//     message at each of the 49 others;
//   - the highest offered rate (100, 200, 400, 800, 1600 msg/s, 2 s each) at
//     which every message reaches every member, catch-up included.
//
// It runs once whatever b.N; it takes about a minute on 2 cores.
func BenchmarkGroup(b *testing.B) {
	benchNodes := *benchNodesFlag
	// Fifty nodes share this machine's one disk, where each person's node
	// would have its own: their homes go on tmpfs when there is one, so
	// that the run measures the messenger rather than one disk's queue of
	// fifty nodes' syncs (on this machine's ext4 a sync takes about 0.7 ms).
	shm := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if shm, err = os.MkdirTemp("/dev/shm", "meshtalk-bench-"); err != nil {
			shm = ""
		} else {
			b.Cleanup(func() { os.RemoveAll(shm) })
		}
	}
	nodes := make([]*node.Node, benchNodes)
	for i := range nodes {
		opts := nodetest.Options{Configure: func(c *node.Config) { c.Discovery.DHT = "client" }}
		if shm != "" {
			opts.Home = node.Home(filepath.Join(shm, strconv.Itoa(i)))
		}
		nodes[i] = nodetest.Start(b, opts)
	}
	ctx := context.Background()
	g, err := nodes[0].Chat().CreateGroup(ctx, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	code, err := nodes[0].Chat().Invite(ctx, g.ID, 0, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if _, err := n.Chat().JoinGroup(ctx, code); err != nil {
			b.Fatal(err)
		}
	}
	// Everyone sees everyone and the topic mesh is up.
	deadline := time.Now().Add(2 * time.Minute)
	for _, n := range nodes {
		nodetest.Eventually(b, time.Until(deadline), "the group forms (every member, and the topic mesh)", func() bool {
			ms, _ := n.Chat().GroupMembers(ctx, g.ID)
			return len(ms) == benchNodes && chat.TopicPeers(n.Chat(), g.ID) >= benchNodes/2
		})
	}

	// Receipt times of every group message at every node, by text.
	rec := newReceipts()
	for i, n := range nodes {
		ch, cancel := n.Events().Subscribe(1 << 16)
		b.Cleanup(cancel)
		go func() {
			for ev := range ch {
				if ce, ok := ev.Data.(chat.Event); ok && ce.Type == chat.EventMessage {
					if m := ce.Data.(*chat.Message); m.Group == g.ID && !m.Outgoing {
						rec.got(m.Text, i)
					}
				}
			}
		}()
	}
	// The raw baseline: a plain topic on the same gossipsub.
	rawName := "/meshtalk/bench/raw"
	raws := make([]*pubsub.Topic, benchNodes)
	var rawWG sync.WaitGroup
	rawCtx, rawCancel := context.WithCancel(ctx)
	for i, n := range nodes {
		t, err := chat.RawTopic(n.Chat(), rawName)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := t.Subscribe(pubsub.WithBufferSize(1 << 14))
		if err != nil {
			b.Fatal(err)
		}
		raws[i] = t
		rawWG.Add(1)
		go func() {
			defer rawWG.Done()
			for {
				m, err := sub.Next(rawCtx)
				if err != nil {
					return
				}
				if m.ReceivedFrom != n.ID() {
					rec.got(string(m.Data), i)
				}
			}
		}()
	}
	b.Cleanup(func() { rawCancel(); rawWG.Wait() })
	for _, t := range raws {
		nodetest.Eventually(b, time.Until(deadline), "the raw topic forms", func() bool {
			return len(t.ListPeers()) >= benchNodes/2
		})
	}

	run := func(name, kind string, rate, count int) (delivered float64, p50, p99 time.Duration) {
		interval := time.Second / time.Duration(rate)
		prefix := fmt.Sprintf("%s-%d-", name, rate)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range count {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			from := i % benchNodes
			text := prefix + strconv.Itoa(i) + "-" + strconv.Itoa(from)
			rec.sent(text, from)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if kind == "group" {
					_, err = nodes[from].Chat().SendGroup(ctx, g.ID, chat.Draft{Text: text})
				} else {
					err = raws[from].Publish(ctx, []byte(text))
				}
				if err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		return rec.settle(prefix, count*(benchNodes-1), 10*time.Second)
	}

	// Warm up both (meshes form at gossipsub's heartbeats), unmeasured;
	// the group first, and raw is measured once the group's catch-up after
	// the burst (a second later, at every member) is over.
	run("warmgroup", "group", 100, 100)
	for _, n := range nodes {
		nodetest.Eventually(b, time.Minute, "the group's catch-up after the warm-up", func() bool {
			return chat.GroupPullsIdle(n.Chat())
		})
	}
	run("warmraw", "raw", 100, 200)

	b.ResetTimer()
	const steady = 300 // 3 s at 100 msg/s
	cpu := nodetest.StartCPU()
	rd, r50, r99 := run("raw", "raw", 100, steady)
	rawCores := cpu.Cores()
	pulled := func() (n int64) {
		for _, nd := range nodes {
			n += chat.GroupPulled(nd.Chat())
		}
		return n
	}
	before := pulled()
	cpu = nodetest.StartCPU()
	gd, g50, g99 := run("group", "group", 100, steady)
	groupCores := cpu.Cores()
	steadyPulled := pulled() - before
	best := 0
	for _, rate := range []int{100, 200, 400, 800, 1600} {
		d, _, _ := run("max", "group", rate, 2*rate)
		if d < 1 {
			break
		}
		best = rate
	}
	b.StopTimer()
	b.ReportMetric(gd, "group-delivered")
	b.ReportMetric(float64(g50.Microseconds()), "group-p50-µs")
	b.ReportMetric(float64(g99.Microseconds()), "group-p99-µs")
	b.ReportMetric(rd, "raw-delivered")
	b.ReportMetric(float64(r50.Microseconds()), "raw-p50-µs")
	b.ReportMetric(float64(r99.Microseconds()), "raw-p99-µs")
	b.ReportMetric(float64(best), "group-max-msgs/s")
	// Of the deliveries at 100 msg/s, how many came by catch-up rather
	// than gossip.
	b.ReportMetric(float64(steadyPulled)/float64(steady*(benchNodes-1)), "group-catch-up-fraction")
	// The CPU the whole process used during each run at 100 msg/s, in
	// cores (this machine has 2): near 2, queues grow.
	b.ReportMetric(rawCores, "raw-cpu-cores")
	b.ReportMetric(groupCores, "group-cpu-cores")
	b.ReportMetric(0, "ns/op")
}

// receipts records when each message was sent and reached each node.
type receipts struct {
	mu    sync.Mutex
	sends map[string]time.Time
	lat   map[string][]time.Duration // by prefix
	count map[string]int
	seen  map[string]bool // text/node
	wake  chan struct{}
}

func newReceipts() *receipts {
	return &receipts{sends: map[string]time.Time{}, lat: map[string][]time.Duration{}, count: map[string]int{},
		seen: map[string]bool{}, wake: make(chan struct{}, 1)}
}

func (r *receipts) sent(text string, _ int) {
	r.mu.Lock()
	r.sends[text] = time.Now()
	r.mu.Unlock()
}

func (r *receipts) got(text string, at int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	k := text + "@" + strconv.Itoa(at)
	t0, ok := r.sends[text]
	if !ok || r.seen[k] {
		return
	}
	r.seen[k] = true
	prefix := text[:strings.LastIndexByte(text[:strings.LastIndexByte(text, '-')], '-')+1]
	r.lat[prefix] = append(r.lat[prefix], now.Sub(t0))
	r.count[prefix]++
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// settle waits until want receipts of prefix arrived or wait passed, and
// returns the fraction delivered and the latency percentiles.
func (r *receipts) settle(prefix string, want int, wait time.Duration) (float64, time.Duration, time.Duration) {
	deadline := time.After(wait)
	for {
		r.mu.Lock()
		n := r.count[prefix]
		r.mu.Unlock()
		if n >= want {
			break
		}
		select {
		case <-r.wake:
		case <-deadline:
			goto done
		}
	}
done:
	r.mu.Lock()
	defer r.mu.Unlock()
	l := slices.Clone(r.lat[prefix])
	slices.Sort(l)
	if len(l) == 0 {
		return 0, 0, 0
	}
	return float64(len(l)) / float64(want), l[len(l)/2], l[len(l)*99/100]
}
