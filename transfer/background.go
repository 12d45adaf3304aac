package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Events the service hands to its Config.Emit, each with an Event as its
// data (node publishes them on its event stream).
const (
	EventProgress = "transfer.progress"
	EventDone     = "transfer.done"
	EventFailed   = "transfer.failed"
)

// Event is a background download's news.
type Event struct {
	Type string `json:"-"`
	Progress
	Path  string `json:"path,omitempty"`
	Error string `json:"error,omitempty"`
}

// progressEvery spaces progress events of one download.
const progressEvery = 200 * time.Millisecond

// retryMax bounds the wait before a background download tries its sources
// again.
const retryMax = 5 * time.Minute

// ErrNotStarted is returned for a download that was never started.
var ErrNotStarted = errors.New("transfer: no such download")

// ErrGaveUp is why a background download stopped that spent its attempts
// (StartTries).
var ErrGaveUp = errors.New("transfer: gave up")

// Start runs Download in the background, where it resumes on every start
// of the node (Resume) until it is done or cancelled. Asking again for a
// download in progress just follows it (without the bound on its attempts
// StartTries may have set).
func (s *Service) Start(m *Manifest, sources []peer.ID, dir string) error {
	return s.StartTries(m, sources, dir, 0)
}

// StartTries is Start for a download that gives up after tries attempts
// to fetch from its sources (0: never). The attempts are counted in the
// download's record, so a restart goes on counting; a download that gave
// up is failed, not resumed, until it is started again, which counts
// anew. Asking again for a download in progress keeps its bound.
func (s *Service) StartTries(m *Manifest, sources []peer.ID, dir string, tries int) error {
	root := m.Root()
	if err := s.markBackground(m, dir, sources, tries); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = map[Hash]context.CancelFunc{}
	}
	if _, ok := s.running[root]; ok {
		return nil
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.running[root] = cancel
	started := s.life.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.running, root)
			s.mu.Unlock()
			cancel()
		}()
		var last time.Time
		meter := &rateMeter{}
		s.mu.Lock()
		if s.meters == nil {
			s.meters = map[Hash]*rateMeter{}
		}
		s.meters[root] = meter
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.meters, root)
			s.mu.Unlock()
		}()
		progress := func(p Progress) {
			meter.add(p.Bytes, p.Size, time.Now())
			// A few events a second are enough to draw a progress bar.
			if time.Since(last) >= progressEvery || p.Have == p.Chunks {
				last = time.Now()
				s.emit(EventProgress, Event{Type: EventProgress, Progress: p})
			}
		}
		var lastErr error
		attempt := func() (string, error) {
			if err := s.try(root); err != nil {
				if lastErr != nil {
					err = fmt.Errorf("%w: %v", err, lastErr)
				}
				return "", err
			}
			path, err := s.Download(ctx, m, sources, dir, progress)
			lastErr = err
			return path, err
		}
		path, err := attempt()
		// Sources out of reach (stopped, offline): try again, backing off,
		// until they are back or the attempts are spent. Sources that serve
		// bad chunks, a full disk: stop and say so.
		for wait := time.Second; err != nil && errors.Is(err, ErrNoSource) && !errors.Is(err, ErrBadChunk) && ctx.Err() == nil; wait = min(2*wait, retryMax) {
			s.log.Info("download waits for its sources", "file", m.Name, "retry_in", wait, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
				path, err = attempt()
			}
		}
		switch {
		case err == nil:
			s.emit(EventDone, Event{Type: EventDone, Progress: Progress{ID: root.String(), Name: m.Name, Size: m.Size, Bytes: m.Size}, Path: path})
		case ctx.Err() != nil:
			// Stopped or cancelled: resumes, or was dropped, elsewhere.
		default:
			s.setError(root, err)
			s.emit(EventFailed, Event{Type: EventFailed, Progress: Progress{ID: root.String(), Name: m.Name, Size: m.Size}, Error: err.Error()})
		}
	})
	if !started {
		delete(s.running, root)
		cancel()
		return ErrClosed
	}
	return nil
}

// Resume starts again every download that is neither done nor failed.
func (s *Service) Resume(ctx context.Context) error {
	list, err := s.Downloads(ctx)
	if err != nil {
		return err
	}
	for _, d := range list {
		if d.Done || d.Error != "" || !d.Background {
			continue
		}
		m, err := s.manifest(ctx, d.ID)
		if err != nil {
			continue
		}
		var srcs []peer.ID
		for _, p := range d.Sources {
			if id, err := peer.Decode(p); err == nil {
				srcs = append(srcs, id)
			}
		}
		if err := s.StartTries(m, srcs, dirOf(d.Partial), d.MaxAttempts); err != nil {
			return err
		}
	}
	return nil
}

// Cancel stops a download and forgets it; the partial file is removed.
func (s *Service) Cancel(ctx context.Context, id string) error {
	m, err := s.manifest(ctx, id)
	if err != nil {
		return err
	}
	root := m.Root()
	s.mu.Lock()
	cancel := s.running[root]
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	var rc Receipt
	b, err := s.ds.Get(ctx, recvKey(root))
	if errors.Is(err, datastore.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNotStarted, id)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &rc); err == nil && !rc.Done {
		removeQuiet(rc.Partial)
	}
	bt, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	bt.Delete(ctx, recvKey(root))
	for i := range m.Chunks {
		bt.Delete(ctx, haveKey(root, i))
	}
	if err := bt.Commit(ctx); err != nil {
		return err
	}
	return s.ds.Sync(ctx, datastore.NewKey("/"))
}

// DownloadInfo is a download as Downloads lists it.
type DownloadInfo struct {
	ID string `json:"id"`
	Receipt
	Running bool `json:"running"`
	// While it runs: bytes verified so far, the rate over the last
	// seconds and the time left at that rate.
	Bytes      uint64  `json:"bytes,omitempty"`
	Rate       float64 `json:"rate_bytes_per_second,omitempty"`
	ETASeconds float64 `json:"eta_seconds,omitempty"`
}

// rateMeter follows a running download's progress: its rate is an
// exponentially weighted average over samples a quarter second apart.
type rateMeter struct {
	mu          sync.Mutex
	bytes, size uint64
	rate        float64
	lastT       time.Time
	lastB       uint64
}

func (m *rateMeter) add(bytes, size uint64, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bytes, m.size = bytes, size
	if m.lastT.IsZero() {
		m.lastT, m.lastB = now, bytes
		return
	}
	dt := now.Sub(m.lastT).Seconds()
	if dt < 0.25 {
		return
	}
	r := float64(bytes-m.lastB) / dt
	if m.rate == 0 {
		m.rate = r
	} else {
		m.rate = 0.7*m.rate + 0.3*r
	}
	m.lastT, m.lastB = now, bytes
}

func (m *rateMeter) read() (bytes uint64, rate, eta float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rate > 0 && m.size > m.bytes {
		eta = float64(m.size-m.bytes) / m.rate
	}
	return m.bytes, m.rate, eta
}

// Downloads lists the downloads this node knows.
func (s *Service) Downloads(ctx context.Context) ([]DownloadInfo, error) {
	res, err := s.ds.Query(ctx, query.Query{Prefix: "/recv/"})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []DownloadInfo
	for r := range res.Next() {
		if r.Error != nil {
			return nil, r.Error
		}
		var rc Receipt
		if err := json.Unmarshal(r.Value, &rc); err != nil {
			continue
		}
		id := r.Key[strings.LastIndexByte(r.Key, '/')+1:]
		// (fmt.Sscanf's %x cannot fill an array: it left root zero, so
		// no running download showed its bytes, rate or time left.)
		root, _ := ParseHash(id)
		s.mu.Lock()
		_, running := s.running[root]
		meter := s.meters[root]
		s.mu.Unlock()
		info := DownloadInfo{ID: id, Receipt: rc, Running: running}
		if meter != nil && !rc.Done {
			info.Bytes, info.Rate, info.ETASeconds = meter.read()
		}
		out = append(out, info)
	}
	return out, nil
}

// manifest loads a stored manifest by ID.
func (s *Service) manifest(ctx context.Context, id string) (*Manifest, error) {
	b, err := s.ds.Get(ctx, datastore.NewKey("/manifests/"+id))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotStarted, id)
	}
	return DecodeManifest(b)
}

func (s *Service) setError(root Hash, cause error) {
	s.receipts.Lock()
	defer s.receipts.Unlock()
	b, err := s.ds.Get(s.ctx, recvKey(root))
	if err != nil {
		return
	}
	var rc Receipt
	if json.Unmarshal(b, &rc) != nil {
		return
	}
	rc.Error = cause.Error()
	js, _ := json.Marshal(rc)
	s.ds.Put(s.ctx, recvKey(root), js)
}

func dirOf(path string) string { return filepath.Dir(path) }

func removeQuiet(path string) { os.Remove(path) }

// Import reads a file into the blob store and returns its manifest, ready
// to Offer.
func (s *Service) Import(path, name string) (*Manifest, error) { return s.blobs.Import(path, name) }

// markBackground creates or updates the download's record as one to
// resume at every start, with at most tries attempts (0: no bound). A new
// or failed download counts its attempts anew under that bound; one in
// progress keeps its bound unless tries lifts it.
func (s *Service) markBackground(m *Manifest, dir string, sources []peer.ID, tries int) error {
	s.receipts.Lock()
	defer s.receipts.Unlock()
	rc, err := s.receipt(s.ctx, m, dir, sources)
	if err != nil {
		return err
	}
	fresh := !rc.Background || rc.Error != ""
	limit := rc.MaxAttempts
	switch {
	case fresh:
		limit, rc.Attempts = tries, 0
	case tries == 0:
		limit = 0
	}
	if !fresh && limit == rc.MaxAttempts {
		return nil
	}
	rc.Background, rc.Error, rc.MaxAttempts = true, "", limit
	js, _ := json.Marshal(rc)
	if err := s.ds.Put(s.ctx, recvKey(m.Root()), js); err != nil {
		return err
	}
	return s.ds.Sync(s.ctx, datastore.NewKey("/"))
}

// ImportBytes puts data into the blob store as a file called name.
func (s *Service) ImportBytes(name string, data []byte) (*Manifest, error) {
	return s.blobs.ImportBytes(name, data)
}

// try counts one attempt of a background download in its record, synced;
// ErrGaveUp once its attempts are spent.
func (s *Service) try(root Hash) error {
	s.receipts.Lock()
	defer s.receipts.Unlock()
	var rc Receipt
	b, err := s.ds.Get(s.ctx, recvKey(root))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &rc); err != nil {
		return fmt.Errorf("transfer: stored download %s is damaged: %w", root, err)
	}
	if rc.Done {
		return nil
	}
	if rc.MaxAttempts > 0 && rc.Attempts >= rc.MaxAttempts {
		return fmt.Errorf("%w after %d attempts", ErrGaveUp, rc.Attempts)
	}
	rc.Attempts++
	js, _ := json.Marshal(rc)
	if err := s.ds.Put(s.ctx, recvKey(root), js); err != nil {
		return err
	}
	return s.ds.Sync(s.ctx, recvKey(root))
}
