package node

import (
	"context"
	"sync/atomic"

	"github.com/ipfs/go-datastore"
)

// StoreWrites counts what the chat and group services wrote to the
// datastore since the node started: keys put and deleted, batches
// committed and syncs. The benchmarks report them per message.
type StoreWrites struct {
	Puts, Deletes, Commits, Syncs int64
}

// Writes is the number of keys written (puts and deletes).
func (w StoreWrites) Writes() int64 { return w.Puts + w.Deletes }

// Sub is w minus earlier counts.
func (w StoreWrites) Sub(o StoreWrites) StoreWrites {
	return StoreWrites{w.Puts - o.Puts, w.Deletes - o.Deletes, w.Commits - o.Commits, w.Syncs - o.Syncs}
}

// ChatWrites returns what the chat and group services have written.
func (n *Node) ChatWrites() StoreWrites {
	c := n.chatDS
	if c == nil {
		return StoreWrites{}
	}
	return StoreWrites{c.puts.Load(), c.deletes.Load(), c.commits.Load(), c.syncs.Load()}
}

// countingDS counts the writes that go through it (a few atomic adds,
// next to a datastore write's microseconds).
type countingDS struct {
	datastore.Batching
	puts, deletes, commits, syncs atomic.Int64
}

func (c *countingDS) Put(ctx context.Context, k datastore.Key, v []byte) error {
	c.puts.Add(1)
	return c.Batching.Put(ctx, k, v)
}

func (c *countingDS) Delete(ctx context.Context, k datastore.Key) error {
	c.deletes.Add(1)
	return c.Batching.Delete(ctx, k)
}

func (c *countingDS) Sync(ctx context.Context, k datastore.Key) error {
	c.syncs.Add(1)
	return c.Batching.Sync(ctx, k)
}

func (c *countingDS) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := c.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &countingBatch{Batch: b, c: c}, nil
}

type countingBatch struct {
	datastore.Batch
	c *countingDS
}

func (b *countingBatch) Put(ctx context.Context, k datastore.Key, v []byte) error {
	b.c.puts.Add(1)
	return b.Batch.Put(ctx, k, v)
}

func (b *countingBatch) Delete(ctx context.Context, k datastore.Key) error {
	b.c.deletes.Add(1)
	return b.Batch.Delete(ctx, k)
}

func (b *countingBatch) Commit(ctx context.Context) error {
	b.c.commits.Add(1)
	return b.Batch.Commit(ctx)
}

// StoreBusy reports whether the datastore is flushing a memtable or
// compacting. A benchmark waits for it before a timed run, so that the
// run does not pay for the background work of the writes before it.
func (n *Node) StoreBusy() bool {
	m := n.ds.DB.Metrics()
	return m.Compact.NumInProgress > 0 || m.Flush.NumInProgress > 0
}
