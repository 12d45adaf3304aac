package history

// The index of the messages that offer a file, in the history's
// namespace (keys documented in store.go):
//
//	/files/<hlc %016x>/<msg ID>   "<conversation>/<hlc %016x>": a file or picture
//	                              message, whichever the conversation
//	/filesindexed                 "": every message stored before the index
//	                              was listed in it
//
// The file list read the whole history to find them, every conversation's
// every message (a second for 200,000 of them), each time a file came or
// changed. Put lists a file message as it stores it; a store from before
// the index is listed once, by the first FileMessages.

import (
	"cmp"
	"context"
	"fmt"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

var keyFilesIndexed = datastore.RawKey("/filesindexed")

// fileKey lists a file message.
func fileKey(hlc uint64, id string) datastore.Key {
	return datastore.RawKey(ConvKey("/files", "", hlc, id))
}

// offersFile says whether m is a message the file index lists.
func offersFile(m *Message) bool {
	return (m.Kind == KindFile || m.Kind == KindPicture) && len(m.Manifest) > 0
}

// filesIndex builds the index of a store from before it, once: mu is
// held while it does.
type filesIndex struct {
	mu   sync.Mutex
	done bool
}

// FileMessages returns the messages that offer a file or a picture,
// direct and of groups, whose manifest summarises (File), newest first.
func (s *Store) FileMessages(ctx context.Context) ([]*Message, error) {
	if err := s.indexFiles(ctx); err != nil {
		return nil, err
	}
	var out []*Message
	err := Scan(ctx, s.ds, query.Query{Prefix: "/files/", Orders: []query.Order{query.OrderByKeyDescending{}}}, func(key string, loc []byte) (bool, error) {
		_, id, ok := ParseMsgKey(key)
		if !ok {
			return false, fmt.Errorf("history: stored key %s is damaged", key)
		}
		m, err := s.recordAt(ctx, loc, id)
		if err != nil {
			return false, err
		}
		if m.File != nil { // not deleted since
			out = append(out, s.WithState(ctx, m))
		}
		return true, nil
	})
	return out, err
}

// indexFiles lists the file messages of a store from before the index.
// A file message stored meanwhile lists itself (Put), whether or not the
// scan sees it.
func (s *Store) indexFiles(ctx context.Context) error {
	s.files.mu.Lock()
	defer s.files.mu.Unlock()
	if s.files.done {
		return nil
	}
	if ok, err := s.ds.Has(ctx, keyFilesIndexed); err != nil || ok {
		s.files.done = ok
		return err
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	var putErr error
	err = s.Query(ctx, query.Query{Prefix: MsgsPrefix}, func(_ string, m *Message) bool {
		if offersFile(m) {
			putErr = b.Put(ctx, fileKey(m.HLC, m.ID), MsgLoc(s.Conv(m), m.HLC))
		}
		return putErr == nil
	})
	if err := cmp.Or(err, putErr); err != nil {
		return err
	}
	if err := b.Put(ctx, keyFilesIndexed, nil); err != nil {
		return err
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	s.files.done = true
	return nil
}
