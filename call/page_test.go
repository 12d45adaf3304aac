package call_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/meshtalk/meshtalk/call"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestCallFromPage: an endpoint that is not the node's own (what a page of
// the web UI is; here a pion PeerConnection standing in for the browser)
// places a call with its SDP and endpoint ID, trickles its candidates
// through SignalCall, and learns the friend's answer and candidates from
// call.signal events; video from the friend's node endpoint arrives.
func TestCallFromPage(t *testing.T) {
	_, ivf := media(t)
	a, b := friends(t, time.Minute)
	evA, evB := nodetest.Events(t, a), nodetest.Events(t, b)

	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var frames atomic.Int64
	var wg sync.WaitGroup
	defer func() { pc.Close(); wg.Wait() }()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				if tr.Kind() == webrtc.RTPCodecTypeVideo && p.Marker {
					frames.Add(1)
				}
			}
		}()
	})
	// The page keeps its candidates until it knows the call's ID.
	var mu sync.Mutex
	var cands []webrtc.ICECandidateInit
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			mu.Lock()
			cands = append(cands, c.ToJSON())
			mu.Unlock()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	const page = "page-7f3a"
	info, err := a.StartCall(bg, node.CallRequest{Peer: b.ID().String(), Audio: true, Video: true, Endpoint: page, SDP: offer.SDP})
	if err != nil {
		t.Fatal(err)
	}
	if info.Endpoint != page {
		t.Fatalf("call %+v", info)
	}
	sent := 0
	send := func() {
		mu.Lock()
		todo := slices.Clone(cands[sent:])
		sent = len(cands)
		mu.Unlock()
		for _, c := range todo {
			if err := a.SignalCall(bg, info.ID, page, node.CallSignal{Kind: call.KindCandidate, Candidate: &c}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send()
	waitCall(t, evB, call.EventRinging, info.ID)
	if _, err := b.AnswerCall(bg, info.ID, node.AnswerRequest{CallMedia: node.CallMedia{VideoFile: ivf}}); err != nil {
		t.Fatal(err)
	}
	// The page follows call.signal events of its call.
	deadline := time.After(20 * time.Second)
	for frames.Load() < 30 {
		send()
		select {
		case ev := <-evA:
			s, ok := ev.Data.(call.SignalEvent)
			if ev.Type != call.EventSignal || !ok || s.CallID != info.ID {
				continue
			}
			if s.Endpoint != page {
				t.Fatalf("a signal for endpoint %q", s.Endpoint)
			}
			switch s.Signal.Kind {
			case call.KindAnswer:
				err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.Signal.SDP})
			case call.KindCandidate:
				err = pc.AddICECandidate(*s.Signal.Candidate)
			}
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the page got %d video frames", frames.Load())
		}
	}
	if _, err := a.HangupCall(bg, info.ID); err != nil {
		t.Fatal(err)
	}
	waitCall(t, evB, call.EventEnded, info.ID)
}

// answeringPage answers offer as a page of the web UI would (a pion
// PeerConnection on loopback standing in for the browser), its
// candidates in the answer, and returns the answer's SDP. The page lives
// until the test ends.
func answeringPage(t testing.TB, offer string) string {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(30 * time.Second):
		t.Fatal("the page gathered no candidates in 30 s")
	}
	return pc.LocalDescription().SDP
}
