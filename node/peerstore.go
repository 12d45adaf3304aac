package node

import (
	"context"
	"errors"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// errStoreClosed answers the peerstore's late writers.
var errStoreClosed = errors.New("node: the datastore is closed")

// shutStore is the datastore under libp2p's peerstore. go-libp2p's
// identify runs a goroutine per new connection that host.Close does not
// wait for, and it may still record a peer's addresses after the node has
// closed its datastore, which Pebble answers with a panic. Once shut, every
// operation fails with errStoreClosed instead; shut waits for the
// operations in flight.
type shutStore struct {
	inner datastore.Batching

	mu     sync.RWMutex
	closed bool
}

var _ datastore.Batching = (*shutStore)(nil)

// enter holds the store open for one operation; false once it is shut.
func (s *shutStore) enter() bool {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return false
	}
	return true
}

// shut fails every later operation; it returns when none is in flight.
func (s *shutStore) shut() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *shutStore) Get(ctx context.Context, k datastore.Key) ([]byte, error) {
	if !s.enter() {
		return nil, errStoreClosed
	}
	defer s.mu.RUnlock()
	return s.inner.Get(ctx, k)
}

func (s *shutStore) Has(ctx context.Context, k datastore.Key) (bool, error) {
	if !s.enter() {
		return false, errStoreClosed
	}
	defer s.mu.RUnlock()
	return s.inner.Has(ctx, k)
}

func (s *shutStore) GetSize(ctx context.Context, k datastore.Key) (int, error) {
	if !s.enter() {
		return -1, errStoreClosed
	}
	defer s.mu.RUnlock()
	return s.inner.GetSize(ctx, k)
}

// Query reads the whole result while the store is held open: a result
// read lazily could reach Pebble after the shut. The peerstore's queries
// are small (the records of one peer, or the list of peers).
func (s *shutStore) Query(ctx context.Context, q query.Query) (query.Results, error) {
	if !s.enter() {
		return nil, errStoreClosed
	}
	defer s.mu.RUnlock()
	res, err := s.inner.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	entries, err := res.Rest()
	res.Close()
	if err != nil {
		return nil, err
	}
	return query.ResultsWithEntries(q, entries), nil
}

func (s *shutStore) Put(ctx context.Context, k datastore.Key, v []byte) error {
	if !s.enter() {
		return errStoreClosed
	}
	defer s.mu.RUnlock()
	return s.inner.Put(ctx, k, v)
}

func (s *shutStore) Delete(ctx context.Context, k datastore.Key) error {
	if !s.enter() {
		return errStoreClosed
	}
	defer s.mu.RUnlock()
	return s.inner.Delete(ctx, k)
}

func (s *shutStore) Sync(ctx context.Context, k datastore.Key) error {
	if !s.enter() {
		return errStoreClosed
	}
	defer s.mu.RUnlock()
	return s.inner.Sync(ctx, k)
}

// Close shuts the store; the node closes the datastore under it.
func (s *shutStore) Close() error {
	s.shut()
	return nil
}

// Batch gathers the writes in memory; Commit applies them in one batch
// of the store under it, while the store is open.
func (s *shutStore) Batch(ctx context.Context) (datastore.Batch, error) {
	return &shutBatch{s: s, ops: map[datastore.Key]batchOp{}}, nil
}

// shutBatch is a batch of a shutStore.
type shutBatch struct {
	s   *shutStore
	ops map[datastore.Key]batchOp
}

// batchOp is a batch's last word on a key.
type batchOp struct {
	value  []byte
	delete bool
}

func (b *shutBatch) Put(_ context.Context, k datastore.Key, v []byte) error {
	b.ops[k] = batchOp{value: append([]byte(nil), v...)}
	return nil
}

func (b *shutBatch) Delete(_ context.Context, k datastore.Key) error {
	b.ops[k] = batchOp{delete: true}
	return nil
}

func (b *shutBatch) Commit(ctx context.Context) error {
	if !b.s.enter() {
		return errStoreClosed
	}
	defer b.s.mu.RUnlock()
	inner, err := b.s.inner.Batch(ctx)
	if err != nil {
		return err
	}
	for k, op := range b.ops {
		if op.delete {
			err = inner.Delete(ctx, k)
		} else {
			err = inner.Put(ctx, k, op.value)
		}
		if err != nil {
			return err
		}
	}
	return inner.Commit(ctx)
}
