package transfer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
	"github.com/meshtalk/meshtalk/transfer"
)

// benchSize is the file of BenchmarkTransfer: MESHTALK_BENCH_MIB overrides
// the default 1 GiB.
func benchSize() int {
	if v, err := strconv.Atoi(os.Getenv("MESHTALK_BENCH_MIB")); err == nil && v > 0 {
		return v << 20
	}
	return 1 << 30
}

// BenchmarkTransfer moves one file between two nodes on loopback, over a
// QUIC connection and over a TCP connection, each beside a raw libp2p
// single-stream copy of the same size on the same connection, and reports
// the process's peak resident memory. Run with -benchtime=1x.
func BenchmarkTransfer(b *testing.B) {
	size := benchSize()
	src := randomFile(b, size)
	for _, tr := range []string{"quic-v1", "tcp"} {
		b.Run(tr, func(b *testing.B) {
			a, c := nodetest.Start(b, nodetest.Options{}), nodetest.Start(b, nodetest.Options{})
			m := offeredOver(b, a, c, src, tr)
			// The setup wrote the file twice (source, blobs): let the disk
			// write that back now, not while the transfer writes.
			syscall.Sync()
			const raw = protocol.ID("/meshtalk/bench/raw/1.0.0")
			a.Host().SetStreamHandler(raw, func(s network.Stream) {
				defer s.Close()
				buf := make([]byte, 1<<20)
				for left := size; left > 0; left -= len(buf) {
					if _, err := s.Write(buf[:min(len(buf), left)]); err != nil {
						return
					}
				}
			})
			var rawMBs, mtMBs, rawCores, mtCores float64
			for b.Loop() {
				// Raw: one stream, the same bytes, the same connection.
				start, cpu := time.Now(), nodetest.StartCPU()
				s, err := c.Host().NewStream(context.Background(), a.ID(), raw)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, s)
				if err != nil || n != int64(size) {
					b.Fatalf("raw copy: %d bytes, %v", n, err)
				}
				s.Close()
				rawMBs = float64(size) / 1e6 / time.Since(start).Seconds()
				rawCores = cpu.Cores()

				dir := b.TempDir()
				start, cpu = time.Now(), nodetest.StartCPU()
				got, err := c.Transfer().Download(context.Background(), m, []peer.ID{a.ID()}, dir, nil)
				if err != nil {
					b.Fatal(err)
				}
				mtMBs = float64(size) / 1e6 / time.Since(start).Seconds()
				mtCores = cpu.Cores()
				os.Remove(got)
			}
			b.SetBytes(int64(size))
			b.ReportMetric(mtMBs, "MB/s-meshtalk")
			b.ReportMetric(rawMBs, "MB/s-raw")
			b.ReportMetric(100*mtMBs/rawMBs, "%-of-raw")
			b.ReportMetric(mtCores, "cores-meshtalk")
			b.ReportMetric(rawCores, "cores-raw")
			b.ReportMetric(peakRSSMiB(b), "MiB-peak-rss")
		})
	}
}

// offeredOver offers src from a to c with c connected to a over one
// transport only.
func offeredOver(b *testing.B, a, c *node.Node, src, tr string) *transfer.Manifest {
	b.Helper()
	blobs, err := transfer.NewBlobs(a.Home().BlobsPath())
	if err != nil {
		b.Fatal(err)
	}
	m, err := blobs.Import(src, "")
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Transfer().Offer(context.Background(), m, c.ID()); err != nil {
		b.Fatal(err)
	}
	var addrs []ma.Multiaddr
	for _, x := range a.Host().Addrs() {
		if strings.Contains(x.String(), "/"+tr) {
			addrs = append(addrs, x)
		}
	}
	c.Host().Peerstore().ClearAddrs(a.ID())
	if err := c.Host().Connect(context.Background(), peer.AddrInfo{ID: a.ID(), Addrs: addrs}); err != nil {
		b.Fatal(err)
	}
	a.Host().Peerstore().ClearAddrs(c.ID())
	return m
}

// peakRSSMiB is the process's peak resident set (VmHWM): both nodes, as
// they share the process.
func peakRSSMiB(b *testing.B) float64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}
