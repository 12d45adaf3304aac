package chat_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/sys/unix"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

const (
	benchSize = 1024
	// senders is how many goroutines send at once in the pipelined run,
	// as the local API's clients would: Send returns once the message is
	// stored, and concurrent stores share their disk syncs (groupCommit).
	// The raw baseline has every message in flight at once; 256 senders
	// keep a round of that size going while the one before it syncs.
	senders = 256
)

// BenchmarkDM measures 1 KiB messages between two nodes, acked by the
// receiver once durably stored: pipelined (throughput, and latency under
// that load) and one at a time (send-to-ack latency), each beside a raw
// libp2p stream doing request/response of the same size the same way, in
// the same run.
func BenchmarkDM(b *testing.B) {
	a, c := nodetest.Start(b, nodetest.Options{}), nodetest.Start(b, nodetest.Options{})
	nodetest.Befriend(b, a, c)
	text := strings.Repeat("x", benchSize)
	send := func() (string, time.Time) {
		t0 := time.Now()
		m, err := a.Chat().Send(context.Background(), c.ID(), chat.Draft{Text: text})
		if err != nil {
			b.Error(err)
			return "", t0
		}
		return m.ID, t0
	}
	warmUp(b, a, send)
	// One at a time first: after the pipelined burst, each store's
	// level 0 holds nearly enough tables for a compaction, and the
	// burst's last memtable fills within the next few thousand messages,
	// so a one-at-a-time run measured the compaction of the burst (p99
	// 3.1-4.3 ms in the 3 of 5 runs where it came, 1.0-1.6 ms in the
	// others); a node sending at a person's pace compacts about once
	// every 90,000 messages.
	b.Run("meshtalk/one-at-a-time", func(b *testing.B) {
		settle(b, a, c)
		defer reportWrites(b, a, c)()
		benchDMOneAtATime(b, a, send)
	})
	b.Run("meshtalk/pipelined", func(b *testing.B) {
		settle(b, a, c)
		b.ResetTimer()
		defer reportWrites(b, a, c)()
		benchDMPipelined(b, a, send)
	})

	const proto = protocol.ID("/meshtalk/bench/ack/1.0.0")
	c.Host().SetStreamHandler(proto, func(s network.Stream) { serveAcks(s, nil) })
	defer c.Host().RemoveStreamHandler(proto)
	payload := []byte(text)
	b.Run("raw-libp2p/pipelined", func(b *testing.B) {
		settle(b, a, c)
		b.ResetTimer()
		benchRawPipelined(b, a, c, proto, payload)
	})
	b.Run("raw-libp2p/one-at-a-time", func(b *testing.B) {
		settle(b, a, c)
		benchRawOneAtATime(b, a, c, proto, payload, nil)
	})
	// The floor that a durable messenger's one-at-a-time latency has on
	// this disk: the same, with the receiver syncing a record before its
	// ack and the sender syncing its own while the message is on its way,
	// as a DM's two nodes do, and none of meshtalk's work.
	b.Run("raw-libp2p+sync/one-at-a-time", func(b *testing.B) {
		const proto = protocol.ID("/meshtalk/bench/synced-ack/1.0.0")
		received := newSyncLog(b)
		c.Host().SetStreamHandler(proto, func(s network.Stream) { serveAcks(s, received) })
		defer c.Host().RemoveStreamHandler(proto)
		settle(b, a, c)
		benchRawOneAtATime(b, a, c, proto, payload, newSyncLog(b))
	})
	b.Run("interleaved/pipelined", func(b *testing.B) {
		benchInterleaved(b, a, c, send, proto, payload)
	})
}

// sliceSize is how many messages a slice of benchInterleaved sends.
const sliceSize = 10_000

// benchInterleaved runs meshtalk pipelined and the raw baseline pipelined
// in turns, slices of sliceSize messages each, b.N messages each in all,
// and reports each side's rate over its own slices and meshtalk's as a
// percent of raw's. The other sub-benchmarks run meshtalk for a second
// or more and then raw for a second or more, so the host's slow minutes
// (a shared machine's neighbours; -count 10 puts all ten meshtalk runs
// in the same minutes) could fall on one side only; here each side gets
// a slice every few hundred milliseconds, so they fall on both alike.
// Slices alternate which side goes first. Each starts once the stores
// are idle, and a meshtalk slice ends once its messages are acked and
// its stores are idle again: it pays for every flush and compaction its
// own writes start (the sub-benchmarks above leave the last one out).
func benchInterleaved(b *testing.B, a, c *node.Node, send func() (string, time.Time), proto protocol.ID, payload []byte) {
	s, err := a.Host().NewStream(context.Background(), c.ID(), proto)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.StopTimer()
	var meshtalk, raw time.Duration
	timed := func(run func(n int), took *time.Duration, n int) {
		settle(b, a, c)
		start := time.Now()
		run(n)
		*took += time.Since(start)
	}
	runMeshtalk := func(n int) {
		b.StartTimer()
		sendPipelined(b, a, send, n)
		waitIdle(b, 100*time.Microsecond, a, c)
		b.StopTimer()
	}
	runRaw := func(n int) {
		if _, err := rawPipelined(s, payload, n); err != nil {
			b.Fatal(err)
		}
	}
	for i, sent := 0, 0; sent < b.N; i++ {
		n := min(sliceSize, b.N-sent)
		if i%2 == 0 {
			timed(runMeshtalk, &meshtalk, n)
			timed(runRaw, &raw, n)
		} else {
			timed(runRaw, &raw, n)
			timed(runMeshtalk, &meshtalk, n)
		}
		sent += n
	}
	b.ReportMetric(float64(b.N)/meshtalk.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/raw.Seconds(), "raw-msgs/s")
	b.ReportMetric(100*raw.Seconds()/meshtalk.Seconds(), "%-of-raw")
}

// waitIdle returns once no node's store is flushing or compacting,
// looking every so often: a meshtalk slice of benchInterleaved looks
// every 100 µs, since settle's 20 ms would charge it up to that much for
// nothing.
func waitIdle(b *testing.B, every time.Duration, nodes ...*node.Node) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for slices.ContainsFunc(nodes, (*node.Node).StoreBusy) {
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatal("the stores did not settle within 2 minutes")
		}
	}
}

// settle waits until neither node's store is flushing or compacting, so
// that a timed run starts on a machine that is not still busy with the
// writes of the run before it (the warm-up's, a pipelined run's 60,000
// messages): each run pays for what its own writes start, not for what
// the one before left. Without it the one-at-a-time p99 measured the
// pipelined run's compaction (1.9-3.7 ms against 1.0-1.8 ms settled, 4
// runs each in turns), and the raw baseline ran beside meshtalk's.
func settle(b *testing.B, nodes ...*node.Node) { waitIdle(b, 20*time.Millisecond, nodes...) }

// warmSends is how many messages warmUp sends: enough for each node's
// memtables to reach their full size and be recycled (about 64 MiB of
// writes each, at 1.4 KB a message).
const warmSends = 100_000

// warmUp sends warmSends messages from a, pipelined, and waits for their
// acks, so that the figures are a running node's and not its first
// minute's: a node just started pays a page fault (13 µs on this
// machine) for every 4 KiB of memory it touches for the first time, its
// memtables growing from 256 KiB to 16 MiB and its heap to its working
// size, a fifth of the CPU of its first 100,000 messages, and none after
// that. (The raw baseline runs after the meshtalk runs, in a process
// already warm.) MESHTALK_BENCH_COLD=1 skips it, to measure a node just
// started.
func warmUp(b *testing.B, a *node.Node, send func() (string, time.Time)) {
	if os.Getenv("MESHTALK_BENCH_COLD") == "" {
		sendPipelined(b, a, send, warmSends)
	}
}

// benchDMPipelined sends b.N messages from a through send, senders at a
// time, and reports the rate and the send-to-ack latency.
func benchDMPipelined(b *testing.B, a *node.Node, send func() (string, time.Time)) {
	start, cpu := time.Now(), nodetest.StartCPU()
	lat := sendPipelined(b, a, send, b.N)
	reportRate(b, start, cpu)
	reportLatency(b, lat)
}

// sendPipelined sends n messages from a through send, senders at a time,
// and returns their send-to-ack latencies once all are acked.
func sendPipelined(b *testing.B, a *node.Node, send func() (string, time.Time), n int) []time.Duration {
	acks := newAckWatch(a)
	defer acks.close()
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if id, t0 := send(); id != "" {
					acks.sent(id, t0)
				}
			}
		}()
	}
	wg.Wait()
	acks.wait(b, n)
	return acks.latencies()
}

// benchDMOneAtATime sends from a through send, each message once the one
// before is acked, and reports the send-to-ack latency.
func benchDMOneAtATime(b *testing.B, a *node.Node, send func() (string, time.Time)) {
	acks := newAckWatch(a)
	defer acks.close()
	for i := 0; b.Loop(); i++ {
		id, t0 := send()
		acks.sent(id, t0)
		acks.wait(b, i+1)
	}
	acks.wait(b, b.N)
	reportLatency(b, acks.latencies())
}

// serveAcks is the raw baseline's receiver: one byte back for each
// message of benchSize bytes, once a record is written to log and synced
// (nil: no log).
func serveAcks(s network.Stream, log *syncLog) {
	defer s.Close()
	r := bufio.NewReader(s)
	buf := make([]byte, benchSize)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		if err := log.append(); err != nil {
			s.Reset()
			return
		}
		if _, err := s.Write([]byte{1}); err != nil {
			return
		}
	}
}

// benchRawPipelined writes b.N payloads from a to c's serveAcks on one
// stream without waiting, and reports the rate and the write-to-ack
// latency.
func benchRawPipelined(b *testing.B, a, c *node.Node, proto protocol.ID, payload []byte) {
	s, err := a.Host().NewStream(context.Background(), c.ID(), proto)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start, cpu := time.Now(), nodetest.StartCPU()
	lat, err := rawPipelined(s, payload, b.N)
	if err != nil {
		b.Fatal(err)
	}
	reportRate(b, start, cpu)
	reportLatency(b, lat)
}

// rawPipelined writes n payloads on s without waiting, and returns the
// write-to-ack latencies once every ack is read.
func rawPipelined(s network.Stream, payload []byte, n int) ([]time.Duration, error) {
	starts := make(chan time.Time, n)
	lat := make([]time.Duration, 0, n)
	readDone := make(chan error, 1)
	go func() {
		ack := make([]byte, 1)
		for range n {
			if _, err := io.ReadFull(s, ack); err != nil {
				readDone <- err
				return
			}
			lat = append(lat, time.Since(<-starts))
		}
		readDone <- nil
	}()
	for range n {
		starts <- time.Now()
		if _, err := s.Write(payload); err != nil {
			return nil, err
		}
	}
	err := <-readDone // lat is the reader's until then
	return lat, err
}

// benchRawOneAtATime writes payloads from a to c's serveAcks, each once
// the one before is acked, a record written to log and synced while each
// is on its way (nil: no log), and reports the write-to-ack latency.
func benchRawOneAtATime(b *testing.B, a, c *node.Node, proto protocol.ID, payload []byte, log *syncLog) {
	s, err := a.Host().NewStream(context.Background(), c.ID(), proto)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var lat []time.Duration
	ack := make([]byte, 1)
	for b.Loop() {
		t0 := time.Now()
		if _, err := s.Write(payload); err != nil {
			b.Fatal(err)
		}
		if err := log.append(); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, ack); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// syncLog is a file that a record of recordSize bytes is written to
// and synced (fdatasync, as the store's log is), over and over: the
// disk's part of a DM alone. It is filled once first, so that each
// record overwrites blocks already written, as the store's recycled log
// files are, and a sync writes no metadata: the cheapest sync there is.
type syncLog struct {
	f   *os.File
	off int64
	rec []byte
}

const (
	recordSize  = 1400 // a DM's record in the store, about
	syncLogSize = 16 << 20
)

func newSyncLog(b *testing.B) *syncLog {
	f, err := os.Create(b.TempDir() + "/log")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if _, err := f.Write(make([]byte, syncLogSize)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return &syncLog{f: f, rec: make([]byte, recordSize)}
}

// append writes a record and syncs it; on a nil log it does nothing.
func (l *syncLog) append() error {
	if l == nil {
		return nil
	}
	if l.off+recordSize > syncLogSize {
		l.off = 0
	}
	if _, err := l.f.WriteAt(l.rec, l.off); err != nil {
		return err
	}
	l.off += recordSize
	return unix.Fdatasync(int(l.f.Fd()))
}

// ackWatch turns a node's message.state events into send-to-ack times.
type ackWatch struct {
	mu      sync.Mutex
	sentAt  map[string]time.Time
	ackedAt map[string]time.Time // acks seen before their Send returned
	lat     []time.Duration
	more    chan struct{}
	cancel  func()
	done    chan struct{}
}

func newAckWatch(n *node.Node) *ackWatch {
	// A buffer of 2^16 events: the watcher keeps up with that slack, and
	// a larger one (2^20 events, 112 MB) made the garbage collector scan
	// it on every cycle, a cost of the benchmark's, not of meshtalk's.
	events, cancel := n.Events().Subscribe(1 << 16)
	w := &ackWatch{sentAt: map[string]time.Time{}, ackedAt: map[string]time.Time{}, more: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range events {
			if ev.Type != chat.EventMessageState {
				continue
			}
			st := ev.Data.(chat.StateEvent)
			if st.State != chat.MsgDelivered {
				continue
			}
			w.mu.Lock()
			if t0, ok := w.sentAt[st.ID]; ok {
				w.lat = append(w.lat, time.Since(t0))
				delete(w.sentAt, st.ID)
			} else {
				w.ackedAt[st.ID] = time.Now()
			}
			w.mu.Unlock()
			w.signal()
		}
	}()
	return w
}

func (w *ackWatch) signal() {
	select {
	case w.more <- struct{}{}:
	default:
	}
}

func (w *ackWatch) sent(id string, t0 time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at, ok := w.ackedAt[id]; ok {
		w.lat = append(w.lat, at.Sub(t0))
		delete(w.ackedAt, id)
		w.signal()
		return
	}
	w.sentAt[id] = t0
}

// wait returns once n messages were acked. It copies nothing: the one-
// at-a-time run calls it for every message, and copying the latencies
// each time (as it once did) allocated n²/2 of them, 100 MB over 5,000
// messages, whose garbage collections (one every 0.4 s, each taking a
// core for 4-5 ms) were the slowest percent of that run's sends.
func (w *ackWatch) wait(b *testing.B, n int) {
	deadline := time.After(5 * time.Minute)
	for {
		w.mu.Lock()
		got := len(w.lat)
		w.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-w.more:
		case <-w.done:
			b.Fatalf("%d of %d messages acked: the event stream dropped the watcher (it fell behind)", got, n)
		case <-deadline:
			b.Fatalf("%d of %d messages acked within 5 minutes", got, n)
		}
	}
}

// latencies returns the send-to-ack times so far.
func (w *ackWatch) latencies() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lat)
}

func (w *ackWatch) close() {
	w.cancel()
	<-w.done
}

// reportRate reports messages per second and the CPU time (both nodes,
// every core) each message took.
func reportRate(b *testing.B, start time.Time, cpu nodetest.CPU) {
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/secs, "msgs/s")
	b.ReportMetric(cpu.Cores()*secs*1e6/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(cpu.Faults())/float64(b.N), "faults/msg")
}

// reportWrites counts the datastore writes of sender a and receiver c
// from now until the function it returns is called (once every message
// is acked), and reports them per message: keys written (puts and
// deletes) on each side, and the batches each committed.
func reportWrites(b *testing.B, a, c *node.Node) func() {
	a0, c0 := a.ChatWrites(), c.ChatWrites()
	return func() {
		aw, cw := a.ChatWrites().Sub(a0), c.ChatWrites().Sub(c0)
		n := float64(b.N)
		b.ReportMetric(float64(aw.Writes())/n, "writes/msg-sender")
		b.ReportMetric(float64(cw.Writes())/n, "writes/msg-receiver")
		b.ReportMetric(float64(aw.Commits+cw.Commits)/n, "batches/msg")
		b.ReportMetric(float64(aw.Syncs+cw.Syncs)/n, "syncs/msg")
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}
