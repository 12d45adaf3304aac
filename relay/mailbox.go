package relay

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/internal/queue"
	"github.com/meshtalk/meshtalk/relay/pb"
)

// The relay's mailbox: deposits are group-committed (one disk sync for
// all the deposits waiting, from every sender) and acked once synced;
// one pusher per logged-in recipient delivers what is held and deletes
// what the recipient acks; the sweeper removes what has expired.

// maxCommit bounds the deposits of one commit.
const maxCommit = 1024

// maxInflight bounds the bytes of deposits read but not answered yet, from
// all streams: past it, the relay stops reading deposits until commits
// catch up (backpressure), whatever the number of senders.
const maxInflight = 64 << 20

type depositReq struct {
	rcpt, sender peer.ID
	key          datastore.Key
	val          []byte
	size         int64
	done         chan error
}

// handleMailbox serves one client stream. Replies go out in request
// order from a writer goroutine, so deposits are pipelined: the reader
// goes on while earlier deposits wait for their commit.
func (s *Server) handleMailbox(st network.Stream) {
	p := st.Conn().RemotePeer()
	r := bufio.NewReader(st)
	replies := make(chan func() *pb.MailboxReply, 256)
	written := make(chan struct{})
	go func() {
		defer close(written)
		ok := true
		for f := range replies {
			rep := f()
			if !ok {
				continue
			}
			st.SetWriteDeadline(time.Now().Add(ioTimeout))
			if writeFrame(st, rep) != nil {
				ok = false
				st.Reset()
			}
		}
	}()
	defer func() {
		close(replies)
		<-written
		st.Close()
	}()
	for {
		st.SetReadDeadline(time.Now().Add(ioTimeout))
		var req pb.MailboxRequest
		if err := readFrameIn(r, s.frameLimit(p, MaxMailboxFrame), &req, st.Scope()); err != nil {
			if !errors.Is(err, io.EOF) {
				replies <- func() *pb.MailboxReply { return mailboxReply(nil, err) }
			}
			return
		}
		switch b := req.Body.(type) {
		case *pb.MailboxRequest_Deposit:
			n := int64(len(b.Deposit.Sealed))
			if err := s.inflight.Acquire(s.ctx, min(n, maxInflight)); err != nil {
				return
			}
			reply := s.deposit(p, b.Deposit)
			replies <- func() *pb.MailboxReply {
				defer s.inflight.Release(min(n, maxInflight))
				return reply()
			}
		case *pb.MailboxRequest_Drop:
			replies <- func() *pb.MailboxReply { return mailboxReply(nil, s.drop(p, b.Drop)) }
		case *pb.MailboxRequest_DropDone:
			replies <- func() *pb.MailboxReply { return mailboxReply(nil, s.dropDone(p, b.DropDone)) }
		default:
			replies <- func() *pb.MailboxReply {
				return mailboxReply(nil, fmt.Errorf("%w: empty or unknown request", ErrBadRequest))
			}
		}
	}
}

func mailboxReply(id []byte, err error) *pb.MailboxReply {
	code, msg := codeOf(err)
	return &pb.MailboxReply{Code: code, Message: msg, Id: id}
}

// deposit checks and queues one envelope; the returned function waits
// for it to be synced and gives the reply.
func (s *Server) deposit(sender peer.ID, d *pb.Deposit) func() *pb.MailboxReply {
	fail := func(err error) func() *pb.MailboxReply {
		s.met.refused(err)
		return func() *pb.MailboxReply { return mailboxReply(nil, err) }
	}
	rcpt, err := peer.IDFromBytes(d.Recipient)
	if err != nil {
		return fail(fmt.Errorf("%w: recipient: %v", ErrBadRequest, err))
	}
	size := int64(len(d.Sealed))
	if size == 0 || size > MaxSealed {
		return fail(fmt.Errorf("%w: an envelope of %d bytes; the limit is %d", ErrTooLarge, size, MaxSealed))
	}
	now := s.cfg.Now()
	s.mu.Lock()
	if _, ok := s.sessions[sender]; !ok {
		s.mu.Unlock()
		return fail(fmt.Errorf("%w: log in before you deposit", ErrNotLoggedIn))
	}
	a := s.accounts[rcpt]
	if a == nil {
		s.mu.Unlock()
		return fail(fmt.Errorf("%w: %s has no account on this relay", ErrNotFound, rcpt))
	}
	if !a.mayDeposit(sender) {
		s.mu.Unlock()
		return fail(fmt.Errorf("%w: %s takes mail here only from friends and group members", ErrNotAllowed, a.rec.Name))
	}
	if u := s.rcpt[rcpt]; u != nil && (u.items+1 > s.cfg.RecipientMaxItems || u.bytes+size > s.cfg.RecipientMaxBytes) {
		s.mu.Unlock()
		return fail(fmt.Errorf("%w: the mailbox of %s is full; it empties as they come online, try again later", ErrQuota, a.rec.Name))
	}
	if u := s.sender[sender]; u != nil && (u.items+1 > s.cfg.SenderMaxItems || u.bytes+size > s.cfg.SenderMaxBytes) {
		s.mu.Unlock()
		return fail(fmt.Errorf("%w: you have %d items (%d bytes) waiting on this relay, its limit; try again once they are delivered", ErrQuota, u.items, u.bytes))
	}
	// Charged now, so that pipelined deposits cannot overshoot together.
	s.charge(rcpt, sender, size)
	s.mu.Unlock()

	idb := make([]byte, 16)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	val, _ := proto.Marshal(&pb.StoredEnvelope{Sender: []byte(sender), Sealed: d.Sealed, DepositedMs: now.UnixMilli()})
	req := &depositReq{rcpt: rcpt, sender: sender, key: mboxKey(rcpt, now.UnixMilli(), id), val: val, size: size, done: make(chan error, 1)}
	select {
	case s.deposits <- req:
	case <-s.ctx.Done():
		s.release(req)
		return fail(ErrStopped)
	}
	return func() *pb.MailboxReply {
		var err error
		select {
		case err = <-req.done:
		case <-s.ctx.Done():
			err = ErrStopped
		}
		if err != nil {
			s.release(req)
			s.met.refused(err)
			return mailboxReply(nil, err)
		}
		s.met.deposits.Inc()
		s.wakePush(rcpt)
		return mailboxReply([]byte(id), nil)
	}
}

func (s *Server) release(r *depositReq) {
	s.mu.Lock()
	s.uncharge(r.rcpt, r.sender, r.size)
	s.mu.Unlock()
}

// runCommitter writes waiting deposits in one batch and one sync.
func (s *Server) runCommitter() {
	for {
		batch, ok := queue.Take(s.ctx, s.deposits, maxCommit)
		if !ok {
			return
		}
		err := s.commit(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (s *Server) commit(reqs []*depositReq) error {
	b, err := s.ds.Batch(s.ctx)
	if err != nil {
		return fmt.Errorf("relay: store: %w", err)
	}
	for _, r := range reqs {
		if err := b.Put(s.ctx, r.key, r.val); err != nil {
			return fmt.Errorf("relay: store: %w", err)
		}
	}
	if err := b.Commit(s.ctx); err != nil {
		return fmt.Errorf("relay: store: %w", err)
	}
	if err := s.ds.Sync(s.ctx, datastore.NewKey("/")); err != nil {
		return fmt.Errorf("relay: store: %w", err)
	}
	return nil
}

// pusher is the delivery goroutine of one recipient; again asks it for
// one more round (a deposit came while it ran).
type pusher struct{ again bool }

// wakePush delivers p's mailbox if p is logged in.
func (s *Server) wakePush(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, on := s.sessions[p]; !on {
		return
	}
	if pu := s.pushers[p]; pu != nil {
		pu.again = true
		return
	}
	pu := &pusher{}
	if s.life.Go(func() { s.push(p, pu) }) {
		s.pushers[p] = pu
	}
}

func (s *Server) push(p peer.ID, pu *pusher) {
	for {
		n, err := s.pushOnce(p)
		if err != nil {
			s.log.Info("mailbox push", "peer", p, "err", err)
		}
		s.mu.Lock()
		_, on := s.sessions[p]
		if err != nil || !on || s.life.Closing() || n == 0 && !pu.again {
			delete(s.pushers, p)
			s.mu.Unlock()
			return
		}
		pu.again = false
		s.mu.Unlock()
	}
}

// pushOnce delivers one batch of p's mailbox, oldest first, and deletes
// what p acks. It returns how many were acked.
func (s *Server) pushOnce(p peer.ID) (int, error) {
	res, err := s.ds.Query(s.ctx, query.Query{Prefix: mboxPrefix(p)})
	if err != nil {
		return 0, err
	}
	var envs []*pb.Envelope
	held := map[string]heldEnvelope{}
	var bytes int
	for r := range res.Next() {
		if r.Error != nil {
			res.Close()
			return 0, r.Error
		}
		_, _, id, ok := parseMboxKey(r.Key)
		var e pb.StoredEnvelope
		if !ok || proto.Unmarshal(r.Value, &e) != nil {
			continue
		}
		idb, _ := hex.DecodeString(id)
		envs = append(envs, &pb.Envelope{Id: idb, Sealed: e.Sealed, DepositedMs: e.DepositedMs})
		held[string(idb)] = heldEnvelope{datastore.RawKey(r.Key), peer.ID(e.Sender), int64(len(e.Sealed))}
		if bytes += len(e.Sealed); bytes >= maxPushBytes || len(envs) >= 256 {
			break
		}
	}
	res.Close()
	if len(envs) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 2*ioTimeout)
	defer cancel()
	st, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "mailbox"), p, MailboxProtocol)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	st.SetDeadline(time.Now().Add(2 * ioTimeout))
	if err := writeFrame(st, &pb.Deliver{Envelopes: envs}); err != nil {
		st.Reset()
		return 0, err
	}
	var ack pb.DeliverAck
	if err := readFrame(bufio.NewReader(st), MaxMailboxFrame, &ack); err != nil {
		st.Reset()
		return 0, err
	}
	var acked []heldEnvelope
	for _, id := range ack.Ids {
		h, ok := held[string(id)]
		if !ok {
			continue // not from this push, or not the caller's
		}
		delete(held, string(id))
		acked = append(acked, h)
	}
	gone, err := s.remove(p, acked)
	if err != nil {
		return 0, err
	}
	s.met.delivered.Add(float64(len(gone)))
	if len(gone) == 0 {
		return 0, errors.New("relay: the recipient took none of what was pushed")
	}
	return len(gone), nil
}

// remove deletes envelopes of rcpt and uncounts those that were still
// there: the pusher and the sweeper may both come for one envelope.
func (s *Server) remove(rcpt peer.ID, envs []heldEnvelope) ([]heldEnvelope, error) {
	s.delMu.Lock()
	defer s.delMu.Unlock()
	b, err := s.ds.Batch(s.ctx)
	if err != nil {
		return nil, err
	}
	var gone []heldEnvelope
	for _, e := range envs {
		if ok, err := s.ds.Has(s.ctx, e.key); err != nil || !ok {
			continue
		}
		b.Delete(s.ctx, e.key)
		gone = append(gone, e)
	}
	if err := b.Commit(s.ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	for _, e := range gone {
		s.uncharge(rcpt, e.sender, e.size)
	}
	s.mu.Unlock()
	return gone, nil
}

// heldEnvelope is an envelope being pushed.
type heldEnvelope struct {
	key    datastore.Key
	sender peer.ID
	size   int64
}

// runSweeper removes expired items now and then, and retries delivery
// to logged-in recipients whose push failed.
func (s *Server) runSweeper() {
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sweep()
		}
	}
}

func (s *Server) sweep() {
	now := s.cfg.Now()
	if n, err := s.sweepMailboxes(now); err != nil {
		s.log.Warn("sweep mailboxes", "err", err)
	} else if n > 0 {
		s.log.Info("expired envelopes removed", "count", n)
	}
	s.sweepDrops(now)
	if err := s.sweepShortInvites(now); err != nil {
		s.log.Warn("sweep short invites", "err", err)
	}
	s.mu.Lock()
	var waiting []peer.ID
	for p := range s.sessions {
		if s.rcpt[p] != nil {
			waiting = append(waiting, p)
		}
	}
	s.mu.Unlock()
	for _, p := range waiting {
		s.wakePush(p)
	}
}

// sweepMailboxes deletes envelopes older than the TTL; their deposit
// time is in their key.
func (s *Server) sweepMailboxes(now time.Time) (int, error) {
	cutoff := now.Add(-s.cfg.MailboxTTL).UnixMilli()
	res, err := s.ds.Query(s.ctx, query.Query{Prefix: "/mbox/", KeysOnly: true})
	if err != nil {
		return 0, err
	}
	var old []string
	for r := range res.Next() {
		if r.Error != nil {
			res.Close()
			return 0, r.Error
		}
		if _, ms, _, ok := parseMboxKey(r.Key); ok && ms < cutoff {
			old = append(old, r.Key)
		}
	}
	res.Close()
	n := 0
	for _, k := range old {
		key := datastore.RawKey(k)
		v, err := s.ds.Get(s.ctx, key)
		if err != nil {
			continue
		}
		var e pb.StoredEnvelope
		proto.Unmarshal(v, &e)
		rcpt, _, _, _ := parseMboxKey(k)
		gone, err := s.remove(rcpt, []heldEnvelope{{key, peer.ID(e.Sender), int64(len(e.Sealed))}})
		if err != nil {
			return n, err
		}
		n += len(gone)
		s.met.expired.Add(float64(len(gone)))
	}
	return n, nil
}
