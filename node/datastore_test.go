package node

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-datastore"
)

// Every table the store writes holds keys of one kind (their first two
// path segments), so that tables of records appended in key order
// overlap none before them.
func TestDatastoreTablesSplitAtPrefixes(t *testing.T) {
	d, err := openDatastore(filepath.Join(t.TempDir(), "datastore"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	kinds := []string{"/chat/msgid/", "/chat/msgs/peer/", "/chat/trace/", "/peers/addrs/"}
	put := func(from int, clock bool) {
		for i := from; i < from+100; i++ {
			for _, k := range kinds {
				if err := d.Put(ctx, datastore.RawKey(fmt.Sprintf("%s%08d", k, i)), make([]byte, 500)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if clock {
			if err := d.Put(ctx, datastore.RawKey("/chat/clock"), []byte{1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.DB.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	put(0, true)
	put(100, false)
	tables, err := d.DB.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, level := range tables {
		for _, tb := range level {
			n++
			lo, hi := tb.Smallest.UserKey, tb.Largest.UserKey
			if !bytes.Equal(prefixEnd(lo), prefixEnd(hi)) {
				t.Errorf("a table spans %q to %q: two kinds of record", lo, hi)
			}
		}
	}
	// Two flushes of four kinds, and the clock in the first.
	if n != 9 {
		t.Errorf("%d tables after two flushes, want 9", n)
	}
	// The second flush's tables lie beside the first's, not on them (a
	// table of every kind would overlap the one before: 2 sublevels).
	if m := d.DB.Metrics(); m.Levels[0].Sublevels != 1 {
		t.Errorf("level 0 has %d sublevels, want 1", m.Levels[0].Sublevels)
	}
}

func TestPrefixEnd(t *testing.T) {
	for key, want := range map[string]string{
		"/chat/msgs/peer/0001": "/chat/msgs0",
		"/chat/msgs/":          "/chat/msgs0",
		"/chat/clock":          "/chat/clock\x00",
		"/schema":              "/schema\x00",
		"":                     "\x00",
	} {
		if got := string(prefixEnd([]byte(key))); got != want {
			t.Errorf("prefixEnd(%q) = %q, want %q", key, got, want)
		}
	}
}
