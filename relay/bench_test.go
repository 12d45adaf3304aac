package relay_test

import (
	"bufio"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshtalk/meshtalk/internal/frame"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
	"github.com/meshtalk/meshtalk/relay"
	"github.com/meshtalk/meshtalk/relay/pb"
)

// rawDeposit is the baseline's protocol: the same frames, answered at
// once, with nothing stored.
const rawDeposit protocol.ID = "/meshtalk-bench/raw-deposit/1.0.0"

// BenchmarkMailboxDeposit measures durable deposits per second: many
// logged-in senders, each pipelining batches of sealed 1 KiB envelopes on
// one stream per batch, beside the same traffic answered by a bare
// libp2p handler that stores nothing.
func BenchmarkMailboxDeposit(b *testing.B) {
	const senders, batch = 16, 64
	r := nodetest.Start(b, nodetest.Options{Role: node.RoleRelay, Configure: func(c *node.Config) {
		c.Relay.MailboxMaxItems, c.Relay.MailboxMaxMiB = 1<<30, 1<<20
		c.Relay.SenderMaxItems, c.Relay.SenderMaxMiB = 1<<30, 1<<20
	}})
	r.Host().SetStreamHandler(rawDeposit, func(st network.Stream) {
		defer st.Close()
		rd := bufio.NewReader(st)
		w := bufio.NewWriter(st)
		for {
			var req pb.MailboxRequest
			if err := frame.Read(rd, relay.MaxMailboxFrame, &req); err != nil {
				w.Flush()
				return
			}
			frame.Write(w, &pb.MailboxReply{Id: make([]byte, 16)})
			if rd.Buffered() == 0 {
				w.Flush()
			}
		}
	})
	rcpt := startUser(b, r, "")
	register(b, rcpt, r, "recipient")
	rk, _ := relay.DeriveSealingKeys(rcpt.Host().Peerstore().PrivKey(rcpt.ID()))
	rcptID := rcpt.ID()
	rcpt.Close() // offline: everything waits on the relay

	type sender struct {
		n      *node.Node
		sealed []byte
	}
	var ss []sender
	for i := range senders {
		n := startUser(b, r, "")
		register(b, n, r, "sender"+string(rune('a'+i)))
		sealed, err := relay.SealLetter(n.Host().Peerstore().PrivKey(n.ID()), rcptID, rk.Public(), relay.KindDM, [][]byte{make([]byte, 1024)}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		ss = append(ss, sender{n, sealed})
	}

	run := func(deposit func(s sender, k int) error) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		per := (b.N + senders - 1) / senders
		for _, s := range ss {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done := 0; done < per; done += batch {
					if err := deposit(s, min(batch, per-done)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return float64(per*senders) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	durable := run(func(s sender, k int) error {
		envs := make([][]byte, k)
		for i := range envs {
			envs[i] = s.sealed
		}
		for _, err := range relay.DepositSealed(bg, s.n.Host(), r.ID(), rcptID, envs) {
			if err != nil {
				return err
			}
		}
		return nil
	})
	raw := run(func(s sender, k int) error { return rawBatch(s.n, r.ID(), rcptID, s.sealed, k) })
	b.StopTimer()
	b.ReportMetric(durable, "deposits/s")
	b.ReportMetric(raw, "raw-deposits/s")
	b.ReportMetric(durable/raw*100, "%-of-raw")
	b.ReportMetric(0, "ns/op")
	if got := r.RelayServer().Stats().MailboxItems; got < b.N {
		b.Fatalf("the relay holds %d envelopes, want at least %d", got, b.N)
	}
}

func rawBatch(n *node.Node, relayID, rcpt peer.ID, sealed []byte, k int) error {
	st, err := n.Host().NewStream(bg, relayID, rawDeposit)
	if err != nil {
		return err
	}
	defer st.Close()
	w := bufio.NewWriter(st)
	for range k {
		if err := frame.Write(w, &pb.MailboxRequest{Body: &pb.MailboxRequest_Deposit{Deposit: &pb.Deposit{Recipient: []byte(rcpt), Sealed: sealed}}}); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	st.CloseWrite()
	rd := bufio.NewReader(st)
	for range k {
		var rep pb.MailboxReply
		if err := frame.Read(rd, relay.MaxMailboxFrame, &rep); err != nil {
			return err
		}
	}
	return nil
}
