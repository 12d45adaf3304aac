package history

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestFileMessages: the file list reads its index, not the history: the
// file and picture messages of every conversation, newest first, without
// the deleted; a store from before the index is listed once, at the first
// call.
func TestFileMessages(t *testing.T) {
	ctx := context.Background()
	a, b, c := peer.ID("\x00\x05alice"), peer.ID("\x00\x03bob"), peer.ID("\x00\x05carol")
	var reads atomic.Int64
	ds := countingReads{copying{dssync.MutexWrap(datastore.NewMapDatastore())}, &reads}
	cfg := Config{FileInfo: func(mf []byte) *FileInfo { return &FileInfo{ID: string(mf), Name: string(mf)} }}
	withFile := func(m *Message, kind, manifest string) *Message {
		m.Kind, m.Text, m.Manifest = kind, "", []byte(manifest)
		return m
	}
	// A store from before the index: records and IDs only.
	old := New(ds, Config{})
	oldFile := withFile(dm(b, a, 5, "", false), KindFile, "old.pdf")
	for _, m := range []*Message{dm(b, a, 4, "hi", false), oldFile} {
		if err := old.PutRecord(ctx, ds, m); err != nil {
			t.Fatal(err)
		}
		if err := ds.Put(ctx, IDKey(m.ID), MsgLoc(old.Conv(m), m.HLC)); err != nil {
			t.Fatal(err)
		}
	}
	s := New(ds, cfg)
	var msgs []*Message
	for i := range 500 {
		msgs = append(msgs, dm(b, a, uint64(10+i), "text", false))
	}
	pic := withFile(dm(a, c, 600, "", true), KindPicture, "cat.png")
	file := withFile(dm(c, a, 700, "", false), KindFile, "report.pdf")
	gone := withFile(dm(b, a, 800, "", false), KindFile, "deleted.zip")
	putAll(t, s, append(msgs, pic, file, gone)...)
	if _, err := s.Forget(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	ids := func(ms []*Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	want := []string{file.ID, pic.ID, oldFile.ID}
	for i, most := range []int64{1000, 10} {
		reads.Store(0)
		got, err := s.FileMessages(ctx)
		if err != nil || !slices.Equal(ids(got), want) {
			t.Fatalf("file messages, call %d: %v %v, want %v", i, ids(got), err, want)
		}
		if got[0].File == nil || got[0].File.Name != "report.pdf" {
			t.Fatalf("the newest file message: %+v", got[0])
		}
		if n := reads.Load(); n > most {
			t.Errorf("file messages, call %d, read %d entries", i, n)
		}
	}
	// One that comes once the index is built lists itself.
	later := withFile(dm(b, a, 900, "", false), KindFile, "later.txt")
	putAll(t, s, later)
	if got, err := s.FileMessages(ctx); err != nil || !slices.Equal(ids(got), append([]string{later.ID}, want...)) {
		t.Fatalf("file messages after one more: %v %v", ids(got), err)
	}
}
