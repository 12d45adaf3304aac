package transfer

// What this node served, per file and peer: counted in memory as chunks go
// out, and stored
//
//	/served/<root hex>/<peer ID>   servedRecord (JSON, "v": servedVersion)
//
// when the peer says it has the whole file, and when the service closes.

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
)

// servedVersion is the version of the stored servedRecord.
const servedVersion = 1

type servedRecord struct {
	V        int        `json:"v"`
	Bytes    uint64     `json:"bytes"`
	Finished *time.Time `json:"finished,omitempty"`
}

// Served is what this node served of one file to one peer.
type Served struct {
	Peer peer.ID `json:"peer"`
	// Name is the peer's name as the node shows it; never set here
	// (node fills it in).
	Name  string `json:"name,omitempty"`
	Bytes uint64 `json:"bytes"`
	// Rate is the rate of the last seconds while serving.
	Rate float64 `json:"rate_bytes_per_second,omitempty"`
	// Finished is when the peer said it had the whole file.
	Finished *time.Time `json:"finished,omitempty"`
}

// servedTo counts what went to one peer.
type servedTo struct {
	mu    sync.Mutex
	rec   servedRecord
	meter rateMeter
	last  time.Time
}

// servedTally holds the counts of the service.
type servedTally struct {
	mu sync.Mutex
	m  map[Hash]map[peer.ID]*servedTo
}

func servedKey(root Hash, p peer.ID) datastore.Key {
	return datastore.NewKey("/served/" + root.String() + "/" + p.String())
}

// servedTo is the count of root to p, loaded from the store when first
// used.
func (s *Service) servedTo(root Hash, p peer.ID) *servedTo {
	t := &s.served
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[Hash]map[peer.ID]*servedTo{}
	}
	byPeer := t.m[root]
	if byPeer == nil {
		byPeer = map[peer.ID]*servedTo{}
		t.m[root] = byPeer
	}
	st := byPeer[p]
	if st == nil {
		st = &servedTo{rec: servedRecord{V: servedVersion}}
		if b, err := s.ds.Get(s.ctx, servedKey(root, p)); err == nil {
			json.Unmarshal(b, &st.rec)
		}
		byPeer[p] = st
	}
	return st
}

// add counts n bytes more served.
func (st *servedTo) add(n int, size uint64) {
	st.mu.Lock()
	st.rec.Bytes += uint64(n)
	b := st.rec.Bytes
	now := time.Now()
	st.last = now
	st.mu.Unlock()
	st.meter.add(b, size, now)
}

// finished records that p has the whole file, durably.
func (s *Service) finished(root Hash, p peer.ID, now time.Time) {
	st := s.servedTo(root, p)
	st.mu.Lock()
	if st.rec.Finished == nil {
		st.rec.Finished = &now
	}
	b, _ := json.Marshal(st.rec)
	st.mu.Unlock()
	if err := s.ds.Put(s.ctx, servedKey(root, p), b); err == nil {
		s.ds.Sync(s.ctx, datastore.NewKey("/served"))
	}
}

// saveServed stores every count (at Close).
func (s *Service) saveServed() {
	t := &s.served
	t.mu.Lock()
	defer t.mu.Unlock()
	ctx := context.Background()
	for root, byPeer := range t.m {
		for p, st := range byPeer {
			st.mu.Lock()
			b, _ := json.Marshal(st.rec)
			st.mu.Unlock()
			s.ds.Put(ctx, servedKey(root, p), b)
		}
	}
}

// Served lists what this node served of the file id names, per peer.
func (s *Service) Served(ctx context.Context, id string) ([]Served, error) {
	root, err := ParseHash(id)
	if err != nil {
		return nil, err
	}
	res, err := s.ds.Query(ctx, query.Query{Prefix: "/served/" + root.String() + "/", KeysOnly: true})
	if err != nil {
		return nil, err
	}
	var peers []peer.ID
	for r := range res.Next() {
		if p, err := peer.Decode(r.Key[strings.LastIndexByte(r.Key, '/')+1:]); r.Error == nil && err == nil {
			peers = append(peers, p)
		}
	}
	res.Close()
	s.served.mu.Lock()
	for p := range s.served.m[root] {
		peers = append(peers, p)
	}
	s.served.mu.Unlock()
	var out []Served
	seen := map[peer.ID]bool{}
	for _, p := range peers {
		if seen[p] {
			continue
		}
		seen[p] = true
		st := s.servedTo(root, p)
		st.mu.Lock()
		sv := Served{Peer: p, Bytes: st.rec.Bytes, Finished: st.rec.Finished}
		recent := time.Since(st.last) < 2*time.Second
		st.mu.Unlock()
		if _, rate, _ := st.meter.read(); recent && sv.Finished == nil {
			sv.Rate = rate
		}
		out = append(out, sv)
	}
	return out, nil
}
