package relay

// The relay wire protocols.
//
// # /meshtalk/relay/account/1.1.0 — accounts, login, lookup, presence
//
// A client opens a stream and sends AccountRequest frames, each answered
// by one AccountReply. Requests that prove who the client is (register,
// login, unregister) come after a challenge on the same stream:
//
//	client                              relay
//	AccountRequest{challenge}   -->
//	                            <--     AccountReply{nonce}
//	AccountRequest{login: proof} -->    verify proof over the nonce
//	                            <--     AccountReply{code}
//
// A nonce is 32 random bytes, valid for the one next signed request on
// that stream only: a proof made for another nonce (a replayed answer)
// fails. The proof is the client's identity-key signature over
//
//	"meshtalk-relay-proof/1\x00" op "\x00" relay peer ID "\x00"
//	client peer ID "\x00" nonce name
//
// (op is register, login or unregister; name only for register). The
// stream's remote peer is the client: libp2p authenticated it, and the
// proof shows it holds the key now, for this relay.
//
//	request     answer           needs
//	challenge   nonce            -
//	register    user             a proof; the relay's policy (open, invite, closed)
//	login       user             a proof; an account
//	logout      -                a session
//	unregister  -                a proof; an account
//	lookup      user             a session
//	allow       -                a session: who may see the caller's presence and
//	                             deposit for it (peers), who may only deposit (members)
//	presence    presence list    a session: only of peers that allow the caller
//	turn        TURN credentials a session; a relay that runs TURN (relay/turn.go)
//
// A session lasts while the client stays connected, until logout. The
// relay tells logged-in peers of presence changes they may see with an
// AccountPush on a stream it opens (no answer).
//
// # /meshtalk/relay/mailbox/1.0.0 — sealed envelopes and file drop
//
// A logged-in client deposits envelopes for registered users that allow
// it (their friends and group members: SetAllow), pipelined:
//
//	client                          relay
//	MailboxRequest{deposit} -->
//	MailboxRequest{deposit} -->     store both; sync
//	                        <--     MailboxReply{id}
//	                        <--     MailboxReply{id}
//
// A reply with code 0 means the envelope is on the relay's disk. The relay
// pushes what it holds to the recipient while it is logged in, on a
// stream it opens, and deletes what the recipient acks:
//
//	relay                           recipient
//	Deliver{envelopes}      -->     open, store; sync
//	                        <--     DeliverAck{ids}
//
// Drop asks the relay to fetch an encrypted blob from the caller over
// /meshtalk/transfer/1.0.0 and to hold it for a recipient; the reply comes
// once the relay has all of it. The recipient is told through an envelope,
// downloads the blob from the relay, and says DropDone, which deletes it.
//
// # Sealing
//
// An envelope's content is a Letter sealed with HPKE (RFC 9180:
// ML-KEM-768+X25519, HKDF-SHA256, ChaCha20-Poly1305) to the recipient's
// sealing key, which is derived from its identity key and signed by it.
// The letter holds its body and the sender's signature over the body; the
// body names sender, recipient, time, kind and items. The relay sees the
// recipient, the depositor, sizes and times, never the content.
//
// # Frames
//
// A uvarint length, then that many bytes of protobuf (relay/pb). Readers
// bound the length before they allocate and read under a deadline.
//
// # Versions
//
//	1.0.0  the protocols above.
//	1.1.0  account: SetAllow.members, who may deposit but not see presence.
//	       The relay takes deposits and drops only from a recipient's peers
//	       and members (others get codeNotAllowed), and rate-limits
//	       registrations per IP address and in all. Both sides still
//	       speak account/1.0.0 (no members); the mailbox stays 1.0.0 with
//	       the one new reply code.
//	       The account request turn (TURN credentials, relay/turn.go) came
//	       beside it, as a new field of the request's oneof: a relay from
//	       before it answers bad request, and the client then offers no
//	       TURN server of that relay.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/internal/frame"
	"github.com/meshtalk/meshtalk/relay/pb"
)

// Protocol IDs.
const (
	AccountProtocol protocol.ID = "/meshtalk/relay/account/1.1.0"
	// AccountProtocolV1 is the account protocol before SetAllow.members;
	// both sides still speak it.
	AccountProtocolV1 protocol.ID = "/meshtalk/relay/account/1.0.0"
	MailboxProtocol   protocol.ID = "/meshtalk/relay/mailbox/1.0.0"
)

// Limits.
const (
	// MaxAccountFrame bounds an account frame: a user record with its
	// sealing key, an allow-list, or a presence list.
	MaxAccountFrame = 1 << 20
	// MaxSealed bounds one sealed envelope.
	MaxSealed = 512 << 10
	// MaxMailboxFrame bounds a mailbox frame: an envelope or a push of
	// several.
	MaxMailboxFrame = 2 << 20
	// maxPushBytes is how much one Deliver carries at most.
	maxPushBytes = 1 << 20
	// MaxPeersPerList bounds allow-lists and presence queries.
	MaxPeersPerList = 16384
	// maxNickname and maxStatus bound the public profile.
	maxNickname = 128
	maxStatus   = 512
	// nonceSize is the size of a login challenge.
	nonceSize = 32
	// ioTimeout bounds each frame read and write.
	ioTimeout = 30 * time.Second
)

// Reply codes. 0 is success; the others map to the errors below.
const (
	codeOK uint32 = iota
	codeBadRequest
	codeNotLoggedIn
	codeNameTaken
	codeBadName
	codeClosed
	codeBadInvite
	codeNotFound
	codeQuota
	codeBadProof
	codeNotRegistered
	codeInternal
	codeTooLarge
	codeNotAllowed
)

// Errors, also as they come back from a relay.
var (
	ErrBadRequest    = errors.New("relay: bad request")
	ErrNotLoggedIn   = errors.New("relay: not logged in")
	ErrNameTaken     = errors.New("relay: name taken")
	ErrBadName       = errors.New("relay: bad name")
	ErrClosed        = errors.New("relay: registration closed")
	ErrBadInvite     = errors.New("relay: invalid invite")
	ErrNotFound      = errors.New("relay: no such user")
	ErrQuota         = errors.New("relay: over quota")
	ErrBadProof      = errors.New("relay: proof refused")
	ErrNotRegistered = errors.New("relay: not registered")
	ErrInternal      = errors.New("relay: internal error")
	ErrTooLarge      = errors.New("relay: too large")
	ErrNotAllowed    = errors.New("relay: not allowed")
	// ErrStopped is returned by a closed Server or Client.
	ErrStopped = errors.New("relay: stopped")
	// ErrNoRelay: no relay is configured, or none could be used.
	ErrNoRelay = errors.New("relay: no relay available")
	// ErrBadSeal: an envelope that does not open or whose signature fails.
	ErrBadSeal = errors.New("relay: bad sealed envelope")
)

// codeErr is the error of a reply code (nil for codeOK and unknown codes).
func codeErr(code uint32) error {
	switch code {
	case codeBadRequest:
		return ErrBadRequest
	case codeNotLoggedIn:
		return ErrNotLoggedIn
	case codeNameTaken:
		return ErrNameTaken
	case codeBadName:
		return ErrBadName
	case codeClosed:
		return ErrClosed
	case codeBadInvite:
		return ErrBadInvite
	case codeNotFound:
		return ErrNotFound
	case codeQuota:
		return ErrQuota
	case codeBadProof:
		return ErrBadProof
	case codeNotRegistered:
		return ErrNotRegistered
	case codeInternal:
		return ErrInternal
	case codeTooLarge:
		return ErrTooLarge
	case codeNotAllowed:
		return ErrNotAllowed
	}
	return nil
}

// codeOf maps an error to its reply code and the message to send; an
// error of no known kind is internal, and its text stays here.
func codeOf(err error) (uint32, string) {
	if err == nil {
		return codeOK, ""
	}
	for c := codeBadRequest; c <= codeNotAllowed; c++ {
		if errors.Is(err, codeErr(c)) {
			return c, err.Error()
		}
	}
	return codeInternal, ErrInternal.Error()
}

// errOf turns a reply code and message back into an error.
func errOf(code uint32, msg string) error {
	if code == codeOK {
		return nil
	}
	e := codeErr(code)
	if e == nil {
		e = ErrInternal
	}
	if msg == "" || msg == e.Error() {
		return e
	}
	return &remoteError{err: e, msg: msg}
}

// remoteError is a relay's answer: its sentinel for errors.Is and its
// words for the user.
type remoteError struct {
	err error
	msg string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.err }

// proofPayload is what a client signs for op on relay with nonce.
func proofPayload(op string, relay, client peer.ID, nonce []byte, name string) []byte {
	b := []byte("meshtalk-relay-proof/1\x00" + op + "\x00")
	b = append(b, relay...)
	b = append(b, 0)
	b = append(b, client...)
	b = append(b, 0)
	b = append(b, nonce...)
	return append(b, name...)
}

// Presence is what the relay tells of a user's online state.
type Presence struct {
	PeerID   peer.ID   `json:"peer_id"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

func (p Presence) toWire() *pb.Presence {
	w := &pb.Presence{PeerId: []byte(p.PeerID), Online: p.Online}
	if !p.LastSeen.IsZero() {
		w.LastSeenMs = p.LastSeen.UnixMilli()
	}
	return w
}

func presenceFromWire(w *pb.Presence) (Presence, error) {
	id, err := peer.IDFromBytes(w.GetPeerId())
	if err != nil {
		return Presence{}, fmt.Errorf("%w: peer ID: %v", ErrBadRequest, err)
	}
	p := Presence{PeerID: id, Online: w.GetOnline()}
	if w.GetLastSeenMs() != 0 {
		p.LastSeen = time.UnixMilli(w.GetLastSeenMs())
	}
	return p, nil
}

// Profile is the public part of a user's profile a relay shows.
type Profile struct {
	Nickname string `json:"nickname,omitempty"`
	Status   string `json:"status,omitempty"`
}

// User is an account as lookup tells it.
type User struct {
	Name       string    `json:"name"`
	PeerID     peer.ID   `json:"peer_id"`
	Profile    Profile   `json:"profile"`
	Addrs      []string  `json:"addrs"`
	Registered time.Time `json:"registered"`
	// SealingKey is the user's HPKE public key; it has been checked
	// against the user's identity.
	SealingKey []byte `json:"-"`
}

func userFromWire(w *pb.User) (*User, error) {
	id, err := peer.IDFromBytes(w.GetPeerId())
	if err != nil {
		return nil, fmt.Errorf("%w: peer ID: %v", ErrBadRequest, err)
	}
	u := &User{Name: w.GetName(), PeerID: id, Registered: time.UnixMilli(w.GetRegisteredMs())}
	if p := w.GetProfile(); p != nil {
		u.Profile = Profile{Nickname: p.GetNickname(), Status: p.GetStatus()}
	}
	for _, a := range w.GetAddrs() {
		u.Addrs = append(u.Addrs, string(a))
	}
	if sk := w.GetSealingKey(); sk != nil {
		if u.SealingKey, err = verifySealingKey(id, sk); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func peersToWire(peers []peer.ID) [][]byte {
	out := make([][]byte, len(peers))
	for i, p := range peers {
		out[i] = []byte(p)
	}
	return out
}

func peersFromWire(bs [][]byte) ([]peer.ID, error) {
	if len(bs) > MaxPeersPerList {
		return nil, fmt.Errorf("%w: %d peers, the limit is %d", ErrTooLarge, len(bs), MaxPeersPerList)
	}
	out := make([]peer.ID, 0, len(bs))
	for _, b := range bs {
		id, err := peer.IDFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%w: peer ID: %v", ErrBadRequest, err)
		}
		out = append(out, id)
	}
	return out, nil
}

func writeFrame(w io.Writer, m proto.Message) error { return frame.Write(w, m) }

// readFrame reads one frame of at most max bytes into m; a frame too
// large is a bad request like any other.
func readFrame(r *bufio.Reader, max int, m proto.Message) error {
	return frame.ReadAs(r, max, m, ErrBadRequest, ErrBadRequest)
}

// readFrameIn is readFrame that reserves a large frame's memory in scope
// (a stream's) before it reads it.
func readFrameIn(r *bufio.Reader, max int, m proto.Message, scope frame.Scope) error {
	return frame.ReadReservedAs(r, max, m, scope, ErrTooLarge, ErrBadRequest)
}

// DecodeAccountRequest decodes one account request frame's payload (for
// fuzzing and tests: the server reads frames through the same decoder).
func DecodeAccountRequest(b []byte) (*pb.AccountRequest, error) {
	var m pb.AccountRequest
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return &m, nil
}
