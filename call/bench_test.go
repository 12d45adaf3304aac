package call_test

import (
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/call"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// BenchmarkCallSetup: node↔node on loopback, the time from the callee's
// answer to the first whole video frame arriving at the callee's endpoint
// (ICE, DTLS and SRTP set up, the caller's first keyframe through), and
// the whole ring: place the call → it rings → answer. Baseline in the
// same run: a raw libp2p ping round trip between the same two hosts,
// what one signaling exchange costs at least.
func BenchmarkCallSetup(b *testing.B) {
	ogg, ivf := media(b)
	more := func(c *node.Config) { c.Calls.RingBurst = 1 << 20 }
	x, y := callNode(b, time.Minute, more), callNode(b, time.Minute, more)
	nodetest.Befriend(b, x, y)
	b.Run("raw-libp2p-ping", func(b *testing.B) { nodetest.BenchPing(b, x, y, 1) })
	b.Run("accept-to-first-video", func(b *testing.B) {
		evY := nodetest.Events(b, y)
		var toVideo, ring time.Duration
		for b.Loop() {
			start := time.Now()
			info, err := x.StartCall(bg, node.CallRequest{Peer: y.ID().String(), CallMedia: node.CallMedia{AudioFile: ogg, VideoFile: ivf}})
			if err != nil {
				b.Fatal(err)
			}
			waitCall(b, evY, call.EventRinging, info.ID)
			answered := time.Now()
			ring += answered.Sub(start)
			if _, err := y.AnswerCall(bg, info.ID, node.AnswerRequest{}); err != nil {
				b.Fatal(err)
			}
			var first time.Time
			nodetest.Eventually(b, 10*time.Second, "first video frame", func() bool {
				st, err := y.CallStats(bg, info.ID)
				if err == nil {
					first = st.FirstVideoAt
				}
				return !first.IsZero()
			})
			toVideo += first.Sub(answered)
			if _, err := x.HangupCall(bg, info.ID); err != nil {
				b.Fatal(err)
			}
			waitCall(b, evY, call.EventEnded, info.ID)
		}
		b.ReportMetric(float64(toVideo.Microseconds())/float64(b.N)/1000, "accept-to-video-ms")
		b.ReportMetric(float64(ring.Microseconds())/float64(b.N)/1000, "call-to-ringing-ms")
	})
}

// BenchmarkCallCPU: the CPU a node↔node call costs while its media flows
// both ways (audio 48 kbit/s and VP8 video 30 fps each way, played from
// the shared files, recorded to disk on both sides): both endpoints run in
// this process, so cores/call covers both ends; cores/end is half.
// Baseline: the same two idle nodes, connected, for the same time.
func BenchmarkCallCPU(b *testing.B) {
	ogg, ivf := media(b)
	more := func(c *node.Config) { c.Calls.RingBurst = 1 << 20 }
	x, y := callNode(b, time.Minute, more), callNode(b, time.Minute, more)
	nodetest.Befriend(b, x, y)
	const span = 4 * time.Second
	b.Run("idle-nodes-baseline", func(b *testing.B) {
		cpu := nodetest.StartCPU()
		for b.Loop() {
			<-time.After(span)
		}
		b.ReportMetric(cpu.Cores(), "cores")
	})
	b.Run("call", func(b *testing.B) {
		evX, evY := nodetest.Events(b, x), nodetest.Events(b, y)
		var cores float64
		for b.Loop() {
			m := node.CallMedia{AudioFile: ogg, VideoFile: ivf, Record: b.TempDir()}
			info, err := x.StartCall(bg, node.CallRequest{Peer: y.ID().String(), CallMedia: m})
			if err != nil {
				b.Fatal(err)
			}
			waitCall(b, evY, call.EventRinging, info.ID)
			m.Record = b.TempDir()
			if _, err := y.AnswerCall(bg, info.ID, node.AnswerRequest{CallMedia: m}); err != nil {
				b.Fatal(err)
			}
			waitCall(b, evX, call.EventAccepted, info.ID)
			cpu := nodetest.StartCPU()
			<-time.After(span)
			cores += cpu.Cores()
			if _, err := x.HangupCall(bg, info.ID); err != nil {
				b.Fatal(err)
			}
			waitCall(b, evY, call.EventEnded, info.ID)
		}
		b.ReportMetric(cores/float64(b.N), "cores/call")
		b.ReportMetric(cores/float64(b.N)/2, "cores/end")
	})
}

// BenchmarkCallMediaPath: what a node↔node call adds on loopback, while
// its media flows both ways (the shared files, looped). frame-latency-ms
// is the caller's video from WriteSample to the callee's endpoint
// receiving the frame's last packet, by Little's law: the frames on
// their way (sent minus received, sampled every 20 ms) divided by the
// frame rate (30 fps), averaged over the span. ice-rtt-ms is the round
// trip of ICE's checks on the media path; loss-% the RTP packets lost of
// those that should have arrived at the callee (audio and video);
// jitter-ms the callee's video jitter (RFC 3550). Baseline in the same
// run: a raw libp2p ping round trip between the same two hosts.
func BenchmarkCallMediaPath(b *testing.B) {
	ogg, ivf := media(b)
	more := func(c *node.Config) { c.Calls.RingBurst = 1 << 20 }
	x, y := callNode(b, time.Minute, more), callNode(b, time.Minute, more)
	nodetest.Befriend(b, x, y)
	// 20 round trips an iteration: the call's iterations are few.
	b.Run("raw-libp2p-ping", func(b *testing.B) { nodetest.BenchPing(b, x, y, 20) })
	b.Run("call", func(b *testing.B) {
		const span, fps = 4 * time.Second, 30
		evX, evY := nodetest.Events(b, x), nodetest.Events(b, y)
		var latency, rtt, loss, audioJitter, videoJitter float64
		for b.Loop() {
			m := node.CallMedia{AudioFile: ogg, VideoFile: ivf, Loop: true}
			info, err := x.StartCall(bg, node.CallRequest{Peer: y.ID().String(), CallMedia: m})
			if err != nil {
				b.Fatal(err)
			}
			waitCall(b, evY, call.EventRinging, info.ID)
			if _, err := y.AnswerCall(bg, info.ID, node.AnswerRequest{CallMedia: m}); err != nil {
				b.Fatal(err)
			}
			waitCall(b, evX, call.EventAccepted, info.ID)
			nodetest.Eventually(b, 20*time.Second, "video at the callee", func() bool {
				st, err := y.CallStats(bg, info.ID)
				return err == nil && st.Video.FramesReceived > 0
			})
			var sum float64
			samples := 0
			for end := time.Now().Add(span); time.Now().Before(end); <-time.After(20 * time.Millisecond) {
				// The callee's count first: a frame sent in between is
				// on its way, not lost.
				sy, err1 := y.CallStats(bg, info.ID)
				sx, err2 := x.CallStats(bg, info.ID)
				if err1 != nil || err2 != nil {
					b.Fatal(err1, err2)
				}
				sum += float64(sx.Video.FramesSent - sy.Video.FramesReceived)
				samples++
			}
			latency += sum / float64(samples) / fps * 1000
			st, err := y.CallStats(bg, info.ID)
			if err != nil {
				b.Fatal(err)
			}
			rtt += st.RTTMs
			audioJitter += st.Audio.JitterMs
			videoJitter += st.Video.JitterMs
			lost := st.Audio.PacketsLost + st.Video.PacketsLost
			if all := st.Audio.PacketsReceived + st.Video.PacketsReceived + lost; all > 0 {
				loss += 100 * float64(lost) / float64(all)
			}
			if _, err := x.HangupCall(bg, info.ID); err != nil {
				b.Fatal(err)
			}
			waitCall(b, evY, call.EventEnded, info.ID)
		}
		n := float64(b.N)
		b.ReportMetric(latency/n, "frame-latency-ms")
		b.ReportMetric(rtt/n, "ice-rtt-ms")
		b.ReportMetric(loss/n, "loss-%")
		b.ReportMetric(audioJitter/n, "audio-jitter-ms")
		b.ReportMetric(videoJitter/n, "video-jitter-ms")
	})
}
