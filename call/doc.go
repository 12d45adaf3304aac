// Package call is meshtalk's 1:1 voice and video calls: the signaling
// protocol /meshtalk/call/1.0.0 over the mesh (wire.go specifies it) and
// the node's own WebRTC endpoint (rtc.go).
//
// Media is WebRTC between two endpoints: a page of the web UI (the
// browser's own stack) or the node itself (pion/webrtc, playing Ogg/Opus
// and IVF/VP8 files and recording what arrives). The mesh carries only
// the signaling: the SDP offer and answer and trickled ICE candidates,
// over a libp2p stream whose ends are authenticated by peer ID, so each
// side's DTLS fingerprint is bound to the friend's peer ID and whoever
// carries the media cannot intercept it. Media never crosses libp2p
// (and so never a circuit relay): its path is ICE's, host candidates
// first, then STUN and TURN of the relays the node is logged in to.
//
// Service rings friends and is rung by them (only friends: Config.Friends;
// rings of one peer are rate-limited). A call that rings here rings on
// every endpoint of the node (EventRinging on the node's event stream);
// the first endpoint to Accept takes it, the others get ErrTaken, and
// from then on only the endpoint that holds a call signals in it. An
// endpoint that is not the node's own learns the friend's signals from
// EventSignal. A ring nobody answers ends after Config.RingTimeout (45 s)
// as a missed call on both sides. Every end of a call, however it ends
// (hangup, decline, busy, missed, a lost stream, a protocol error, failed
// media), is one EventEnded with the reason.
//
// The service runs its stream handler and read loops in an
// internal/lifecycle Group that Close stops; Close hangs up every call.
package call
