package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// fileBenchMiB is the file of BenchmarkFileCLI: MESHTALK_BENCH_MIB
// overrides the default 1 GiB.
func fileBenchMiB() int64 {
	if v, err := strconv.Atoi(os.Getenv("MESHTALK_BENCH_MIB")); err == nil && v > 0 {
		return int64(v)
	}
	return 1024
}

// BenchmarkFileCLI is what a user waits for: two node processes on
// loopback (one transport each run), a fresh file of random bytes each
// round, from `meshtalk file send` to the file complete and synced in the
// receiver's folder (`meshtalk file get` returns then). Each round
// alternates with raw baselines in this process: a libp2p stream over the
// same transport that reads the source file and writes and syncs the
// destination, with Noise and with TLS as the secure channel (TCP; QUIC
// has its own). It reports the median of the rounds: MB/s of each, the
// share of meshtalk's time spent before the offer (hashing), the peak
// resident set of each node, and the cores the two nodes used. Run with
// -benchtime=1x; MESHTALK_BENCH_ROUNDS sets the rounds (3).
func BenchmarkFileCLI(b *testing.B) {
	size := fileBenchMiB() << 20
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("MESHTALK_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	for _, tr := range []string{"quic-v1", "tcp"} {
		b.Run(tr, func(b *testing.B) {
			listen := "/ip4/127.0.0.1/tcp/0"
			if tr == "quic-v1" {
				listen = "/ip4/127.0.0.1/udp/0/quic-v1"
			}
			env := cleanEnv()
			homeA, homeB := b.TempDir(), b.TempDir()
			flags := []string{"--listen", listen, "--api", "127.0.0.1:0", "--no-mdns"}
			a := startNode(b, env, append([]string{"--home", homeA}, flags...)...)
			c := startNode(b, env, append([]string{"--home", homeB}, flags...)...)
			befriendCLI(b, env, homeA, homeB)
			secs := map[string][]float64{}
			var offerShare, cores []float64
			var peakA, peakB int64
			work := b.TempDir()
			for b.Loop() {
				for r := range rounds {
					src := freshFile(b, work, size)
					dst := filepath.Join(work, fmt.Sprintf("got-%d", r))
					settleDisk()
					watch := watchPeakRSS(a.cmd.Process.Pid, c.cmd.Process.Pid)
					cpu0 := procCPU(a.cmd.Process.Pid) + procCPU(c.cmd.Process.Pid)
					start := time.Now()
					offered := sendAndGet(b, env, homeA, homeB, c.ready["peer_id"], src, dst)
					took := time.Since(start)
					cpu := procCPU(a.cmd.Process.Pid) + procCPU(c.cmd.Process.Pid) - cpu0
					pa, pb := watch()
					peakA, peakB = max(peakA, pa), max(peakB, pb)
					secs["meshtalk"] = append(secs["meshtalk"], took.Seconds())
					offerShare = append(offerShare, offered.Seconds()/took.Seconds())
					cores = append(cores, cpu.Seconds()/took.Seconds())
					os.RemoveAll(dst)
					for _, sec := range []string{"noise", "tls"} {
						if tr == "quic-v1" && sec == "tls" {
							continue // QUIC brings its own TLS
						}
						dst := filepath.Join(work, "raw")
						settleDisk()
						secs["raw-"+sec] = append(secs["raw-"+sec], rawFileCopy(b, tr, sec, src, dst).Seconds())
						os.Remove(dst)
					}
					os.Remove(src)
					b.Logf("round %d: meshtalk %.2f s (%.0f%% before the offer, %.2f cores), raw %v", r, took.Seconds(),
						100*offered.Seconds()/took.Seconds(), cpu.Seconds()/took.Seconds(), rawSecs(secs, r))
				}
			}
			mbs := func(k string) float64 { return float64(size) / 1e6 / medianOf(secs[k]) }
			b.ReportMetric(mbs("meshtalk"), "MB/s")
			b.ReportMetric(mbs("raw-noise"), "raw-noise-MB/s")
			if tr == "tcp" {
				b.ReportMetric(mbs("raw-tls"), "raw-tls-MB/s")
			}
			best := mbs("raw-noise")
			if tr == "tcp" {
				best = max(best, mbs("raw-tls"))
			}
			b.ReportMetric(100*mbs("meshtalk")/best, "%-of-raw-file")
			b.ReportMetric(100*medianOf(offerShare), "%-before-offer")
			b.ReportMetric(float64(peakA)/1024, "sender-peak-RSS-MiB")
			b.ReportMetric(float64(peakB)/1024, "receiver-peak-RSS-MiB")
			b.ReportMetric(medianOf(cores), "cores")
		})
	}
}

// sendAndGet offers src from homeA's node to its friend on homeB, whose
// peer ID is to, and fetches it into the folder dst with the command
// line; it answers how long the offer took.
func sendAndGet(b *testing.B, env []string, homeA, homeB, to, src, dst string) time.Duration {
	start := time.Now()
	out := mustRun(b, env, homeA, "file", "send", to, src)
	offered := time.Since(start)
	m := regexp.MustCompile(`\(file ([0-9a-f]+)\)`).FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("file send printed %q", out)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if strings.Contains(mustRun(b, env, homeB, "file", "list", "--json"), m[1]) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the offer did not arrive within 30s")
		}
		<-time.After(10 * time.Millisecond)
	}
	mustRun(b, env, homeB, "file", "get", m[1], "--out", dst)
	return offered
}

// freshFile writes size random bytes into a new file in dir.
func freshFile(b *testing.B, dir string, size int64) string {
	f, err := os.CreateTemp(dir, "src-*.bin")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	return f.Name()
}

// settleDisk writes back what the setup and the run before left to the
// disk (the fresh source file, a removed file's freed blocks), so that no
// run pays for another's writes: the first run after freshFile would
// otherwise share the disk with the writeback of its whole source file.
func settleDisk() { syscall.Sync() }

// rawFileCopy is the baseline: a libp2p stream between two hosts of this
// process over transport tr with security sec, the sender reading src,
// the receiver writing dst and syncing it.
func rawFileCopy(b *testing.B, tr, sec, src, dst string) time.Duration {
	listen := "/ip4/127.0.0.1/tcp/0"
	if tr == "quic-v1" {
		listen = "/ip4/127.0.0.1/udp/0/quic-v1"
	}
	security := libp2p.Security(noise.ID, noise.New)
	if sec == "tls" {
		security = libp2p.Security(tls.ID, tls.New)
	}
	newHost := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings(listen), libp2p.Transport(quic.NewTransport), libp2p.Transport(tcp.NewTCPTransport),
			security, libp2p.Muxer(yamux.ID, yamux.DefaultTransport), libp2p.DisableMetrics(), libp2p.ResourceManager(&network.NullResourceManager{}))
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	ha, hb := newHost(), newHost()
	defer ha.Close()
	defer hb.Close()
	const proto = protocol.ID("/meshtalk/bench/rawfile/1.0.0")
	ha.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		f, err := os.Open(src)
		if err != nil {
			s.Reset()
			return
		}
		defer f.Close()
		io.CopyBuffer(s, f, make([]byte, 1<<20))
	})
	ctx := context.Background()
	if err := hb.Connect(ctx, peer.AddrInfo{ID: ha.ID(), Addrs: ha.Addrs()}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	s, err := hb.NewStream(ctx, ha.ID(), proto)
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if _, err := io.CopyBuffer(out, s, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if err := out.Sync(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// watchPeakRSS samples the resident set of the processes until the
// function it returns is called, which answers each one's peak in KiB.
func watchPeakRSS(pids ...int) func() (int64, int64) {
	peaks := make([]int64, len(pids))
	done, stopped := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	sample := func() {
		mu.Lock()
		defer mu.Unlock()
		for i, pid := range pids {
			peaks[i] = max(peaks[i], procStatusKiB(pid, "VmRSS"))
		}
	}
	go func() {
		defer close(stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() (int64, int64) {
		close(done)
		<-stopped
		sample()
		return peaks[0], peaks[1]
	}
}

func procStatusKiB(pid int, field string) int64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// procCPU is the CPU time (user and system) a process has used.
func procCPU(pid int) time.Duration {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// rawSecs is what each raw baseline took in round r, in seconds.
func rawSecs(secs map[string][]float64, r int) string {
	var out []string
	for _, k := range []string{"raw-noise", "raw-tls"} {
		if len(secs[k]) > r {
			out = append(out, fmt.Sprintf("%s %.2f s", k, secs[k][r]))
		}
	}
	return strings.Join(out, ", ")
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
