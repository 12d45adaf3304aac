package transfer

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"lukechampine.com/blake3"

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
	// checkpointBytes is how much is verified and written between two
	// checkpoints (a sync of the file and a record of its chunks), which
	// run beside the download: the most a crash makes a download fetch
	// again. A checkpoint of 32 MiB on the streams' goroutines held the
	// pipe idle for its sync.
	checkpointBytes = 64 << 20
	// pipeBytes bounds the chunks a download holds read and not yet
	// verified and written (at least two per stream): a stream reads the
	// next chunks while the ones before are checked and written on other
	// goroutines. At 8 MiB a receiving node's peak resident set was 99
	// MiB in BenchmarkFileCLI (1 GiB, TCP), at the bound of 100.
	pipeBytes = 4 << 20
	// maxStrikes is how many bad chunks drop a source.
	maxStrikes = 3
	// maxFailures is how many failed requests in a row drop a source.
	maxFailures = 5
	// swarmStreams is how many requests a download from several sources
	// (group members) keeps in flight.
	swarmStreams = 4
	// swarmOriginRequests and swarmPeerRequests bound the requests in
	// flight to the sender and to each other member in a swarm.
	swarmOriginRequests = 2
	swarmPeerRequests   = 3
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
	// Attempts counts a background download's attempts to fetch from its
	// sources since it was started; after MaxAttempts of them (0: no
	// bound) it gives up (StartTries).
	Attempts    int `json:"attempts,omitempty"`
	MaxAttempts int `json:"max_attempts,omitempty"`
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
	// A manifest from a peer was checked as it arrived; again here, as
	// nothing may be written from one that is not valid.
	if err := m.checkShape(len(m.Chunks)); err != nil {
		return "", err
	}
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
	f, err := openPartial(rc.Partial, int64(m.Size))
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
		if d.sources[p] == nil {
			d.sources[p] = &source{}
			d.order = append(d.order, p)
		}
	}
	per := rangeChunks
	if d.swarm() {
		// Small ranges, so that each member has its own part of the file
		// to fetch from the sender, and the others fetch it from it soon.
		per = max(1, min(rangeChunks, len(m.Chunks)/(8*len(d.order))))
	}
	for i := 0; i < len(m.Chunks); {
		if have[i] {
			i++
			continue
		}
		j := i
		for j < len(m.Chunks) && j-i < per && !have[j] {
			j++
		}
		d.queue = append(d.queue, span{i, j - i})
		i = j
	}
	if d.swarm() {
		f.useCache()
	}
	d.queue = d.stripe(d.queue)
	d.report()
	s.setActive(root, d)
	err = d.run(ctx)
	s.setActive(root, nil)
	if cerr := d.checkpoint(true); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	final, err := s.finish(ctx, m, rc, f)
	if err == nil {
		s.tellDone(root, d.order)
	}
	return final, err
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
	for !m.Folder {
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
	if m.Folder {
		var err error
		if final, err = unpack(m, rc.Partial, dir); err != nil {
			return "", fmt.Errorf("transfer: folder %s: %w", m.Name, err)
		}
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
	if err := s.ds.Sync(ctx, datastore.NewKey("/")); err != nil {
		return "", err
	}
	// The partial file goes once the download is recorded done: until
	// then, a folder cut short while unpacked is unpacked again from it.
	os.Remove(rc.Partial)
	if rc.Dir != "" {
		os.Remove(filepath.Dir(rc.Partial)) // the staging folder, once empty
	}
	return final, nil
}

// span is a run of chunks to fetch; count 0 asks the source which chunks
// it holds.
type span struct{ first, count int }

// source is what a download knows of one peer it fetches from. The first
// source is the one that offered the file, and holds all of it; the others
// (members of a group fetching the same file) hold what their have bitmap
// says, asked for again every haveRefresh.
type source struct {
	strikes  int   // bad chunks served
	failures int   // failed requests in a row
	dropped  error // why it is no longer asked
	busy     int   // requests in flight
	have     []bool
	haveAt   time.Time
	asking   bool // a have request is in flight
}

// haveRefresh is how old a peer's have bitmap may grow.
const haveRefresh = 250 * time.Millisecond

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
	order   []peer.ID
	sources map[peer.ID]*source
	pending []int // verified and written, not yet synced
	got     Progress
	fatal   error
	wake    chan struct{}
	// bufs holds the chunk buffers no stream reads into and no store
	// holds; ckWake tells the checkpointer that pending has grown.
	bufs   chan []byte
	ckWake chan struct{}
}

// swarm says whether the download has sources besides the offerer.
func (d *download) swarm() bool { return len(d.order) > 1 }

// stripe rotates the queue so that each member of a swarm starts at its own
// part of the file (its rank among the fetching members, by peer ID): the
// offerer serves each part about once, and the members the rest to each
// other.
func (d *download) stripe(q []span) []span {
	if !d.swarm() || len(q) == 0 {
		return q
	}
	members := []string{d.s.h.ID().String()}
	for _, p := range d.order[1:] {
		members = append(members, p.String())
	}
	slices.Sort(members)
	k := slices.Index(members, d.s.h.ID().String())
	at := k * len(q) / len(members)
	return append(slices.Clone(q[at:]), q[:at]...)
}

// run fetches the queue on its workers until it is empty or no source is
// left.
func (d *download) run(ctx context.Context) error {
	d.wake = make(chan struct{}, 1)
	workers := Streams
	if d.swarm() {
		workers = swarmStreams
	}
	n := min(len(d.m.Chunks), max(2*workers, pipeBytes/int(d.m.ChunkSize)))
	d.bufs = make(chan []byte, n)
	for range n {
		d.bufs <- alignedBuffer(int(d.m.ChunkSize))
	}
	d.ckWake = make(chan struct{}, 1)
	ckStop, ckDone := make(chan struct{}), make(chan struct{})
	go d.checkpointer(ckStop, ckDone)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { d.work(ctx) })
	}
	wg.Wait()
	close(ckStop)
	<-ckDone
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.fatal != nil:
		return d.fatal
	case ctx.Err() != nil:
		return ctx.Err()
	case len(d.queue) > 0:
		var reasons []string
		allBad, changed := len(d.order) > 0, false
		for _, p := range d.order {
			src := d.sources[p]
			reasons = append(reasons, fmt.Sprintf("%s: %v", p, src.dropped))
			allBad = allBad && src.strikes >= maxStrikes
			changed = changed || errors.Is(src.dropped, ErrChanged)
		}
		switch {
		case allBad:
			// No use trying again: every source lies.
			return fmt.Errorf("%w: %w (%s)", ErrNoSource, ErrBadChunk, strings.Join(reasons, "; "))
		case changed:
			return fmt.Errorf("transfer: %w", ErrChanged)
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
		if d.fatal != nil || ctx.Err() != nil || (len(d.queue) == 0 && d.active == 0) {
			d.mu.Unlock()
			return span{}, "", false
		}
		if sp, p, ok := d.pick(); ok {
			d.active++
			d.sources[p].busy++
			d.mu.Unlock()
			return sp, p, true
		}
		if d.active == 0 && !d.anyAlive() {
			d.mu.Unlock()
			return span{}, "", false
		}
		d.mu.Unlock()
		// Another worker may put its span back, or a peer may have more
		// soon: wait for either.
		t := time.NewTimer(haveRefresh / 2)
		select {
		case <-d.wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// anyAlive says whether a source could still serve something: the
// offerer, or a peer that holds a queued chunk or was not asked lately.
// d.mu is held.
func (d *download) anyAlive() bool {
	if d.sources[d.order[0]].dropped == nil {
		return true
	}
	for _, p := range d.order[1:] {
		src := d.sources[p]
		if src.dropped != nil {
			continue
		}
		if src.asking || time.Since(src.haveAt) >= haveRefresh {
			return true
		}
		for _, sp := range d.queue {
			if src.covers(sp) > 0 {
				return true
			}
		}
	}
	return false
}

// pick chooses the next request: a have request to a peer whose bitmap is
// stale; else the first queued span the offerer should serve (while it is
// free, in a swarm), or that a peer can serve the longest run of. d.mu is
// held.
func (d *download) pick() (span, peer.ID, bool) {
	origin := d.order[0]
	osrc := d.sources[origin]
	if !d.swarm() {
		if osrc.dropped != nil || len(d.queue) == 0 {
			return span{}, "", false
		}
		sp := d.queue[0]
		d.queue = d.queue[1:]
		return sp, origin, true
	}
	for _, p := range d.order[1:] {
		if src := d.sources[p]; src.dropped == nil && !src.asking && time.Since(src.haveAt) >= haveRefresh {
			src.asking = true
			return span{}, p, true
		}
	}
	originFree := osrc.dropped == nil && osrc.busy < swarmOriginRequests
	for qi, sp := range d.queue {
		best, bestN, held := peer.ID(""), 0, false
		for _, p := range d.order[1:] {
			src := d.sources[p]
			n := src.covers(sp)
			held = held || (src.dropped == nil && n > 0)
			if src.dropped == nil && src.busy < swarmPeerRequests && n > bestN {
				best, bestN = p, n
			}
		}
		if !held && originFree {
			// Nobody else has it yet: the sender's part.
			d.queue = slices.Delete(d.queue, qi, qi+1)
			return sp, origin, true
		}
		if best != "" {
			if bestN < sp.count {
				d.queue[qi] = span{sp.first + bestN, sp.count - bestN}
			} else {
				d.queue = slices.Delete(d.queue, qi, qi+1)
			}
			return span{sp.first, bestN}, best, true
		}
	}
	// Nothing a free peer holds: rather than wait, the sender serves the
	// first span on more streams.
	if len(d.queue) > 0 && osrc.dropped == nil && osrc.busy < swarmStreams {
		sp := d.queue[0]
		d.queue = d.queue[1:]
		return sp, origin, true
	}
	return span{}, "", false
}

// covers is how many chunks from the start of sp the source holds.
func (src *source) covers(sp span) int {
	n := 0
	for n < sp.count && sp.first+n < len(src.have) && src.have[sp.first+n] {
		n++
	}
	return n
}

// done settles a span from p: the chunks not fetched go back to the
// queue, first.
func (d *download) done(p peer.ID, sp span, rest []span) {
	d.mu.Lock()
	src := d.sources[p]
	src.busy--
	d.active--
	if sp.count == 0 {
		src.asking = false
	}
	if len(rest) > 0 {
		d.queue = append(rest, d.queue...)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *download) work(ctx context.Context) {
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
		var got int
		var rest []span
		var err error
		if sp.count == 0 {
			err = d.askHave(ctx, streams, p)
		} else {
			got, rest, err = d.fetch(ctx, streams, p, sp)
		}
		if err != nil {
			if cs := streams[p]; cs != nil {
				cs.st.Reset()
				delete(streams, p)
			}
		}
		d.settle(p, sp, got, err)
		d.done(p, sp, rest)
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

// stream is the worker's stream to p, opened when it has none.
func (d *download) stream(ctx context.Context, streams map[peer.ID]*chunkStream, p peer.ID) (*chunkStream, error) {
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
		st, err := d.s.h.NewStream(network.WithAllowLimitedConn(ctx, "transfer"), p, Protocol, Protocol10)
		if err != nil {
			return nil, err
		}
		cs = &chunkStream{st: st, r: bufio.NewReaderSize(st, 256<<10)}
		streams[p] = cs
	}
	return cs, nil
}

// askHave asks p which chunks it holds.
func (d *download) askHave(ctx context.Context, streams map[peer.ID]*chunkStream, p peer.ID) error {
	cs, err := d.stream(ctx, streams, p)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { cs.st.Reset() })
	defer stop()
	cs.st.SetDeadline(time.Now().Add(chunkTimeout))
	if err := writeFrame(cs.st, &pb.Request{Root: d.root[:]}); err != nil {
		return err
	}
	var reply pb.Reply
	if err := readFrame(cs.r, maxReplyFrame, &reply); err != nil {
		return err
	}
	if err := replyError(&reply); err != nil {
		return err
	}
	have := haveFromBits(reply.GetHave(), len(d.m.Chunks))
	d.mu.Lock()
	src := d.sources[p]
	src.have, src.haveAt = have, time.Now()
	d.mu.Unlock()
	return nil
}

// fetch requests a span from p and stores what verifies: it reads each
// chunk into a free buffer and goes on to the next while the chunk is
// verified and written on a goroutine of its own. It returns how many
// chunks of the span it stored, and the chunks it did not, to fetch again.
func (d *download) fetch(ctx context.Context, streams map[peer.ID]*chunkStream, p peer.ID, sp span) (int, []span, error) {
	cs, err := d.stream(ctx, streams, p)
	if err != nil {
		return 0, []span{sp}, err
	}
	st := cs.st
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	st.SetDeadline(time.Now().Add(chunkTimeout))
	if err := writeFrame(st, &pb.Request{Root: d.root[:], First: uint32(sp.first), Count: uint32(sp.count)}); err != nil {
		return 0, []span{sp}, err
	}
	var reply pb.Reply
	if err := readFrame(cs.r, maxReplyFrame, &reply); err != nil {
		return 0, []span{sp}, err
	}
	if err := replyError(&reply); err != nil {
		return 0, []span{sp}, fmt.Errorf("%s: %w", p, err)
	}
	var stores sync.WaitGroup
	var mu sync.Mutex
	var failed []int // chunks read that did not verify or could not be written
	var storeErr error
	var readErr error
	k := 0
	for ; k < sp.count; k++ {
		mu.Lock()
		bad := storeErr != nil
		mu.Unlock()
		if bad {
			break // a source that lies, or a disk that fails: no more
		}
		var buf []byte
		select {
		case buf = <-d.bufs:
		case <-ctx.Done():
			readErr = ctx.Err()
		}
		if readErr != nil {
			break
		}
		i := sp.first + k
		st.SetReadDeadline(time.Now().Add(chunkTimeout))
		data, err := readChunk(cs.r, st, i, d.m.chunkLen(i), buf)
		if err != nil {
			d.bufs <- buf
			readErr = err
			break
		}
		stores.Go(func() {
			err := d.store(p, i, data)
			d.bufs <- buf
			if err != nil {
				mu.Lock()
				failed = append(failed, i)
				storeErr = cmp.Or(storeErr, err)
				mu.Unlock()
			}
		})
	}
	stores.Wait()
	slices.Sort(failed)
	var rest []span
	for _, i := range failed {
		rest = append(rest, span{i, 1})
	}
	if k < sp.count {
		rest = append(rest, span{sp.first + k, sp.count - k})
	}
	return k - len(failed), rest, cmp.Or(storeErr, readErr)
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
func (d *download) settle(p peer.ID, sp span, got int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	src := d.sources[p]
	switch {
	case err == nil:
		src.failures = 0
	case errors.Is(err, ErrChanged):
		src.dropped = ErrChanged
	case errors.Is(err, ErrBadChunk):
		src.strikes++
		d.s.log.Warn("bad chunk", "peer", p, "err", err)
		if src.strikes >= maxStrikes {
			src.dropped = fmt.Errorf("served %d chunks that do not match the manifest", src.strikes)
		}
	default:
		if errors.Is(err, errMissing) {
			// Its bitmap was wrong (it cancelled its own download?):
			// ask it again before asking it for chunks.
			src.have, src.haveAt = nil, time.Time{}
		}
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
	due := len(d.pending) >= d.checkpointChunks()
	d.mu.Unlock()
	if due {
		select {
		case d.ckWake <- struct{}{}:
		default:
		}
	}
	d.report()
}

// checkpointChunks is how many chunks make checkpointBytes.
func (d *download) checkpointChunks() int { return max(1, checkpointBytes/int(d.m.ChunkSize)) }

// checkpointer takes a checkpoint whenever enough chunks are pending,
// beside the streams, until stop closes; then it closes done.
func (d *download) checkpointer(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case <-d.ckWake:
			if err := d.checkpoint(false); err != nil {
				d.fail(err)
			}
		}
	}
}

func (d *download) fail(err error) {
	d.mu.Lock()
	if d.fatal == nil {
		d.fatal = err
	}
	d.mu.Unlock()
}

// checkpoint syncs the partial file and then records the chunks written
// since the last one, every checkpointBytes (or now, with force). One
// runs at a time: the checkpointer's, then Download's last.
func (d *download) checkpoint(force bool) error {
	d.mu.Lock()
	if len(d.pending) == 0 || (!force && len(d.pending) < d.checkpointChunks()) {
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

// setActive records the download of root in progress (nil: none), so
// that what it has verified can be served.
func (s *Service) setActive(root Hash, d *download) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		s.active = map[Hash]*download{}
	}
	if d == nil {
		delete(s.active, root)
	} else {
		s.active[root] = d
	}
}

// runningHave is which chunks the download of root in progress has
// verified; nil when none runs.
func (s *Service) runningHave(root Hash) []bool {
	s.mu.Lock()
	d := s.active[root]
	s.mu.Unlock()
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.have)
}

// tellDone tells the sources that this node has the whole file, verified
// (so that the sender's file list shows it), in the background and best
// effort.
func (s *Service) tellDone(root Hash, sources []peer.ID) {
	for _, p := range sources {
		s.life.Go(func() {
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			defer cancel()
			st, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "transfer"), p, Protocol)
			if err != nil {
				return
			}
			defer st.Close()
			st.SetDeadline(time.Now().Add(10 * time.Second))
			writeFrame(st, &pb.Request{Root: root[:], Done: true})
			st.CloseWrite()
			// Wait for the server to close its side: it has recorded it.
			st.Read(make([]byte, 1))
		})
	}
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
