package chat

// The chat wire protocols.
//
// # /meshtalk/contact/1.0.0 — friend requests and profiles
//
// One request and one reply per stream, each a frame:
//
//	opener                                 other side
//	ContactRequest{friend_request|...} -->
//	                                   <-- ContactReply{code, message}
//
//	request          meaning
//	friend_request   "be my friend": a message and the opener's profile
//	friend_response  the answer to the other's friend request (accept or not)
//	unfriend         "we are no longer friends" (sent on remove and block)
//	profile          the opener's profile, when its version went up
//
// A reply code 0 means the request is stored durably on the other side;
// the opener forgets what it owed only then. A blocked peer's streams are
// reset without a reply; a stranger's friend requests are rate-limited
// (CodeRateLimited).
//
// # /meshtalk/dm/1.0.0 — direct messages, acked per message
//
// The sender opens a stream and writes Message frames without waiting
// (pipelined). The receiver stores each durably (a datastore sync covers
// every message it read so far) and only then answers Ack frames with their
// IDs; the sender marks them delivered. A message the receiver already has
// (same ID) is acked again and not stored twice, so a retry after a lost
// ack delivers exactly once. The receiver answers a Refusal and closes the
// stream when the sender is not a friend, or on a frame it cannot decode.
//
//	sender                   receiver
//	Message{id: a}  -->
//	Message{id: b}  -->      store a, b; sync
//	                <--      Ack{ids: [a, b]}
//
// Kinds: text, face, picture, reply, reaction, receipt (refs: the IDs
// read; it is not shown as a message), and delivered (refs: the IDs the
// receiver took out of a relay mailbox, so that the sender learns they
// were delivered without a stream between the two; not shown either). On
// a stream the delivered receipt is the Ack. A node older than the kind
// delivered refuses it as a bad frame, which fails only that receipt.
//
// A message's ID (a receipt's too) is derived, never chosen: a ULID (26
// characters of Crockford base32) whose 48-bit time is the message's
// sent_at_ms and whose other 80 bits are the first 10 bytes of
//
//	SHA-256("meshtalk dm id v1" | sender peer ID | recipient peer ID | hlc)
//
// where each field is preceded by its length as a uvarint, the peer IDs
// are their bytes, and hlc is 8 bytes big-endian. The sender is the
// stream's authenticated peer (or, for a message that a relay mailbox
// held, the peer the mailbox vouches for) and the recipient the node that
// reads it. A node's clock readings never repeat, so neither do its IDs;
// a resend carries the same hlc and so the same ID, which is what dedup
// goes by. The receiver recomputes the ID of every message and refuses
// one that differs like any bad frame (CodeBadFrame, with that ID): no
// peer can take the ID of another's message, direct or group (whose IDs
// hash another domain, see group/wire.go), in the receiver's one index of
// message IDs.
//
// # Frames
//
// Every frame is a uvarint length followed by that many bytes of protobuf
// (chat/pb). A reader checks the length against the protocol's maximum
// before it allocates, and reads under a deadline.
//
// # Versions
//
//	1.0.0  the protocols above.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/chat/pb"
	"github.com/meshtalk/meshtalk/history"
	historypb "github.com/meshtalk/meshtalk/history/pb"
	"github.com/meshtalk/meshtalk/internal/frame"
	"github.com/meshtalk/meshtalk/transfer"
)

// Protocol IDs.
const (
	ContactProtocol = protocol.ID("/meshtalk/contact/1.0.0")
	DMProtocol      = protocol.ID("/meshtalk/dm/1.0.0")
)

// Limits.
const (
	// MaxTextBytes bounds a message's text.
	MaxTextBytes = history.MaxTextBytes
	// MaxThumbnailBytes bounds a picture message's inline thumbnail.
	MaxThumbnailBytes = history.MaxThumbnailBytes
	// MaxDMFrame bounds one frame of the DM protocol.
	MaxDMFrame = 256 << 10
	// MaxContactFrame bounds one frame of the contact protocol (a profile
	// with its avatar).
	MaxContactFrame = 1 << 20
	// maxStrangerContactFrame bounds a contact frame from a peer that is
	// no contact: a friend request with its avatar.
	maxStrangerContactFrame = MaxAvatarBytes + 16<<10
	// maxRefs bounds the IDs of one receipt or ack.
	maxRefs = history.MaxRefs
)

// Reply and refusal codes, stable across versions.
const (
	CodeOK          = 0
	CodeNotFriends  = 1
	CodeRateLimited = 2
	CodeBadFrame    = 3
	CodeInternal    = 4
)

// Errors.
var (
	ErrFrameTooLarge = errors.New("chat: frame too large")
	ErrBadFrame      = errors.New("chat: malformed frame")
	// ErrRefused is wrapped when the other side refused a message or request.
	ErrRefused = errors.New("chat: refused by peer")
	// ErrInvalid is wrapped by errors about what a user asked for: a text
	// too long, an unknown face, an image too large (history's).
	ErrInvalid = history.ErrInvalid
)

func writeFrame(w io.Writer, m proto.Message) error { return frame.Write(w, m) }

// readFrame reads one frame of at most max bytes into m, with the chat
// package's errors.
func readFrame(r *bufio.Reader, max int, m proto.Message) error {
	return frame.ReadAs(r, max, m, ErrFrameTooLarge, ErrBadFrame)
}

// wireMessage is a message of the DM protocol as it travels (history's
// wire form, shared with groups).
type wireMessage = history.Wire

// messageFromWire checks a received message and converts it.
func messageFromWire(p *historypb.Message) (wireMessage, error) {
	m := history.WireFromPB(p)
	return m, checkWire(&m)
}

// checkWire checks what every message must satisfy, on both sides.
func checkWire(m *wireMessage) error {
	if err := m.Check(checkManifest); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return nil
}

// checkDMID checks that a message from one peer to another carries the
// ID that its sender, recipient and stamps make (history.DMID): a sender cannot
// take the ID of another's message, direct or group.
func checkDMID(from, to peer.ID, m wireMessage) error {
	if err := history.CheckID(m.ID, history.DMID(from, to, m.SentAtMS, m.HLC), m.SentAtMS, "its sender, recipient, sent_at_ms and hlc"); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return nil
}

// Profile is what a person shows their friends. The avatar is kept in
// the blob store (transfer.Blobs) under AvatarID, its BLAKE3 hash; it
// travels inline in the profile (it is small), and Avatar holds its bytes
// only while it travels or right after SetProfile.
type Profile struct {
	Version    uint64 `json:"version"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	AvatarID   string `json:"avatar_id,omitempty"`
	AvatarType string `json:"avatar_type,omitempty"`
	Avatar     []byte `json:"-"`
}

// Limits of a profile's text fields.
const (
	MaxNameBytes   = 128
	MaxStatusBytes = 512
)

func (p *Profile) toWire() *pb.Profile {
	if p == nil {
		return nil
	}
	return &pb.Profile{Version: p.Version, Name: p.Name, Status: p.Status, Avatar: p.Avatar, AvatarType: p.AvatarType}
}

func profileFromWire(w *pb.Profile) (*Profile, error) {
	if w == nil {
		return nil, nil
	}
	p := &Profile{Version: w.GetVersion(), Name: w.GetName(), Status: w.GetStatus(), Avatar: w.GetAvatar(), AvatarType: w.GetAvatarType()}
	if len(p.Name) > MaxNameBytes || len(p.Status) > MaxStatusBytes || !utf8.ValidString(p.Name) || !utf8.ValidString(p.Status) {
		return nil, fmt.Errorf("%w: profile name or status too long or not UTF-8", ErrBadFrame)
	}
	if len(p.Avatar) > MaxAvatarBytes {
		return nil, fmt.Errorf("%w: avatar over %d bytes", ErrBadFrame, MaxAvatarBytes)
	}
	if len(p.Avatar) > 0 && p.AvatarType != "image/png" && p.AvatarType != "image/jpeg" {
		return nil, fmt.Errorf("%w: avatar type %q", ErrBadFrame, p.AvatarType)
	}
	if len(p.Avatar) > 0 {
		p.AvatarID = transfer.HashOf(p.Avatar).String()
	} else {
		p.AvatarType = ""
	}
	return p, nil
}
