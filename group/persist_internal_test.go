package group

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"

	"github.com/meshtalk/meshtalk/history"
)

// TestOpNotStoredLeavesTheDAG: an op whose batch fails to commit is not
// in the DAG afterwards, so the next op does not follow it, and the
// group loads again from what was stored.
func TestOpNotStoredLeavesTheDAG(t *testing.T) {
	ctx := context.Background()
	ds := &failingDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
	gs := startOn(t, ds)
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
	again := startOn(t, ds) // fails if the stored rename follows the lost one
	if g := again.get(info.ID); g == nil || g.state().Name != after {
		t.Fatalf("reloaded group: %+v, want named %q", g, after)
	}
}

// TestMigrationDropsTheOldLogAtomically: a state from before schema 3
// is migrated at start, and its old log deleted in the batch that stores
// the new state: deleted after it, a failure (or a crash) between the
// two left the old log behind for good, and the node did not start.
func TestMigrationDropsTheOldLogAtomically(t *testing.T) {
	ctx := context.Background()
	ds := &failingDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
	gs := startOn(t, ds)
	info, err := gs.Create(ctx, "old", nil)
	if err != nil {
		t.Fatal(err)
	}
	DowngradeState(gs, info.ID)
	gs.Close()
	ds.failDeletes.Store(true)
	again := startOn(t, ds)
	if g := again.get(info.ID); g == nil || g.state().Schema != stateSchema || g.state().Name != "old" {
		t.Fatalf("migrated group: %+v", g)
	}
	var left []string
	err = history.Scan(ctx, ds, query.Query{Prefix: "/groups/" + info.ID + "/ops/", KeysOnly: true}, func(key string, _ []byte) (bool, error) {
		left = append(left, key)
		return true, nil
	})
	if err != nil || len(left) > 0 {
		t.Fatalf("the old log after the migration: %v %v", left, err)
	}
}

// startOn starts a group service on its own host over ds, closed when
// the test ends.
func startOn(t *testing.T, ds datastore.Batching) *Service {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	gs, err := New(context.Background(), h, ds, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gs.Close() })
	return gs
}

var errCommit = errors.New("commit failed")

// failingDS fails its batches' commits while fail is set, and a Delete
// outside a batch while failDeletes is. Its batches copy what they are
// given, as the node's datastore (pebble) does.
type failingDS struct {
	datastore.Batching
	fail, failDeletes atomic.Bool
}

var errDelete = errors.New("delete failed")

func (d *failingDS) Delete(ctx context.Context, k datastore.Key) error {
	if d.failDeletes.Load() {
		return errDelete
	}
	return d.Batching.Delete(ctx, k)
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
