package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/node"
)

// BenchmarkStartup measures a start of the real binary on an existing home
// (exec to the ready line; the figure a user waits for) and the memory of
// the idle node: its private memory (RssAnon: heap, stacks; what the node
// costs the machine) and its whole resident set (VmRSS, which adds the
// binary's file pages that the kernel shares and can reclaim), beside the
// in-process start of a bare libp2p host with the same transports. Run it
// with -benchtime=20x for the median of 20 starts.
func BenchmarkStartup(b *testing.B) {
	b.Run("meshtalk", func(b *testing.B) {
		home := b.TempDir()
		// The first start creates the identity and config; time the later ones.
		p := startForBench(b, home)
		p.stop(b)
		var took []time.Duration
		var rss, anon float64
		for i := 0; b.Loop(); i++ {
			start := time.Now()
			p := startForBench(b, home)
			took = append(took, time.Since(start))
			b.StopTimer()
			if i == 0 {
				rss, anon = idleRSS(b, p, home)
			}
			p.stop(b)
			b.StartTimer()
		}
		b.ReportMetric(median(took), "ms-to-ready-p50")
		b.ReportMetric(anon, "RssAnon-KiB")
		b.ReportMetric(rss, "RSS-KiB")
	})
	b.Run("raw-libp2p", func(b *testing.B) {
		var took []time.Duration
		for b.Loop() {
			start := time.Now()
			h, err := libp2p.New(
				libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"),
				libp2p.Transport(quic.NewTransport), libp2p.Transport(tcp.NewTCPTransport),
				libp2p.Security(noise.ID, noise.New), libp2p.Security(tls.ID, tls.New),
				libp2p.Muxer(yamux.ID, yamux.DefaultTransport), libp2p.DisableMetrics(),
			)
			if err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
			h.Close()
		}
		b.ReportMetric(median(took), "ms-to-ready-p50")
	})
}

type benchProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startForBench(b *testing.B, home string) *benchProc {
	cmd := exec.Command(binary, append([]string{"run", "--home", home}, testListen...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &benchProc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan bool, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		ok := sc.Scan() && strings.HasPrefix(sc.Text(), "meshtalk ready ")
		ready <- ok
		for sc.Scan() {
		}
		cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if !ok {
			b.Fatal("meshtalk run printed no ready line")
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		b.Fatal("no ready line within 30s")
	}
	return p
}

func (p *benchProc) stop(b *testing.B) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		b.Fatal("node did not stop within 15s")
	}
}

// idleRSS answers one API call, lets the node settle for two seconds (idle
// is the state being measured) and reads its resident set size in KiB, in
// all and the anonymous part (the heap and stacks, without the binary's
// file-backed pages, which the kernel shares and can drop).
func idleRSS(b *testing.B, p *benchProc, home string) (rss, anon float64) {
	c, err := api.Dial(context.Background(), node.Home(home))
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Get(context.Background(), "/api/v1/status", nil); err != nil {
		b.Fatal(err)
	}
	<-time.After(2 * time.Second)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Skip("no /proc: cannot read the resident set size")
	}
	kib := func(field string) float64 {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				if err != nil {
					b.Fatal(err)
				}
				return kb
			}
		}
		b.Fatalf("no %s in /proc status", field)
		return 0
	}
	return kib("VmRSS"), kib("RssAnon")
}

func median(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2].Microseconds()) / 1000
}
