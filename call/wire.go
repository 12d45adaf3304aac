package call

// The call signaling protocol, /meshtalk/call/1.0.0.
//
// One stream per call, opened by the caller and kept open for the call's
// length. Both ends are authenticated by libp2p's secure channel: the
// remote peer of the stream is the caller (or callee), never a field of a
// frame, and the SDP that crosses it carries each endpoint's DTLS
// fingerprint, so the media's DTLS-SRTP is bound to the friend's peer ID.
//
// Each frame is a length-prefixed pb.Frame (internal/frame) of at most
// MaxFrame bytes. Every frame names the call (call_id, the caller's
// choice) and carries the sender's frame number (seq: 1, 2, 3, ... on
// this stream); a frame of another call is forged, a gap or repeat in
// seq is out of order.
//
//	caller                                 callee
//	OFFER (sdp, audio, video) ----------->  friend? rate? busy?
//	                        <-----------  RINGING   (or BUSY, or ERROR and the end)
//	CANDIDATE* ------------------------->  (kept for the endpoint that answers)
//	                                       an endpoint answers:
//	                        <-----------  ACCEPT, ANSWER (sdp)
//	                        <-----------  DECLINE   (and the end)
//	CANDIDATE*, OFFER/ANSWER <---------->  CANDIDATE*, OFFER/ANSWER (renegotiation)
//	HANGUP ----------------------------->  (either side; the end)
//
// Frame types and who may send them when:
//
//	type       sender   when                              fields
//	OFFER      caller   first frame: the ring             sdp, audio and/or video
//	OFFER      either   once accepted (renegotiation)     sdp
//	RINGING    callee   first frame                       -
//	ACCEPT     callee   after RINGING, once               -
//	ANSWER     either   after ACCEPT, to the other's OFFER sdp
//	CANDIDATE  caller   after its OFFER                   candidate, sdp_mid, sdp_mline_index, username_fragment
//	CANDIDATE  callee   after ACCEPT
//	DECLINE    callee   after RINGING, before ACCEPT      -
//	BUSY       callee   first frame                       -
//	HANGUP     either   any time after the first frames   reason: "hangup", "timeout" (the ring went unanswered)
//	ERROR      either   any time; the stream ends         reason: a code (below)
//
// The caller ends a ring that nobody answers after its ring timeout (45 s)
// with HANGUP "timeout": a missed call on both sides. The callee gives up
// on its own a little later in case the caller vanished. A stream that
// breaks (the peer stopped, the connection dropped) ends the call.
//
// ERROR codes: "not_friend" (only friends can ring), "rate_limited" (too
// many rings from this peer), "forged" (a frame of another call),
// "out_of_order" (a frame the protocol does not allow now), "bad_frame"
// (a frame that does not parse or breaks a rule of its type).
//
// Version history: 1.0.0, the first.

import (
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/meshtalk/meshtalk/call/pb"
)

// ProtocolID is the call signaling protocol.
const ProtocolID = "/meshtalk/call/1.0.0"

// Limits of a frame.
const (
	// MaxFrame bounds one frame.
	MaxFrame = 96 << 10
	// MaxSDP bounds a session description.
	MaxSDP = 64 << 10
	// MaxCandidate bounds a candidate line and each of its fields.
	MaxCandidate = 1 << 10
	// MaxReason bounds a HANGUP's or ERROR's reason.
	MaxReason = 128
)

// Signal kinds: a frame's type as the rest of the code and the API name it.
const (
	KindOffer     = "offer"
	KindRinging   = "ringing"
	KindAccept    = "accept"
	KindAnswer    = "answer"
	KindCandidate = "candidate"
	KindDecline   = "decline"
	KindBusy      = "busy"
	KindHangup    = "hangup"
	KindError     = "error"
)

// Wire error codes (the reason of an ERROR frame).
const (
	CodeNotFriend   = "not_friend"
	CodeRateLimited = "rate_limited"
	CodeForged      = "forged"
	CodeOutOfOrder  = "out_of_order"
	CodeBadFrame    = "bad_frame"
)

var kinds = map[pb.Frame_Type]string{
	pb.Frame_OFFER: KindOffer, pb.Frame_RINGING: KindRinging, pb.Frame_ACCEPT: KindAccept,
	pb.Frame_ANSWER: KindAnswer, pb.Frame_CANDIDATE: KindCandidate, pb.Frame_DECLINE: KindDecline,
	pb.Frame_BUSY: KindBusy, pb.Frame_HANGUP: KindHangup, pb.Frame_ERROR: KindError,
}

func typeOf(kind string) pb.Frame_Type {
	for t, k := range kinds {
		if k == kind {
			return t
		}
	}
	return pb.Frame_UNKNOWN
}

// Signal is what one frame says, without its call ID and number: what
// endpoints send and receive (the API's JSON too). A candidate is in
// the browser's RTCIceCandidateInit form.
type Signal struct {
	Kind      string                   `json:"kind"`
	SDP       string                   `json:"sdp,omitempty"`
	Audio     bool                     `json:"audio,omitempty"`
	Video     bool                     `json:"video,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Reason    string                   `json:"reason,omitempty"`
}

// msg is one frame of a call's stream.
type msg struct {
	CallID string
	Seq    uint64
	Signal
}

func (f *msg) toWire() *pb.Frame {
	p := &pb.Frame{Type: typeOf(f.Kind), CallId: f.CallID, Seq: f.Seq, Sdp: f.SDP, Audio: f.Audio, Video: f.Video, Reason: f.Reason}
	if c := f.Candidate; c != nil {
		p.Candidate = c.Candidate
		if c.SDPMid != nil {
			p.SdpMid = *c.SDPMid
		}
		if c.SDPMLineIndex != nil {
			i := uint32(*c.SDPMLineIndex)
			p.SdpMlineIndex = &i
		}
		if c.UsernameFragment != nil {
			p.UsernameFragment = *c.UsernameFragment
		}
	}
	return p
}

// fromWire checks a received frame and converts it. The error says what
// is wrong; the caller wraps it in ErrBadFrame.
func fromWire(p *pb.Frame) (msg, error) {
	kind, ok := kinds[p.GetType()]
	if !ok {
		return msg{}, fmt.Errorf("unknown frame type %d", p.GetType())
	}
	f := msg{CallID: p.GetCallId(), Seq: p.GetSeq(), Signal: Signal{Kind: kind, SDP: p.GetSdp(), Audio: p.GetAudio(), Video: p.GetVideo(), Reason: p.GetReason()}}
	if !ValidID(f.CallID) {
		return msg{}, fmt.Errorf("bad call ID %q", truncate(f.CallID))
	}
	if f.Seq == 0 {
		return msg{}, errors.New("frame number 0")
	}
	if len(f.SDP) > MaxSDP || len(f.Reason) > MaxReason {
		return msg{}, errors.New("sdp or reason too long")
	}
	hasCand := p.Candidate != "" || p.SdpMid != "" || p.SdpMlineIndex != nil || p.UsernameFragment != ""
	switch kind {
	case KindOffer, KindAnswer:
		if f.SDP == "" {
			return msg{}, fmt.Errorf("%s without sdp", kind)
		}
	case KindCandidate:
		if len(p.Candidate) > MaxCandidate || len(p.SdpMid) > MaxCandidate || len(p.UsernameFragment) > MaxCandidate || p.GetSdpMlineIndex() > 0xffff {
			return msg{}, errors.New("candidate too long")
		}
		c := &webrtc.ICECandidateInit{Candidate: p.Candidate}
		if p.SdpMid != "" {
			c.SDPMid = &p.SdpMid
		}
		if p.SdpMlineIndex != nil {
			i := uint16(*p.SdpMlineIndex)
			c.SDPMLineIndex = &i
		}
		if p.UsernameFragment != "" {
			c.UsernameFragment = &p.UsernameFragment
		}
		f.Candidate = c
	}
	if kind != KindOffer && kind != KindAnswer && f.SDP != "" {
		return msg{}, fmt.Errorf("sdp on a %s frame", kind)
	}
	if kind != KindCandidate && hasCand {
		return msg{}, fmt.Errorf("candidate on a %s frame", kind)
	}
	if kind != KindOffer && (f.Audio || f.Video) {
		return msg{}, fmt.Errorf("media flags on a %s frame", kind)
	}
	return f, nil
}

// ValidID reports whether s is a call ID: 32 lowercase hex digits.
func ValidID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
