package group

import (
	"bufio"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pspb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/group/pb"
	"github.com/meshtalk/meshtalk/internal/queue"
)

// Gossipsub takes a peer only once it has an unlimited connection to it
// (go-libp2p-pubsub handleNewPeers): two members that reach each other
// only through a relay, as two nodes behind NATs that hole punching
// could not join do, share no topic. What this node publishes goes to
// such a member by a groupsync forward, and the member takes each topic
// message as if gossip had brought it from this node (serveForward).

// forwardJob is a topic message of a group for the members connected to
// this node only through a relay when it was published.
type forwardJob struct {
	g    *group
	to   []peer.ID
	data []byte
}

// relayedMembers are g's members that this node reaches only through a
// relay.
func (gs *Service) relayedMembers(g *group) []peer.ID {
	var to []peer.ID
	for p := range g.state().Members {
		if p != gs.self && gs.h.Network().Connectedness(p) == network.Limited {
			to = append(to, p)
		}
	}
	return to
}

// forward queues a topic message just published for the members that
// gossip does not reach.
func (gs *Service) forward(g *group, data []byte) {
	to := gs.relayedMembers(g)
	if len(to) == 0 {
		return
	}
	select {
	case gs.forwardq <- forwardJob{g: g, to: to, data: data}:
	default:
		// Far behind: the members catch up by the refresh pull.
		gs.log.Info("group forward: queue full, not forwarded", "group", g.id)
	}
}

// runForwarder forwards queued topic messages, one worker for all
// groups: what waits at a moment for one member of one group goes in
// one request (or more, each under maxSyncBytes), in the order
// published, and the members are served at once.
func (gs *Service) runForwarder() {
	for {
		jobs, ok := queue.Take(gs.ctx, gs.forwardq, maxSyncBatch)
		if !ok {
			return
		}
		type dest struct {
			p peer.ID
			g *group
		}
		var order []dest
		batches := map[dest][][]byte{}
		for _, j := range jobs {
			for _, p := range j.to {
				d := dest{p, j.g}
				if _, ok := batches[d]; !ok {
					order = append(order, d)
				}
				batches[d] = append(batches[d], j.data)
			}
		}
		var wg sync.WaitGroup
		for _, d := range order {
			wg.Go(func() { gs.forwardTo(d.p, d.g, batches[d]) })
		}
		wg.Wait()
	}
}

// forwardTo hands p topic messages of g, in requests of at most
// maxSyncBytes.
func (gs *Service) forwardTo(p peer.ID, g *group, msgs [][]byte) {
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && (n == 0 || size+len(msgs[n]) <= maxSyncBytes) {
			size += len(msgs[n])
			n++
		}
		req := &pb.SyncRequest{Body: &pb.SyncRequest_Forward{Forward: &pb.Forward{GroupId: g.gid, Messages: msgs[:n]}}}
		if err := gs.tell(gs.ctx, p, req); err != nil {
			gs.log.Debug("group forward", "group", g.id, "peer", p, "err", err)
			return // the rest by the refresh pull
		}
		msgs = msgs[n:]
	}
}

// serveForward takes the topic messages a member forwarded: each is
// checked by the topic validator and taken as gossip's would be. A
// message the validator rejects ends the request, refused.
func (gs *Service) serveForward(from peer.ID, req *pb.Forward, w *bufio.Writer) {
	g := gs.get(gidString(req.GetGroupId()))
	if g == nil || !g.state().isMember(from) {
		refuseSync(w, CodeNotMember, "not a member of this group")
		return
	}
	for _, data := range req.GetMessages() {
		m := &pubsub.Message{Message: &pspb.Message{Data: data}, ReceivedFrom: from}
		switch gs.validate(g, from, m) {
		case pubsub.ValidationReject:
			refuseSync(w, CodeBadFrame, "a forwarded topic message was rejected")
			return
		case pubsub.ValidationAccept:
			if !gs.take(gs.ctx, g, from, m.ValidatorData) {
				return
			}
		}
	}
	writeFrame(w, &pb.SyncFrame{End: true})
}
