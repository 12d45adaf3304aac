package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	cdpnet "github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// The shared test media (../shared/media, from the repository's parent).
const (
	callOgg = "/work/shared/media/test.ogg"
	callIVF = "/work/shared/media/test.ivf"
)

// callConfig: the node's own endpoint offers 127.0.0.1 only (the pages'
// and the node's media stay on loopback), and a call rings for a minute.
func callConfig(c *node.Config) {
	c.Calls.LoopbackCandidates = true
	c.Calls.Interfaces = []string{"lo"}
	c.Calls.MDNS = false
	c.Calls.RingTimeout = node.Duration(time.Minute)
}

// framesDecoded is a JavaScript predicate: the call view's statistics
// (read from the page's RTCPeerConnection.getStats) count more than n
// decoded video frames.
func framesDecoded(n int) string {
	return fmt.Sprintf(`Number(%s?.dataset.framesDecoded) > %d`, q("[data-testid=call-stats]"), n)
}

const callNote = `[...document.querySelectorAll('[data-testid=message][data-kind=call]')]`

// TestBrowserCallNode: a page calls a friend whose node answers with its
// own endpoint (pion, playing the shared Ogg and IVF files). The page
// decodes the node's video, the node receives the page's fake camera and
// microphone; the page hangs up and the call shows in the conversation
// with its length. Then a voice call the page turns into screen sharing
// (renegotiated with the node's endpoint). Last the node calls the page,
// which answers.
func TestBrowserCallNode(t *testing.T) {
	chromiumPath(t)
	for _, f := range []string{callOgg, callIVF} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("no test media: %v", err)
		}
	}
	shots := screenshotDir(t)
	alice, bob := startUserWith(t, "Alice", shots, callConfig), startUserWith(t, "Bob", shots, callConfig)
	name := "Bob"
	if _, err := bob.node.SetProfile(context.Background(), node.ProfileUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	alice.open(1280, 800)
	alice.firstRun()
	nodetest.Befriend(t, alice.node, bob.node)
	evB := nodetest.Events(t, bob.node)

	alice.openConv("Bob")
	alice.click("[data-testid=call-video]")
	ring := nodetest.WaitEventData(t, evB, node.EventCallRinging, func(d any) bool { _, ok := d.(node.CallInfo); return ok }).(node.CallInfo)
	if !ring.Video || ring.Outgoing {
		t.Fatalf("Bob's node rings with %+v", ring)
	}
	alice.wait("ringing", q("[data-testid=call-view]")+"?.dataset.state === 'ringing'", 10*time.Second)
	if _, err := bob.node.AnswerCall(context.Background(), ring.ID, node.AnswerRequest{CallMedia: node.CallMedia{AudioFile: callOgg, VideoFile: callIVF, Loop: true}}); err != nil {
		t.Fatal(err)
	}
	alice.wait("the call to be active", q("[data-testid=call-view]")+"?.dataset.state === 'active'", 20*time.Second)
	alice.wait("the node's video decoded in the page", framesDecoded(30), 20*time.Second)
	alice.wait("the node's audio in the page", `Number(`+q("[data-testid=call-stats]")+`?.dataset.audioPackets) > 0`, 10*time.Second)
	var st *node.CallStats
	nodetest.Eventually(t, 20*time.Second, "the page's camera and microphone at the node", func() bool {
		st, _ = bob.node.CallStats(context.Background(), ring.ID)
		return st != nil && st.Video.FramesReceived > 0 && st.Audio.FramesReceived > 0
	})
	t.Logf("the node's endpoint: path %s, video %+v, audio %+v", st.Path, st.Video, st.Audio)
	alice.wait("the timer", q("[data-testid=call-status]")+"?.textContent.match(/^\\d+:\\d\\d$/) !== null", 10*time.Second)
	alice.shot("call")

	// Mute, then hang up from the page: the node's call ends, and the
	// conversation shows the call with its length.
	alice.click("[data-testid=call-mute]")
	alice.wait("muted", q("[data-testid=call-mute]")+".getAttribute('aria-pressed') === 'true'", 5*time.Second)
	alice.click("[data-testid=call-hangup]")
	nodetest.WaitEventData(t, evB, node.EventCallEnded, func(d any) bool { i, ok := d.(node.CallInfo); return ok && i.ID == ring.ID })
	alice.wait("the call view to close", q("[data-testid=call-view]")+" === null", 10*time.Second)
	alice.wait("the call in the conversation", callNote+`.some(e => /^Outgoing video call/.test(e.textContent) && e.querySelector('[data-testid=call-length]'))`, 10*time.Second)
	alice.shot("call-ended")

	// A voice call that the page turns into screen sharing: its new video
	// track is a renegotiation, answered by the node's own endpoint.
	alice.click("[data-testid=call-audio]")
	ring = nodetest.WaitEventData(t, evB, node.EventCallRinging, func(d any) bool { i, ok := d.(node.CallInfo); return ok && i.ID != ring.ID }).(node.CallInfo)
	if _, err := bob.node.AnswerCall(context.Background(), ring.ID, node.AnswerRequest{CallMedia: node.CallMedia{AudioFile: callOgg, Loop: true}}); err != nil {
		t.Fatal(err)
	}
	alice.wait("the voice call to be active", q("[data-testid=call-view]")+"?.dataset.state === 'active'", 20*time.Second)
	nodetest.Eventually(t, 20*time.Second, "the page's microphone at the node", func() bool {
		st, _ = bob.node.CallStats(context.Background(), ring.ID)
		return st != nil && st.Audio.FramesReceived > 0
	})
	if st.Video.FramesReceived != 0 {
		t.Fatalf("the node got %d video frames of a voice call", st.Video.FramesReceived)
	}
	alice.click("[data-testid=call-screen]")
	nodetest.Eventually(t, 20*time.Second, "the page's screen at the node", func() bool {
		st, _ = bob.node.CallStats(context.Background(), ring.ID)
		return st != nil && st.Video.FramesReceived > 10
	})
	alice.click("[data-testid=call-hangup]")
	nodetest.WaitEventData(t, evB, node.EventCallEnded, func(d any) bool { i, ok := d.(node.CallInfo); return ok && i.ID == ring.ID })

	// The node calls the page, which answers before its camera is on (the
	// camera joins by replaceTrack): the page decodes the node's video,
	// the node gets the page's camera and microphone.
	alice.wait("the call view to close", q("[data-testid=call-view]")+" === null", 10*time.Second)
	out, err := bob.node.StartCall(context.Background(), node.CallRequest{Peer: alice.node.ID().String(), Audio: true, Video: true,
		CallMedia: node.CallMedia{AudioFile: callOgg, VideoFile: callIVF, Loop: true}})
	if err != nil {
		t.Fatal(err)
	}
	alice.wait("the ring", q("[data-testid=call-view]")+"?.dataset.state === 'incoming'", 15*time.Second)
	alice.click("[data-testid=call-accept]")
	alice.wait("the call to be active", q("[data-testid=call-view]")+"?.dataset.state === 'active'", 20*time.Second)
	alice.wait("the node's video decoded in the page", framesDecoded(30), 20*time.Second)
	nodetest.Eventually(t, 20*time.Second, "the page's camera and microphone at the node", func() bool {
		st, _ = bob.node.CallStats(context.Background(), out.ID)
		return st != nil && st.Video.FramesReceived > 10 && st.Audio.FramesReceived > 0
	})
	if _, err := bob.node.HangupCall(context.Background(), out.ID); err != nil {
		t.Fatal(err)
	}
	alice.wait("the call view to close", q("[data-testid=call-view]")+" === null", 10*time.Second)
}

// TestBrowserCallBrowser: two pages on two nodes. Bob's page rings with
// Alice's name (again once reloaded), he declines (Alice's conversation says so). A voice call:
// Alice shares her screen mid-call (getDisplayMedia, renegotiated) and
// Bob's page decodes it. A video call: each page decodes the other's fake
// camera; Bob hangs up and both call views close.
func TestBrowserCallBrowser(t *testing.T) {
	chromiumPath(t)
	shots := screenshotDir(t)
	alice, bob := startUserWith(t, "Alice", shots, callConfig), startUserWith(t, "Bob", shots, callConfig)
	alice.open(1280, 800)
	bob.open(1280, 800)
	alice.firstRun()
	bob.firstRun()
	nodetest.Befriend(t, alice.node, bob.node)
	alice.openConv("Bob")

	alice.click("[data-testid=call-audio]")
	bob.wait("the ring", q("[data-testid=call-view]")+"?.dataset.state === 'incoming'", 15*time.Second)
	// A page opened while the call rings shows it (from GET /api/v1/calls).
	bob.reload()
	bob.wait("the ring after a reload", q("[data-testid=call-view]")+"?.dataset.state === 'incoming'", 15*time.Second)
	if got := bob.text("[data-testid=call-view] .call-name"); got != "Alice" {
		t.Fatalf("Bob's page rings for %q", got)
	}
	bob.wait("the toast to go", q("[data-testid=toast]")+" === null", 10*time.Second)
	bob.shot("call-incoming")
	bob.click("[data-testid=call-decline]")
	alice.wait("the call view to close", q("[data-testid=call-view]")+" === null", 10*time.Second)
	alice.wait("declined in the conversation", callNote+`.some(e => e.textContent.includes('Declined'))`, 10*time.Second)

	// A voice call: no video either way until Alice shares her screen,
	// which adds a video track (a renegotiation through the nodes).
	alice.click("[data-testid=call-audio]")
	bob.wait("the ring", q("[data-testid=call-view]")+"?.dataset.state === 'incoming'", 15*time.Second)
	bob.click("[data-testid=call-accept]")
	for _, u := range []*user{alice, bob} {
		u.wait("the voice call to be active", q("[data-testid=call-view]")+"?.dataset.state === 'active'", 20*time.Second)
		u.wait("the friend's audio", `Number(`+q("[data-testid=call-stats]")+`?.dataset.audioPackets) > 0`, 10*time.Second)
	}
	var before int
	bob.eval(`Number(`+q("[data-testid=call-stats]")+`.dataset.framesDecoded)`, &before)
	if before != 0 {
		t.Fatalf("Bob's page decoded %d video frames of a voice call", before)
	}
	alice.click("[data-testid=call-screen]")
	alice.wait("sharing", q("[data-testid=call-screen]")+".getAttribute('aria-pressed') === 'true'", 10*time.Second)
	bob.wait("Alice's screen decoded", framesDecoded(10), 20*time.Second)
	alice.click("[data-testid=call-hangup]")
	for _, u := range []*user{alice, bob} {
		u.wait("the call view to close", q("[data-testid=call-view]")+" === null", 10*time.Second)
	}

	alice.click("[data-testid=call-video]")
	bob.wait("the ring", q("[data-testid=call-view]")+"?.dataset.state === 'incoming'", 15*time.Second)
	bob.click("[data-testid=call-accept]")
	for _, u := range []*user{alice, bob} {
		u.wait("the call to be active", q("[data-testid=call-view]")+"?.dataset.state === 'active'", 20*time.Second)
		u.wait("the friend's video decoded", framesDecoded(30), 20*time.Second)
	}
	bob.shot("call-browser")
	bob.click("[data-testid=call-hangup]")
	for _, u := range []*user{alice, bob} {
		u.wait("the call view to close", q("[data-testid=call-view]")+" === null", 10*time.Second)
	}
	bob.openConv("Alice")
	bob.wait("the call in the conversation", callNote+`.some(e => /^Incoming video call/.test(e.textContent))`, 10*time.Second)
}

// BenchmarkBrowserCallSetup: browser↔browser on loopback, the time from
// the callee's click on Accept to the first decoded frame of the caller's
// video in the callee's page (its remote <video> has a frame: videoWidth
// > 0), measured inside the page with performance.now(), polled every
// 5 ms. On the way, when the callee's page posted its answer and when the
// caller's peer connection was connected (both pages' clocks are this
// machine's). Baseline in the same run: a raw libp2p ping round trip
// between the two nodes (what one signaling exchange costs at least).
// The nodes let a friend ring as often as the benchmark does.
func BenchmarkBrowserCallSetup(b *testing.B) {
	chromiumPath(b)
	shots := screenshotDir(b)
	rings := func(c *node.Config) { callConfig(c); c.Calls.RingBurst = 1 << 20 }
	alice, bob := startUserWith(b, "Alice", shots, rings), startUserWith(b, "Bob", shots, rings)
	alice.open(1280, 800)
	bob.open(1280, 800)
	alice.firstRun()
	bob.firstRun()
	nodetest.Befriend(b, alice.node, bob.node)
	alice.openConv("Bob")
	b.Run("raw-libp2p-ping", func(b *testing.B) { nodetest.BenchPing(b, alice.node, bob.node, 1) })
	b.Run("accept-to-first-video", func(b *testing.B) {
		alice.t, bob.t = b, b
		alice.eval(callTraceJS, nil)
		bob.eval(callTraceJS, nil)
		var answer, connected, video float64
		for b.Loop() {
			alice.eval(`window.callTrace = {}; true`, nil)
			alice.click("[data-testid=call-video]")
			bob.wait("the ring", q("[data-testid=call-view]")+"?.dataset.state === 'incoming'", 15*time.Second)
			bob.waitFor("[data-testid=call-accept]")
			bob.eval(`(() => {
				window.callTrace = {};
				window.callAt('accept');
				document.querySelector('[data-testid=call-accept]').click();
				const poll = setInterval(() => {
					const v = document.querySelector('[data-testid=call-remote]');
					if (v && v.videoWidth > 0) { window.callAt('video'); clearInterval(poll); }
				}, 5);
				return true;
			})()`, nil)
			bob.wait("the first decoded frame", `window.callTrace.video !== undefined`, 20*time.Second)
			alice.wait("the caller's connection", `window.callTrace.connected !== undefined`, 20*time.Second)
			var ta, tb map[string]float64
			alice.eval(`window.callTrace`, &ta)
			bob.eval(`window.callTrace`, &tb)
			answer += tb["answer"] - tb["accept"]
			connected += ta["connected"] - tb["accept"]
			video += tb["video"] - tb["accept"]
			bob.click("[data-testid=call-hangup]")
			for _, u := range []*user{alice, bob} {
				u.wait("the call view to close", q("[data-testid=call-view]")+" === null", 10*time.Second)
			}
		}
		n := float64(b.N)
		b.ReportMetric(answer/n, "accept-to-answer-ms")
		b.ReportMetric(connected/n, "accept-to-connected-ms")
		b.ReportMetric(video/n, "accept-to-video-ms")
	})
}

// callTraceJS notes in window.callTrace when this page's peer connection
// was first connected and when it posted an answer, and gives
// window.callAt(name) for more (epoch milliseconds: the two browsers'
// clocks are this machine's).
const callTraceJS = `(() => {
	if (window.callAt) return true;
	window.callTrace = {};
	window.callAt = (k) => { window.callTrace[k] ??= performance.timeOrigin + performance.now(); };
	const Peer = window.RTCPeerConnection;
	window.RTCPeerConnection = function (...a) {
		const pc = new Peer(...a);
		pc.addEventListener('connectionstatechange', () => { if (pc.connectionState === 'connected') window.callAt('connected'); });
		return pc;
	};
	window.RTCPeerConnection.prototype = Peer.prototype;
	const f = window.fetch;
	window.fetch = (u, o) => { if (String(u).endsWith('/answer')) window.callAt('answer'); return f(u, o); };
	return true;
})()`

// TestBrowserCallRingRetry: a page opened while a call rings makes its
// answer from the caller's offer that the node keeps (GET
// /api/v1/calls/<id>). When that request fails, Accept makes the answer
// again, and the call goes through.
func TestBrowserCallRingRetry(t *testing.T) {
	chromiumPath(t)
	if _, err := os.Stat(callOgg); err != nil {
		t.Skipf("no test media: %v", err)
	}
	shots := screenshotDir(t)
	alice, bob := startUserWith(t, "Alice", shots, callConfig), startUserWith(t, "Bob", shots, callConfig)
	alice.open(1280, 800)
	alice.firstRun()
	nodetest.Befriend(t, alice.node, bob.node)
	out, err := bob.node.StartCall(context.Background(), node.CallRequest{Peer: alice.node.ID().String(), Audio: true,
		CallMedia: node.CallMedia{AudioFile: callOgg, Loop: true}})
	if err != nil {
		t.Fatal(err)
	}
	alice.wait("the ring", q("[data-testid=call-view]")+"?.dataset.state === 'incoming'", 15*time.Second)
	failed := alice.failFirst("/api/v1/calls/" + out.ID)
	alice.reload()
	alice.wait("the ring after a reload", q("[data-testid=call-view]")+"?.dataset.state === 'incoming'", 15*time.Second)
	select {
	case <-failed:
	case <-time.After(15 * time.Second):
		t.Fatal("the reloaded page did not ask the node for the call")
	}
	alice.click("[data-testid=call-accept]")
	alice.wait("the call to be active", q("[data-testid=call-view]")+"?.dataset.state === 'active'", 20*time.Second)
	nodetest.Eventually(t, 20*time.Second, "the page's microphone at the node", func() bool {
		st, _ := bob.node.CallStats(context.Background(), out.ID)
		return st != nil && st.Audio.FramesReceived > 0
	})
	if _, err := bob.node.HangupCall(context.Background(), out.ID); err != nil {
		t.Fatal(err)
	}
	alice.wait("the call view to close", q("[data-testid=call-view]")+" === null", 10*time.Second)
}

// failFirst fails the page's first request for path (as a connection
// that broke would) and lets every other request for the calls API
// through, through DevTools' fetch domain. The channel closes once it
// failed one.
func (u *user) failFirst(path string) <-chan struct{} {
	u.t.Helper()
	paused := make(chan *fetch.EventRequestPaused, 1024)
	if err := chromedp.Listen(u.ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			select {
			case paused <- e:
			default:
				u.t.Error("more than 1,024 requests paused at once")
			}
		}
	}); err != nil {
		u.t.Fatal(err)
	}
	u.do(func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/api/v1/calls/*"}}})
		return chromedp.Void{}, err
	})
	failed := make(chan struct{})
	go func() {
		done := false
		for {
			var e *fetch.EventRequestPaused
			select {
			case e = <-paused:
			case <-u.ctx.Done():
				return
			}
			fail := false
			if r, err := url.Parse(e.Request.URL); err == nil && r.Path == path && !done {
				fail = true
			}
			err := chromedp.Do(u.ctx, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
				var err error
				if fail {
					_, err = cdp.Call(ctx, t, fetch.FailRequest, fetch.FailRequestParams{RequestID: e.RequestID, ErrorReason: cdpnet.ErrorReasonConnectionFailed})
				} else {
					_, err = cdp.Call(ctx, t, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
				}
				return chromedp.Void{}, err
			})
			if err != nil && u.ctx.Err() == nil {
				u.t.Errorf("%s's page: %s: %v", u.name, e.Request.URL, err)
			}
			if fail {
				close(failed)
				done = true
			}
		}
	}()
	return failed
}
