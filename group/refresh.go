package group

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// runRefresh pulls each group, every Config.Refresh, from one of its
// online members, each in turn. Every other pull has a cause: a member
// connects or joins the topic, a message shows a gap in its author's
// numbers, an author heard goes quiet. None comes for an author's last
// messages that gossip lost (a mesh re-forming after a restart drops
// them) when this node heard nothing of that author since: a lost tail
// shows no gap. The pull asks for what the member holds that this node
// lacks, by the heads, so a refresh that finds nothing costs one
// exchange of heads; a member that lacks the tail itself is asked
// again in its turn, and the author is among those asked.
func (gs *Service) runRefresh() {
	turns := map[string]int{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		every := time.Duration(gs.refresh.Load())
		if every > 0 {
			timer.Reset(every)
		}
		select {
		case <-gs.ctx.Done():
			return
		case <-gs.refreshWake:
			timer.Stop()
			continue
		case <-timer.C:
		}
		next := make(map[string]int, len(turns))
		for _, g := range gs.list() {
			turn := turns[g.id]
			if p := gs.refreshFrom(g, turn); p != "" {
				gs.wantPull(g.id, p, 0)
			}
			next[g.id] = turn + 1
		}
		turns = next
	}
}

// refreshFrom is the member that refresh turn turn of g pulls from: the
// online members other than this node, in a fixed order, taken in turn;
// "" when there is none (or this node is not a member).
func (gs *Service) refreshFrom(g *group, turn int) peer.ID {
	st := g.state()
	if st.Status != StatusMember {
		return ""
	}
	var online []peer.ID
	for p := range st.Members {
		if p != gs.self && gs.online(p) {
			online = append(online, p)
		}
	}
	if len(online) == 0 {
		return ""
	}
	slices.Sort(online)
	return online[turn%len(online)]
}

// setRefresh changes how often runRefresh pulls, from now on.
func (gs *Service) setRefresh(every time.Duration) {
	gs.refresh.Store(int64(every))
	select {
	case gs.refreshWake <- struct{}{}:
	default:
	}
}
