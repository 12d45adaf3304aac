package node

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ipfs/go-datastore"
)

// On tmpfs the store's write-ahead log holds the memory it was written,
// not pebble's 17.6 MiB reservation (see noPrealloc).
func TestDatastoreOnTmpfsReservesNothing(t *testing.T) {
	if !onTmpfs("/dev/shm") {
		t.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "meshtalk-ds-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "datastore")
	if !onTmpfs(path) {
		t.Fatalf("onTmpfs(%s) is false before the store exists", path)
	}
	d, err := openDatastore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for i := range 100 {
		if err := d.Put(ctx, datastore.NewKey("/k/"+string(rune('a'+i%26))), make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(ctx, datastore.NewKey("/")); err != nil {
			t.Fatal(err)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(path, "*.log"))
	if len(logs) == 0 {
		t.Fatal("no write-ahead log in", path)
	}
	for _, l := range logs {
		var st syscall.Stat_t
		if err := syscall.Stat(l, &st); err != nil {
			t.Fatal(err)
		}
		if held := st.Blocks * 512; held > 1<<20 {
			t.Errorf("%s holds %d bytes of memory for %d written: preallocated", filepath.Base(l), held, st.Size)
		}
	}
}
