package history

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
)

// FuzzDecode feeds the stored-record decoder: no input panics it, and a
// record it reads is stored again as the same message.
func FuzzDecode(f *testing.F) {
	ctx := context.Background()
	a, b := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob")
	g := dm(b, a, 9, "", false)
	g.To, g.Group, g.Content = "", "g1", Content{Kind: KindFace, Face: "party"}
	seedDS := copying{dssync.MutexWrap(datastore.NewMapDatastore())}
	seeds := New(seedDS, Config{})
	via := dm(b, a, 3, "through the mailbox", false)
	via.Via = &Hop{Event: HopReceived, At: time.UnixMilli(1700000000000), Path: PathMailbox, Relay: peer.ID("\x00\x05relay")}
	edited, deleted := dm(a, b, 3, "now this", true), dm(b, a, 4, "", false)
	edited.EditedAt, edited.EditHLC = time.UnixMilli(1_700_000_000_005), 5
	deleted.Deleted, deleted.EditHLC = true, 6
	for _, m := range []*Message{dm(a, b, 1, "hello", true), dm(b, a, 2, "hi", false), g, via, edited, deleted} {
		if err := seeds.PutRecord(ctx, seedDS, m); err != nil {
			f.Fatal(err)
		}
		raw, err := seedDS.Get(ctx, MsgKey(seeds.Conv(m), m.HLC, m.ID))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := New(copying{dssync.MutexWrap(datastore.NewMapDatastore())}, Config{})
		m, err := s.Decode("fuzz", raw)
		if err != nil {
			return
		}
		if err := s.PutRecord(ctx, s.ds, m); err != nil {
			t.Fatal(err)
		}
		again, err := s.ds.Get(ctx, MsgKey(s.Conv(m), m.HLC, m.ID))
		if err != nil {
			t.Fatal(err)
		}
		m2, err := s.Decode("again", again)
		if err != nil || !reflect.DeepEqual(normal(m), normal(m2)) {
			t.Fatalf("stored again: %+v %v, was %+v", m2, err, m)
		}
	})
}

// normal makes empty and nil byte slices alike, as protobuf does.
func normal(m *Message) Message {
	c := *m
	for _, p := range []*[]byte{&c.Thumbnail, &c.Manifest} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	return c
}

// FuzzParseMsgKey: a message key reads back as the reading and ID it was
// made of, and anything else is refused or read without a panic.
func FuzzParseMsgKey(f *testing.F) {
	f.Add("12D3KooWabc", uint64(0x18c3a5f2e0010001), "01JEXAMPLE0000000000000000", "/msgs/x/0000000000000001/id")
	f.Add("g:group", uint64(0), "", "/msgs/x/zz00000000000001/id")
	f.Fuzz(func(t *testing.T, conv string, hlc uint64, id, raw string) {
		ParseMsgKey(raw)
		if strings.Contains(id, "/") {
			return
		}
		key := ConvKey(MsgsPrefix, conv, hlc, id)
		gotHLC, gotID, ok := ParseMsgKey(key)
		if id != "" && (!ok || gotHLC != hlc || gotID != id) {
			t.Fatalf("ParseMsgKey(%q) = %x %q %v, want %x %q", key, gotHLC, gotID, ok, hlc, id)
		}
	})
}

// FuzzDecodeImage feeds the image decoder that avatars and pictures go
// through (the user's files, and a group's avatar set by any admin): no
// input panics it or decodes past the pixel limit, and what it takes
// makes a thumbnail and an avatar that fit their bounds and decode again.
func FuzzDecodeImage(f *testing.F) {
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for x := range 40 {
		img.Set(x, x%30, color.NRGBA{200, 100, 50, uint8(x * 6)})
	}
	for _, enc := range []func(*bytes.Buffer) error{
		func(b *bytes.Buffer) error { return png.Encode(b, img) },
		func(b *bytes.Buffer) error { return jpeg.Encode(b, img, nil) },
		func(b *bytes.Buffer) error { return gif.Encode(b, img, nil) },
	} {
		var b bytes.Buffer
		if err := enc(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := DecodeImage(b)
		if err != nil {
			return
		}
		r := img.Bounds()
		if r.Dx() <= 0 || r.Dy() <= 0 || r.Dx()*r.Dy() > maxImagePixels {
			t.Fatalf("decoded %v, past the limits", r)
		}
		for _, mk := range []func([]byte) ([]byte, string, error){MakeThumbnail, MakeAvatar} {
			out, typ, err := mk(b)
			if err != nil {
				continue // a thumbnail that does not fit is an error, not a panic
			}
			again, format, err := image.Decode(bytes.NewReader(out))
			if err != nil || "image/"+format != typ {
				t.Fatalf("made a %s that decodes as %q: %v", typ, format, err)
			}
			if d := again.Bounds(); d.Dx() > max(ThumbnailSize, AvatarSize) || d.Dy() > max(ThumbnailSize, AvatarSize) || len(out) > MaxAvatarBytes {
				t.Fatalf("made a %v %s of %d bytes", d, typ, len(out))
			}
		}
	})
}
