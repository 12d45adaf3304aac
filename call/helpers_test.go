package call_test

import "github.com/pion/webrtc/v4"

func candidate(s string) *webrtc.ICECandidateInit {
	zero := uint16(0)
	return &webrtc.ICECandidateInit{Candidate: s, SDPMLineIndex: &zero}
}
