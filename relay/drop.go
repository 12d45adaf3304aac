package relay

// File drop: a file for a recipient who is offline waits on the relay.
//
//	sender                        relay                      recipient
//	seal the file to the recipient's sealing key; import, offer to relay
//	Drop{recipient, manifest} -->
//	                              fetch the sealed blob
//	                              (/meshtalk/transfer/1.0.0), offer it to
//	                          <-- the recipient; reply
//	deposit a FileDrop letter -->  ... recipient logs in ...
//	                                                    --> letter
//	                              <-- fetch the blob over transfer
//	                              <-- DropDone: the blob goes
//	                                            open the file into DropDir
//
// The relay holds only sealed segments (SealFile) under a manifest whose
// name says nothing; quota and TTL apply as for envelopes.

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/relay/pb"
	"github.com/meshtalk/meshtalk/transfer"
)

// sealedName is the name a sealed blob travels under.
const sealedName = "sealed"

// chargeDrop counts (n = 1) or uncounts (n = -1) a dropped file for its
// recipient and its sender; mu held.
func (s *Server) chargeDrop(rcpt, sender peer.ID, size int64, n int) {
	for _, m := range []struct {
		m map[peer.ID]*usage
		p peer.ID
	}{{s.drops, rcpt}, {s.dropsBy, sender}} {
		u := m.m[m.p]
		if u == nil {
			u = &usage{}
			m.m[m.p] = u
		}
		u.items += n
		u.bytes += int64(n) * size
		if u.items <= 0 {
			delete(m.m, m.p)
		}
	}
}

// drop fetches a sealed blob from sender and holds it for its recipient.
func (s *Server) drop(sender peer.ID, d *pb.Drop) error {
	if s.cfg.Transfer == nil {
		return fmt.Errorf("%w: this relay takes no file drops", ErrBadRequest)
	}
	rcpt, err := peer.IDFromBytes(d.Recipient)
	if err != nil {
		return fmt.Errorf("%w: recipient: %v", ErrBadRequest, err)
	}
	m, err := transfer.DecodeManifest(d.Manifest)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if m.Name != sealedName {
		return fmt.Errorf("%w: a dropped file travels sealed, named %q", ErrBadRequest, sealedName)
	}
	root := m.Root().String()
	key := dropKey(rcpt, root)
	size := int64(m.Size)
	s.mu.Lock()
	_, on := s.sessions[sender]
	a := s.accounts[rcpt]
	allowed := a != nil && a.mayDeposit(sender)
	s.mu.Unlock()
	switch {
	case !on:
		return fmt.Errorf("%w: log in before you drop a file", ErrNotLoggedIn)
	case a == nil:
		return fmt.Errorf("%w: %s has no account on this relay", ErrNotFound, rcpt)
	case !allowed:
		return fmt.Errorf("%w: %s takes files here only from friends and group members", ErrNotAllowed, rcpt)
	}
	rec, err := s.startDrop(key, sender, rcpt, d.Manifest, size)
	if err != nil || rec.Complete {
		return err // a retry of a drop complete already: nil
	}
	done := false
	defer func() { s.endFetch(key, sender, rcpt, size, done) }()
	// Resumable: a retry after a cut picks up the chunks already here.
	path, err := s.cfg.Transfer.Download(s.ctx, m, []peer.ID{sender}, s.cfg.DropDir, nil)
	if err != nil {
		return fmt.Errorf("relay: fetch the dropped file: %w", err)
	}
	defer os.Remove(path)
	held, err := s.cfg.Transfer.Import(path, sealedName)
	if err != nil {
		return fmt.Errorf("relay: store the dropped file: %w", err)
	}
	if held.Root() != m.Root() {
		return fmt.Errorf("%w: the manifest does not match its file", ErrBadRequest)
	}
	if err := s.cfg.Transfer.Offer(s.ctx, m, rcpt); err != nil {
		return err
	}
	rec.Complete = true
	b, _ := proto.Marshal(rec)
	if err := s.ds.Put(s.ctx, key, b); err != nil {
		return err
	}
	if err := s.ds.Sync(s.ctx, datastore.NewKey("/")); err != nil {
		return err
	}
	done = true
	s.log.Info("file dropped", "recipient", rcpt, "bytes", m.Size)
	return nil
}

// dropFailTTL is how long the record of a drop whose fetch failed waits
// for the sender to try again (its chunks so far are kept for that).
const dropFailTTL = time.Hour

// startDrop checks the quotas, counts the drop as being fetched (the bytes
// it will take count against the quotas meanwhile: concurrent drops do not
// overshoot them) and stores its record, or returns the record of a drop
// complete already.
func (s *Server) startDrop(key datastore.Key, sender, rcpt peer.ID, manifest []byte, size int64) (*pb.StoredDrop, error) {
	s.delMu.Lock()
	defer s.delMu.Unlock()
	var rec pb.StoredDrop
	v, err := s.ds.Get(s.ctx, key)
	found := err == nil && proto.Unmarshal(v, &rec) == nil
	if found && rec.Complete {
		return &rec, nil
	}
	s.mu.Lock()
	switch u, by := s.drops[rcpt], s.dropsBy[sender]; {
	case s.fetching[key.String()]:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: this file is being fetched already; try again later", ErrQuota)
	case size > s.cfg.DropMaxBytes || u != nil && u.bytes+size > s.cfg.DropMaxBytes:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: the files waiting for this recipient would pass %d bytes, this relay's limit; try again once they fetch them", ErrQuota, s.cfg.DropMaxBytes)
	case by != nil && by.bytes+size > s.cfg.DropMaxBytes:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: your files waiting on this relay would pass %d bytes, its limit; try again once they are fetched", ErrQuota, s.cfg.DropMaxBytes)
	}
	s.chargeDrop(rcpt, sender, size, 1)
	s.fetching[key.String()] = true
	s.mu.Unlock()
	// A new record, or a retry's: its hour starts again.
	rec = pb.StoredDrop{Sender: []byte(sender), Recipient: []byte(rcpt), Manifest: manifest, DepositedMs: s.cfg.Now().UnixMilli()}
	b, _ := proto.Marshal(&rec)
	if err := s.ds.Put(s.ctx, key, b); err != nil {
		s.endFetch(key, sender, rcpt, size, false)
		return nil, fmt.Errorf("relay: store drop: %w", err)
	}
	return &rec, nil
}

// endFetch ends a drop's fetch: a complete drop stays charged until it is
// fetched or expires; a failed one is charged no more.
func (s *Server) endFetch(key datastore.Key, sender, rcpt peer.ID, size int64, complete bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.fetching, key.String())
	if !complete {
		s.chargeDrop(rcpt, sender, size, -1)
	}
}

// dropDone deletes a dropped blob its recipient has fetched.
func (s *Server) dropDone(p peer.ID, d *pb.DropDone) error {
	if err := s.removeDrop(dropKey(p, hex.EncodeToString(d.Root))); err != nil {
		return err
	}
	return nil
}

// removeDrop deletes a dropped blob (fetched, or expired), its partial
// download if any, and its record; gone already is no error.
func (s *Server) removeDrop(key datastore.Key) error {
	s.delMu.Lock()
	defer s.delMu.Unlock()
	v, err := s.ds.Get(s.ctx, key)
	if errors.Is(err, datastore.ErrNotFound) {
		return fmt.Errorf("%w: no such file waits for you", ErrNotFound)
	}
	if err != nil {
		return err
	}
	var rec pb.StoredDrop
	if err := proto.Unmarshal(v, &rec); err != nil {
		return s.ds.Delete(s.ctx, key)
	}
	m, err := transfer.DecodeManifest(rec.Manifest)
	if err == nil && s.cfg.Transfer != nil {
		if err := s.cfg.Transfer.Withdraw(s.ctx, m); err != nil {
			return err
		}
	}
	if err := s.ds.Delete(s.ctx, key); err != nil {
		return err
	}
	if m != nil && rec.Complete {
		s.mu.Lock()
		s.chargeDrop(peer.ID(rec.Recipient), peer.ID(rec.Sender), int64(m.Size), -1)
		s.mu.Unlock()
	}
	return nil
}

// sweepDrops removes dropped files older than their TTL.
func (s *Server) sweepDrops(now time.Time) {
	res, err := s.ds.Query(s.ctx, query.Query{Prefix: "/drops/"})
	if err != nil {
		return
	}
	var old []datastore.Key
	cutoff := now.Add(-s.cfg.DropTTL).UnixMilli()
	failed := now.Add(-dropFailTTL).UnixMilli()
	for r := range res.Next() {
		var rec pb.StoredDrop
		if r.Error != nil || proto.Unmarshal(r.Value, &rec) != nil {
			continue
		}
		s.mu.Lock()
		fetching := s.fetching[r.Key]
		s.mu.Unlock()
		if rec.DepositedMs < cutoff || !rec.Complete && !fetching && rec.DepositedMs < failed {
			old = append(old, datastore.RawKey(r.Key))
		}
	}
	res.Close()
	for _, k := range old {
		if err := s.removeDrop(k); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("expire a dropped file", "err", err)
		}
	}
}

// ---- the client's side ----

// DroppedFile is a file dropped for this node that has arrived.
type DroppedFile struct {
	From  peer.ID
	Relay peer.ID
	Name  string
	// Path is where it is now.
	Path string
	Size uint64
	// FileID is the ID of the file as its sender offers it (empty from
	// older senders).
	FileID string
}

// DropFile seals the file at path to p, has one of this node's relays
// hold it, and tells p through the mailbox, with fileID (the ID of the
// file as this node offers it, or ""). It returns once the relay has the
// whole file and the letter is deposited, and answers the relay.
func (c *Client) DropFile(ctx context.Context, p peer.ID, path, fileID string) (peer.ID, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", err
	}
	fd := &pb.FileDrop{Name: filepath.Base(path), Size: uint64(fi.Size())}
	if fileID != "" {
		fd.FileId = &fileID
	}
	return c.drop(ctx, p, in, KindFileDrop, fd)
}

// DropFolder drops the folder m, which this node shares, as DropFile
// drops a file: sealed, its files one after the other as m's chunks span
// them (each chunk checked against m as it is read), in a letter of kind
// KindFolderDrop that carries m, so that p lays the folder out from it.
func (c *Client) DropFolder(ctx context.Context, p peer.ID, m *transfer.Manifest) (peer.ID, error) {
	if c.cfg.Transfer == nil {
		return "", fmt.Errorf("%w: file drop is off", ErrBadRequest)
	}
	return c.dropFolderAs(ctx, p, m, m.ID())
}

// dropFolderAs drops the folder m with a letter that names it fileID.
func (c *Client) dropFolderAs(ctx context.Context, p peer.ID, m *transfer.Manifest, fileID string) (peer.ID, error) {
	in, err := c.cfg.Transfer.Packed(ctx, m)
	if err != nil {
		return "", err
	}
	defer in.Close()
	fd := &pb.FileDrop{Name: m.Name, Size: m.Size, FileId: &fileID, Folder: m.Encode()}
	return c.drop(ctx, p, in, KindFolderDrop, fd)
}

// drop seals in to p, has one of this node's relays hold it, and deposits
// a letter of kind k with fd, completed with where it waits.
func (c *Client) drop(ctx context.Context, p peer.ID, in io.Reader, k Kind, fd *pb.FileDrop) (peer.ID, error) {
	if c.cfg.Transfer == nil {
		return "", fmt.Errorf("%w: file drop is off", ErrBadRequest)
	}
	pub, err := c.sealingKeyOf(ctx, p)
	if err != nil {
		return "", err
	}
	// The letter must fit before anything is sealed or uploaded: a
	// folder of many files has a large manifest.
	if err := dropFits(fd, nil, ""); err != nil {
		return "", err
	}
	m, err := c.sealForDrop(in, pub, fd.Name)
	if err != nil {
		return "", err
	}
	defer c.cfg.Transfer.Withdraw(context.Background(), m)
	relays := c.loggedInRelays()
	for _, r := range relays {
		if err := dropFits(fd, m, r); err != nil {
			return "", err
		}
	}
	var errs []error
	for _, r := range relays {
		err := c.dropOn(ctx, r, p, m)
		if err == nil {
			fd.Relay, fd.Manifest = []byte(r), m.Encode()
			item, _ := proto.Marshal(fd)
			return r, c.Deposit(ctx, p, k, [][]byte{item})
		}
		errs = append(errs, err)
		if !errors.Is(err, ErrNotFound) {
			return "", err
		}
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("%w: not logged in to any relay", ErrNoRelay)
	}
	return "", fmt.Errorf("%w: %s has no account on your relays", ErrNotFound, p)
}

// dropFits checks that the letter of a drop fits in one letter: fd, with
// the sealed blob's manifest m, waiting on relay (nil and "": fd alone,
// which the letter holds at least).
func dropFits(fd *pb.FileDrop, m *transfer.Manifest, relay peer.ID) error {
	item := proto.Clone(fd).(*pb.FileDrop)
	item.Relay = []byte(relay)
	if m != nil {
		item.Manifest = m.Encode()
	}
	if n := proto.Size(item); n > maxLetter {
		return fmt.Errorf("%w: the letter of %s would be %d bytes, a letter holds %d (a folder of fewer files fits)", ErrTooLarge, fd.GetName(), n, maxLetter)
	}
	return nil
}

// sealForDrop seals in to pub into the blob store, under a name that
// says nothing.
func (c *Client) sealForDrop(in io.Reader, pub []byte, name string) (*transfer.Manifest, error) {
	if err := os.MkdirAll(c.cfg.StagingDir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(c.cfg.StagingDir, ".seal-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := SealFile(tmp, in, pub); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("relay: seal %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	return c.cfg.Transfer.Import(tmp.Name(), sealedName)
}

func (c *Client) dropOn(ctx context.Context, relay, p peer.ID, m *transfer.Manifest) error {
	if err := c.cfg.Transfer.Offer(ctx, m, relay); err != nil {
		return err
	}
	st, err := c.h.NewStream(ctx, relay, MailboxProtocol)
	if err != nil {
		return fmt.Errorf("relay: %s: %w", relay, err)
	}
	defer st.Close()
	// The relay answers once it has fetched the whole file: the wait is
	// bounded by the time the file takes at dropMinRate.
	st.SetDeadline(time.Now().Add(c.dropWait + time.Duration(m.Size/dropMinRate)*time.Second))
	if err := writeFrame(st, &pb.MailboxRequest{Body: &pb.MailboxRequest_Drop{Drop: &pb.Drop{Recipient: []byte(p), Manifest: m.Encode()}}}); err != nil {
		st.Reset()
		return err
	}
	st.CloseWrite()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	var rep pb.MailboxReply
	if err := readFrame(bufio.NewReader(st), MaxMailboxFrame, &rep); err != nil {
		return fmt.Errorf("relay: %s: %w", relay, err)
	}
	return errOf(rep.Code, rep.Message)
}

// pendingDrop is a dropped file this node is fetching (/client/drops/).
type pendingDrop struct {
	From     peer.ID   `json:"from"`
	Relay    peer.ID   `json:"relay"`
	Manifest []byte    `json:"manifest"`
	Name     string    `json:"name"`
	Size     uint64    `json:"size"`
	Since    time.Time `json:"since"`
	FileID   string    `json:"file_id,omitempty"`
	// Folder is the folder's manifest of a KindFolderDrop: the blob opens
	// to its packed bytes, laid out as the folder.
	Folder []byte `json:"folder,omitempty"`
}

func pendingDropKey(root string) datastore.Key { return datastore.RawKey("/client/drops/" + root) }
func doneDropKey(root string) datastore.Key    { return datastore.RawKey("/client/dropped/" + root) }

// dropMinRate is the slowest rate, in bytes a second, at which a sender
// waits for a relay to fetch a dropped file.
const dropMinRate = 32 << 10

// dropGiveUp is how long a client tries to fetch a dropped file: past
// the relays' default drop TTL, it is gone there.
const dropGiveUp = 8 * 24 * time.Hour

// acceptDrop records a FileDrop letter that relay delivered (synced, so
// that it may be acked) and starts fetching the file. Only a friend's
// drop, waiting on the relay that delivered the letter, is fetched, and
// each once.
func (c *Client) acceptDrop(relay peer.ID, l *Letter) error {
	if len(l.Items) != 1 || c.cfg.Transfer == nil {
		return nil
	}
	var fd pb.FileDrop
	if err := proto.Unmarshal(l.Items[0], &fd); err != nil {
		return nil
	}
	m, err := transfer.DecodeManifest(fd.Manifest)
	if err == nil && l.Kind == KindFolderDrop {
		var fm *transfer.Manifest
		// The folder is the one its message offers: the file ID is
		// its manifest's root.
		if fm, err = dropFolder(&fd); err == nil && fm.ID() != fd.GetFileId() {
			err = fmt.Errorf("%w: the folder %s is not the file %.16s the letter names", transfer.ErrBadManifest, fm.ID(), fd.GetFileId())
		}
	}
	if err != nil || peer.ID(fd.Relay) != relay || m.Name != sealedName {
		c.log.Warn("mailbox: drop a bad file-drop letter", "from", l.From, "err", err)
		if m != nil && peer.ID(fd.Relay) == relay {
			c.refuseDrop(relay, m) // its blob waits for nothing
		}
		return nil
	}
	if c.cfg.Sink == nil || !c.cfg.Sink.Friend(l.From) {
		c.log.Info("mailbox: refused a file drop from a stranger", "from", l.From)
		c.refuseDrop(relay, m)
		return nil
	}
	root := m.Root().String()
	if ok, _ := c.ds.Has(c.ctx, doneDropKey(root)); ok {
		return nil // fetched already: a letter delivered twice
	}
	pd := pendingDrop{From: l.From, Relay: relay, Manifest: fd.Manifest, Name: transfer.SafeName(fd.Name), Size: fd.Size, Since: c.cfg.Now(), FileID: fileIDOf(&fd)}
	if l.Kind == KindFolderDrop {
		pd.Folder = fd.Folder
	}
	b, _ := json.Marshal(pd)
	if err := c.ds.Put(c.ctx, pendingDropKey(root), b); err != nil {
		return err
	}
	if err := c.ds.Sync(c.ctx, datastore.NewKey("/")); err != nil {
		return err
	}
	c.life.Go(func() { c.fetchDrop(root, pd) })
	return nil
}

// resumeDrops fetches again the dropped files not fetched yet.
func (c *Client) resumeDrops() {
	scan(c.ctx, c.ds, "/client/drops/", func(key string, v []byte) {
		var pd pendingDrop
		if json.Unmarshal(v, &pd) == nil {
			root := datastore.RawKey(key).BaseNamespace()
			c.life.Go(func() { c.fetchDrop(root, pd) })
		}
	})
}

// fetchDrop downloads a dropped blob from its relay, opens it into
// DropDir, and tells the relay to delete it. It retries, backing off,
// while the relay is out of reach, and gives up on a file that does not
// open or once the relay cannot hold it any more.
func (c *Client) fetchDrop(root string, pd pendingDrop) {
	m, err := transfer.DecodeManifest(pd.Manifest)
	if err != nil {
		c.ds.Delete(c.ctx, pendingDropKey(root))
		return
	}
	for wait := time.Second; ; wait = min(2*wait, 5*time.Minute) {
		err := c.fetchDropOnce(root, pd, m)
		if err == nil || c.ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrBadSeal) || c.cfg.Now().Sub(pd.Since) > dropGiveUp {
			c.log.Warn("give up a dropped file", "name", pd.Name, "from", pd.From, "err", err)
			// Forget, never Withdraw: the sender's manifest may name
			// chunks of this node's own files.
			c.cfg.Transfer.Forget(c.ctx, m)
			c.ds.Delete(c.ctx, pendingDropKey(root))
			c.refuseDrop(pd.Relay, m)
			return
		}
		c.log.Info("fetch a dropped file", "name", pd.Name, "retry_in", wait, "err", err)
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (c *Client) fetchDropOnce(root string, pd pendingDrop, m *transfer.Manifest) error {
	sealed, err := c.cfg.Transfer.Download(c.ctx, m, []peer.ID{pd.Relay}, c.cfg.StagingDir, nil)
	if err != nil {
		return err
	}
	in, err := os.Open(sealed)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(c.cfg.DropDir, 0o700); err != nil {
		return err
	}
	out, err := os.CreateTemp(c.cfg.DropDir, ".drop-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	if err := c.keys.OpenFile(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	out.Close()
	final, err := c.placeDrop(pd, out.Name())
	if err != nil {
		return err
	}
	// The name is durable before the relay deletes its copy.
	if err := c.syncDir(c.cfg.DropDir); err != nil {
		os.RemoveAll(final)
		return err
	}
	in.Close()
	os.Remove(sealed)
	ctx, cancel := context.WithTimeout(c.ctx, ioTimeout)
	defer cancel()
	if err := c.dropDone(ctx, pd.Relay, m); err != nil {
		c.log.Info("tell the relay a drop is fetched", "err", err)
	}
	c.cfg.Transfer.Forget(ctx, m)
	c.ds.Put(ctx, doneDropKey(root), nil)
	c.ds.Delete(ctx, pendingDropKey(root))
	if c.cfg.Sink != nil {
		c.cfg.Sink.FileDropped(DroppedFile{From: pd.From, Relay: pd.Relay, Name: pd.Name, Path: final, Size: pd.Size, FileID: pd.FileID})
	}
	return nil
}

// placeDrop gives a dropped file, opened at opened, its name in DropDir
// (never over an existing one); a folder's is laid out there as the
// folder, once it matches the folder's manifest.
func (c *Client) placeDrop(pd pendingDrop, opened string) (string, error) {
	if pd.Folder != nil {
		fm, err := transfer.DecodeManifest(pd.Folder)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadSeal, err)
		}
		final, err := transfer.UnpackFolder(fm, opened, c.cfg.DropDir)
		if errors.Is(err, transfer.ErrBadChunk) || errors.Is(err, transfer.ErrBadManifest) {
			// Never better on a retry: the sender sealed other bytes.
			err = fmt.Errorf("%w: %w", ErrBadSeal, err)
		}
		return final, err
	}
	final := transfer.UniquePath(c.cfg.DropDir, pd.Name)
	return final, os.Link(opened, final)
}

// refuseDrop tells relay, in the background, to delete a drop this node
// will not fetch (DropDone deletes a drop whether it was fetched or not),
// so that it holds neither the relay's disk nor the sender's quota until
// it expires.
func (c *Client) refuseDrop(relay peer.ID, m *transfer.Manifest) {
	c.life.Go(func() {
		ctx, cancel := context.WithTimeout(c.ctx, ioTimeout)
		defer cancel()
		if err := c.dropDone(ctx, relay, m); err != nil {
			c.log.Info("refuse a dropped file", "relay", relay, "err", err)
		}
	})
}

func (c *Client) dropDone(ctx context.Context, relay peer.ID, m *transfer.Manifest) error {
	st, err := c.h.NewStream(ctx, relay, MailboxProtocol)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(ioTimeout))
	root := m.Root()
	if err := writeFrame(st, &pb.MailboxRequest{Body: &pb.MailboxRequest_DropDone{DropDone: &pb.DropDone{Root: root[:]}}}); err != nil {
		return err
	}
	st.CloseWrite()
	var rep pb.MailboxReply
	if err := readFrame(bufio.NewReader(st), MaxMailboxFrame, &rep); err != nil {
		return err
	}
	return errOf(rep.Code, rep.Message)
}

// dropFolder is the folder's manifest that a KindFolderDrop's FileDrop
// carries: a valid manifest of a folder, or an error.
func dropFolder(fd *pb.FileDrop) (*transfer.Manifest, error) {
	m, err := transfer.DecodeManifest(fd.GetFolder())
	if err == nil && !m.Folder {
		err = fmt.Errorf("%w: %s is not a folder", transfer.ErrBadManifest, m.Name)
	}
	return m, err
}

// fileIDOf is a FileDrop's file ID when it looks like one (hex, bounded),
// else "": it only ties the file to a message, so a bad one costs that.
func fileIDOf(fd *pb.FileDrop) string {
	id := fd.GetFileId()
	if len(id) > 128 {
		return ""
	}
	if _, err := hex.DecodeString(id); err != nil {
		return ""
	}
	return id
}

// syncDir makes the names in dir durable (a file just linked there).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
