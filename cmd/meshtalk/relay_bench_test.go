package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// BenchmarkRelayLoggedInClients: how much memory a relay process needs
// for 1,000 logged-in clients. The clients are bare libp2p hosts with the
// relay client, in this process; the relay is the real binary. The
// baseline is the same relay with the same 1,000 clients connected but
// not logged in (what raw libp2p connections cost it).
func BenchmarkRelayLoggedInClients(b *testing.B) {
	const clients = 1000
	for range b.N {
		home := b.TempDir()
		// All 1,000 clients register from 127.0.0.1 at once.
		limits := "[relay]\nregistrations_per_ip_per_hour = 2000\nregistrations_per_minute = 2000\n"
		if err := os.WriteFile(node.Home(home).ConfigPath(), []byte(limits), 0o600); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(binary, append([]string{"relay", "--home", home}, relayListen...)...)
		cmd.Env = cleanEnv()
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "meshtalk ready ") {
			cmd.Process.Kill()
			b.Fatal("no ready line")
		}
		ready := map[string]string{}
		for _, kv := range strings.Fields(strings.TrimPrefix(sc.Text(), "meshtalk ready ")) {
			k, v, _ := strings.Cut(kv, "=")
			ready[k] = v
		}
		go func() {
			for sc.Scan() {
			}
		}()
		var tcpAddr string
		for _, a := range strings.Split(ready["listen"], ",") {
			if strings.Contains(a, "/tcp/") {
				tcpAddr = a
			}
		}
		info, err := peer.AddrInfoFromString(tcpAddr + "/p2p/" + ready["peer_id"])
		if err != nil {
			b.Fatal(err)
		}
		idle := processRSS(b, cmd.Process.Pid)

		ctx := context.Background()
		hosts := make([]host.Host, clients)
		parallel(clients, func(i int) {
			h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
				libp2p.Security(noise.ID, noise.New), libp2p.Muxer(yamux.ID, yamux.DefaultTransport), libp2p.DisableMetrics())
			if err != nil {
				b.Error(err)
				return
			}
			hosts[i] = h
			if err := h.Connect(ctx, *info); err != nil {
				b.Error(err)
			}
		})
		if b.Failed() {
			b.FailNow()
		}
		connected := settledRSS(b, cmd.Process.Pid)

		start := time.Now()
		closers := make([]io.Closer, clients)
		parallel(clients, func(i int) {
			c, err := nodetest.RegisterBareClient(ctx, hosts[i], *info, fmt.Sprintf("client%04d", i))
			closers[i] = c
			if err != nil {
				b.Error(err)
			}
		})
		rc, err := api.Dial(ctx, node.Home(home))
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			stats, err := rc.RelayStats(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if stats.LoggedIn == clients {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d clients logged in after 2 minutes", stats.LoggedIn, clients)
			}
			<-time.After(100 * time.Millisecond)
		}
		loginTime := time.Since(start)
		loggedIn := settledRSS(b, cmd.Process.Pid)

		b.ReportMetric(idle, "MiB-rss-idle")
		b.ReportMetric(connected, "MiB-rss-1000-connected")
		b.ReportMetric(loggedIn, "MiB-rss-1000-logged-in")
		b.ReportMetric((loggedIn-idle)*1024/clients, "KiB-per-client")
		b.ReportMetric((loggedIn-connected)*1024/clients, "KiB-per-login")
		b.ReportMetric(float64(clients)/loginTime.Seconds(), "logins/s")
		parallel(clients, func(i int) {
			if closers[i] != nil {
				closers[i].Close()
			}
			hosts[i].Close()
		})
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
}

// parallel runs f(0..n-1) on 32 goroutines.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// settledRSS waits two seconds (for the relay to finish what the last
// requests started) and reads its resident set size.
func settledRSS(b *testing.B, pid int) float64 {
	<-time.After(2 * time.Second)
	return processRSS(b, pid)
}

func processRSS(b *testing.B, pid int) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skip("no /proc: cannot read the resident set size")
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
