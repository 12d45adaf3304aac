package call

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"

	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/call/pb"
	"github.com/meshtalk/meshtalk/internal/frame"
)

// seedFrames are frames as the protocol sends them.
func seedFrames() []msg {
	mid, idx, uf := "0", uint16(0), "abcd"
	id := "0123456789abcdef0123456789abcdef"
	return []msg{
		{CallID: id, Seq: 1, Signal: Signal{Kind: KindOffer, SDP: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", Audio: true, Video: true}},
		{CallID: id, Seq: 1, Signal: Signal{Kind: KindRinging}},
		{CallID: id, Seq: 2, Signal: Signal{Kind: KindAccept}},
		{CallID: id, Seq: 3, Signal: Signal{Kind: KindAnswer, SDP: "v=0\r\n"}},
		{CallID: id, Seq: 4, Signal: Signal{Kind: KindCandidate, Candidate: &webrtc.ICECandidateInit{
			Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", SDPMid: &mid, SDPMLineIndex: &idx, UsernameFragment: &uf}}},
		{CallID: id, Seq: 2, Signal: Signal{Kind: KindDecline}},
		{CallID: id, Seq: 1, Signal: Signal{Kind: KindBusy}},
		{CallID: id, Seq: 9, Signal: Signal{Kind: KindHangup, Reason: "timeout"}},
		{CallID: id, Seq: 2, Signal: Signal{Kind: KindError, Reason: CodeOutOfOrder}},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range seedFrames() {
		var buf bytes.Buffer
		if err := frame.Write(&buf, f.toWire()); err != nil {
			t.Fatal(err)
		}
		var p pb.Frame
		if err := frame.Read(bufio.NewReader(&buf), MaxFrame, &p); err != nil {
			t.Fatal(err)
		}
		got, err := fromWire(&p)
		if err != nil {
			t.Fatalf("%s: %v", f.Kind, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("round trip of %+v: %+v", f, got)
		}
	}
}

// FuzzFrame decodes arbitrary bytes as a frame: it never panics, and
// what it accepts survives a round trip unchanged.
func FuzzFrame(f *testing.F) {
	for _, m := range seedFrames() {
		b, err := proto.Marshal(m.toWire())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p pb.Frame
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		m, err := fromWire(&p)
		if err != nil {
			return
		}
		b2, err := proto.Marshal(m.toWire())
		if err != nil {
			t.Fatal(err)
		}
		var p2 pb.Frame
		if err := proto.Unmarshal(b2, &p2); err != nil {
			t.Fatal(err)
		}
		m2, err := fromWire(&p2)
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", m, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v became %+v", m, m2)
		}
		if len(b2) > MaxFrame {
			t.Fatalf("an accepted frame of %d bytes", len(b2))
		}
	})
}
