package api

import (
	"errors"
	"net/http"

	"github.com/meshtalk/meshtalk/node"
)

// Calls (/api/v1/calls...). A page of the web UI is a WebRTC endpoint of
// its own: it places a call with its offer's SDP and its endpoint ID,
// answers with its answer's SDP, and trades ICE candidates (and
// renegotiation offers and answers) through POST .../signal; what the
// friend's endpoint sends arrives as call.signal events. Without an SDP
// the node's own endpoint plays files and records (the CLI's `call`).
type (
	// CallInfo is a call.
	CallInfo = node.CallInfo
	// CallStats is what the node's own endpoint measures of a call.
	CallStats = node.CallStats
	// CallSignal is an offer, an answer or an ICE candidate.
	CallSignal = node.CallSignal
	// CallRequest is the body of POST /api/v1/calls.
	CallRequest = node.CallRequest
	// AnswerRequest is the body of POST /api/v1/calls/{id}/answer.
	AnswerRequest = node.AnswerRequest
	// ICEServer is a STUN or TURN server for a page's RTCPeerConnection.
	ICEServer = node.ICEServer
	// CallMedia is what the node's own endpoint plays and records.
	CallMedia = node.CallMedia
)

// Events, states and end reasons of calls (docs/api.md).
const (
	EventCallRinging  = node.EventCallRinging
	EventCallCalling  = node.EventCallCalling
	EventCallAccepted = node.EventCallAccepted
	EventCallEnded    = node.EventCallEnded
	EventCallSignal   = node.EventCallSignal

	CallStateRinging = node.CallStateRinging
	CallStateActive  = node.CallStateActive
	CallStateEnded   = node.CallStateEnded

	CallHangup   = node.CallHangup
	CallMissed   = node.CallMissed
	CallDeclined = node.CallDeclined
	CallBusy     = node.CallBusy

	CallRecordAudio = node.CallRecordAudio
	CallRecordVideo = node.CallRecordVideo
)

// SignalRequest is the body of POST /api/v1/calls/{id}/signal.
type SignalRequest struct {
	// Endpoint is the page that holds the call.
	Endpoint string     `json:"endpoint"`
	Signal   CallSignal `json:"signal"`
}

// Error codes of calls.
const (
	CodeBusy        = "busy"         // the friend (or this node) is in another call
	CodeCallTaken   = "call_taken"   // another endpoint answered first
	CodeCallEnded   = "call_ended"   // the call is over
	CodeRateLimited = "rate_limited" // the friend refuses more rings for now
)

func (s *Server) callRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/calls", s.handleCalls)
	mux.HandleFunc("POST /api/v1/calls", s.handleStartCall)
	mux.HandleFunc("GET /api/v1/calls/ice", s.handleCallICE)
	mux.HandleFunc("GET /api/v1/calls/{id}", s.handleCall)
	mux.HandleFunc("GET /api/v1/calls/{id}/stats", s.handleCallStats)
	mux.HandleFunc("POST /api/v1/calls/{id}/answer", s.handleAnswerCall)
	mux.HandleFunc("POST /api/v1/calls/{id}/decline", s.handleDeclineCall)
	mux.HandleFunc("POST /api/v1/calls/{id}/hangup", s.handleHangupCall)
	mux.HandleFunc("POST /api/v1/calls/{id}/signal", s.handleSignalCall)
}

// callID is the {id} of a path; "-" is "the call there is" (the one
// ringing, the one live).
func callID(r *http.Request) string {
	if id := r.PathValue("id"); id != "-" {
		return id
	}
	return ""
}

func (s *Server) handleCalls(w http.ResponseWriter, r *http.Request) {
	cs, err := s.node.Calls(r.Context())
	reply(w, cs, err)
}

func (s *Server) handleStartCall(w http.ResponseWriter, r *http.Request) {
	var req CallRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := s.node.StartCall(r.Context(), req)
	reply(w, c, err)
}

func (s *Server) handleCallICE(w http.ResponseWriter, r *http.Request) {
	ice, err := s.node.CallICEServers(r.Context())
	reply(w, ice, err)
}

func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	c, err := s.node.Call(r.Context(), r.PathValue("id"))
	reply(w, c, err)
}

func (s *Server) handleCallStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.node.CallStats(r.Context(), callID(r))
	reply(w, st, err)
}

func (s *Server) handleAnswerCall(w http.ResponseWriter, r *http.Request) {
	var req AnswerRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := s.node.AnswerCall(r.Context(), callID(r), req)
	reply(w, c, err)
}

func (s *Server) handleDeclineCall(w http.ResponseWriter, r *http.Request) {
	c, err := s.node.DeclineCall(r.Context(), callID(r))
	reply(w, c, err)
}

func (s *Server) handleHangupCall(w http.ResponseWriter, r *http.Request) {
	c, err := s.node.HangupCall(r.Context(), callID(r))
	reply(w, c, err)
}

func (s *Server) handleSignalCall(w http.ResponseWriter, r *http.Request) {
	var req SignalRequest
	if !decodeBody(w, r, &req) {
		return
	}
	err := s.node.SignalCall(r.Context(), r.PathValue("id"), req.Endpoint, req.Signal)
	reply(w, struct{}{}, err)
}

// callStatusOf maps the errors of calls to HTTP (statusOf asks it first).
func callStatusOf(err error) (int, string, bool) {
	is := func(target error) bool { return errors.Is(err, target) }
	switch {
	case is(node.ErrNoCall), is(node.ErrNoNodeMedia), is(node.ErrNoCalls):
		return http.StatusNotFound, CodeNotFound, true
	case is(node.ErrCallNotFriend):
		return http.StatusConflict, CodeNotFriends, true
	case is(node.ErrCallBusy):
		return http.StatusConflict, CodeBusy, true
	case is(node.ErrCallTaken):
		return http.StatusConflict, CodeCallTaken, true
	case is(node.ErrCallEnded):
		return http.StatusGone, CodeCallEnded, true
	case is(node.ErrRingLimited):
		return http.StatusTooManyRequests, CodeRateLimited, true
	case is(node.ErrCallState), is(node.ErrCallRefused):
		return http.StatusBadRequest, CodeBadRequest, true
	case is(node.ErrCallNoRoute):
		return http.StatusBadGateway, CodeNoRoute, true
	}
	return 0, "", false
}
