package node_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// memInUse is the memory the test bounds: this process's private
// resident memory (RssAnon), or, under the race detector, whose shadow
// memory grows with the heap several times over, the Go heap and stacks
// in use.
func memInUse(t *testing.T) int64 {
	if raceEnabled {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapInuse + ms.StackInuse)
	}
	return rssAnon(t)
}

// memMeasure names what memInUse measures.
func memMeasure() string {
	if raceEnabled {
		return "heap and stacks in use (race detector on)"
	}
	return "RssAnon"
}

// rssAnon is this process's private resident memory in bytes.
func rssAnon(t *testing.T) int64 {
	t.Helper()
	kib, ok := nodetest.RssAnonKiB()
	if !ok {
		t.Skip("no RssAnon in /proc/self/status")
	}
	return kib << 10
}

// hostileStreams is how many streams each attacker opens per protocol and
// kind of abuse; attackers is how many peers attack.
const (
	hostileStreams = 20
	attackers      = 4
)

// attack opens streams from h to target on every protocol target serves:
// garbage, a frame length claim of 4 GiB, and streams that stay idle. It
// returns the streams it keeps open (the caller resets them) and how many
// were opened.
func attack(ctx context.Context, h host.Host, target peer.ID, protos []protocol.ID) ([]network.Stream, int) {
	var kept []network.Stream
	opened := 0
	garbage := make([]byte, 4<<10)
	rand.Read(garbage)
	claim := binary.AppendUvarint(nil, 4<<30)
	for _, p := range protos {
		for i := range 3 * hostileStreams {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := h.NewStream(network.WithAllowLimitedConn(sctx, "hostile"), target, p)
			cancel()
			if err != nil {
				continue // the target's limits refused it: fine
			}
			opened++
			s.SetWriteDeadline(time.Now().Add(2 * time.Second))
			switch i % 3 {
			case 0:
				s.Write(garbage)
				s.Close()
				continue
			case 1:
				s.Write(claim)
				s.Write(garbage[:512])
			}
			kept = append(kept, s) // 4 GiB claimed, or idle
		}
	}
	return kept, opened
}

// TestHostilePeer: raw libp2p peers that send garbage, 4 GiB length
// claims and idle streams to every protocol of a personal node and of a
// relay leave both up (a friend still gets a message through, a user
// still registers) with the process's anonymous memory grown by under
// 200 MiB.
func TestHostilePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("hostile peers take a while")
	}
	r := nodetest.Start(t, nodetest.Options{Role: node.RoleRelay})
	n, friend := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, friend, n)
	runtime.GC()
	before := memInUse(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var kept []network.Stream
	total := 0
	var wg sync.WaitGroup
	for range attackers {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		for _, target := range []*node.Node{n, r} {
			if err := h.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Host().Addrs()}); err != nil {
				t.Fatal(err)
			}
			protos := target.Host().Mux().Protocols()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, opened := attack(ctx, h, target.ID(), protos)
				mu.Lock()
				kept, total = append(kept, s...), total+opened
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	defer func() {
		for _, s := range kept {
			s.Reset()
		}
	}()
	t.Logf("%d hostile streams opened, %d kept open", total, len(kept))
	if total < 1000 {
		t.Fatalf("only %d hostile streams opened: the test does not test", total)
	}

	// Both still serve: the friend's message arrives, a user registers.
	evN := nodetest.Events(t, n)
	if _, err := friend.SendMessage(ctx, n.ID().String(), node.Draft{Text: "still there?"}); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEvent(t, evN, chat.EventMessage, nil)
	u := nodetest.Start(t, nodetest.Options{})
	if _, err := u.RelayClient().Register(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Host().Addrs()}, "survivor", ""); err != nil {
		t.Fatalf("register on the relay under attack: %v", err)
	}
	runtime.GC()
	grown := memInUse(t) - before
	t.Logf("%s grew by %d MiB", memMeasure(), grown>>20)
	if grown > 200<<20 {
		t.Fatalf("%s grew by %d MiB under attack, want under 200", memMeasure(), grown>>20)
	}
}
