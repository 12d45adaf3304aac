package call

import (
	"fmt"
	"math"
	"time"

	"github.com/pion/webrtc/v4"
)

// Stats is what `meshtalk call stats` shows of a call on the node's
// endpoint.
type Stats struct {
	CallID string `json:"call_id"`
	// State is the PeerConnection's ("new", "connecting", "connected",
	// "disconnected", "failed", "closed").
	State string `json:"state"`
	// Path is the ICE path of the selected candidate pair: the local
	// candidate's type ("host", "srflx", "prflx", "relay"), and the
	// remote's.
	Path       string `json:"path"`
	RemotePath string `json:"remote_path,omitempty"`
	Local      string `json:"local,omitempty"`  // address of the local candidate (protocol, ip:port)
	Remote     string `json:"remote,omitempty"` // of the remote candidate
	// TURN is the TURN server the media goes through (one of the
	// relays'), when Path is "relay"; Relay names that relay (node fills
	// it in).
	TURN  string `json:"turn,omitempty"`
	Relay string `json:"relay,omitempty"`
	// RelayProtocol is how the media reaches that TURN server, "udp" or
	// "tcp" (a network that drops UDP leaves TURN over TCP).
	RelayProtocol string `json:"relay_protocol,omitempty"`
	// RTTMs is the ICE round-trip time of the selected pair.
	RTTMs float64    `json:"rtt_ms"`
	Audio MediaStats `json:"audio"`
	Video MediaStats `json:"video"`
	// ConnectedAt is when the media connected; FirstVideoAt when the
	// first whole video frame arrived.
	ConnectedAt  time.Time `json:"connected_at,omitzero"`
	FirstVideoAt time.Time `json:"first_video_at,omitzero"`
}

// MediaStats is one direction pair of one kind of media.
type MediaStats struct {
	FramesSent      int64   `json:"frames_sent"`
	FramesReceived  int64   `json:"frames_received"` // whole frames (video) or Opus packets (audio) that arrived; "decoded" for the node's endpoint, which records rather than decodes
	PacketsReceived int64   `json:"packets_received"`
	PacketsLost     int64   `json:"packets_lost"`
	JitterMs        float64 `json:"jitter_ms"`
	BitrateKbps     float64 `json:"bitrate_kbps"` // received, on average since the media connected
}

// inboundStats fills in loss, jitter and bitrate of what arrives, from
// the stats interceptor.
func (r *RTC) inboundStats(st *Stats) {
	if r.stats == nil {
		return
	}
	r.inMu.Lock()
	defer r.inMu.Unlock()
	for kind, in := range r.inbound {
		m := &st.Audio
		if kind == webrtc.RTPCodecTypeVideo {
			m = &st.Video
		}
		s := r.stats.Get(in.ssrc)
		if s == nil {
			continue
		}
		m.PacketsReceived = int64(s.InboundRTPStreamStats.PacketsReceived)
		m.PacketsLost = s.InboundRTPStreamStats.PacketsLost
		m.JitterMs = math.Float64frombits(in.jitter.Load()) * 1000
		if !st.ConnectedAt.IsZero() {
			if secs := time.Since(st.ConnectedAt).Seconds(); secs > 0 {
				m.BitrateKbps = float64(s.InboundRTPStreamStats.BytesReceived) * 8 / 1000 / secs
			}
		}
	}
}

// Stats reads the PeerConnection's statistics and the endpoint's counts.
func (r *RTC) Stats() Stats {
	st := Stats{State: r.pc.ConnectionState().String(), ConnectedAt: r.Connected(), FirstVideoAt: r.FirstVideo()}
	st.Audio.FramesSent, st.Video.FramesSent = r.sentAudio.Load(), r.sentVideo.Load()
	st.Audio.FramesReceived, st.Video.FramesReceived = r.recvAudio.Load(), r.recvVideo.Load()
	report := r.pc.GetStats()
	var pair *webrtc.ICECandidatePairStats
	for _, s := range report {
		switch v := s.(type) {
		case webrtc.ICECandidatePairStats:
			if v.Nominated && (pair == nil || v.State == webrtc.StatsICECandidatePairStateSucceeded) {
				p := v
				pair = &p
			}
		}
	}
	r.inboundStats(&st)
	if pair != nil {
		st.RTTMs = pair.CurrentRoundTripTime * 1000
		if c, ok := report[pair.LocalCandidateID].(webrtc.ICECandidateStats); ok {
			st.Path, st.Local = c.CandidateType.String(), fmt.Sprintf("%s %s:%d", c.Protocol, c.IP, c.Port)
			if c.CandidateType == webrtc.ICECandidateTypeRelay {
				st.RelayProtocol = c.RelayProtocol
				st.TURN = relayOf(r.cfg.ICEServers, c.IP, c.RelayProtocol)
			}
		}
		if c, ok := report[pair.RemoteCandidateID].(webrtc.ICECandidateStats); ok {
			st.RemotePath, st.Remote = c.CandidateType.String(), fmt.Sprintf("%s %s:%d", c.Protocol, c.IP, c.Port)
		}
	}
	return st
}
