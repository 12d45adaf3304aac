package chat

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/chat/pb"
	historypb "github.com/meshtalk/meshtalk/history/pb"
)

// FuzzDMFrame feeds the DM receiver's decoder: a frame, then the message
// check. No input may panic or allocate past the frame limit, and what
// passes the check must survive a round trip.
func FuzzDMFrame(f *testing.F) {
	for _, m := range []*historypb.Message{
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindText, Text: "hello", Hlc: 1 << 20, SentAtMs: 1700000000000},
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindFace, Face: "party"},
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindReceipt, Refs: []string{"01ARZ3NDEKTSV4RRFFQ69G5FAW"}},
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindDelivered, Refs: []string{"01ARZ3NDEKTSV4RRFFQ69G5FAW"}, Hlc: 7, SentAtMs: 1700000000000},
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindReply, Text: "yes", ReplyTo: "01ARZ3NDEKTSV4RRFFQ69G5FAW"},
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindEdit, Text: "hello", Target: "01ARZ3NDEKTSV4RRFFQ69G5FAW", Hlc: 2 << 20, SentAtMs: 1700000000001},
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindDelete, Target: "01ARZ3NDEKTSV4RRFFQ69G5FAW"},
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindText, Text: "now", EditedAtMs: 1700000000002, EditHlc: 3 << 20},
		{Id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Kind: KindPicture, Deleted: true, EditHlc: 3 << 20},
	} {
		var b bytes.Buffer
		writeFrame(&b, &pb.DMFrame{Body: &pb.DMFrame_Message{Message: m}})
		f.Add(b.Bytes())
	}
	var ack bytes.Buffer
	writeFrame(&ack, &pb.DMFrame{Body: &pb.DMFrame_Ack{Ack: &pb.Ack{Ids: []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV"}}}})
	f.Add(ack.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		var fr pb.DMFrame
		if err := readFrame(bufio.NewReader(bytes.NewReader(in)), MaxDMFrame, &fr); err != nil {
			if !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrFrameTooLarge) && err.Error() != "EOF" {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		pm := fr.GetMessage()
		if pm == nil {
			return
		}
		m, err := messageFromWire(pm)
		if err != nil {
			return
		}
		again, err := messageFromWire(m.ToWire())
		if err != nil || !proto.Equal(again.ToWire(), m.ToWire()) {
			t.Fatalf("a valid message does not round-trip: %v", err)
		}
	})
}

// FuzzContactRequest feeds the contact handler's decoder and the profile
// check.
func FuzzContactRequest(f *testing.F) {
	p := &Profile{Version: 3, Name: "Alice", Status: "here", Avatar: []byte{0xff, 0xd8}, AvatarType: "image/jpeg"}
	for _, req := range []*pb.ContactRequest{
		{Body: &pb.ContactRequest_FriendRequest{FriendRequest: &pb.FriendRequest{Message: "hi", Profile: p.toWire()}}},
		{Body: &pb.ContactRequest_FriendResponse{FriendResponse: &pb.FriendResponse{Accept: true, Profile: p.toWire()}}},
		{Body: &pb.ContactRequest_Unfriend{Unfriend: &pb.Unfriend{}}},
		{Body: &pb.ContactRequest_Profile{Profile: p.toWire()}},
	} {
		var b bytes.Buffer
		writeFrame(&b, req)
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var req pb.ContactRequest
		if err := readFrame(bufio.NewReader(bytes.NewReader(in)), MaxContactFrame, &req); err != nil {
			return
		}
		var wp *pb.Profile
		switch body := req.Body.(type) {
		case *pb.ContactRequest_FriendRequest:
			wp = body.FriendRequest.GetProfile()
		case *pb.ContactRequest_FriendResponse:
			wp = body.FriendResponse.GetProfile()
		case *pb.ContactRequest_Profile:
			wp = body.Profile
		}
		prof, err := profileFromWire(wp)
		if err != nil || prof == nil {
			return
		}
		if again, err := profileFromWire(prof.toWire()); err != nil || again.Name != prof.Name {
			t.Fatalf("a valid profile does not round-trip: %v", err)
		}
	})
}
