package discovery_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

const sinkProto = protocol.ID("/meshtalk/test/sink/1.0.0")

// BenchmarkStreamThroughput sends 4 MiB a round over one stream and waits
// for the receiver's one-byte ack: directly (the raw libp2p baseline) and
// through a meshtalk relay, in the same run, on loopback.
func BenchmarkStreamThroughput(b *testing.B) {
	_, hidden, circuit := relayAndHidden(b, nil)
	direct := nodetest.Start(b, nodetest.Options{})
	caller := nodetest.Start(b, nodetest.Options{})
	for _, n := range []*node.Node{hidden, direct} {
		n.Host().SetStreamHandler(sinkProto, func(s network.Stream) {
			defer s.Close()
			buf := make([]byte, 1<<20)
			for {
				var total int64
				for total < chunk {
					n, err := s.Read(buf[:min(int64(len(buf)), chunk-total)])
					total += int64(n)
					if err != nil {
						return
					}
				}
				if _, err := s.Write([]byte{1}); err != nil {
					return
				}
			}
		})
	}
	ctx := network.WithAllowLimitedConn(context.Background(), "bench")
	hiddenInfo, _ := peer.AddrInfoFromP2pAddr(circuit.Encapsulate(ma.StringCast("/p2p/" + hidden.ID().String())))
	for _, tc := range []struct {
		name   string
		target peer.AddrInfo
	}{
		{"direct", peer.AddrInfo{ID: direct.ID(), Addrs: direct.Host().Addrs()}},
		{"relayed", *hiddenInfo},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := caller.Host().Connect(cctx, tc.target); err != nil {
				b.Fatal(err)
			}
			s, err := caller.Host().NewStream(cctx, tc.target.ID, sinkProto)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := make([]byte, chunk)
			ack := make([]byte, 1)
			b.SetBytes(chunk)
			start := time.Now()
			for b.Loop() {
				if _, err := s.Write(payload); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(s, ack); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*chunk/(1<<20)/time.Since(start).Seconds(), "MiB/s")
		})
	}
}

const chunk = 4 << 20
