package transfer

import (
	"bufio"
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
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/zeebo/blake3"

	"github.com/meshtalk/meshtalk/transfer/pb"
)

// Tuning of a download.
const (
	// Streams is how many requests a download keeps in flight. Two move a
	// file as fast as four did on loopback, where the machine's cores are
	// the limit, and the process holds less: half the chunk buffers, and
	// on TCP half the data yamux buffers for streams whose reader waits on
	// the disk (up to a 16 MiB window each).
	Streams = 2
	// rangeChunks is how many chunks one request asks for.
	rangeChunks = 32
	// checkpointChunks is how many verified chunks are synced together.
	checkpointChunks = 32
	// maxStrikes is how many bad chunks drop a source.
	maxStrikes = 3
	// maxFailures is how many failed requests in a row drop a source.
	maxFailures = 5
)

// ErrNoSource means no source could serve the file; the partial file
// stays, and a later Download resumes it.
var ErrNoSource = errors.New("transfer: no source can serve the file")

// Receipt is the record of a download.
type Receipt struct {
	Name    string `json:"name"`
	Size    uint64 `json:"size"`
	Partial string `json:"partial"`
	// Dir is where the file goes when done ("": the partial file's
	// folder, for a receipt from before the staging folder).
	Dir   string `json:"dir,omitempty"`
	Final string `json:"final,omitempty"`
	Done  bool   `json:"done"`
	// Sources are the peers to fetch from, for a download resumed in the
	// background.
	Sources []string `json:"sources,omitempty"`
	// Background: started with Start, so resumed at every start of the
	// node until done.
	Background bool `json:"background,omitempty"`
	// Error is why a background download stopped.
	Error string `json:"error,omitempty"`
}

// Progress is where a download stands.
type Progress struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Size   uint64 `json:"size"`
	Bytes  uint64 `json:"bytes"`
	Chunks int    `json:"chunks"`
	Have   int    `json:"have"`
}

func recvKey(root Hash) datastore.Key { return datastore.NewKey("/recv/" + root.String()) }
func haveKey(root Hash, i int) datastore.Key {
	return datastore.NewKey(fmt.Sprintf("/have/%s/%08x", root, i))
}

// Download fetches the file m describes from sources into dir and returns
// its path. Every chunk is verified before it is written; verified chunks
// are recorded durably, so a Download cut short (a cancelled ctx, a lost
// connection, a stop of either node) resumes where it was, fetching again
// at most the chunks that were in flight. progress, when not nil, is
// called as chunks arrive, one call at a time.
func (s *Service) Download(ctx context.Context, m *Manifest, sources []peer.ID, dir string, progress func(Progress)) (string, error) {
	if !s.life.Enter() {
		return "", ErrClosed
	}
	defer s.life.Leave()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	root := m.Root()
	// One download of a file at a time: a second waits, then finds it done.
	unlock := s.lockRoot(root)
	defer unlock()
	rc, err := s.receipt(ctx, m, dir, sources)
	if err != nil {
		return "", err
	}
	if rc.Done {
		return rc.Final, nil
	}
	have, err := s.have(ctx, root, len(m.Chunks))
	if err != nil {
		return "", err
	}
	if rc.Dir != "" {
		// Again: another download's finish removes it once empty.
		if _, err := stagingDir(rc.Dir); err != nil {
			return "", err
		}
	}
	f, err := openPartial(rc.Partial)
	if err != nil {
		return "", fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()

	d := &download{s: s, m: m, root: root, f: f, have: have, sources: map[peer.ID]*source{}, progress: progress}
	d.got = Progress{ID: root.String(), Name: m.Name, Size: m.Size, Chunks: len(m.Chunks)}
	for i, h := range have {
		if h {
			d.got.Have++
			d.got.Bytes += uint64(m.chunkLen(i))
		}
	}
	for _, p := range sources {
		d.sources[p] = &source{}
		d.order = append(d.order, p)
	}
	for i := 0; i < len(m.Chunks); {
		if have[i] {
			i++
			continue
		}
		j := i
		for j < len(m.Chunks) && j-i < rangeChunks && !have[j] {
			j++
		}
		d.queue = append(d.queue, span{i, j - i})
		i = j
	}
	d.report()
	err = d.run(ctx)
	if cerr := d.checkpoint(true); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return s.finish(ctx, m, rc, f)
}

// receipt loads or creates the record of a download of m into dir.
func (s *Service) receipt(ctx context.Context, m *Manifest, dir string, srcs []peer.ID) (*Receipt, error) {
	root := m.Root()
	var rc Receipt
	b, err := s.ds.Get(ctx, recvKey(root))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &rc); err != nil {
			return nil, fmt.Errorf("transfer: stored download %s is damaged: %w", root, err)
		}
		return &rc, nil
	case !errors.Is(err, datastore.ErrNotFound):
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	staging, err := stagingDir(dir)
	if err != nil {
		return nil, err
	}
	rc = Receipt{Name: m.Name, Size: m.Size, Partial: filepath.Join(staging, m.Name+"."+root.String()[:12]+".partial"),
		Dir: dir, Sources: peerStrings(srcs)}
	bt, err := s.ds.Batch(ctx)
	if err != nil {
		return nil, err
	}
	js, _ := json.Marshal(rc)
	bt.Put(ctx, manifestKey(root), m.Encode())
	bt.Put(ctx, recvKey(root), js)
	if err := bt.Commit(ctx); err != nil {
		return nil, err
	}
	return &rc, s.ds.Sync(ctx, datastore.NewKey("/"))
}

// have reads which chunks are already verified and synced.
func (s *Service) have(ctx context.Context, root Hash, n int) ([]bool, error) {
	have := make([]bool, n)
	res, err := s.ds.Query(ctx, query.Query{Prefix: "/have/" + root.String() + "/", KeysOnly: true})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return nil, r.Error
		}
		var i int
		if _, err := fmt.Sscanf(r.Key[strings.LastIndexByte(r.Key, '/')+1:], "%x", &i); err == nil && i >= 0 && i < n {
			have[i] = true
		}
	}
	return have, nil
}

// finish gives the complete file its final name (never over an existing
// file) and records the download done.
func (s *Service) finish(ctx context.Context, m *Manifest, rc *Receipt, f *partialFile) (string, error) {
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("transfer: %w", err)
	}
	dir := rc.Dir
	if dir == "" {
		dir = filepath.Dir(rc.Partial)
	}
	var final string
	for {
		final = UniquePath(dir, m.Name)
		// A hard link fails rather than replace a file that appeared
		// meanwhile.
		err := os.Link(rc.Partial, final)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("transfer: %w", err)
		}
	}
	os.Remove(rc.Partial)
	if rc.Dir != "" {
		os.Remove(filepath.Dir(rc.Partial)) // the staging folder, once empty
	}
	rc.Final, rc.Done = final, true
	js, _ := json.Marshal(rc)
	root := m.Root()
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return "", err
	}
	b.Put(ctx, recvKey(root), js)
	for i := range m.Chunks {
		b.Delete(ctx, haveKey(root, i))
	}
	if err := b.Commit(ctx); err != nil {
		return "", err
	}
	return final, s.ds.Sync(ctx, datastore.NewKey("/"))
}

// span is a run of chunks to fetch.
type span struct{ first, count int }

// source is what a download knows of one peer it fetches from.
type source struct {
	strikes  int   // bad chunks served
	failures int   // failed requests in a row
	dropped  error // why it is no longer asked
}

// download is one Download in progress.
type download struct {
	s        *Service
	m        *Manifest
	root     Hash
	f        *partialFile
	progress func(Progress)

	progMu  sync.Mutex // serialises progress calls
	mu      sync.Mutex
	have    []bool
	queue   []span
	active  int // spans being fetched
	next    int // round-robin position in order
	order   []peer.ID
	sources map[peer.ID]*source
	pending []int // verified and written, not yet synced
	got     Progress
	fatal   error
	wake    chan struct{}
}

// run fetches the queue on Streams workers until it is empty or no source
// is left.
func (d *download) run(ctx context.Context) error {
	d.wake = make(chan struct{}, 1)
	var wg sync.WaitGroup
	for range Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(ctx)
		}()
	}
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.fatal != nil:
		return d.fatal
	case ctx.Err() != nil:
		return ctx.Err()
	case len(d.queue) > 0:
		var reasons []string
		allBad := len(d.order) > 0
		for _, p := range d.order {
			reasons = append(reasons, fmt.Sprintf("%s: %v", p, d.sources[p].dropped))
			allBad = allBad && d.sources[p].strikes >= maxStrikes
		}
		if allBad {
			// No use trying again: every source lies.
			return fmt.Errorf("%w: %w (%s)", ErrNoSource, ErrBadChunk, strings.Join(reasons, "; "))
		}
		return fmt.Errorf("%w (%s)", ErrNoSource, strings.Join(reasons, "; "))
	}
	return nil
}

// take hands out the next span and a source for it; ok is false when
// there is nothing left to do.
func (d *download) take(ctx context.Context) (span, peer.ID, bool) {
	for {
		d.mu.Lock()
		if d.fatal != nil || ctx.Err() != nil {
			d.mu.Unlock()
			return span{}, "", false
		}
		p, alive := d.pick()
		if !alive {
			d.mu.Unlock()
			return span{}, "", false
		}
		if len(d.queue) > 0 {
			sp := d.queue[0]
			d.queue = d.queue[1:]
			d.active++
			d.mu.Unlock()
			return sp, p, true
		}
		if d.active == 0 {
			d.mu.Unlock()
			return span{}, "", false
		}
		d.mu.Unlock()
		// Another worker may put its span back: wait for it to settle.
		select {
		case <-d.wake:
		case <-ctx.Done():
		}
	}
}

// pick chooses the next source that is not dropped.
func (d *download) pick() (peer.ID, bool) {
	for range d.order {
		p := d.order[d.next%len(d.order)]
		d.next++
		if d.sources[p].dropped == nil {
			return p, true
		}
	}
	return "", false
}

// done settles a span: the chunks not fetched go back to the queue.
func (d *download) done(rest span) {
	d.mu.Lock()
	d.active--
	if rest.count > 0 {
		d.queue = append(d.queue, rest)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *download) work(ctx context.Context) {
	bufs := [2][]byte{alignedBuffer(int(d.m.ChunkSize)), alignedBuffer(int(d.m.ChunkSize))}
	// One stream per source, kept across requests: a new stream would start
	// its flow-control window small again for every range.
	streams := map[peer.ID]*chunkStream{}
	defer func() {
		for _, cs := range streams {
			cs.st.Close()
		}
	}()
	for {
		sp, p, ok := d.take(ctx)
		if !ok {
			// Wake the others: there may be nothing left for them either.
			select {
			case d.wake <- struct{}{}:
			default:
			}
			return
		}
		got, err := d.fetch(ctx, streams, p, sp, bufs)
		if err != nil {
			if cs := streams[p]; cs != nil {
				cs.st.Reset()
				delete(streams, p)
			}
		}
		d.settle(p, got, err)
		d.done(span{sp.first + got, sp.count - got})
		if err := d.checkpoint(false); err != nil {
			d.fail(err)
		}
	}
}

// directAppeared says whether c is relayed and its peer is now connected
// directly too: libp2p gives a new stream the direct connection.
func directAppeared(n network.Network, c network.Conn) bool {
	if !relayed(c) {
		return false
	}
	for _, other := range n.ConnsToPeer(c.RemotePeer()) {
		if !relayed(other) {
			return true
		}
	}
	return false
}

// relayed says whether c goes through a circuit relay.
func relayed(c network.Conn) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// chunkStream is a stream to a source, with its buffers.
type chunkStream struct {
	st network.Stream
	r  *bufio.Reader
}

// fetch requests a span from p and writes what verifies; it returns how
// many chunks of the span it wrote.
func (d *download) fetch(ctx context.Context, streams map[peer.ID]*chunkStream, p peer.ID, sp span, bufs [2][]byte) (int, error) {
	cs := streams[p]
	if cs != nil && directAppeared(d.s.h.Network(), cs.st.Conn()) {
		// The stream goes through a relay, and a direct connection to p
		// has appeared since (hole-punched, or through a port the
		// router mapped): between two ranges, move onto it. The relay
		// no longer carries what is left.
		cs.st.Close()
		delete(streams, p)
		cs = nil
	}
	if cs == nil {
		st, err := d.s.h.NewStream(network.WithAllowLimitedConn(ctx, "transfer"), p, Protocol)
		if err != nil {
			return 0, err
		}
		cs = &chunkStream{st: st, r: bufio.NewReaderSize(st, 256<<10)}
		streams[p] = cs
	}
	st := cs.st
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	st.SetDeadline(time.Now().Add(chunkTimeout))
	if err := writeFrame(st, &pb.Request{Root: d.root[:], First: uint32(sp.first), Count: uint32(sp.count)}); err != nil {
		return 0, err
	}
	var reply pb.Reply
	if err := readFrame(cs.r, maxReplyFrame, &reply); err != nil {
		return 0, err
	}
	if reply.GetCode() != CodeOK {
		return 0, fmt.Errorf("transfer: %s refused: %s (code %d)", p, reply.GetMessage(), reply.GetCode())
	}
	// Each chunk is verified and written while the next one is read, into
	// the other of two buffers.
	var prev chan error // the chunk before this one, being stored
	settled := func(k int) (int, error) {
		if prev == nil {
			return k, nil
		}
		err := <-prev
		prev = nil
		if err != nil {
			return k - 1, err
		}
		return k, nil
	}
	for k := 0; k < sp.count; k++ {
		i := sp.first + k
		st.SetReadDeadline(time.Now().Add(chunkTimeout))
		data, err := readChunk(cs.r, st, i, d.m.chunkLen(i), bufs[k%2])
		if err != nil {
			if n, serr := settled(k); serr != nil {
				return n, serr
			}
			return k, err
		}
		if n, err := settled(k); err != nil {
			return n, err
		}
		stored := make(chan error, 1)
		go func() { stored <- d.store(p, i, data) }()
		prev = stored
	}
	return settled(sp.count)
}

// store verifies chunk i from p and writes it.
func (d *download) store(p peer.ID, i int, data []byte) error {
	if Hash(blake3.Sum256(data)) != d.m.Chunks[i] {
		return fmt.Errorf("%w: chunk %d from %s", ErrBadChunk, i, p)
	}
	if _, err := d.f.WriteAt(data, int64(i)*int64(d.m.ChunkSize)); err != nil {
		// A full disk or a permission error: the whole transfer stops,
		// what is verified so far stays.
		err = fmt.Errorf("transfer: write %s: %w", d.f.Name(), err)
		d.fail(err)
		return err
	}
	d.wrote(i)
	return nil
}

// settle counts a source's success or failure.
func (d *download) settle(p peer.ID, got int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	src := d.sources[p]
	switch {
	case err == nil:
		src.failures = 0
	case errors.Is(err, ErrBadChunk):
		src.strikes++
		d.s.log.Warn("bad chunk", "peer", p, "err", err)
		if src.strikes >= maxStrikes {
			src.dropped = fmt.Errorf("served %d chunks that do not match the manifest", src.strikes)
		}
	default:
		if got == 0 {
			src.failures++
		}
		if src.failures >= maxFailures {
			src.dropped = err
		}
	}
}

// wrote records a verified, written chunk for the next checkpoint.
func (d *download) wrote(i int) {
	d.mu.Lock()
	d.have[i] = true
	d.pending = append(d.pending, i)
	d.got.Have++
	d.got.Bytes += uint64(d.m.chunkLen(i))
	d.mu.Unlock()
	d.report()
}

func (d *download) fail(err error) {
	d.mu.Lock()
	if d.fatal == nil {
		d.fatal = err
	}
	d.mu.Unlock()
}

// checkpoint syncs the partial file and then records the chunks written
// since the last one, every checkpointChunks chunks (or now, with force).
func (d *download) checkpoint(force bool) error {
	d.mu.Lock()
	if len(d.pending) == 0 || (!force && len(d.pending) < checkpointChunks) {
		d.mu.Unlock()
		return nil
	}
	pending := d.pending
	d.pending = nil
	d.mu.Unlock()
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	// Not the download's context: a cancelled download still records what
	// it has.
	ctx := context.Background()
	b, err := d.s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, i := range pending {
		b.Put(ctx, haveKey(d.root, i), nil)
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	return d.s.ds.Sync(ctx, datastore.NewKey("/"))
}

// report calls the progress function, one call at a time, never going
// backwards.
func (d *download) report() {
	if d.progress == nil {
		return
	}
	d.progMu.Lock()
	defer d.progMu.Unlock()
	d.mu.Lock()
	p := d.got
	d.mu.Unlock()
	d.progress(p)
}

func peerStrings(peers []peer.ID) []string {
	out := make([]string, len(peers))
	for i, p := range peers {
		out[i] = p.String()
	}
	return out
}

// lockRoot serialises downloads of one file.
func (s *Service) lockRoot(root Hash) func() {
	s.mu.Lock()
	if s.roots == nil {
		s.roots = map[Hash]*sync.Mutex{}
	}
	l, ok := s.roots[root]
	if !ok {
		l = &sync.Mutex{}
		s.roots[root] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}
