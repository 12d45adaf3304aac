package call

// The node's own WebRTC endpoint (pion/webrtc): it plays Ogg/Opus and
// IVF/VP8 files into a call and records what arrives, for headless use,
// the command line and tests. Its media never touches libp2p: it goes
// over its own ICE path (host, server-reflexive or TURN-relayed), so a
// circuit-relayed libp2p connection never carries media.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// NodeEndpoint is the endpoint ID of the node's own WebRTC endpoint.
const NodeEndpoint = "node"

// Recording file names in RTCConfig.Record.
const (
	RecordAudio = "audio.ogg"
	RecordVideo = "video.ivf"
)

// RTCConfig is what the node's endpoint plays, records and how it
// connects.
type RTCConfig struct {
	// Audio is an Ogg/Opus file to play ("": send no audio); Video an
	// IVF/VP8 file.
	Audio, Video string
	// Loop plays the files again when they end, until the call ends.
	Loop bool
	// Record is a folder for what arrives (RecordAudio, RecordVideo);
	// "": count it only.
	Record string
	// ICEServers are STUN and TURN servers (the relays').
	ICEServers []webrtc.ICEServer
	// RelayOnly forces the media through TURN (ICE policy "relay").
	RelayOnly bool
	// Loopback offers loopback host candidates (one machine: tests).
	Loopback bool
	// Interfaces, when set, are the only network interfaces whose
	// addresses become host candidates.
	Interfaces []string
	// MDNS resolves the .local host candidates browsers send (it
	// multicasts on the local network).
	MDNS bool
	// OnFail is told when the media fails or breaks for good.
	OnFail func(error)
	Logger *slog.Logger
}

// RTC is one call's PeerConnection on the node: one per call, every exit
// path closes it.
type RTC struct {
	cfg  RTCConfig
	pc   *webrtc.PeerConnection
	wg   sync.WaitGroup
	done chan struct{}
	once sync.Once

	sendMu sync.Mutex
	send   func(Signal) error // nil until the call is set up
	queued []Signal           // candidates gathered before then

	audioTrack, videoTrack *webrtc.TrackLocalStaticSample

	connected  atomic.Int64 // unix nanos: when the peer connection connected
	changes    atomic.Int64 // how many state changes the peer connection had
	firstVideo atomic.Int64 // unix nanos: the first whole video frame received
	sentAudio  atomic.Int64
	sentVideo  atomic.Int64
	recvAudio  atomic.Int64
	recvVideo  atomic.Int64
	recvBytes  atomic.Int64
	playErr    atomic.Value // error

	stats   stats.Getter // set while the PeerConnection is made
	inMu    sync.Mutex
	inbound map[webrtc.RTPCodecType]inbound
}

// inbound is a friend's track, for its statistics.
type inbound struct {
	ssrc   uint32
	clock  uint32
	jitter *atomic.Uint64 // float64 bits: RFC 3550's interarrival jitter, in seconds
}

// jitter keeps RFC 3550's interarrival jitter of one track (the stats
// interceptor's is not: it measures arrival from the previous packet).
type jitter struct {
	clock   float64
	start   time.Time
	transit float64
	j       float64
	first   bool
}

// add takes a packet's RTP timestamp at arrival, and returns the jitter
// in seconds.
func (j *jitter) add(ts uint32, at time.Time) float64 {
	if j.clock == 0 {
		return 0
	}
	transit := at.Sub(j.start).Seconds()*j.clock - float64(ts)
	if j.first {
		d := transit - j.transit
		if d < 0 {
			d = -d
		}
		j.j += (d - j.j) / 16
	}
	j.transit, j.first = transit, true
	return j.j / j.clock
}

// NewRTC makes the endpoint's PeerConnection, with a track for each file
// to play.
func NewRTC(cfg RTCConfig) (*RTC, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, f := range []string{cfg.Audio, cfg.Video} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("call: media: %w", err)
			}
		}
	}
	if cfg.Record != "" {
		if err := os.MkdirAll(cfg.Record, 0o700); err != nil {
			return nil, fmt.Errorf("call: record: %w", err)
		}
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	if len(cfg.Interfaces) > 0 {
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(cfg.Interfaces, name) })
	}
	if cfg.MDNS {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeQueryOnly)
	} else {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	// A broken path is noticed within seconds: the call ends rather than
	// hangs.
	se.SetICETimeouts(3*time.Second, 8*time.Second, time.Second)
	policy := webrtc.ICETransportPolicyAll
	if cfg.RelayOnly {
		policy = webrtc.ICETransportPolicyRelay
	}
	r := &RTC{cfg: cfg, done: make(chan struct{}), inbound: map[webrtc.RTPCodecType]inbound{}}
	api, err := r.api(se)
	if err != nil {
		return nil, fmt.Errorf("call: peer connection: %w", err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: cfg.ICEServers, ICETransportPolicy: policy})
	if err != nil {
		return nil, fmt.Errorf("call: peer connection: %w", err)
	}
	r.pc = pc
	if cfg.Audio != "" {
		r.audioTrack, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "meshtalk")
	}
	if err == nil && cfg.Video != "" {
		r.videoTrack, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "meshtalk")
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("call: track: %w", err)
	}
	pc.OnICECandidate(r.gathered)
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { r.spawn(func() { r.receive(t) }) })
	pc.OnConnectionStateChange(r.stateChanged)
	return r, nil
}

// api is pion's with the default codecs and interceptors (NACK, RTCP
// reports, TWCC), and one that keeps the statistics Stats reads.
func (r *RTC) api(se webrtc.SettingEngine) (*webrtc.API, error) {
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	var reg interceptor.Registry
	if err := webrtc.RegisterDefaultInterceptors(&me, &reg); err != nil {
		return nil, err
	}
	sf, err := stats.NewInterceptor()
	if err != nil {
		return nil, err
	}
	sf.OnNewPeerConnection(func(_ string, g stats.Getter) { r.stats = g })
	reg.Add(sf)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&me), webrtc.WithInterceptorRegistry(&reg)), nil
}

// spawn runs f unless the endpoint is closing.
func (r *RTC) spawn(f func()) {
	select {
	case <-r.done:
		return
	default:
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); f() }()
}

// Offer makes the caller's offer (audio: the call carries audio even if
// nothing is played; video likewise).
func (r *RTC) Offer(audio, video bool) (Signal, error) {
	for _, m := range []struct {
		on    bool
		track *webrtc.TrackLocalStaticSample
		kind  webrtc.RTPCodecType
	}{{audio, r.audioTrack, webrtc.RTPCodecTypeAudio}, {video, r.videoTrack, webrtc.RTPCodecTypeVideo}} {
		var err error
		switch {
		case m.track != nil:
			_, err = r.pc.AddTransceiverFromTrack(m.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
		case m.on:
			_, err = r.pc.AddTransceiverFromKind(m.kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		}
		if err != nil {
			return Signal{}, fmt.Errorf("call: offer: %w", err)
		}
	}
	offer, err := r.pc.CreateOffer(nil)
	if err == nil {
		err = r.pc.SetLocalDescription(offer)
	}
	if err != nil {
		return Signal{}, fmt.Errorf("call: offer: %w", err)
	}
	return Signal{Kind: KindOffer, SDP: offer.SDP, Audio: audio || r.audioTrack != nil, Video: video || r.videoTrack != nil}, nil
}

// Answer answers the caller's offer and the candidates that came with
// it (Service.Accept's answer).
func (r *RTC) Answer(pending []Signal) (string, error) {
	if len(pending) == 0 || pending[0].Kind != KindOffer {
		return "", errors.New("no offer to answer")
	}
	if err := r.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: pending[0].SDP}); err != nil {
		return "", fmt.Errorf("the caller's offer: %w", err)
	}
	for _, t := range []*webrtc.TrackLocalStaticSample{r.audioTrack, r.videoTrack} {
		if t != nil {
			if _, err := r.pc.AddTrack(t); err != nil {
				return "", err
			}
		}
	}
	for _, s := range pending[1:] {
		r.Handle(s)
	}
	answer, err := r.pc.CreateAnswer(nil)
	if err == nil {
		err = r.pc.SetLocalDescription(answer)
	}
	if err != nil {
		return "", err
	}
	return answer.SDP, nil
}

// Handle takes a signal of the friend's endpoint (Endpoint.Deliver).
func (r *RTC) Handle(s Signal) {
	var err error
	switch s.Kind {
	case KindCandidate:
		if s.Candidate != nil && s.Candidate.Candidate != "" {
			err = r.pc.AddICECandidate(*s.Candidate)
		}
	case KindAnswer:
		err = r.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.SDP})
	case KindOffer:
		// A renegotiation (the friend added screen sharing): answered
		// on the same stream.
		err = r.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: s.SDP})
		var answer webrtc.SessionDescription
		if err == nil {
			answer, err = r.pc.CreateAnswer(nil)
		}
		if err == nil {
			err = r.pc.SetLocalDescription(answer)
		}
		if err == nil {
			r.out(Signal{Kind: KindAnswer, SDP: answer.SDP})
		}
	}
	if err != nil {
		r.cfg.Logger.Info("call signal", "kind", s.Kind, "err", err)
		if s.Kind != KindCandidate && r.cfg.OnFail != nil {
			// A description that does not apply: no media can flow.
			r.cfg.OnFail(fmt.Errorf("the friend's %s: %w", s.Kind, err))
		}
	}
}

// Start sends the friend, through send, the candidates gathered so far
// and from now on.
func (r *RTC) Start(send func(Signal) error) {
	r.sendMu.Lock()
	r.send = send
	q := r.queued
	r.queued = nil
	r.sendMu.Unlock()
	for _, s := range q {
		r.out(s)
	}
}

func (r *RTC) gathered(c *webrtc.ICECandidate) {
	if c == nil {
		return // the end of gathering: nothing to tell a trickling peer
	}
	init := c.ToJSON()
	r.out(Signal{Kind: KindCandidate, Candidate: &init})
}

// out sends a signal, or queues it until Start. Signals are sent from a
// goroutine of their own: pion's callbacks must not wait on the stream.
func (r *RTC) out(s Signal) {
	r.sendMu.Lock()
	send := r.send
	if send == nil {
		r.queued = append(r.queued, s)
	}
	r.sendMu.Unlock()
	if send != nil {
		r.spawn(func() {
			if err := send(s); err != nil {
				r.cfg.Logger.Debug("call signal", "kind", s.Kind, "err", err)
			}
		})
	}
}

func (r *RTC) stateChanged(s webrtc.PeerConnectionState) {
	r.cfg.Logger.Debug("call media", "state", s.String())
	change := r.changes.Add(1)
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if r.connected.CompareAndSwap(0, time.Now().UnixNano()) {
			if r.audioTrack != nil {
				r.spawn(func() { r.play(r.cfg.Audio, r.audioTrack, r.playOgg) })
			}
			if r.videoTrack != nil {
				r.spawn(func() { r.play(r.cfg.Video, r.videoTrack, r.playIVF) })
			}
		}
	case webrtc.PeerConnectionStateDisconnected:
		// Nothing arrived for a few seconds: a stall (a busy machine, a
		// moment of a lossy network) that may pass. Still disconnected
		// after disconnectGrace, the media is gone: 3 s + 4 s, within the
		// 10 s in which a call whose friend vanished must end. The grace
		// counts from the latest disconnect: a stall that passed and came
		// back starts it again.
		r.spawn(func() {
			select {
			case <-r.done:
			case <-time.After(disconnectGrace):
				if st := r.pc.ConnectionState(); st == webrtc.PeerConnectionStateDisconnected && r.changes.Load() == change {
					r.fail(st)
				}
			}
		})
	case webrtc.PeerConnectionStateFailed:
		r.fail(s)
	}
}

// disconnectGrace is how long the media may stay disconnected before the
// call ends.
const disconnectGrace = 4 * time.Second

// fail tells OnFail that the media failed, unless the endpoint closes.
func (r *RTC) fail(s webrtc.PeerConnectionState) {
	if r.cfg.OnFail == nil {
		return
	}
	select {
	case <-r.done:
	default:
		r.cfg.OnFail(fmt.Errorf("media %s", s))
	}
}

// play plays file into track, again and again if it loops.
func (r *RTC) play(file string, track *webrtc.TrackLocalStaticSample, each func(io.Reader, *webrtc.TrackLocalStaticSample) error) {
	for {
		f, err := os.Open(file)
		if err == nil {
			err = each(f, track)
			f.Close()
		}
		if err != nil && !errors.Is(err, errStopped) {
			r.playErr.Store(err)
			r.cfg.Logger.Info("call play", "file", file, "err", err)
		}
		if err != nil || !r.cfg.Loop {
			return
		}
	}
}

var errStopped = errors.New("stopped")

// pace waits for the next sample's time; errStopped once the endpoint
// closes.
func (r *RTC) pace(t *time.Ticker) error {
	select {
	case <-t.C:
		return nil
	case <-r.done:
		return errStopped
	}
}

func (r *RTC) playOgg(f io.Reader, track *webrtc.TrackLocalStaticSample) error {
	ogg, _, err := oggreader.NewWith(f)
	if err != nil {
		return err
	}
	var last uint64
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		page, h, err := ogg.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if strings.HasPrefix(string(page), "OpusTags") {
			continue // a header, not sound
		}
		// The granule position counts 48 kHz samples.
		d := time.Duration(h.GranulePosition-last) * time.Second / 48000
		last = h.GranulePosition
		if err := track.WriteSample(media.Sample{Data: page, Duration: d}); err != nil {
			return err
		}
		r.sentAudio.Add(1)
		if err := r.pace(t); err != nil {
			return err
		}
	}
}

func (r *RTC) playIVF(f io.Reader, track *webrtc.TrackLocalStaticSample) error {
	ivf, h, err := ivfreader.NewWith(f)
	if err != nil {
		return err
	}
	if h.TimebaseDenominator == 0 {
		return errors.New("ivf: no time base")
	}
	d := time.Duration(float64(h.TimebaseNumerator) / float64(h.TimebaseDenominator) * float64(time.Second))
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		frame, _, err := ivf.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := track.WriteSample(media.Sample{Data: frame, Duration: d}); err != nil {
			return err
		}
		r.sentVideo.Add(1)
		if err := r.pace(t); err != nil {
			return err
		}
	}
}

// rtpWriter is oggwriter's and ivfwriter's.
type rtpWriter interface {
	WriteRTP(*rtp.Packet) error
	Close() error
}

// receive reads a friend's track until the call ends, counting its
// frames and recording it.
func (r *RTC) receive(t *webrtc.TrackRemote) {
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	in := inbound{ssrc: uint32(t.SSRC()), clock: t.Codec().ClockRate, jitter: new(atomic.Uint64)}
	jit := jitter{clock: float64(in.clock), start: time.Now()}
	r.inMu.Lock()
	r.inbound[t.Kind()] = in
	r.inMu.Unlock()
	var w rtpWriter
	if r.cfg.Record != "" {
		var err error
		switch mime := t.Codec().MimeType; {
		case strings.EqualFold(mime, webrtc.MimeTypeOpus):
			w, err = oggwriter.New(filepath.Join(r.cfg.Record, RecordAudio), 48000, 2)
		case strings.EqualFold(mime, webrtc.MimeTypeVP8):
			w, err = ivfwriter.New(filepath.Join(r.cfg.Record, RecordVideo), ivfwriter.WithCodec(webrtc.MimeTypeVP8))
		default:
			err = fmt.Errorf("cannot record %s", mime)
		}
		if err != nil {
			r.cfg.Logger.Info("call record", "err", err)
			w = nil
		} else {
			defer w.Close()
		}
	}
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		in.jitter.Store(math.Float64bits(jit.add(p.Timestamp, time.Now())))
		switch {
		case !video:
			r.recvAudio.Add(1) // one Opus frame a packet
		case p.Marker:
			// A frame's last packet.
			r.firstVideo.CompareAndSwap(0, time.Now().UnixNano())
			r.recvVideo.Add(1)
		}
		if w != nil {
			if err := w.WriteRTP(p); err != nil {
				r.cfg.Logger.Debug("call record", "err", err)
			}
		}
	}
}

// FirstVideo is when the first whole video frame arrived (zero: none
// yet).
func (r *RTC) FirstVideo() time.Time { return unixTime(r.firstVideo.Load()) }

// Connected is when the media connected (zero: not yet).
func (r *RTC) Connected() time.Time { return unixTime(r.connected.Load()) }

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Close ends the PeerConnection, stops playing and closes the
// recordings (complete files once it returns).
func (r *RTC) Close() error {
	var err error
	r.once.Do(func() {
		close(r.done)
		err = r.pc.Close()
		r.wg.Wait()
	})
	return err
}

// relayOf names the TURN server whose host is addr, reached over proto
// ("udp", "tcp"; a URL without ?transport= is UDP), "" if none.
func relayOf(servers []webrtc.ICEServer, addr, proto string) string {
	for _, s := range servers {
		for _, u := range s.URLs {
			if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				continue
			}
			host, query, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(u, "turn:"), "turns:"), "?")
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			transport := "udp"
			if q, err := url.ParseQuery(query); err == nil && q.Get("transport") != "" {
				transport = q.Get("transport")
			}
			if host == addr && (proto == "" || strings.EqualFold(transport, proto)) {
				return u
			}
		}
	}
	return ""
}
