package relay_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/relay"
)

// turnServerEnv marks the test binary started as the TURN server of
// BenchmarkTURNCapacity (TestHelperTURNServer); its value is how many
// users to make credentials for.
const turnServerEnv = "MESHTALK_TEST_TURN_SERVER"

// TestHelperTURNServer is not a test: it is the relay's TURN server in a
// process of its own, so that BenchmarkTURNCapacity measures its CPU and
// memory alone. It prints its address and credentials, then, for each
// line on stdin, the cores it used since the last one and its RssAnon.
func TestHelperTURNServer(t *testing.T) {
	users, _ := strconv.Atoi(os.Getenv(turnServerEnv))
	if users <= 0 {
		t.Skip("the TURN server of BenchmarkTURNCapacity, run as its subprocess")
	}
	// The relay's default bandwidth per allocation; no cap on a user's
	// allocations (each level of the benchmark makes new ones).
	srv, err := relay.StartTURNForTest(relay.TURNConfig{Listen: "127.0.0.1:0", CredentialTTL: time.Hour,
		MaxAllocationsPerUser: 1 << 20, BandwidthKbps: relay.DefaultTURNBandwidthKbps})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fmt.Println("addr", srv.Addr())
	for i := range users {
		u, p := srv.Credentials(fmt.Sprintf("user-%d", i))
		fmt.Println("user", u, p)
	}
	fmt.Println("ready")
	cpu := nodetest.StartCPU()
	for sc := bufio.NewScanner(os.Stdin); sc.Scan(); {
		rss, _ := nodetest.RssAnonKiB()
		fmt.Printf("stat %f %d %f\n", cpu.Cores(), rss, srv.DroppedBytes())
		cpu = nodetest.StartCPU()
	}
}

// turnProc is TestHelperTURNServer running.
type turnProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	addr  string
	users [][2]string
}

func startTURNProc(b *testing.B, users int) *turnProc {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	p := &turnProc{cmd: exec.Command(exe, "-test.run=^TestHelperTURNServer$", "-test.v=false")}
	p.cmd.Env = append(os.Environ(), turnServerEnv+"="+strconv.Itoa(users))
	p.cmd.Stderr = os.Stderr
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.in.Close(); p.cmd.Wait() })
	p.out = bufio.NewScanner(out)
	for p.out.Scan() {
		f := strings.Fields(p.out.Text())
		switch {
		case len(f) == 2 && f[0] == "addr":
			p.addr = f[1]
		case len(f) == 3 && f[0] == "user":
			p.users = append(p.users, [2]string{f[1], f[2]})
		case len(f) == 1 && f[0] == "ready":
			return p
		}
	}
	b.Fatal("the TURN server process ended before it was ready")
	return nil
}

// stat is the cores the server used since the last stat, its RssAnon,
// and the bytes it dropped so far over allocations' bandwidth.
func (p *turnProc) stat(b *testing.B) (cores float64, rssKiB int64, dropped float64) {
	b.Helper()
	fmt.Fprintln(p.in, "stat")
	if !p.out.Scan() {
		b.Fatal("the TURN server process ended")
	}
	if _, err := fmt.Sscanf(p.out.Text(), "stat %f %d %f", &cores, &rssKiB, &dropped); err != nil {
		b.Fatalf("%q: %v", p.out.Text(), err)
	}
	return cores, rssKiB, dropped
}

// mediaEnd is one end of a benchmark call: a socket that sends to the
// other end and counts what arrives.
type mediaEnd struct {
	conn   net.PacketConn // the relayed address (TURN), or a plain socket
	close  func()
	sent   atomic.Int64
	got    atomic.Int64
	gotLen atomic.Int64
}

// turnEnd allocates a relayed address on the server as user.
func turnEnd(b *testing.B, addr string, user [2]string) *mediaEnd {
	b.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: user[0], Password: user[1], Realm: "meshtalk", LoggerFactory: quiet})
	if err == nil {
		err = c.Listen()
	}
	var relayed net.PacketConn
	if err == nil {
		relayed, err = c.Allocate()
	}
	if err != nil {
		b.Fatalf("allocate: %v", err)
	}
	return &mediaEnd{conn: relayed, close: func() { relayed.Close(); c.Close(); conn.Close() }}
}

// udpEnd is a plain loopback socket (the baseline).
func udpEnd(b *testing.B) *mediaEnd {
	b.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return &mediaEnd{conn: conn, close: func() { conn.Close() }}
}

// Media of a benchmark call, each way: 1250 bytes every 10 ms, 1 Mbit/s.
const (
	mediaPacket = 1250
	mediaEvery  = 10 * time.Millisecond
	mediaKbps   = mediaPacket * 8 / 1000 * int(time.Second/mediaEvery)
)

// flow runs the calls (pairs of ends sending to each other at
// mediaKbps) until stop closes, and waits for their goroutines.
func flow(pairs [][2]*mediaEnd, stop chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	for _, p := range pairs {
		for i, e := range p {
			to := p[1-i].conn.LocalAddr()
			wg.Go(func() {
				buf := make([]byte, 1500)
				for {
					n, _, err := e.conn.ReadFrom(buf)
					if err != nil {
						return
					}
					e.got.Add(1)
					e.gotLen.Add(int64(n))
				}
			})
			wg.Go(func() {
				// Paced by the clock, not by ticks: a tick up to 100 ms
				// late is made up for, as an encoder's queue would; what
				// a longer stall of this process missed is not sent (a
				// shortfall of bitrate, not loss).
				pkt := make([]byte, mediaPacket)
				t := time.NewTicker(mediaEvery)
				defer t.Stop()
				start, n := time.Now(), int64(0)
				for {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					due := int64(time.Since(start) / mediaEvery)
					n = max(n, due-10)
					for ; n < due; n++ {
						if _, err := e.conn.WriteTo(pkt, to); err == nil {
							e.sent.Add(1)
						}
					}
				}
			})
		}
	}
	return func() {
		for _, p := range pairs {
			for _, e := range p {
				e.close()
			}
		}
		wg.Wait()
	}
}

// levelResult is what one level of calls measured.
type levelResult struct {
	lossPct, kbps, clientCores float64
}

// runCalls makes n calls with newEnd, lets them warm up (permissions,
// channel bindings), then measures span of media: loss, the bitrate that
// arrived per call and direction, the cores this process used; measure
// is called at the start and the end of the span.
func runCalls(b *testing.B, n int, newEnd func(i int) *mediaEnd, span time.Duration, measure func()) levelResult {
	b.Helper()
	pairs := make([][2]*mediaEnd, n)
	for i := range pairs {
		pairs[i] = [2]*mediaEnd{newEnd(2 * i), newEnd(2*i + 1)}
	}
	stop := make(chan struct{})
	wait := flow(pairs, stop)
	<-time.After(time.Second)
	var sent0, got0, len0 int64
	for _, p := range pairs {
		for _, e := range p {
			sent0, got0, len0 = sent0+e.sent.Load(), got0+e.got.Load(), len0+e.gotLen.Load()
		}
	}
	measure()
	cpu := nodetest.StartCPU()
	start := time.Now()
	<-time.After(span)
	close(stop)
	took := time.Since(start)
	// What is on its way still arrives: wait until nothing more does
	// (readers on a busy machine run late), at most 3 s.
	var sent, got, bytes int64
	for quiet, last, deadline := 0, int64(-1), time.Now().Add(3*time.Second); quiet < 3 && time.Now().Before(deadline); <-time.After(100 * time.Millisecond) {
		sent, got, bytes = 0, 0, 0
		for _, p := range pairs {
			for _, e := range p {
				sent, got, bytes = sent+e.sent.Load(), got+e.got.Load(), bytes+e.gotLen.Load()
			}
		}
		if got == last {
			quiet++
		} else {
			quiet, last = 0, got
		}
	}
	r := levelResult{clientCores: cpu.Cores()}
	measure()
	wait()
	sent, got, bytes = sent-sent0, got-got0, bytes-len0
	if sent > 0 {
		r.lossPct = 100 * float64(sent-got) / float64(sent)
	}
	r.kbps = float64(bytes) * 8 / 1000 / took.Seconds() / float64(2*n)
	return r
}

// BenchmarkTURNCapacity: how many concurrent 1 Mbit/s calls one relay's
// TURN server carries, and its CPU and memory. The server (relay/turn.go
// with the relay's default limits) runs in a process of its own
// (TestHelperTURNServer); each call is two allocations, both ends
// relayed (ICE policy relay on both sides, the server's worst case),
// sending each other 1 Mbit/s (1250-byte packets every 10 ms) through
// pion/turn clients in this process. Levels of 1, 2, 4, ... calls run 4 s
// each until one loses more than 1% of its packets or delivers less than
// 90% of the bitrate (senders of this process that a busy machine holds
// up for more than 100 ms skip what they missed: a shortfall); "carried" is the last level that did not. Baseline
// in the same run: the same number of calls straight over loopback UDP,
// no TURN. relay-cores is the server process's CPU over the span,
// client-cores this process's (the clients; on a shared machine they
// compete with the server).
func BenchmarkTURNCapacity(b *testing.B) {
	const maxCalls, span = 128, 4 * time.Second
	srv := startTURNProc(b, 2*maxCalls)
	type level struct {
		calls                      int
		res                        levelResult
		relayCores, rssMB, dropped float64
	}
	var carried level
	degraded := false
	for n := 1; n <= maxCalls && !degraded; n *= 2 {
		b.Run(fmt.Sprintf("turn/calls=%d", n), func(b *testing.B) {
			var l level
			for b.Loop() {
				l = level{calls: n}
				dropped0 := -1.0
				l.res = runCalls(b, n, func(i int) *mediaEnd { return turnEnd(b, srv.addr, srv.users[i]) }, span, func() {
					cores, rss, dropped := srv.stat(b)
					l.relayCores, l.rssMB, l.dropped = cores, float64(rss)/1024, dropped-dropped0
					dropped0 = dropped
				})
			}
			reportLevel(b, l.res)
			b.ReportMetric(l.relayCores, "relay-cores")
			b.ReportMetric(l.rssMB, "relay-RssAnon-MiB")
			// Loss the relay's bandwidth cap made, or not.
			b.ReportMetric(l.dropped/1000, "relay-capped-kB")
			if l.res.lossPct > 1 || l.res.kbps < 0.9*float64(mediaKbps) {
				degraded = true
			} else {
				carried = l
			}
		})
	}
	b.Run(fmt.Sprintf("direct-udp-baseline/calls=%d", max(carried.calls, 1)), func(b *testing.B) {
		var r levelResult
		for b.Loop() {
			r = runCalls(b, max(carried.calls, 1), func(int) *mediaEnd { return udpEnd(b) }, span, func() {})
		}
		reportLevel(b, r)
	})
	b.Run("carried", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(float64(carried.calls), "calls")
		b.ReportMetric(carried.relayCores, "relay-cores")
		b.ReportMetric(carried.rssMB, "relay-RssAnon-MiB")
		if carried.calls > 0 {
			b.ReportMetric(carried.relayCores/float64(carried.calls), "relay-cores/call")
		}
	})
}

func reportLevel(b *testing.B, r levelResult) {
	b.ReportMetric(r.lossPct, "loss-%")
	b.ReportMetric(r.kbps, "kbps/direction")
	b.ReportMetric(r.clientCores, "client-cores")
	b.ReportMetric(0, "ns/op")
}
