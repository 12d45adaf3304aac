package node

import (
	"context"
	"errors"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
)

func TestShutStore(t *testing.T) {
	ctx := context.Background()
	s := &shutStore{inner: dssync.MutexWrap(datastore.NewMapDatastore())}
	a, b := datastore.NewKey("/a"), datastore.NewKey("/b")
	if err := s.Put(ctx, a, []byte("1")); err != nil {
		t.Fatal(err)
	}
	batch, _ := s.Batch(ctx)
	batch.Put(ctx, b, []byte{}) // an empty value is a value, not a delete
	batch.Delete(ctx, a)
	if err := batch.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, b); !ok {
		t.Fatal("an empty value put in a batch is not there")
	}
	if ok, _ := s.Has(ctx, a); ok {
		t.Fatal("a key deleted in a batch is still there")
	}
	res, err := s.Query(ctx, query.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := res.Rest(); len(all) != 1 {
		t.Fatalf("query: %d entries, want 1", len(all))
	}

	late, _ := s.Batch(ctx)
	late.Put(ctx, a, []byte("2"))
	s.Close()
	for name, err := range map[string]error{
		"put":    s.Put(ctx, a, []byte("3")),
		"delete": s.Delete(ctx, b),
		"commit": late.Commit(ctx),
		"sync":   s.Sync(ctx, a),
	} {
		if !errors.Is(err, errStoreClosed) {
			t.Errorf("%s after shut: %v, want errStoreClosed", name, err)
		}
	}
	if _, err := s.Get(ctx, b); !errors.Is(err, errStoreClosed) {
		t.Errorf("get after shut: %v", err)
	}
	if _, err := s.Query(ctx, query.Query{}); !errors.Is(err, errStoreClosed) {
		t.Errorf("query after shut: %v", err)
	}
}
