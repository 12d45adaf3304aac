package gcpace

import (
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPace(t *testing.T) {
	for _, c := range []struct {
		name string
		live uint64
		busy bool
		want int
	}{
		{"calm", 32 * mib, false, 100},
		{"busy: headroom over the live heap", 32 * mib, true, 200},
		{"busy, a small heap: bounded", 1 * mib, true, maxPercent},
		{"busy, a heap over the headroom: never below the default", 128 * mib, true, 100},
		{"no live heap read yet", 0, true, maxPercent},
	} {
		if got := pace(c.live, c.busy); got != c.want {
			t.Errorf("%s: pace(%d MiB, busy %v) = %d, want %d", c.name, c.live/mib, c.busy, got, c.want)
		}
	}
}

func TestBusyState(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b busyState
	for i, s := range []struct {
		at   time.Duration
		rate uint64
		want bool
	}{
		{0, 64 * mib, false},                        // under the busy rate
		{time.Second, 256 * mib, true},              // busy
		{2 * time.Second, 64 * mib, true},           // still busy above the calm rate
		{3 * time.Second, 1 * mib, true},            // calm for a second only
		{6 * time.Second, 1 * mib, true},            // calm for four
		{2*time.Second + calmAfter, 1 * mib, false}, // calm for calmAfter
		{9 * time.Second, 64 * mib, false},          // under the busy rate again
	} {
		if got := b.update(s.rate, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d (%v, %d MiB/s): busy %v, want %v", i, s.at, s.rate/mib, got, s.want)
		}
	}
}

// TestRun drives the pacer with a fake clock and samples: it raises the
// percent when the process gets busy, leaves it for a change of under a
// tenth, brings the default back once calm and when stopped.
func TestRun(t *testing.T) {
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at                time.Duration
		allocMiB, liveMiB uint64
		want              int // the percent set at this tick; 0: none
	}{
		{0, 0, 32, 0}, // the first reading
		{time.Second, 256, 32, 200},
		{2 * time.Second, 416, 33, 0}, // 193 is within a tenth of 200
		{3 * time.Second, 576, 16, 400},
		{4 * time.Second, 580, 64, 100}, // the live heap is the headroom: the default
		{5 * time.Second, 584, 8, 800},  // calm, but not for long enough
		{10 * time.Second, 588, 8, 100}, // calm for calmAfter
		{11 * time.Second, 592, 8, 0},
		{12 * time.Second, 992, 8, 800},
	}
	tick, stop := make(chan time.Time), make(chan struct{})
	samples, sets := make(chan sample), make(chan int, len(steps)+1)
	read := func() sample { return <-samples }
	at := func(i int) sample {
		s := steps[i]
		return sample{Allocs: s.allocMiB * mib, Live: s.liveMiB * mib, At: t0.Add(s.at)}
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		run(tick, stop, read, func(p int) { sets <- p })
	}()
	samples <- at(0)
	for i := 1; i < len(steps); i++ {
		tick <- time.Time{}
		samples <- at(i)
		if w := steps[i].want; w != 0 {
			select {
			case got := <-sets:
				if got != w {
					t.Fatalf("tick %d: set %d, want %d", i, got, w)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("tick %d: nothing set, want %d", i, w)
			}
		}
	}
	close(stop)
	<-ended
	select {
	case got := <-sets:
		if got != 100 {
			t.Fatalf("on stop: set %d, want the default", got)
		}
	default:
		t.Fatal("on stop: the default not set")
	}
	if len(sets) != 0 {
		t.Fatalf("more set than expected: %d left", len(sets))
	}
}

// sink keeps TestStart's allocations from being optimised away.
var sink []byte

// gogc is the collector's percent now.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestStart runs the real pacer: allocating fast raises the percent, and
// once the last of two users stops, the default is back.
func TestStart(t *testing.T) {
	t.Setenv("GOGC", "")
	stop1, stop2 := Start(), Start()
	stop1()
	stop1() // a second call is nothing
	deadline := time.Now().Add(30 * time.Second)
	for gogc() == defaultPercent {
		if time.Now().After(deadline) {
			t.Fatal("the percent stayed at the default while allocating fast")
		}
		for range 64 {
			sink = make([]byte, 64<<10)
		}
	}
	stop2()
	if p := gogc(); p != defaultPercent {
		t.Fatalf("after the last stop the percent is %d, want %d", p, defaultPercent)
	}
}

// TestStartGOGCSet leaves the percent alone when GOGC is set.
func TestStartGOGCSet(t *testing.T) {
	t.Setenv("GOGC", "100")
	stop := Start()
	defer stop()
	mu.Lock()
	n := users
	mu.Unlock()
	if n != 0 {
		t.Fatalf("GOGC set, and the pacer runs (%d users)", n)
	}
}
