package group

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
)

// TestOpNotStoredLeavesTheDAG: an op whose batch fails to commit is not
// in the DAG afterwards, so the next op does not follow it, and the
// group loads again from what was stored.
func TestOpNotStoredLeavesTheDAG(t *testing.T) {
	ctx := context.Background()
	ds := &failingDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
	start := func() *Service {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		gs, err := New(ctx, h, ds, Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gs.Close() })
		return gs
	}
	gs := start()
	info, err := gs.Create(ctx, "before", nil)
	if err != nil {
		t.Fatal(err)
	}
	ds.fail.Store(true)
	lost := "lost"
	if _, err := gs.Rename(ctx, info.ID, &lost, nil); !errors.Is(err, errCommit) {
		t.Fatalf("rename on a failing store: %v, want %v", err, errCommit)
	}
	ds.fail.Store(false)
	after := "after"
	if _, err := gs.Rename(ctx, info.ID, &after, nil); err != nil {
		t.Fatal(err)
	}
	gs.Close()
	again := start() // fails if the stored rename follows the lost one
	if g := again.get(info.ID); g == nil || g.state().Name != after {
		t.Fatalf("reloaded group: %+v, want named %q", g, after)
	}
}

var errCommit = errors.New("commit failed")

// failingDS fails its batches' commits while fail is set. Its batches
// copy what they are given, as the node's datastore (pebble) does.
type failingDS struct {
	datastore.Batching
	fail atomic.Bool
}

func (d *failingDS) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	return &failingBatch{Batch: b, ds: d}, err
}

type failingBatch struct {
	datastore.Batch
	ds *failingDS
}

func (b *failingBatch) Put(ctx context.Context, k datastore.Key, v []byte) error {
	return b.Batch.Put(ctx, k, append([]byte(nil), v...))
}

func (b *failingBatch) Commit(ctx context.Context) error {
	if b.ds.fail.Load() {
		return errCommit
	}
	return b.Batch.Commit(ctx)
}
