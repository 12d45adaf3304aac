package history

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history/pb"
)

// Message kinds.
const (
	KindText     = "text"
	KindFace     = "face"
	KindPicture  = "picture"
	KindReply    = "reply"
	KindReaction = "reaction"
	KindReceipt  = "receipt" // refs: the IDs it is about; never stored as a message
	KindFile     = "file"
	// KindEdit and KindDelete change the message Target, which only its
	// author may do (an edit's Text is the new text): they are applied to
	// the target, never shown as messages of their own (changes.go).
	KindEdit   = "edit"
	KindDelete = "delete"
	// KindDelivered is a delivery receipt (direct messages only, never
	// stored): the recipient took the messages of its refs out of a relay
	// mailbox, so the sender learns they were delivered even when the two
	// are never online together.
	KindDelivered = "delivered"
	// KindCall is a call in the conversation ("call, 3:12", "missed
	// call", "declined"): each node writes its own and never sends it,
	// so Check refuses it (on the wire it is an unknown kind). Added
	// 2026-12; older code shows it as a message of an unknown kind with
	// its text.
	KindCall = "call"
)

// MaxCallText bounds a call record's text.
const MaxCallText = 64

// What a receipt says (its Text): direct messages only send read
// receipts, with an empty text (their delivery is the ack); a group
// member tells the group both.
const (
	ReceiptRead      = "read"
	ReceiptDelivered = "delivered"
	// ReceiptFetched is the text of a direct delivery receipt
	// (KindDelivered) that says the recipient fetched, from a relay's
	// file drop, the file the message of its ref offers. A node that
	// does not know it takes it for a delivery receipt of a message
	// delivered already: it changes nothing there.
	ReceiptFetched = "fetched"
)

// Message states.
const (
	MsgQueued    = "queued"    // stored, not yet written to the peer
	MsgSent      = "sent"      // written to the peer, not yet acked
	MsgDelivered = "delivered" // acked: stored on the peer
	MsgRead      = "read"      // the peer read it
	MsgFailed    = "failed"    // the peer refused it
	MsgReceived  = "received"  // from the peer, not yet read here
)

// Limits of what a message says.
const (
	// MaxTextBytes bounds a message's text.
	MaxTextBytes = 64 << 10
	// MaxThumbnailBytes bounds a picture message's inline thumbnail.
	MaxThumbnailBytes = 64 << 10
	// MaxRefs bounds the IDs of one receipt or ack.
	MaxRefs = 1024
)

// Errors.
var (
	// ErrNoMessage is returned for a message ID the history does not hold.
	ErrNoMessage = errors.New("history: no such message")
	// ErrInvalid is wrapped by errors about what a user asked for: a text
	// too long, an unknown face, an image too large. It is the one word
	// "invalid" in its wrapper's sentence ("chat: invalid message: ...",
	// "group: invalid group name: ..."), so the wrapper, not it, names the
	// package.
	ErrInvalid = errors.New("invalid")
)

// Content is what a message says, the same in a direct message and a
// group message, on the wire, in the store and in the API.
type Content struct {
	Kind          string `json:"kind"`
	Text          string `json:"text,omitempty"`
	Face          string `json:"face,omitempty"`
	Thumbnail     []byte `json:"thumbnail,omitempty"`
	ThumbnailType string `json:"thumbnail_type,omitempty"`
	ReplyTo       string `json:"reply_to,omitempty"`
	ReactTo       string `json:"react_to,omitempty"`
	// Target is the message an edit or a delete changes.
	Target string `json:"target,omitempty"`
	// EditedAt is when the message's author last edited it (zero:
	// never), EditHLC that edit's clock reading: a later edit wins,
	// whatever order edits arrive in.
	EditedAt time.Time `json:"edited_at,omitzero"`
	EditHLC  uint64    `json:"-"`
	// Deleted: its author deleted it (for everyone), or this node did
	// (for itself); what it said is gone.
	Deleted bool `json:"deleted,omitempty"`
	// Manifest is an offered file's transfer manifest (kind file, or a
	// picture's original).
	Manifest []byte `json:"-"`
}

// fill sets the content fields of a wire message.
func (c *Content) fill(p *pb.Message) {
	p.Kind, p.Text, p.Face, p.Thumbnail, p.ThumbnailType = c.Kind, c.Text, c.Face, c.Thumbnail, c.ThumbnailType
	p.ReplyTo, p.ReactTo, p.File = c.ReplyTo, c.ReactTo, c.Manifest
	p.Target, p.EditHlc, p.Deleted = c.Target, c.EditHLC, c.Deleted
	p.EditedAtMs = 0
	if !c.EditedAt.IsZero() {
		p.EditedAtMs = c.EditedAt.UnixMilli()
	}
}

// contentFromWire is the content of a wire message.
func contentFromWire(p *pb.Message) Content {
	c := Content{Kind: p.GetKind(), Text: p.GetText(), Face: p.GetFace(), Thumbnail: p.GetThumbnail(),
		ThumbnailType: p.GetThumbnailType(), ReplyTo: p.GetReplyTo(), ReactTo: p.GetReactTo(), Manifest: p.GetFile(),
		Target: p.GetTarget(), EditHLC: p.GetEditHlc(), Deleted: p.GetDeleted()}
	if ms := p.GetEditedAtMs(); ms != 0 {
		c.EditedAt = time.UnixMilli(ms)
	}
	return c
}

// Shown reports whether a message of this content is a message of the
// conversation: receipts, edits and deletes are about other messages.
func (c *Content) Shown() bool {
	return c.Kind != KindReceipt && c.Kind != KindDelivered && c.Kind != KindEdit && c.Kind != KindDelete
}

// size is about the bytes the content takes to hold.
func (c *Content) size() int { return len(c.Text) + len(c.Thumbnail) + len(c.Manifest) }

// Check checks what every message's content must satisfy, on both sides;
// manifest checks an offered file's manifest. The error names the fault
// only: the caller wraps it in its protocol's error.
func (c *Content) Check(manifest func([]byte) error) error {
	if len(c.Text) > MaxTextBytes || !utf8.ValidString(c.Text) {
		return fmt.Errorf("text must be UTF-8 of at most %d bytes", MaxTextBytes)
	}
	if len(c.Thumbnail) > MaxThumbnailBytes {
		return fmt.Errorf("thumbnail over %d bytes", MaxThumbnailBytes)
	}
	for _, r := range []string{c.ReplyTo, c.ReactTo, c.Target} {
		if r != "" && !ValidID(r) {
			return fmt.Errorf("bad reference %q", r)
		}
	}
	if err := c.checkChange(); err != nil {
		return err
	}
	if c.Deleted {
		return nil // a tombstone: its kind's content is gone
	}
	// A file offer, or a picture's original.
	if len(c.Manifest) > 0 {
		if err := manifest(c.Manifest); err != nil {
			return fmt.Errorf("file: %v", err)
		}
	}
	switch c.Kind {
	case KindText:
		if c.Text == "" {
			return errors.New("empty text")
		}
	case KindFace:
		if _, ok := faces[c.Face]; !ok {
			return fmt.Errorf("unknown face %q", c.Face)
		}
	case KindPicture:
		if len(c.Thumbnail) == 0 {
			return errors.New("picture without thumbnail")
		}
	case KindReply:
		if c.ReplyTo == "" || c.Text == "" {
			return errors.New("a reply needs text and the ID it replies to")
		}
	case KindReaction:
		if c.ReactTo == "" || c.Text == "" || utf8.RuneCountInString(c.Text) > 16 {
			return errors.New("a reaction needs the ID it reacts to and a short emoji")
		}
	case KindReceipt:
		// Its refs are the protocol's to check.
		if c.Text != "" && c.Text != ReceiptRead && c.Text != ReceiptDelivered {
			return fmt.Errorf("a receipt of %q", c.Text)
		}
	case KindEdit:
		if c.Text == "" {
			return errors.New("an edit needs the new text")
		}
	case KindDelete:
		if c.Text != "" {
			return errors.New("a delete carries no text")
		}
	case KindDelivered:
		// Its refs are the direct-message protocol's to check.
	case KindFile:
		if len(c.Manifest) == 0 {
			return errors.New("a file offer without its manifest")
		}
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	return nil
}

// checkChange checks the fields of edits and deletes: a change names its
// target and carries nothing else; a message's own edit state never
// rides on a receipt or a change.
func (c *Content) checkChange() error {
	change := c.Kind == KindEdit || c.Kind == KindDelete
	switch {
	case change && c.Target == "":
		return fmt.Errorf("%s without the ID of its message", c.Kind)
	case change && (c.Face != "" || len(c.Thumbnail) > 0 || len(c.Manifest) > 0 || c.ReplyTo != "" || c.ReactTo != ""):
		return fmt.Errorf("%s with content other than text", c.Kind)
	case !change && c.Target != "":
		return fmt.Errorf("a target on a message of kind %q", c.Kind)
	case c.Shown():
	case c.Deleted || c.EditHLC != 0 || !c.EditedAt.IsZero():
		return fmt.Errorf("edit state on a message of kind %q", c.Kind)
	}
	if c.Deleted && (c.Text != "" || c.Face != "" || len(c.Thumbnail) > 0 || len(c.Manifest) > 0) {
		return errors.New("a deleted message with content")
	}
	return nil
}

// Wire is a message as it travels (the pb.Message of the DM protocol and,
// sealed, of a group envelope): what the sender decides. The receiver
// adds who sent it (the authenticated peer, or the verified author) and
// its own bookkeeping.
type Wire struct {
	ID       string
	SentAtMS int64
	HLC      uint64
	Content
	Refs []string // kind receipt: the IDs it is about
}

// SentAt is when the sender sent it, by its clock.
func (m *Wire) SentAt() time.Time { return time.UnixMilli(m.SentAtMS) }

// Size is about the bytes the message takes to hold.
func (m *Wire) Size() int { return m.Content.size() + 32*len(m.Refs) }

// ToWire is the message's protobuf form.
func (m *Wire) ToWire() *pb.Message {
	p := new(pb.Message)
	m.FillWire(p)
	return p
}

// FillWire sets p to the message's protobuf form, every field of it: a
// sender that encodes one message after another reuses one p.
func (m *Wire) FillWire(p *pb.Message) {
	p.Reset()
	p.Id, p.SentAtMs, p.Hlc, p.Refs = m.ID, m.SentAtMS, m.HLC, m.Refs
	m.Content.fill(p)
}

// WireFromPB converts a received message, unchecked.
func WireFromPB(p *pb.Message) Wire {
	return Wire{ID: p.GetId(), SentAtMS: p.GetSentAtMs(), HLC: p.GetHlc(), Content: contentFromWire(p), Refs: p.GetRefs()}
}

// Check checks what every message must satisfy, on both sides (see
// Content.Check).
func (m *Wire) Check(manifest func([]byte) error) error {
	if !ValidID(m.ID) {
		return fmt.Errorf("bad message ID %q", m.ID)
	}
	if len(m.Refs) > MaxRefs {
		return fmt.Errorf("%d refs, the limit is %d", len(m.Refs), MaxRefs)
	}
	for _, r := range m.Refs {
		if r != "" && !ValidID(r) {
			return fmt.Errorf("bad reference %q", r)
		}
	}
	if err := m.Content.Check(manifest); err != nil {
		return err
	}
	if (m.Kind == KindReceipt || m.Kind == KindDelivered) && len(m.Refs) == 0 {
		return errors.New("a receipt without refs")
	}
	return nil
}

// Message is one entry of a conversation, sent or received.
type Message struct {
	ID   string  `json:"id"`
	From peer.ID `json:"from"`
	To   peer.ID `json:"to,omitempty"` // empty for a group message
	Content
	State    string    `json:"state"`
	Time     time.Time `json:"time"` // the sender's clock
	HLC      uint64    `json:"hlc"`
	Outgoing bool      `json:"outgoing"`
	Error    string    `json:"error,omitempty"`
	// Group is the group ID of a group message (To is then empty).
	Group string `json:"group,omitempty"`
	// File describes an offered file (kind "file"); Content.Manifest is
	// its manifest, for transfer.
	File *FileInfo `json:"file,omitempty"`
	// The receipts of a group message, as the members sent them (see
	// Receipts): who stored it (delivered; a member that read it stored
	// it too) and who read it, by member; Recipients is how many
	// members it is for (the members but its author), when known.
	DeliveredBy []MemberReceipt `json:"delivered_by,omitempty"`
	ReadBy      []MemberReceipt `json:"read_by,omitempty"`
	// The lengths of DeliveredBy and ReadBy (absent: 0).
	Delivered  int `json:"delivered_count,omitempty"`
	Read       int `json:"read_count,omitempty"`
	Recipients int `json:"recipients,omitempty"`
	// Name is the author's name and Quote the text of the message that a
	// reply or reaction refers to, as the node shows them; never stored
	// (node fills them in for each answer).
	Name  string `json:"name,omitempty"`
	Quote string `json:"quote,omitempty"`
	// FileState says, for a received file or picture, whether its file
	// (a picture's original) is here: "available" (not fetched: fetched
	// on request), "downloading", "done" or "failed"; never stored (node
	// fills it in like Name).
	FileState string `json:"file_state,omitempty"`
	// Via is how a received message arrived (history/trace.go).
	Via *Hop `json:"via,omitempty"`
	// DeliveryMS is how long an outgoing message took from send to
	// delivered, in milliseconds (set once it is delivered).
	DeliveryMS int64 `json:"delivery_ms,omitempty"`
	// ParkedOn is the relay whose mailbox holds an outgoing message
	// still queued: it waits there, sealed, for the friend (set while
	// it does).
	ParkedOn peer.ID `json:"parked_on,omitempty"`
}

// MemberReceipt is one member's receipt of a group message.
type MemberReceipt struct {
	PeerID peer.ID   `json:"peer_id"`
	At     time.Time `json:"at"`
}

// FileInfo is what a file offer shows before the file is fetched.
type FileInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Size uint64 `json:"size"`
	MIME string `json:"mime"`
}

// PeerOf is the other side of the direct conversation a message belongs
// to.
func (m *Message) PeerOf() peer.ID {
	if m.Outgoing {
		return m.To
	}
	return m.From
}

// Draft is a message to send: Text (text, reply, reaction), Face, or
// Picture (an image file; its thumbnail travels inline).
type Draft struct {
	Text    string
	Face    string
	Picture []byte
	// File is the manifest of a file offered (the caller has offered it
	// through transfer); Text may caption it.
	File    []byte
	ReplyTo string
	ReactTo string
}

// Content turns a draft into the content of a message of its kind.
func (d Draft) Content() (Content, error) {
	c := Content{Text: d.Text, ReplyTo: d.ReplyTo, ReactTo: d.ReactTo}
	var err error
	switch {
	case d.Face != "":
		if err := checkFace(d.Face); err != nil {
			return c, err
		}
		c.Kind, c.Face = KindFace, d.Face
	case d.Picture != nil:
		if c.Thumbnail, c.ThumbnailType, err = MakeThumbnail(d.Picture); err != nil {
			return c, fmt.Errorf("picture: %w", err)
		}
		c.Kind, c.Manifest = KindPicture, d.File
	case d.File != nil:
		c.Kind, c.Manifest = KindFile, d.File
	case d.ReactTo != "":
		c.Kind = KindReaction
	case d.ReplyTo != "":
		c.Kind = KindReply
	default:
		c.Kind = KindText
	}
	return c, nil
}
