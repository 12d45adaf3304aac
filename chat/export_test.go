package chat

// Test hooks: raw frames for the wire tests in package chat_test.

import (
	"bufio"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/chat/pb"
)

// RawMessageFrame encodes a DM frame carrying a text message.
func RawMessageFrame(id, text string) []byte {
	var b []byte
	w := &sliceWriter{&b}
	writeFrame(w, &pb.DMFrame{Body: &pb.DMFrame_Message{Message: &pb.Message{Id: id, Kind: KindText, Text: text, Hlc: 1, SentAtMs: 1}}})
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

// RawFrames encodes several DM frames: valid texts with the given IDs,
// and, where an ID is prefixed with "!", a text with an empty body (bad).
func RawFrames(ids ...string) []byte {
	var b []byte
	for _, id := range ids {
		text := "hello"
		if id[0] == '!' {
			id, text = id[1:], ""
		}
		writeFrame(&sliceWriter{&b}, &pb.DMFrame{Body: &pb.DMFrame_Message{Message: &pb.Message{Id: id, Kind: KindText, Text: text, Hlc: 1, SentAtMs: 1}}})
	}
	return b
}

// RawReceipt encodes a receipt frame for refs.
func RawReceipt(id string, refs ...string) []byte {
	var b []byte
	writeFrame(&sliceWriter{&b}, &pb.DMFrame{Body: &pb.DMFrame_Message{Message: &pb.Message{Id: id, Kind: KindReceipt, Refs: refs, Hlc: 1, SentAtMs: 1}}})
	return b
}

// ReadRefusalFull reads DM frames until a refusal; it returns the IDs
// acked before it, and its code and ID.
func ReadRefusalFull(r io.Reader) (acked []string, code uint32, id string, err error) {
	br := bufio.NewReader(r)
	for {
		var f pb.DMFrame
		if err := readFrame(br, MaxDMFrame, &f); err != nil {
			return acked, 0, "", err
		}
		if a := f.GetAck(); a != nil {
			acked = append(acked, a.GetIds()...)
		}
		if rf := f.GetRefusal(); rf != nil {
			return acked, rf.GetCode(), rf.GetId(), nil
		}
	}
}

// ParkedID is the ID of an encoded message as the mailbox holds it.
func ParkedID(b []byte) string {
	var m pb.Message
	proto.Unmarshal(b, &m)
	return m.GetId()
}
