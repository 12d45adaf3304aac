package transfer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
	"github.com/meshtalk/meshtalk/transfer"
)

// BenchmarkSwarm sends one file to the seven other members of a group of
// eight nodes (one process, loopback), fetched by all at once: from the
// sender only, and from every member that holds verified chunks (what a
// group's file does), beside a raw baseline in the same run (the sender
// writes the file on one libp2p stream to each member, which writes it to
// a file and syncs it). It reports the time until the last member has the
// file, and the sender's upload and the most any member uploaded, in
// files. MESHTALK_SWARM_MIB sets the file (200 MiB). Run with
// -benchtime=1x.
func BenchmarkSwarm(b *testing.B) {
	mib := 200
	if v, err := strconv.Atoi(os.Getenv("MESHTALK_SWARM_MIB")); err == nil && v > 0 {
		mib = v
	}
	size := mib << 20
	src := randomFile(b, size)
	a := nodetest.Start(b, nodetest.Options{})
	var members []*node.Node
	for range 7 {
		members = append(members, nodetest.Start(b, nodetest.Options{}))
	}
	all := append([]*node.Node{a}, members...)
	for i, x := range all {
		for _, y := range all[i+1:] {
			nodetest.Connect(b, x, y)
		}
	}
	for b.Loop() {
		raw := rawFanout(b, a, members, src, size)
		b.ReportMetric(raw.Seconds(), "s-raw-sender-only")
		for _, mode := range []string{"sender-only", "swarm"} {
			m, err := a.Transfer().Share(bg, src, mode+".bin")
			if err != nil {
				b.Fatal(err)
			}
			for _, x := range members {
				if err := a.Transfer().Offer(bg, m, x.ID()); err != nil {
					b.Fatal(err)
				}
			}
			took := fetchAll(b, m, a, members, mode == "swarm")
			upload := func(n *node.Node) float64 {
				served, err := n.Transfer().Served(bg, m.ID())
				if err != nil {
					b.Fatal(err)
				}
				var total uint64
				for _, s := range served {
					total += s.Bytes
				}
				return float64(total) / float64(m.Size)
			}
			most := 0.0
			for _, x := range members {
				most = max(most, upload(x))
			}
			b.ReportMetric(took.Seconds(), "s-"+mode)
			b.ReportMetric(upload(a), "sender-upload-files-"+mode)
			b.ReportMetric(most, "member-max-upload-files-"+mode)
		}
	}
}

// fetchAll has every member download m at once, from the sender a only or
// from a and each other, and answers the time until the last has it.
func fetchAll(b *testing.B, m *transfer.Manifest, a *node.Node, members []*node.Node, swarm bool) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for _, x := range members {
		sources := []peer.ID{a.ID()}
		if swarm {
			for _, y := range members {
				if y != x {
					sources = append(sources, y.ID())
				}
			}
			if err := x.Transfer().OfferFetched(bg, m, sources[1:]); err != nil {
				b.Fatal(err)
			}
		}
		wg.Go(func() {
			got, err := x.Transfer().Download(bg, m, sources, b.TempDir(), nil)
			if err != nil {
				b.Error(err)
				return
			}
			os.Remove(got)
		})
	}
	wg.Wait()
	return time.Since(start)
}

// rawFanout is the baseline: a writes src on one stream to each member,
// which writes it to a file and syncs it.
func rawFanout(b *testing.B, a *node.Node, members []*node.Node, src string, size int) time.Duration {
	const raw = protocol.ID("/meshtalk/bench/rawfanout/1.0.0")
	a.Host().SetStreamHandler(raw, func(s network.Stream) {
		defer s.Close()
		f, err := os.Open(src)
		if err != nil {
			s.Reset()
			return
		}
		defer f.Close()
		io.CopyBuffer(s, f, make([]byte, 1<<20))
	})
	defer a.Host().RemoveStreamHandler(raw)
	start := time.Now()
	var wg sync.WaitGroup
	for _, x := range members {
		wg.Go(func() {
			s, err := x.Host().NewStream(context.Background(), a.ID(), raw)
			if err != nil {
				b.Error(err)
				return
			}
			f, err := os.CreateTemp(b.TempDir(), "raw")
			if err != nil {
				b.Error(err)
				return
			}
			defer os.Remove(f.Name())
			defer f.Close()
			n, err := io.CopyBuffer(struct{ io.Writer }{f}, s, make([]byte, 1<<20))
			if err != nil || n != int64(size) {
				b.Error(fmt.Errorf("raw copy: %d bytes, %v", n, err))
			}
			f.Sync()
		})
	}
	wg.Wait()
	return time.Since(start)
}
