// Package gcpace lets a busy process collect its garbage less often, and
// an idle one as often as Go's default does.
//
// Go's collector runs whenever the heap has grown by its live size since
// the last collection (GOGC=100). A node pushing tens of thousands of
// messages a second allocates its live heap's worth every few tens of
// milliseconds, so it collects that often, and each collection takes a
// quarter of each core for its marking; plausibly, the goroutines that
// carry the node's QUIC packets and acks then wait for a core, and the
// connection's round trip grows with the wait (BenchmarkDM pipelined,
// docs/performance.md). An idle node allocates little, and its private
// memory is the collector's minimum heap, which a higher GOGC would
// raise for good.
//
// So while the process allocates fast, the collector is given about
// headroom bytes of growth between collections (GOGC raised so that the
// live heap times GOGC/100 is headroom, never below the default); once
// the process has been calm for a few seconds, the default comes back. A
// busy process thus holds at most about headroom more heap than it would
// have, and an idle one exactly what it would have. GOGC set in the
// environment is the user's choice: then nothing here changes it.
package gcpace

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

const (
	// headroom is how far a busy process's heap may grow between two
	// collections.
	headroom = 64 << 20
	// A process is busy from busyRate bytes allocated a second; it is
	// calm again once it allocated under calmRate for calmAfter. Two
	// nodes exchanging 55,000 DMs a second allocate about 270 MiB a
	// second; a file moving at 250 MB/s between them, 30-70 MiB, so a
	// transfer stays at the default and keeps its peak memory
	// (BenchmarkTransfer's peak RssAnon: 43-58 MiB either way; 93-95
	// MiB when busy began at 32 MiB a second).
	busyRate  = 128 << 20
	calmRate  = 32 << 20
	calmAfter = 5 * time.Second
	// defaultPercent is Go's GOGC when the environment sets none.
	defaultPercent = 100
	// maxPercent bounds GOGC for a tiny live heap.
	maxPercent = 2000
	// interval is how often the allocation rate is read: a burst is
	// paced within a quarter of a second of its start.
	interval = 250 * time.Millisecond
)

// pace is the GOGC for a process whose live heap is live bytes: the
// default when it is calm, and when busy the percent that gives it
// headroom, never below the default.
func pace(live uint64, busy bool) int {
	if !busy {
		return defaultPercent
	}
	p := uint64(maxPercent)
	if live > 0 {
		p = min(p, headroom*100/live)
	}
	return max(defaultPercent, int(p))
}

// busyState tells a busy process from a calm one by its allocation rate.
type busyState struct {
	since time.Time // when it was last seen allocating like a busy one; zero: calm
}

// update takes the rate read at now and reports whether the process is
// busy.
func (b *busyState) update(rate uint64, now time.Time) bool {
	if rate >= busyRate || (!b.since.IsZero() && rate >= calmRate) {
		b.since = now
	}
	if !b.since.IsZero() && now.Sub(b.since) >= calmAfter {
		b.since = time.Time{}
	}
	return !b.since.IsZero()
}

var (
	mu    sync.Mutex
	users int
	stop  chan struct{}
	ended chan struct{}
)

// Start paces the process's collector until every Start's stop was called
// (each once); then GOGC is the default again. Nodes in one process share
// one pacer.
func Start() (stopFn func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	mu.Lock()
	defer mu.Unlock()
	users++
	if users == 1 {
		stop, ended = make(chan struct{}), make(chan struct{})
		t := time.NewTicker(interval)
		go func(stop <-chan struct{}, ended chan<- struct{}) {
			defer close(ended)
			defer t.Stop()
			run(t.C, stop, readRuntime, setPercent)
		}(stop, ended)
	}
	var once sync.Once
	return func() { once.Do(release) }
}

// release ends one Start's share; the last one stops the pacer, which
// sets the default again.
func release() {
	mu.Lock()
	defer mu.Unlock()
	users--
	if users == 0 {
		close(stop)
		<-ended
	}
}

// sample is what the pacer reads from the runtime at a tick.
type sample struct {
	Allocs uint64    // bytes allocated since the process started
	Live   uint64    // the live heap as of the last collection
	At     time.Time // when it was read
}

// run sets the collector's percent from the samples read at each tick
// until stop is closed, and then the default.
func run(tick <-chan time.Time, stop <-chan struct{}, read func() sample, set func(int)) {
	last, percent := read(), defaultPercent
	var busy busyState
	defer func() {
		if percent != defaultPercent {
			set(defaultPercent)
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-tick:
		}
		now := read()
		secs := now.At.Sub(last.At).Seconds()
		if secs <= 0 {
			continue
		}
		rate := uint64(float64(now.Allocs-last.Allocs) / secs)
		last = now
		p := pace(now.Live, busy.update(rate, now.At))
		// A change of under a tenth is not worth one; the default
		// always comes back.
		if p != percent && (p == defaultPercent || diff(p, percent)*10 >= percent) {
			set(p)
			percent = p
		}
	}
}

func diff(a, b int) int { return max(a-b, b-a) }

var metricSamples = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}

// readRuntime reads a sample from the runtime. Only run's goroutine calls
// it, so metricSamples is not shared.
func readRuntime() sample {
	metrics.Read(metricSamples)
	return sample{Allocs: metricSamples[0].Value.Uint64(), Live: metricSamples[1].Value.Uint64(), At: time.Now()}
}

func setPercent(p int) { debug.SetGCPercent(p) }
