package node

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// openDatastore opens the Pebble store. Writes are not synced one by one
// (pebble.NoSync): a service that acknowledges something calls Sync on the
// datastore before it acks, which syncs the write-ahead log once for all
// the writes before it.
func openDatastore(path string) (*pebbleds.Datastore, error) {
	// 16 MiB memtables, flushed every ten thousand messages or so. Each
	// flush writes a table per kind of record (splitAtPrefixes). A kind
	// that is rewritten in place (a conversation's acked mark, the clock)
	// stacks a table on the one before at each flush: L0 takes eight of
	// those (pebble compacts at half L0CompactionThreshold) before a
	// compaction merges them down. Writes stop at 24 (not pebble's 12),
	// so that a burst that outruns the one compaction at a time still
	// has room.
	opts := &pebble.Options{MemTableSize: 16 << 20, L0CompactionThreshold: 16, L0CompactionFileThreshold: 1000,
		L0StopWritesThreshold: 24}
	// Bloom filters: the chat receiver looks up an incoming message ID to
	// drop duplicates (a resend, a letter out of order), and a lookup of a
	// key that is not there would otherwise read a block of every table.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// 32 KiB blocks (not 4): a message is a kilobyte or more, and writing
	// tables block by block was much of the flushes' and compactions' CPU.
	opts.Levels[0].BlockSize = 32 << 10
	// Pebble counts its live memtables (the one being written and those
	// waiting to be flushed) against the block cache's size: a cache no
	// larger than them caches nothing, and every lookup reads, checks and
	// decompresses its blocks again (so it was with 32 MiB memtables in a
	// 32 MiB cache). The cache and the memtables are allocated as they
	// fill: an idle node does not pay for them.
	opts.Experimental.SpanPolicyFunc = splitAtPrefixes
	if onTmpfs(path) {
		opts.FS = noPrealloc{vfs.Default}
	}
	d, err := pebbleds.NewDatastore(path, pebbleds.WithCacheSize(64<<20), pebbleds.WithPebbleOpts(opts))
	if err != nil {
		return nil, fmt.Errorf("node: open datastore %s: %w", path, err)
	}
	return d, nil
}

// noPrealloc is pebble's file system for a store on tmpfs, where files
// are not preallocated. Pebble reserves 110% of a memtable (17.6 MiB) for
// each new write-ahead log. On a disk that is an extent, 20 µs on this
// machine's ext4; tmpfs allocates and zeroes the memory itself, 4 ms,
// during which the log's writer waits, and so does every sync behind it.
// tmpfs keeps no allocation metadata for a sync to write, so the
// reservation buys nothing there.
type noPrealloc struct{ vfs.FS }

func (fs noPrealloc) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return unreserved(fs.FS.Create(name, c))
}

func (fs noPrealloc) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return unreserved(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs noPrealloc) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return unreserved(fs.FS.ReuseForWrite(oldname, newname, c))
}

func unreserved(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return unreservedFile{f}, nil
}

// unreservedFile is a file that ignores requests to preallocate.
type unreservedFile struct{ vfs.File }

func (unreservedFile) Preallocate(offset, length int64) error { return nil }

// splitAtPrefixes ends every table pebble writes, flushed or compacted,
// where a key's first two path segments change (/chat/msgs/, /chat/msgid/,
// /chat/trace/…): a table holds one kind of record. Most of what a node
// writes is appended in key order within its kind (messages by clock
// reading, IDs and traces by their time-ordered IDs), so that a flushed
// table of one kind overlaps little or nothing of those before it (IDs
// share at most the millisecond where two flushes meet): level 0 grows
// no deeper there, and no compaction has to rewrite it. A table that
// spanned every kind overlapped all of the one flushed before it, and
// each compaction rewrote the base level. 600,000 DMs: compactions
// wrote 69 MB on the sender (whose acked mark and clock, rewritten in
// place, still stack) and none on the receiver, against 152 and 61 MB.
func splitAtPrefixes(key []byte) (pebble.SpanPolicy, []byte, error) {
	return pebble.SpanPolicy{}, prefixEnd(key), nil
}

// prefixEnd is the first key after every key that shares key's first two
// path segments ("/chat/msgs/…" ends at "/chat/msgs0"), or after key
// itself when it has no more than those.
func prefixEnd(key []byte) []byte {
	n := 0
	for i, c := range key {
		if c != '/' || i == 0 {
			continue
		}
		if n++; n == 2 {
			end := bytes.Clone(key[:i+1])
			end[i]++ // '/' + 1 = '0'
			return end
		}
	}
	return append(append(make([]byte, 0, len(key)+1), key...), 0)
}
