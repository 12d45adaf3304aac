package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/transfer"
)

// Message is a stored message, sent or received, direct or of a group.
type Message = chat.Message

// HistoryPage is a page of a conversation, oldest first.
type HistoryPage = chat.HistoryPage

// FileInfo is what a message says of the file it offers.
type FileInfo = chat.FileInfo

// Kinds of a message (Message.Kind).
const (
	KindText     = chat.KindText
	KindFace     = chat.KindFace
	KindPicture  = chat.KindPicture
	KindReply    = chat.KindReply
	KindReaction = chat.KindReaction
	KindFile     = chat.KindFile
)

// Draft is a message to send: text, or a face, or a picture; a reply or a
// reaction with text. Path is a file to offer along (groups only; a
// friend gets a file through SendFile).
type Draft struct {
	// Text is at most MaxTextBytes.
	Text    string
	Face    string
	Picture []byte
	// PictureName is the name the picture was picked by: its original
	// arrives under it.
	PictureName string
	Path        string
	ReplyTo     string
	ReactTo     string
}

// MaxTextBytes bounds a message's text.
const MaxTextBytes = history.MaxTextBytes

// ReadResult says how many messages MarkRead marked.
type ReadResult struct {
	Marked int `json:"marked"`
}

// Faces maps a face's name to its emoji.
type Faces map[string]string

// FaceTable is the faces a message may carry, by name.
func FaceTable() Faces { return chat.FaceTable() }

// Faces is the faces a message may carry, by name.
func (n *Node) Faces() (Faces, error) {
	if _, err := n.chatService(); err != nil {
		return nil, err
	}
	return FaceTable(), nil
}

// SendMessage sends a message to a friend (see ResolvePeer). It
// answers once the message is stored; it is delivered when the friend is
// reachable. A picture's original goes into the blob store, offered to
// the friend, whose node fetches it by itself when it is small enough.
func (n *Node) SendMessage(ctx context.Context, to string, d Draft) (*Message, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	p, err := n.ResolvePeer(ctx, to)
	if err != nil {
		return nil, err
	}
	draft, err := n.draft(ctx, d)
	if err != nil {
		return nil, err
	}
	if d.Picture != nil {
		orig, err := n.importFile(ctx, d)
		if err != nil {
			return nil, err
		}
		if err := n.xfer.Offer(ctx, orig, p); err != nil {
			return nil, err
		}
		draft.File = orig.Encode()
	}
	m, err := c.Send(ctx, p, draft)
	return n.present(ctx, m), err
}

// draft is d as chat and group take it, its references resolved
// (ResolveMessage).
func (n *Node) draft(ctx context.Context, d Draft) (chat.Draft, error) {
	draft := chat.Draft{Text: d.Text, Face: d.Face, Picture: d.Picture}
	var err error
	if draft.ReplyTo, err = n.ResolveMessage(ctx, d.ReplyTo); err != nil {
		return draft, err
	}
	draft.ReactTo, err = n.ResolveMessage(ctx, d.ReactTo)
	return draft, err
}

// pictureName names a picture's original: the name it was picked by,
// else "picture" and its type's extension.
func pictureName(name string, b []byte) string {
	if name = filepath.Base(name); name != "." && name != string(filepath.Separator) {
		return name
	}
	switch http.DetectContentType(b) {
	case "image/png":
		return "picture.png"
	case "image/gif":
		return "picture.gif"
	}
	return "picture.jpg"
}

// present fills what messages show beside what is stored: the author's
// name and the text a reply or reaction quotes. It answers the first.
func (n *Node) present(ctx context.Context, msgs ...*Message) *Message {
	quoted := map[string]string{}
	for _, m := range msgs {
		if m == nil {
			continue
		}
		m.Name = n.NameOf(ctx, m.From)
		ref := m.ReplyTo
		if ref == "" {
			ref = m.ReactTo
		}
		if ref == "" || n.chat == nil {
			continue
		}
		q, ok := quoted[ref]
		if !ok {
			if orig, err := n.chat.GetMessage(ctx, ref); err == nil {
				q = quoteOf(orig)
			}
			quoted[ref] = q
		}
		m.Quote = q
	}
	n.fillFileStates(ctx, msgs)
	if len(msgs) == 0 {
		return nil
	}
	return msgs[0]
}

// quoteOf is what a reply shows of the message it answers.
func quoteOf(m *Message) string {
	switch {
	case m.Text != "":
		return m.Text
	case m.Kind == KindFace:
		return FaceTable()[m.Face]
	case m.Kind == KindPicture:
		return "[picture]"
	case m.File != nil:
		return "[file " + m.File.Name + "]"
	}
	return ""
}

// conversation is a friend or a group, as History, Search and MarkRead
// take them.
type conversation struct {
	peer  peer.ID
	group string // the group's ID when it is a group
}

// resolveConv finds a conversation: a friend or a group, by any name
// ResolvePeer or ResolveGroup takes.
func (n *Node) resolveConv(ctx context.Context, name string) (conversation, error) {
	e, info, err := n.resolveRef(ctx, name, true)
	switch {
	case err != nil:
		return conversation{}, err
	case e.group:
		return conversation{group: e.id}, nil
	case e.id != "":
		p, err := peer.Decode(e.id)
		return conversation{peer: p}, err
	}
	return conversation{peer: info.ID}, nil
}

// MaxLimit is the most messages a history page or a search answers.
const MaxLimit = 1000

// checkLimit refuses a limit out of range; 0 means the default.
func checkLimit(limit int) error {
	if limit < 0 || limit > MaxLimit {
		return badRequest(fmt.Errorf("node: limit %d is out of range: give 1 to %d", limit, MaxLimit))
	}
	return nil
}

// History is a page of the conversation with a friend or a group: up to
// limit messages (0: 50; at most MaxLimit) older than the message before
// ("": the newest).
func (n *Node) History(ctx context.Context, with, before string, limit int) (*HistoryPage, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	conv, err := n.resolveConv(ctx, with)
	if err != nil {
		return nil, err
	}
	if before, err = n.ResolveMessage(ctx, before); err != nil {
		return nil, err
	}
	var page *HistoryPage
	if conv.group != "" {
		page, err = n.groups.History(ctx, conv.group, before, limit)
	} else {
		page, err = c.History(ctx, conv.peer, before, limit)
	}
	if page != nil {
		n.present(ctx, page.Messages...)
	}
	return page, err
}

// Search finds the messages whose text contains text (case-insensitive),
// newest first: in the conversation with a friend or group, or ("") in
// all.
func (n *Node) Search(ctx context.Context, text, with string, limit int) ([]*Message, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	if text == "" {
		return nil, badRequest(errors.New("node: search needs q=TEXT"))
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var conv conversation
	if with != "" {
		if conv, err = n.resolveConv(ctx, with); err != nil {
			return nil, err
		}
	}
	var msgs []*Message
	if conv.group != "" {
		msgs, err = n.groups.Search(ctx, text, conv.group, limit)
	} else {
		msgs, err = c.Search(ctx, text, conv.peer, limit)
	}
	if msgs == nil && err == nil {
		msgs = []*Message{}
	}
	n.present(ctx, msgs...)
	return msgs, err
}

// Conversation is a line of the chat list: a friend's or a group's
// conversation, its newest message and how many messages are unread.
type Conversation struct {
	// ID is the friend's peer ID or the group's ID.
	ID     string   `json:"id"`
	Group  bool     `json:"group,omitempty"`
	Last   *Message `json:"last,omitempty"`
	Unread int      `json:"unread"`
}

// Conversations lists the conversation of every friend and every group
// (a group left or removed from too: its history stays), with the
// newest message and the unread count that the history's read marks
// give (MarkRead clears it).
func (n *Node) Conversations(ctx context.Context) ([]*Conversation, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	contacts, err := c.Contacts(ctx, false)
	if err != nil {
		return nil, err
	}
	out := []*Conversation{}
	for _, ct := range contacts {
		if ct.State != chat.StateFriend {
			continue
		}
		sum, err := c.Summary(ctx, ct.PeerID)
		if err != nil {
			return nil, err
		}
		out = append(out, &Conversation{ID: ct.PeerID.String(), Last: sum.Last, Unread: sum.Unread})
	}
	grp, err := n.groupService()
	if err != nil {
		return nil, err
	}
	gs, err := grp.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		sum, err := grp.Summary(ctx, g.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, &Conversation{ID: g.ID, Group: true, Last: sum.Last, Unread: sum.Unread})
	}
	for _, cv := range out {
		n.present(ctx, cv.Last)
	}
	return out, nil
}

// MarkRead marks every received message of a conversation (a friend or a
// group) read and, with read receipts on, tells the friend.
func (n *Node) MarkRead(ctx context.Context, with string) (*ReadResult, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	conv, err := n.resolveConv(ctx, with)
	if err != nil {
		return nil, err
	}
	var marked int
	if conv.group != "" {
		marked, err = n.groups.MarkRead(ctx, conv.group)
	} else {
		marked, err = c.MarkRead(ctx, conv.peer)
	}
	if err != nil {
		return nil, err
	}
	return &ReadResult{Marked: marked}, nil
}

// EditMessage changes the text of a message this node sent, to a friend
// or a group: here at once, and on the other side when the edit is
// delivered (exactly once, like a message). Only the author may edit; a
// face or a reaction has no text to edit.
func (n *Node) EditMessage(ctx context.Context, id, text string) (*Message, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	if id, err = n.ResolveMessage(ctx, id); err != nil {
		return nil, err
	}
	m, err := c.GetMessage(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.Group != "" {
		return n.groups.Edit(ctx, m.Group, id, text)
	}
	return c.Edit(ctx, id, text)
}

// DeleteMessage deletes a message: for everyone (only its author may),
// or on this node only. What it said is gone; a tombstone keeps its place
// ("message deleted").
func (n *Node) DeleteMessage(ctx context.Context, id string, forEveryone bool) (*Message, error) {
	c, err := n.chatService()
	if err != nil {
		return nil, err
	}
	if id, err = n.ResolveMessage(ctx, id); err != nil {
		return nil, err
	}
	if !forEveryone {
		return c.DeleteLocal(ctx, id)
	}
	m, err := c.GetMessage(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.Group != "" {
		return n.groups.Delete(ctx, m.Group, id)
	}
	return c.Delete(ctx, id)
}

// importFile makes d's file or whole folder (Path) ready to offer where
// it lies, or puts its picture's original into the blob store (it must
// outlive the original); a file that cannot be read is a bad request.
func (n *Node) importFile(ctx context.Context, d Draft) (*transfer.Manifest, error) {
	if d.Picture != nil {
		return n.xfer.ImportBytes(pictureName(d.PictureName, d.Picture), d.Picture)
	}
	share := n.xfer.Share
	if fi, err := os.Stat(d.Path); err == nil && fi.IsDir() {
		share = n.xfer.ShareFolder
	}
	m, err := share(ctx, d.Path, "")
	if err != nil {
		return nil, badRequest(err)
	}
	return m, nil
}
