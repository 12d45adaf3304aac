package history

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/history/pb"
)

// TestFillWireReuse: a protobuf message that FillWire refills says what
// the message filled last says, and nothing of the one before it (the
// DM courier encodes every message of a stream through one).
func TestFillWireReuse(t *testing.T) {
	full := Wire{ID: "01J0000000000000000000000A", SentAtMS: 5, HLC: 7, Refs: []string{"01J0000000000000000000000B"},
		Content: Content{Kind: KindPicture, Text: "t", Face: "f", Thumbnail: []byte{1}, ThumbnailType: "image/png",
			ReplyTo: "r", ReactTo: "a", Target: "g", EditedAt: time.UnixMilli(9), EditHLC: 3, Deleted: true, Manifest: []byte{2}}}
	bare := Wire{ID: "01J0000000000000000000000C", HLC: 8, Content: Content{Kind: KindText, Text: "hi"}}
	var p pb.Message
	full.FillWire(&p)
	if !proto.Equal(&p, full.ToWire()) {
		t.Fatalf("filled %v, want %v", &p, full.ToWire())
	}
	bare.FillWire(&p)
	if !proto.Equal(&p, bare.ToWire()) {
		t.Fatalf("refilled %v, want %v", &p, bare.ToWire())
	}
}
