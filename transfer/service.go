package transfer

// The transfer datastore, in the namespace node gives the service
// (/transfer):
//
//	/manifests/<root hex>            the manifest (its wire form)
//	/offers/<root hex>/<peer ID>     "": the blob may be served to this peer
//	/recv/<root hex>                 Receipt (JSON): a download, its files
//	                                 and a background download's attempts
//	/have/<root hex>/<index %08x>    "": this chunk is verified and synced
//	                                 in the partial file
//	/origins/<root hex>              where an offered file lies (source.go)
//	/served/<root hex>/<peer ID>     what was served to a peer (served.go)
//
// The partial file sits in the destination folder under a hidden temporary
// name; it takes its final name only once every chunk is verified.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/meshtalk/meshtalk/internal/lifecycle"
	"github.com/meshtalk/meshtalk/transfer/pb"
)

// ErrClosed is returned by a closed Service.
var ErrClosed = errors.New("transfer: closed")

// chunkTimeout bounds the wait for one chunk, either way.
const chunkTimeout = 30 * time.Second

// Service serves offered blobs and downloads offered files.
type Service struct {
	h     host.Host
	ds    datastore.Batching
	blobs *Blobs
	log   *slog.Logger
	emit  func(typ string, data any)

	life    *lifecycle.Group
	ctx     context.Context // life's: cancelled when Close begins
	mu      sync.Mutex
	running map[Hash]context.CancelFunc // background downloads
	meters  map[Hash]*rateMeter         // their progress
	roots   map[Hash]*sync.Mutex        // one download of a file at a time
	active  map[Hash]*download          // downloads in progress, to serve from
	served  servedTally
	upload  *rate.Limiter // the upload cap; nil: none
	once    sync.Once

	// receipts serialises the changes of a download's record by Start,
	// its attempts and its failure.
	receipts sync.Mutex
}

// Config is what a Service needs besides its host, datastore and blobs.
type Config struct {
	// Emit receives the service's events (EventProgress, EventDone,
	// EventFailed, with an Event as data); nil discards them. It is
	// called from the service's goroutines and must not block.
	Emit func(typ string, data any)
	// Logger; nil discards.
	Logger *slog.Logger
	// UploadBytesPerSecond caps what the service serves, to all peers
	// together; 0: no cap.
	UploadBytesPerSecond int
}

// New starts the service on h with its datastore namespace and blob
// store. ctx bounds the start only: the service runs until Close.
func New(ctx context.Context, h host.Host, ds datastore.Batching, blobs *Blobs, cfg Config) (*Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	emit := cfg.Emit
	if emit == nil {
		emit = func(string, any) {}
	}
	s := &Service{h: h, ds: ds, blobs: blobs, log: logger.With("component", "transfer"), emit: emit, life: lifecycle.New()}
	s.ctx = s.life.Context()
	if cfg.UploadBytesPerSecond > 0 {
		s.upload = rate.NewLimiter(rate.Limit(cfg.UploadBytesPerSecond), max(cfg.UploadBytesPerSecond, uploadBurst))
	}
	h.SetStreamHandler(Protocol, s.life.Handler(s.handle))
	h.SetStreamHandler(Protocol10, s.life.Handler(s.handle))
	return s, nil
}

// Close removes the handler, ends the transfers in progress (they resume
// on the next start) and waits for them.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.h.RemoveStreamHandler(Protocol)
		s.h.RemoveStreamHandler(Protocol10)
		s.life.Close()
		s.saveServed()
	})
	return nil
}

func manifestKey(root Hash) datastore.Key { return datastore.NewKey("/manifests/" + root.String()) }
func offerKey(root Hash, p peer.ID) datastore.Key {
	return datastore.NewKey("/offers/" + root.String() + "/" + p.String())
}

// Offer lets p download the file m describes: a file Share recorded, one
// this node downloads (it serves the chunks it has), or one whose chunks
// Import put in the store. It is durable when Offer
// returns.
func (s *Service) Offer(ctx context.Context, m *Manifest, p peer.ID) error {
	shared, _ := s.ds.Has(ctx, originKey(m.Root()))
	fetched, _ := s.ds.Has(ctx, recvKey(m.Root()))
	if !shared && !fetched {
		for _, c := range m.Chunks {
			if !s.blobs.Has(c) {
				return fmt.Errorf("transfer: offer %s: chunk %s is not in the store", m.Name, c)
			}
		}
	}
	root := m.Root()
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	if err := b.Put(ctx, manifestKey(root), m.Encode()); err != nil {
		return err
	}
	if err := b.Put(ctx, offerKey(root, p), nil); err != nil {
		return err
	}
	if err := b.Commit(ctx); err != nil {
		return err
	}
	return s.ds.Sync(ctx, datastore.NewKey("/"))
}

// OfferFetched lets peers fetch from this node the file m describes, which
// this node downloads (or is about to): it serves them the chunks it has
// verified. Members of a group offer a group's file to each other so. It
// is durable when OfferFetched returns.
func (s *Service) OfferFetched(ctx context.Context, m *Manifest, peers []peer.ID) error {
	root := m.Root()
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	b.Put(ctx, manifestKey(root), m.Encode())
	for _, p := range peers {
		b.Put(ctx, offerKey(root, p), nil)
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("transfer: offer: %w", err)
	}
	return s.ds.Sync(ctx, datastore.NewKey("/"))
}

// handle serves the requests of one stream, one after the other: the
// chunks of an offered blob, in order. A receiver keeps its streams for
// many requests, so that their flow-control windows stay open.
func (s *Service) handle(st network.Stream) {
	defer st.Close()
	r := bufio.NewReader(st)
	w := bufio.NewWriterSize(s.paced(st), 256<<10)
	var bufs [2][]byte // chunks served on the stream, each after room for its header
	for {
		st.SetReadDeadline(time.Now().Add(streamIdle))
		var req pb.Request
		if err := readFrame(r, maxRequestFrame, &req); err != nil {
			return // the receiver is done with the stream, or sent garbage
		}
		if !s.serve(st, w, &req, &bufs) {
			return
		}
	}
}

// uploadBurst is the least burst of the upload cap: a writer's whole
// buffer goes in one wait.
const uploadBurst = 256 << 10

// paced is what a stream's replies are written to: the stream itself, or
// with an upload cap, the stream behind the shared limiter.
func (s *Service) paced(st network.Stream) io.Writer {
	if s.upload == nil {
		return st
	}
	return pacedWriter{ctx: s.ctx, w: st, lim: s.upload}
}

// pacedWriter writes to w no faster than lim allows.
type pacedWriter struct {
	ctx context.Context
	w   io.Writer
	lim *rate.Limiter
}

func (p pacedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), p.lim.Burst())
		if err := p.lim.WaitN(p.ctx, n); err != nil {
			return written, err
		}
		m, err := p.w.Write(b[:n])
		written += m
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

// streamIdle ends a stream on which no request comes.
const streamIdle = time.Minute

// serve answers one request; it reports whether the stream may go on.
func (s *Service) serve(st network.Stream, w *bufio.Writer, req *pb.Request, bufs *[2][]byte) bool {
	from := st.Conn().RemotePeer()
	v11 := st.Protocol() != Protocol10
	refuse := func(code uint32, msg string) bool {
		writeFrame(w, &pb.Reply{Code: code, Message: msg})
		w.Flush()
		return false
	}
	var root Hash
	if len(req.GetRoot()) != blake3Size {
		return refuse(CodeBadRequest, "bad root")
	}
	copy(root[:], req.GetRoot())
	if ok, err := s.ds.Has(s.ctx, offerKey(root, from)); err != nil || !ok {
		return refuse(CodeNotOffered, "this file was not offered to you")
	}
	b, err := s.ds.Get(s.ctx, manifestKey(root))
	if err != nil {
		return refuse(CodeNotFound, "no such file")
	}
	m, err := DecodeManifest(b)
	if err != nil {
		return refuse(CodeNotFound, "no such file")
	}
	if v11 && req.GetDone() {
		s.finished(root, from, time.Now())
		return true
	}
	first, count := int(req.GetFirst()), int(req.GetCount())
	if count < 0 || (count == 0 && !v11) || first < 0 || first+count > len(m.Chunks) {
		return refuse(CodeBadRequest, fmt.Sprintf("chunks %d..%d of %d", first, first+count, len(m.Chunks)))
	}
	h, err := s.hold(s.ctx, root, m)
	switch {
	case errors.Is(err, ErrChanged):
		return refuse(CodeChanged, ErrChanged.Error())
	case errors.Is(err, errMissing) && count == 0:
		st.SetWriteDeadline(time.Now().Add(chunkTimeout))
		return writeFrame(w, &pb.Reply{Code: CodeOK}) == nil && w.Flush() == nil
	case err != nil:
		return refuse(CodeMissing, "this node does not hold the file")
	}
	defer h.close()
	st.SetWriteDeadline(time.Now().Add(chunkTimeout))
	if count == 0 {
		return writeFrame(w, &pb.Reply{Code: CodeOK, Have: haveBits(h.haveList())}) == nil && w.Flush() == nil
	}
	if err := writeFrame(w, &pb.Reply{Code: CodeOK}); err != nil {
		return false
	}
	return s.serveChunks(st, w, h, first, count, bufs, v11)
}

// serveChunks sends chunks first..first+count-1 from h. Each chunk is read
// (and checked) while the one before goes out, into the other buffer,
// after room for its header; a chunk and its header go out in one write
// (past w when w is empty). Chunks are read, not mapped: if something
// outside meshtalk cut a file short, or the disk failed it, while the
// transport still read a mapping of it (quic-go does, on a goroutine of
// its own), the process would die of SIGBUS.
func (s *Service) serveChunks(st network.Stream, w *bufio.Writer, h *holding, first, count int, bufs *[2][]byte, v11 bool) bool {
	m := h.m
	type loaded struct {
		frame []byte // header and chunk
		err   error
	}
	load := func(i int) <-chan loaded {
		ch := make(chan loaded, 1)
		b, n := &bufs[(i-first)%2], m.chunkLen(i)
		go func() {
			if len(*b) < chunkHeaderMax+n {
				*b = make([]byte, chunkHeaderMax+n)
			}
			data, err := h.read(i, (*b)[chunkHeaderMax:chunkHeaderMax+n])
			if err != nil {
				ch <- loaded{err: err}
				return
			}
			var hdr [chunkHeaderMax]byte
			hd := appendChunkHeader(hdr[:0], i, len(data))
			start := chunkHeaderMax - len(hd)
			copy((*b)[start:], hd)
			ch <- loaded{frame: (*b)[start : chunkHeaderMax+len(data)]}
		}()
		return ch
	}
	tally := s.servedTo(m.Root(), st.Conn().RemotePeer())
	next := load(first)
	// A read still under way owns its buffer: wait for it before the
	// stream's next request, or its end, reuses the buffer.
	defer func() {
		if next != nil {
			<-next
		}
	}()
	for i := first; i < first+count; i++ {
		c := <-next
		next = nil
		if i+1 < first+count {
			next = load(i + 1)
		}
		st.SetWriteDeadline(time.Now().Add(chunkTimeout))
		if c.err != nil {
			return s.cannotServe(st, w, m, i, c.err, v11)
		}
		if _, err := w.Write(c.frame); err != nil {
			return false
		}
		tally.add(len(c.frame), m.Size)
	}
	return w.Flush() == nil
}

// cannotServe ends a range at chunk i, which cannot be served: since
// 1.1.0 with a length-0 header and a Reply that says why, before that
// with a reset.
func (s *Service) cannotServe(st network.Stream, w *bufio.Writer, m *Manifest, i int, err error, v11 bool) bool {
	code := uint32(CodeMissing)
	if errors.Is(err, ErrChanged) {
		code = CodeChanged
	}
	if !v11 || (!errors.Is(err, ErrChanged) && !errors.Is(err, errMissing)) {
		s.log.Error("serve chunk", "file", m.Name, "chunk", i, "err", err)
		st.Reset()
		return false
	}
	w.Write(appendChunkHeader(nil, i, 0))
	writeFrame(w, &pb.Reply{Code: code, Message: err.Error()})
	w.Flush()
	return false
}

// Forget ends every offer of m and forgets it: its manifest, its
// download record and partial file go, never a chunk in the blob store (a
// download writes none there, and a manifest from a peer may name the
// chunks of this node's own files).
func (s *Service) Forget(ctx context.Context, m *Manifest) error {
	root := m.Root()
	if b, err := s.ds.Get(ctx, recvKey(root)); err == nil {
		var rc Receipt
		if json.Unmarshal(b, &rc) == nil && !rc.Done && rc.Partial != "" {
			os.Remove(rc.Partial)
		}
	}
	res, err := s.ds.Query(ctx, query.Query{Prefix: "/offers/" + root.String() + "/", KeysOnly: true})
	if err != nil {
		return fmt.Errorf("transfer: withdraw: %w", err)
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return fmt.Errorf("transfer: withdraw: %w", err)
	}
	for r := range res.Next() {
		if r.Error == nil {
			b.Delete(ctx, datastore.RawKey(r.Key))
		}
	}
	res.Close()
	b.Delete(ctx, manifestKey(root))
	b.Delete(ctx, recvKey(root))
	for i := range m.Chunks {
		b.Delete(ctx, haveKey(root, i))
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("transfer: withdraw: %w", err)
	}
	return nil
}

// Withdraw ends every offer of m and forgets it (Forget), and deletes
// its chunks. It is for a blob this node stored for that one purpose (a
// relay's file drop, a sealed copy to drop): chunks shared with another
// file would go too.
func (s *Service) Withdraw(ctx context.Context, m *Manifest) error {
	if err := s.Forget(ctx, m); err != nil {
		return err
	}
	for _, c := range m.Chunks {
		if err := s.blobs.Delete(c); err != nil {
			return err
		}
	}
	return nil
}
