package node

// Calls: the use cases of voice and video calls (package call), and the
// node's own WebRTC endpoint. Any endpoint places or answers a call: a
// page of the web UI sends its SDP and candidates through the API (its
// media goes browser to friend), or the node plays files and records
// (call.RTC). A call rings on every endpoint (the event stream's
// call.ringing); the first to answer takes it.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/webrtc/v4"

	"github.com/meshtalk/meshtalk/call"
	"github.com/meshtalk/meshtalk/relay"
)

// CallInfo is a call as the API shows it.
type CallInfo = call.Info

// CallStats is what the node's endpoint measures of a call.
type CallStats = call.Stats

// CallSignal is an offer, an answer or an ICE candidate of an endpoint.
type CallSignal = call.Signal

// Events, states and reasons of calls (package call's; docs/api.md).
const (
	EventCallRinging  = call.EventRinging
	EventCallCalling  = call.EventCalling
	EventCallAccepted = call.EventAccepted
	EventCallEnded    = call.EventEnded
	EventCallSignal   = call.EventSignal

	CallStateRinging = call.StateRinging
	CallStateActive  = call.StateActive
	CallStateEnded   = call.StateEnded

	CallHangup   = call.ReasonHangup
	CallMissed   = call.ReasonMissed
	CallDeclined = call.ReasonDeclined
	CallBusy     = call.ReasonBusy

	// The recordings of the node's endpoint, in CallMedia.Record.
	CallRecordAudio = call.RecordAudio
	CallRecordVideo = call.RecordVideo
)

// Errors of calls (package call's).
var (
	ErrNoCall        = call.ErrNoCall
	ErrCallTaken     = call.ErrTaken
	ErrCallState     = call.ErrState
	ErrCallEnded     = call.ErrEnded
	ErrCallBusy      = call.ErrBusy
	ErrCallNotFriend = call.ErrNotFriend
	ErrRingLimited   = call.ErrRateLimited
	ErrCallRefused   = call.ErrRemote
	ErrCallNoRoute   = call.ErrUnreachable
	ErrNoCalls       = errors.New("node: a relay makes no calls")
	ErrNoNodeMedia   = errors.New("node: the call is not on the node's own endpoint (no stats)")
	errCallEndpoint  = errors.New("an endpoint sends an SDP and its ID, or nothing (the node's own endpoint)")
)

// CallsConfig is the [calls] section of config.toml.
type CallsConfig struct {
	// RingTimeout is how long a call rings before it is missed.
	RingTimeout Duration `toml:"ring_timeout"`
	// RingEvery and RingBurst: a friend may ring this node this often,
	// after a burst of RingBurst rings.
	RingEvery Duration `toml:"ring_every"`
	RingBurst int      `toml:"ring_burst"`
	// ICEPolicy of the node's own endpoint: "all" (host candidates, then
	// STUN and TURN) or "relay" (TURN only).
	ICEPolicy string `toml:"ice_policy"`
	// LoopbackCandidates: the node's endpoint offers 127.0.0.1 (two
	// nodes on one machine).
	LoopbackCandidates bool `toml:"loopback_candidates"`
	// Interfaces, when not empty, are the only network interfaces whose
	// addresses the node's endpoint offers (["lo"]: tests).
	Interfaces []string `toml:"interfaces"`
	// MDNS: the node's endpoint resolves the .local candidates of
	// browsers on the local network.
	MDNS bool `toml:"mdns"`
	// STUN servers beside the relays' ("stun:host:port").
	STUN []string `toml:"stun"`
}

// TURNConfig is the [turn] section of config.toml: a relay's TURN
// server for its users' calls (relay/turn.go).
type TURNConfig struct {
	// Listen is host:port for UDP and TCP ("": no TURN server).
	Listen string `toml:"listen"`
	// PublicIP is the address users reach it at ("": Listen's host).
	PublicIP string `toml:"public_ip"`
	// CredentialTTL is how long a user's credentials are valid.
	CredentialTTL Duration `toml:"credential_ttl"`
	// MaxAllocationsPerUser and BandwidthKbps (per allocation) limit it.
	MaxAllocationsPerUser int `toml:"max_allocations_per_user"`
	BandwidthKbps         int `toml:"bandwidth_kbps"`
}

func (c TURNConfig) validate() (string, error) {
	if c.Listen == "" {
		return "", nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "turn.listen", fmt.Errorf("%q is not host:port", c.Listen)
	}
	if ip := net.ParseIP(host); c.PublicIP == "" && (ip == nil || ip.IsUnspecified()) {
		return "turn.public_ip", fmt.Errorf("listening on %q needs the public IP that users reach", c.Listen)
	}
	if c.PublicIP != "" && net.ParseIP(c.PublicIP) == nil {
		return "turn.public_ip", fmt.Errorf("%q is not an IP address", c.PublicIP)
	}
	if c.CredentialTTL <= 0 || c.MaxAllocationsPerUser <= 0 || c.BandwidthKbps <= 0 {
		return "turn.credential_ttl", errors.New("credential_ttl, max_allocations_per_user and bandwidth_kbps must be positive")
	}
	return "", nil
}

// turnConfig is the relay server's TURN configuration.
func (n *Node) turnConfig() relay.TURNConfig {
	t := n.cfg.TURN
	return relay.TURNConfig{Listen: t.Listen, PublicIP: t.PublicIP, CredentialTTL: time.Duration(t.CredentialTTL),
		MaxAllocationsPerUser: t.MaxAllocationsPerUser, BandwidthKbps: t.BandwidthKbps}
}

func (c CallsConfig) validate() (string, error) {
	if c.RingTimeout <= 0 {
		return "calls.ring_timeout", errors.New("must be positive")
	}
	if c.RingEvery <= 0 || c.RingBurst <= 0 {
		return "calls.ring_every", errors.New("ring_every and ring_burst must be positive")
	}
	if c.ICEPolicy != "all" && c.ICEPolicy != "relay" {
		return "calls.ice_policy", fmt.Errorf("%q is not all or relay", c.ICEPolicy)
	}
	return "", nil
}

// CallRequest places a call. Peer is a friend's name or peer ID. An
// endpoint of the web UI gives its ID and its offer's SDP; without them
// the node's own endpoint calls, playing Audio and Video (files) and
// recording into Record.
type CallRequest struct {
	Peer     string `json:"peer"`
	Audio    bool   `json:"audio"`
	Video    bool   `json:"video"`
	Endpoint string `json:"endpoint,omitempty"`
	SDP      string `json:"sdp,omitempty"`
	CallMedia
}

// CallMedia is what the node's own endpoint plays and records.
type CallMedia struct {
	AudioFile string `json:"audio_file,omitempty"`
	VideoFile string `json:"video_file,omitempty"`
	Record    string `json:"record,omitempty"`
	Loop      bool   `json:"loop,omitempty"`
}

// AnswerRequest answers a ringing call: an endpoint of the web UI gives
// its ID and its answer's SDP, or the node's own endpoint answers.
type AnswerRequest struct {
	Endpoint string `json:"endpoint,omitempty"`
	SDP      string `json:"sdp,omitempty"`
	CallMedia
}

// calls is the node's calls: the signaling service, and the node's own
// endpoints of the calls it holds.
type calls struct {
	svc    *call.Service
	mu     sync.Mutex
	rtcs   map[string]*call.RTC
	turnOf map[string]peer.ID // a TURN URL's relay
}

// startCalls starts call signaling (a personal node's).
func (n *Node) startCalls(ctx context.Context) (err error) {
	n.calls = &calls{rtcs: make(map[string]*call.RTC), turnOf: make(map[string]peer.ID)}
	n.calls.svc, err = call.New(ctx, n.host, call.Config{
		Friends:     n.chat,
		RingTimeout: time.Duration(n.cfg.Calls.RingTimeout),
		RingEvery:   time.Duration(n.cfg.Calls.RingEvery),
		RingBurst:   n.cfg.Calls.RingBurst,
		Now:         n.clock,
		Emit:        n.callEmit,
		Logger:      n.logs,
	})
	return err
}

// closeCalls hangs up and closes the node's endpoints.
func (n *Node) closeCalls() error {
	if n.calls == nil {
		return nil
	}
	err := n.calls.svc.Close()
	n.calls.mu.Lock()
	rtcs := n.calls.rtcs
	n.calls.rtcs = map[string]*call.RTC{}
	n.calls.mu.Unlock()
	for _, r := range rtcs {
		r.Close()
	}
	return err
}

// callEmit is the call service's Emit: the event stream, and the end of
// a call closes the node's endpoint of it and writes it into history.
func (n *Node) callEmit(typ string, data any) {
	n.emit(typ, data)
	if typ != call.EventEnded {
		return
	}
	info := data.(call.Info)
	f := func() {
		n.calls.mu.Lock()
		r := n.calls.rtcs[info.ID]
		n.calls.mu.Unlock()
		if r != nil {
			r.Close() // the recordings are complete before CallStats says the call is gone
		}
		n.calls.mu.Lock()
		delete(n.calls.rtcs, info.ID)
		n.calls.mu.Unlock()
		n.logCall(info)
	}
	// While the node stops (its goroutines are done) the calls that
	// Close hangs up are written on the way.
	if !n.life.Go(f) {
		f()
	}
}

func (n *Node) callService() (*call.Service, error) {
	if n.calls == nil {
		return nil, ErrNoCalls
	}
	return n.calls.svc, nil
}

// iceServers are the STUN and TURN servers of the node's endpoint.
func (n *Node) iceServers(ctx context.Context) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	if len(n.cfg.Calls.STUN) > 0 {
		out = append(out, webrtc.ICEServer{URLs: n.cfg.Calls.STUN})
	}
	return append(out, n.turnServers(ctx)...)
}

// newRTC makes the node's endpoint of call id.
func (n *Node) newRTC(ctx context.Context, id string, m CallMedia) (*call.RTC, error) {
	svc := n.calls.svc
	r, err := call.NewRTC(call.RTCConfig{
		Audio: m.AudioFile, Video: m.VideoFile, Loop: m.Loop, Record: m.Record,
		ICEServers: n.iceServers(ctx),
		RelayOnly:  n.cfg.Calls.ICEPolicy == "relay",
		Loopback:   n.cfg.Calls.LoopbackCandidates,
		Interfaces: n.cfg.Calls.Interfaces,
		MDNS:       n.cfg.Calls.MDNS,
		OnFail:     func(err error) { svc.Fail(id, err) },
		Logger:     n.logs.With("component", "call", "call", id),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	n.calls.mu.Lock()
	n.calls.rtcs[id] = r
	n.calls.mu.Unlock()
	return r, nil
}

func (n *Node) dropRTC(id string, r *call.RTC) {
	n.calls.mu.Lock()
	delete(n.calls.rtcs, id)
	n.calls.mu.Unlock()
	r.Close()
}

// StartCall rings a friend, from an endpoint of the web UI or from the
// node's own. It returns once the friend rings.
func (n *Node) StartCall(ctx context.Context, req CallRequest) (*CallInfo, error) {
	svc, err := n.callService()
	if err != nil {
		return nil, err
	}
	p, err := n.ResolvePeer(ctx, req.Peer)
	if err != nil {
		return nil, err
	}
	id := call.NewID()
	if req.SDP != "" || req.Endpoint != "" {
		if req.SDP == "" || req.Endpoint == "" || req.Endpoint == call.NodeEndpoint {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, errCallEndpoint)
		}
		offer := call.Signal{Kind: call.KindOffer, SDP: req.SDP, Audio: req.Audio, Video: req.Video}
		info, err := svc.Dial(ctx, id, p, offer, call.Endpoint{ID: req.Endpoint})
		return &info, err
	}
	r, err := n.newRTC(ctx, id, req.CallMedia)
	if err != nil {
		return nil, err
	}
	offer, err := r.Offer(req.Audio || req.AudioFile != "" || !req.Video, req.Video || req.VideoFile != "")
	if err != nil {
		n.dropRTC(id, r)
		return nil, err
	}
	info, err := svc.Dial(ctx, id, p, offer, call.Endpoint{ID: call.NodeEndpoint, Deliver: r.Handle})
	if err != nil {
		n.dropRTC(id, r)
		return nil, err
	}
	r.Start(func(s call.Signal) error { return svc.Signal(id, call.NodeEndpoint, s) })
	return &info, nil
}

// AnswerCall answers a ringing call ("" is the one ringing now) on an
// endpoint of the web UI or on the node's own.
func (n *Node) AnswerCall(ctx context.Context, id string, req AnswerRequest) (*CallInfo, error) {
	svc, err := n.callService()
	if err != nil {
		return nil, err
	}
	if id, err = n.ringingCall(id); err != nil {
		return nil, err
	}
	if req.SDP != "" || req.Endpoint != "" {
		if req.SDP == "" || req.Endpoint == "" || req.Endpoint == call.NodeEndpoint {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, errCallEndpoint)
		}
		info, err := svc.Accept(id, call.Endpoint{ID: req.Endpoint}, func([]call.Signal) (string, error) { return req.SDP, nil })
		return &info, err
	}
	r, err := n.newRTC(ctx, id, req.CallMedia)
	if err != nil {
		return nil, err
	}
	info, err := svc.Accept(id, call.Endpoint{ID: call.NodeEndpoint, Deliver: r.Handle}, r.Answer)
	if err != nil {
		n.dropRTC(id, r)
		return nil, err
	}
	r.Start(func(s call.Signal) error { return svc.Signal(id, call.NodeEndpoint, s) })
	return &info, nil
}

// ringingCall is id, or when id is "" the one incoming call ringing.
func (n *Node) ringingCall(id string) (string, error) {
	if id != "" {
		return id, nil
	}
	for _, c := range n.calls.svc.List() {
		if !c.Outgoing && c.State == call.StateRinging {
			return c.ID, nil
		}
	}
	return "", fmt.Errorf("%w: nothing rings", ErrNoCall)
}

// DeclineCall declines a ringing call ("": the one ringing now).
func (n *Node) DeclineCall(_ context.Context, id string) (*CallInfo, error) {
	svc, err := n.callService()
	if err != nil {
		return nil, err
	}
	if id, err = n.ringingCall(id); err != nil {
		return nil, err
	}
	if err := svc.Decline(id); err != nil {
		return nil, err
	}
	info, err := svc.Get(id)
	return &info, err
}

// HangupCall ends a call ("": the one live call).
func (n *Node) HangupCall(_ context.Context, id string) (*CallInfo, error) {
	svc, err := n.callService()
	if err != nil {
		return nil, err
	}
	if id == "" {
		for _, c := range svc.List() {
			if c.State != call.StateEnded {
				id = c.ID
				break
			}
		}
		if id == "" {
			return nil, fmt.Errorf("%w: no call is live", ErrNoCall)
		}
	}
	if err := svc.Hangup(id); err != nil {
		return nil, err
	}
	info, err := svc.Get(id)
	return &info, err
}

// SignalCall sends the friend an offer, an answer or an ICE candidate of
// the web UI's endpoint that holds the call.
func (n *Node) SignalCall(_ context.Context, id, endpoint string, s CallSignal) error {
	svc, err := n.callService()
	if err != nil {
		return err
	}
	if endpoint == "" || endpoint == call.NodeEndpoint {
		return fmt.Errorf("%w: a signal names the endpoint that sends it", ErrBadRequest)
	}
	return svc.Signal(id, endpoint, s)
}

// Calls lists the live calls and the latest ended ones, newest first.
func (n *Node) Calls(context.Context) ([]CallInfo, error) {
	svc, err := n.callService()
	if err != nil {
		return nil, err
	}
	return svc.List(), nil
}

// Call is one call, with what the friend sent before it was taken (for
// the endpoint that takes it).
func (n *Node) Call(_ context.Context, id string) (*CallInfo, error) {
	svc, err := n.callService()
	if err != nil {
		return nil, err
	}
	info, err := svc.Get(id)
	return &info, err
}

// ICEServer is a STUN or TURN server for an endpoint (a page's
// RTCIceServer).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// CallICEServers are the STUN and TURN servers an endpoint of the web UI
// uses: [calls] stun, and the relays' the node is logged in to, with
// fresh TURN credentials.
func (n *Node) CallICEServers(ctx context.Context) ([]ICEServer, error) {
	if _, err := n.callService(); err != nil {
		return nil, err
	}
	out := []ICEServer{}
	for _, s := range n.iceServers(ctx) {
		c, _ := s.Credential.(string)
		out = append(out, ICEServer{URLs: s.URLs, Username: s.Username, Credential: c})
	}
	return out, nil
}

// CallStats measures a call on the node's own endpoint ("": the live
// one).
func (n *Node) CallStats(ctx context.Context, id string) (*CallStats, error) {
	if _, err := n.callService(); err != nil {
		return nil, err
	}
	n.calls.mu.Lock()
	r := n.calls.rtcs[id]
	if id == "" && len(n.calls.rtcs) == 1 {
		for id, r = range n.calls.rtcs {
		}
	}
	n.calls.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoNodeMedia, id)
	}
	st := r.Stats()
	st.CallID = id
	if st.TURN != "" {
		st.Relay = n.relayOfTURN(ctx, st.TURN)
	}
	return &st, nil
}

// turnServers are the STUN and TURN servers of the relays the node is
// logged in to, with fresh credentials.
func (n *Node) turnServers(ctx context.Context) []webrtc.ICEServer {
	if n.relayc == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []webrtc.ICEServer
	for r, t := range n.relayc.TURN(ctx) {
		n.calls.mu.Lock()
		for _, u := range t.URLs {
			n.calls.turnOf[u] = r
		}
		n.calls.mu.Unlock()
		out = append(out, webrtc.ICEServer{URLs: t.URLs, Username: t.Username, Credential: t.Password})
	}
	return out
}

// relayOfTURN names the relay whose TURN server url is.
func (n *Node) relayOfTURN(ctx context.Context, url string) string {
	n.calls.mu.Lock()
	r, ok := n.calls.turnOf[url]
	n.calls.mu.Unlock()
	if !ok {
		return ""
	}
	if name := n.NameOf(ctx, r); name != "" && name != r.String() {
		return name + " (" + r.String() + ")"
	}
	return r.String()
}

// logCall writes a call into the conversation with the friend.
func (n *Node) logCall(info call.Info) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.chat.LogCall(ctx, info.Peer, !info.Outgoing, CallText(info)); err != nil {
		n.log.Warn("call into history", "call", info.ID, "err", err)
	}
}

// CallText is how a call shows in its conversation: "call, 3:12",
// "video call, 0:45", "missed call", "declined", "busy", "call failed".
func CallText(info CallInfo) string {
	if d := info.Duration(); !info.Accepted.IsZero() {
		kind := "call"
		if info.Video {
			kind = "video call"
		}
		d = d.Round(time.Second)
		if d >= time.Hour {
			return fmt.Sprintf("%s, %d:%02d:%02d", kind, int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
		}
		return fmt.Sprintf("%s, %d:%02d", kind, int(d.Minutes()), int(d.Seconds())%60)
	}
	switch info.Reason {
	case call.ReasonMissed:
		return "missed call"
	case call.ReasonDeclined:
		return "declined"
	case call.ReasonBusy:
		if !info.Outgoing {
			return "missed call" // rang while this node was in another call
		}
		return "busy"
	}
	return "call failed"
}
