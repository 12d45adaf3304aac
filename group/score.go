package group

// Gossipsub peer scoring on the group topics.
//
// The topic validator (service.go) rejects what a non-member signed, what
// does not decrypt, a forged operation; scoring is what makes a Reject
// cost its sender. Each rejected message adds one to the invalid-message
// counter (P4) of the peer that sent it, and of every peer that forwarded
// it; the penalty is the counter squared, so a stray reject costs little
// and a flood a lot. A peer that shares a group with this node (a fellow
// member) starts from a standing (P5); anyone else from zero:
//
//	invalid messages    0     1     2     3      4      5      6
//	stranger            0  -100  -400  -900  -1600  -2500  -3600
//	fellow member     500   400   100  -400  -1100  -2000  -3100
//	departed member -5000
//
//	score below  this node
//	0            keeps the peer out of its meshes
//	-500         stops gossip (IHAVE, IWANT) with it
//	-1000        stops publishing to it
//	-2500        graylists it: drops every RPC it sends, on every topic,
//	             before anything reads it
//
// The counter decays to nothing in ten minutes (scoreForget): a flooder
// that falls back out of the graylist gets one more message validated
// about every 20 seconds. Catch-up (groupsync) is not gossipsub: a member
// that a peer graylists still pulls and serves messages.
//
// Honest members must never pay. Groups are small (2 to 200 members) and
// bursty, with no expected message rate, so the mesh-delivery penalties
// (P3, P3b) are off: they would punish the members of a quiet group. An
// honest peer meets a reject only in a race (a message by a member this
// node has not yet learned was added, one sent a moment before its
// author was removed) and the fellow standing absorbs two of those: a
// score below zero would cost the peer its mesh links for minutes, which
// in a small group are all its links (gossipsub publishes into the mesh
// only; flood publishing is off). The standing is what this node knows and
// gossipsub does not: who is a member. A new member is a stranger to a
// node only until the node applies its add. First deliveries of valid
// messages (P2) earn a little more.
//
// A departed member (removed from a group of this node's, or gone, and
// a member of none of its other groups) starts graylisted: a kicked node
// that stays on the topic gets no more copies of the group's traffic from
// the members that know of its removal (sealed with a key it lacks, but
// still who said what when) once their next heartbeat has pruned it from
// their meshes, and what it sends goes unread. It becomes a
// fellow again as its add is applied.
//
// Off: time in the mesh (P1), which a non-member earns by merely
// subscribing to the topic; the IP colocation penalty (P6), because
// friends behind one NAT (a household, an office) share an address, and
// the test nodes all run on 127.0.0.1.

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// scoreForget is how long a penalty (or a credit) takes to decay to
	// nothing; a disconnected peer's negative score is kept as long, so
	// that reconnecting does not wash it.
	scoreForget = 10 * time.Minute
	// fellowScore is the standing (P5) of a peer that is a member of a
	// group this node is a member of.
	fellowScore = 500
	// departedScore is the standing of a peer that was a member of one of
	// this node's groups and is a member of none of them now: below the
	// graylist whatever the topics add.
	departedScore = 2 * graylistThreshold
	// invalidWeight is the P4 weight: the penalty for one invalid message.
	invalidWeight = -100
	// firstDeliveryWeight, firstDeliveryCap: +1 for each valid message a
	// peer delivered first, up to +100.
	firstDeliveryWeight = 1
	firstDeliveryCap    = 100
	// scoreCap bounds what the topics together add to a score, so that no
	// peer banks credit against its next flood.
	scoreCap = 100

	// The thresholds (see the table above).
	gossipThreshold   = -500
	publishThreshold  = -1000
	graylistThreshold = -2500
	// acceptPXThreshold is out of reach (fellowScore+scoreCap is 600):
	// members find each other through the group's log, never through the
	// peers a PRUNE suggests.
	acceptPXThreshold = 1000
	// opportunisticGraft: a mesh whose median score is below it takes in
	// better peers: members, where strangers subscribed to the topic
	// filled it.
	opportunisticGraft = 5

	// behaviourWeight, behaviourThreshold: the router's own penalties (P7),
	// for a GRAFT during a backoff and an IHAVE whose IWANT went
	// unanswered, as in the gossipsub spec's examples: free up to 6, then
	// squared.
	behaviourWeight    = -10
	behaviourThreshold = 6

	// scoreInspectPeriod is how often the scores are read (for the log of
	// graylisted peers, and for the tests).
	scoreInspectPeriod = time.Second
)

// fellows is the standing (P5) of the peers that share a group with this
// node (fellowScore) or did (departedScore); anyone else's is 0.
type fellows struct {
	mu  sync.Mutex // serialises refresh, so that the latest one is stored last
	set atomic.Pointer[map[peer.ID]float64]
}

// scoreParams are the router-wide score parameters; a group topic gets
// its own (groupTopicScore) as it is joined.
func (gs *Service) scoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:        map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap: scoreCap,
		// Called under the router's score lock, often: a lookup, no lock.
		AppSpecificScore: func(p peer.ID) float64 {
			if m := gs.fellows.set.Load(); m != nil {
				return (*m)[p]
			}
			return 0
		},
		AppSpecificWeight:         1,
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    behaviourWeight,
		BehaviourPenaltyThreshold: behaviourThreshold,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(scoreForget),
		DecayInterval:             pubsub.DefaultDecayInterval,
		DecayToZero:               pubsub.DefaultDecayToZero,
		RetainScore:               scoreForget,
	}
}

// groupTopicScore is the score parameters of one group topic.
func groupTopicScore() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight: 1,
		// P1 off (its quantum is required all the same).
		TimeInMeshQuantum: time.Second,
		// P2.
		FirstMessageDeliveriesWeight: firstDeliveryWeight,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(scoreForget),
		FirstMessageDeliveriesCap:    firstDeliveryCap,
		// P3 and P3b off: no expected rate.
		// P4.
		InvalidMessageDeliveriesWeight: invalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(scoreForget),
	}
}

func groupScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           acceptPXThreshold,
		OpportunisticGraftThreshold: opportunisticGraft,
	}
}

// refreshFellows recomputes the standing of fellow and departed members:
// after a group's state changes, and when a group is added. It must not
// be called under gs.mu.
func (gs *Service) refreshFellows() {
	gs.fellows.mu.Lock()
	defer gs.fellows.mu.Unlock()
	gs.refreshTopics()
	set := map[peer.ID]float64{}
	var mine []*state
	for _, g := range gs.list() {
		if st := g.state(); st != nil && st.Status == StatusMember {
			mine = append(mine, st)
		}
	}
	for _, st := range mine {
		for p := range st.Members {
			if p != gs.self {
				set[p] = fellowScore
			}
		}
	}
	for _, st := range mine {
		for _, members := range st.EpochMembers {
			for _, p := range members {
				if _, fellow := set[p]; !fellow && p != gs.self {
					set[p] = departedScore
				}
			}
		}
	}
	gs.fellows.set.Store(&set)
}

// watchScores keeps the latest scores (what gossipsub's inspector hands
// over) and logs the peers that cross the graylist threshold.
func (gs *Service) watchScores(in <-chan map[peer.ID]float64) {
	gray := map[peer.ID]bool{}
	for {
		select {
		case <-gs.ctx.Done():
			return
		case scores := <-in:
			gs.scores.Store(&scores)
			gs.scoreReads.Add(1)
			for p, score := range scores {
				if score < graylistThreshold && !gray[p] {
					gray[p] = true
					gs.log.Info("graylisted a peer on the group topics: it sent invalid messages", "peer", p, "score", score)
				}
			}
			for p := range gray {
				if score, ok := scores[p]; !ok || score >= graylistThreshold {
					delete(gray, p)
					gs.log.Debug("a peer left the graylist", "peer", p)
				}
			}
		}
	}
}

// score is p's latest score as this node sees it (ok: p is scored).
func (gs *Service) score(p peer.ID) (score float64, ok bool) {
	m := gs.scores.Load()
	if m == nil {
		return 0, false
	}
	score, ok = (*m)[p]
	return score, ok
}
