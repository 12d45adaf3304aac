package group

// Who gossipsub deals with on a group's topic: only its members. The
// topic's name is no secret (a group ID travels in invite codes), so a
// stranger may subscribe; these filters keep it out of the mesh, the
// gossip and the answers to IWANT, so that it sees no envelope, not even
// who wrote what when.
//
// Both filters run on gossipsub's event loop: they read a snapshot of
// the groups (topics, refreshed with the fellows) and each group's
// state, never a lock that a caller of gossipsub may hold.

import (
	"errors"
	"strings"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pspb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// topicPrefix starts every group topic's name.
const topicPrefix = "/meshtalk/group/"

// maxSubsPerRPC bounds the subscriptions one gossipsub RPC may announce.
const maxSubsPerRPC = 256

var errTooManySubs = errors.New("group: too many subscriptions in one RPC")

// refreshTopics takes a new snapshot of the groups by topic.
func (gs *Service) refreshTopics() {
	m := map[string]*group{}
	for _, g := range gs.list() {
		m[Topic(g.id)] = g
	}
	gs.topics.Store(&m)
}

// topicGroup is the group whose topic is name (nil: none known here).
func (gs *Service) topicGroup(name string) *group {
	m := gs.topics.Load()
	if m == nil {
		return nil
	}
	return (*m)[name]
}

// peerFilter admits p on a group's topic (mesh, gossip, IWANT) only
// while the group's log makes it a member; other topics, and those of
// groups this node does not know (it is no member: nothing of its to
// keep), are not its business.
func (gs *Service) peerFilter(p peer.ID, topic string) bool {
	if !strings.HasPrefix(topic, topicPrefix) {
		return true
	}
	g := gs.topicGroup(topic)
	return g == nil || g.state().isMember(p)
}

// subFilter drops a peer's subscriptions to the topics of groups that
// removed it or that it left: they would only cost memory. A peer that
// was never a member keeps its subscription (it may be a newcomer whose
// add is on its way here), and so does one to a group not known here (it
// may be the group this node is joining: the members' subscriptions come
// as the join's connection opens, and are announced only once), and
// peerFilter keeps it out of everything until the log makes it a member.
type subFilter struct{ gs *Service }

func (subFilter) CanSubscribe(string) bool { return true }

func (f subFilter) FilterIncomingSubscriptions(from peer.ID, subs []*pspb.RPC_SubOpts) ([]*pspb.RPC_SubOpts, error) {
	if len(subs) > maxSubsPerRPC {
		return nil, errTooManySubs
	}
	out := subs[:0:0]
	for _, s := range subs {
		t := s.GetTopicid()
		if s.GetSubscribe() && strings.HasPrefix(t, topicPrefix) {
			if g := f.gs.topicGroup(t); g != nil {
				if st := g.state(); !st.isMember(from) && st.wasEver(from) {
					continue
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// filterOptions are gossipsub's options that admit only members to a
// group's topic: the filters above, and no floodsub, whose peers get
// every message published on a topic they subscribe to, whatever the
// filters say.
func (gs *Service) filterOptions() []pubsub.Option {
	var protos []protocol.ID
	for _, p := range pubsub.GossipSubDefaultProtocols {
		if p != pubsub.FloodSubID {
			protos = append(protos, p)
		}
	}
	return []pubsub.Option{
		pubsub.WithPeerFilter(gs.peerFilter),
		pubsub.WithSubscriptionFilter(subFilter{gs}),
		pubsub.WithGossipSubProtocols(protos, pubsub.GossipSubDefaultFeatures),
	}
}
