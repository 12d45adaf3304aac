package chat

// Test hooks: raw frames for the wire tests in package chat_test.

import (
	"bufio"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/chat/pb"
	"github.com/meshtalk/meshtalk/history"
	historypb "github.com/meshtalk/meshtalk/history/pb"
)

// RawMessageFrame encodes a DM frame carrying a text message.
func RawMessageFrame(id, text string) []byte {
	var b []byte
	w := &sliceWriter{&b}
	writeFrame(w, &pb.DMFrame{Body: &pb.DMFrame_Message{Message: &historypb.Message{Id: id, Kind: KindText, Text: text, Hlc: 1, SentAtMs: 1}}})
	return b
}

// ReadRefusal reads DM frames until a refusal and returns its code.
func ReadRefusal(r io.Reader) (uint32, error) {
	br := bufio.NewReader(r)
	for {
		var f pb.DMFrame
		if err := readFrame(br, MaxDMFrame, &f); err != nil {
			return 0, err
		}
		if rf := f.GetRefusal(); rf != nil {
			return rf.GetCode(), nil
		}
	}
}

type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// RawFriendRequest encodes a contact-protocol friend request frame.
func RawFriendRequest(text string) []byte {
	var b []byte
	writeFrame(&sliceWriter{&b}, &pb.ContactRequest{Body: &pb.ContactRequest_FriendRequest{FriendRequest: &pb.FriendRequest{Message: text}}})
	return b
}

// ReadContactReply reads a contact reply and returns its code.
func ReadContactReply(r io.Reader) (uint32, error) {
	var reply pb.ContactReply
	err := readFrame(bufio.NewReader(r), MaxContactFrame, &reply)
	return reply.GetCode(), err
}

// RawFrames encodes DM text frames that from sends to to, stamped with
// clock readings 1, 2, ... and the IDs the protocol derives; an empty text
// makes a bad frame. It returns the frames and their IDs.
func RawFrames(from, to peer.ID, texts ...string) ([]byte, []string) {
	var b []byte
	var ids []string
	for i, text := range texts {
		m := &historypb.Message{Kind: KindText, Text: text, Hlc: uint64(i + 1), SentAtMs: 1}
		m.Id = history.DMID(from, to, m.SentAtMs, m.Hlc)
		writeFrame(&sliceWriter{&b}, &pb.DMFrame{Body: &pb.DMFrame_Message{Message: m}})
		ids = append(ids, m.Id)
	}
	return b, ids
}

// RawReceipt encodes a receipt frame for refs that from sends to to, with
// its derived ID.
func RawReceipt(from, to peer.ID, refs ...string) []byte {
	var b []byte
	m := &historypb.Message{Kind: KindReceipt, Refs: refs, Hlc: 1, SentAtMs: 1}
	m.Id = history.DMID(from, to, m.SentAtMs, m.Hlc)
	writeFrame(&sliceWriter{&b}, &pb.DMFrame{Body: &pb.DMFrame_Message{Message: m}})
	return b
}

// ParkedText encodes a text message from one peer to another as a mailbox
// holds it, with ID id ("": the derived one).
func ParkedText(from, to peer.ID, hlc uint64, text, id string) []byte {
	m := &historypb.Message{Kind: KindText, Text: text, Hlc: hlc, SentAtMs: 1}
	if m.Id = id; id == "" {
		m.Id = history.DMID(from, to, m.SentAtMs, m.Hlc)
	}
	b, _ := proto.Marshal(m)
	return b
}

// ParkedDelivered encodes, as a mailbox holds it, a delivery receipt
// from from to to (stamped with clock reading hlc, at at) for the
// messages refs: from took them out of a mailbox.
func ParkedDelivered(from, to peer.ID, hlc uint64, at time.Time, refs ...string) []byte {
	m := &historypb.Message{Kind: KindDelivered, Refs: refs, Hlc: hlc, SentAtMs: at.UnixMilli()}
	m.Id = history.DMID(from, to, m.SentAtMs, m.Hlc)
	b, _ := proto.Marshal(m)
	return b
}

// ReadRefusalFull reads DM frames until a refusal; it returns the IDs
// acked before it, and its code, ID and message.
func ReadRefusalFull(r io.Reader) (acked []string, code uint32, id, msg string, err error) {
	br := bufio.NewReader(r)
	for {
		var f pb.DMFrame
		if err := readFrame(br, MaxDMFrame, &f); err != nil {
			return acked, 0, "", "", err
		}
		if a := f.GetAck(); a != nil {
			acked = append(acked, a.GetIds()...)
		}
		if rf := f.GetRefusal(); rf != nil {
			return acked, rf.GetCode(), rf.GetId(), rf.GetMessage(), nil
		}
	}
}

// ParkedID is the ID of an encoded message as the mailbox holds it.
func ParkedID(b []byte) string {
	var m historypb.Message
	proto.Unmarshal(b, &m)
	return m.GetId()
}

// ParkedChange encodes an edit (text set) or a delete of target that
// from sends to to, as a mailbox holds it, with its derived ID.
func ParkedChange(from, to peer.ID, hlc uint64, target, text string) []byte {
	m := &historypb.Message{Kind: KindDelete, Target: target, Text: text, Hlc: hlc, SentAtMs: 1}
	if text != "" {
		m.Kind = KindEdit
	}
	m.Id = history.DMID(from, to, m.SentAtMs, m.Hlc)
	b, _ := proto.Marshal(m)
	return b
}

// ReadMessageIDs reads DM frames until n messages and returns their IDs.
func ReadMessageIDs(r *bufio.Reader, n int) ([]string, error) {
	var ids []string
	for len(ids) < n {
		var f pb.DMFrame
		if err := readFrame(r, MaxDMFrame, &f); err != nil {
			return ids, err
		}
		if m := f.GetMessage(); m != nil {
			ids = append(ids, m.GetId())
		}
	}
	return ids, nil
}

// AckFrame encodes an ack of ids.
func AckFrame(ids ...string) []byte {
	var b []byte
	writeFrame(&sliceWriter{&b}, &pb.DMFrame{Body: &pb.DMFrame_Ack{Ack: &pb.Ack{Ids: ids}}})
	return b
}

// RawFriendRequestAvatar encodes a friend request whose profile carries
// avatar (a PNG by its type; the bytes are not checked as an image).
func RawFriendRequestAvatar(text string, avatar []byte) []byte {
	var b []byte
	prof := &pb.Profile{Version: 1, Name: "stranger", Avatar: avatar, AvatarType: "image/png"}
	writeFrame(&sliceWriter{&b}, &pb.ContactRequest{Body: &pb.ContactRequest_FriendRequest{FriendRequest: &pb.FriendRequest{Message: text, Profile: prof}}})
	return b
}

// RawFriendResponseAvatar encodes a friend response whose profile carries
// avatar.
func RawFriendResponseAvatar(accept bool, avatar []byte) []byte {
	var b []byte
	prof := &pb.Profile{Version: 1, Name: "stranger", Avatar: avatar, AvatarType: "image/png"}
	writeFrame(&sliceWriter{&b}, &pb.ContactRequest{Body: &pb.ContactRequest_FriendResponse{FriendResponse: &pb.FriendResponse{Accept: accept, Profile: prof}}})
	return b
}

// ReadContactKind reads a contact-protocol request and returns the kind
// of its body: "request", "response", "unfriend" or "profile".
func ReadContactKind(r io.Reader) (string, error) {
	var req pb.ContactRequest
	if err := readFrame(bufio.NewReader(r), MaxContactFrame, &req); err != nil {
		return "", err
	}
	switch req.Body.(type) {
	case *pb.ContactRequest_FriendRequest:
		return "request", nil
	case *pb.ContactRequest_FriendResponse:
		return "response", nil
	case *pb.ContactRequest_Unfriend:
		return "unfriend", nil
	case *pb.ContactRequest_Profile:
		return "profile", nil
	}
	return "", ErrBadFrame
}

// RawContactReply encodes a contact reply of code.
func RawContactReply(code uint32) []byte {
	var b []byte
	writeFrame(&sliceWriter{&b}, &pb.ContactReply{Code: code})
	return b
}
