package call

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/call/pb"
	"github.com/meshtalk/meshtalk/internal/frame"
)

// call is one call and its signaling stream. Lock order: wmu, then mu.
type call struct {
	s        *Service
	id       string
	peer     peer.ID
	outgoing bool

	st network.Stream
	r  *bufio.Reader // read by one goroutine: awaitRinging, then readLoop
	rs *ioErr        // under r: the stream's own error, if reading failed there

	wmu     sync.Mutex // held while a frame is written; orders frames
	sendSeq uint64

	mu      sync.Mutex
	info    Info
	ep      Endpoint
	recvSeq uint64
	timer   *time.Timer // the caller's ring timeout
	done    chan struct{}
	leaving atomic.Bool // this end sent its hangup: it ends the call
}

func (c *call) snapshot() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.info
	i.Pending = append([]Signal(nil), c.info.Pending...)
	return i
}

func (c *call) isEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.State == StateEnded
}

// open opens the stream and sends the offer; c.wmu is held.
func (c *call) open(ctx context.Context, offer Signal) error {
	sctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	st, err := c.s.h.NewStream(sctx, c.peer, ProtocolID)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the caller gave up, not the path
		}
		// The dial's own error names every address tried: for the log,
		// not for the person calling.
		c.s.log.Info("call: no stream to the friend", "peer", c.peer, "err", err)
		return ErrUnreachable
	}
	c.mu.Lock()
	c.setStream(st)
	c.mu.Unlock()
	return c.writeLocked(Signal{Kind: KindOffer, SDP: offer.SDP, Audio: offer.Audio, Video: offer.Video})
}

// awaitRinging reads the callee's first frame.
func (c *call) awaitRinging() error {
	c.st.SetReadDeadline(time.Now().Add(ioTimeout))
	f, err := c.read()
	c.st.SetReadDeadline(time.Time{})
	if err == nil {
		err = c.check(f)
	}
	switch {
	case err != nil:
		c.fault(err)
		return err
	case f.Kind == KindRinging:
	case f.Kind == KindBusy:
		c.end(ReasonBusy, "remote", nil)
		return fmt.Errorf("%w: %s", ErrBusy, c.peer)
	case f.Kind == KindError:
		err := remoteError(f.Reason)
		reason := ReasonError
		if errors.Is(err, ErrNotFriend) || errors.Is(err, ErrRateLimited) {
			reason = ReasonRefused
		}
		c.end(reason, "remote", err)
		return err
	default:
		err := fmt.Errorf("%w: %s before ringing", ErrOutOfOrder, f.Kind)
		c.fault(err)
		return err
	}
	c.mu.Lock()
	c.info.State = StateRinging
	c.timer = time.AfterFunc(c.s.cfg.RingTimeout, func() { c.timeout(true) })
	c.mu.Unlock()
	c.s.cfg.Emit(EventCalling, c.snapshot())
	return nil
}

// remoteError is the error an ERROR frame's code stands for.
func remoteError(code string) error {
	for _, e := range []struct {
		code string
		err  error
	}{{CodeNotFriend, ErrNotFriend}, {CodeRateLimited, ErrRateLimited}, {CodeForged, ErrForged},
		{CodeOutOfOrder, ErrOutOfOrder}, {CodeBadFrame, ErrBadFrame}} {
		if code == e.code {
			return fmt.Errorf("%w: the peer says: %w", ErrRemote, e.err)
		}
	}
	return fmt.Errorf("%w: %q", ErrRemote, truncate(code))
}

// code is the ERROR code of a local error.
func code(err error) string {
	switch {
	case errors.Is(err, ErrNotFriend):
		return CodeNotFriend
	case errors.Is(err, ErrRateLimited):
		return CodeRateLimited
	case errors.Is(err, ErrForged):
		return CodeForged
	case errors.Is(err, ErrOutOfOrder):
		return CodeOutOfOrder
	}
	return CodeBadFrame
}

// ioErr keeps the error of the stream under a frame reader: a frame cut
// short by the stream's reset is a lost stream, not a bad frame.
type ioErr struct {
	r   io.Reader
	err error
}

func (e *ioErr) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

func (c *call) setStream(st network.Stream) {
	c.st, c.rs = st, &ioErr{r: st}
	c.r = bufio.NewReader(c.rs)
}

// read reads and parses one frame (not yet checked against the call).
func (c *call) read() (msg, error) {
	var p pb.Frame
	if err := frame.ReadAs(c.r, MaxFrame, &p, ErrTooLarge, ErrBadFrame); err != nil {
		if c.rs.err != nil {
			return msg{}, fmt.Errorf("call: stream: %w", c.rs.err)
		}
		return msg{}, err
	}
	f, err := fromWire(&p)
	if err != nil {
		return msg{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return f, nil
}

// check checks a frame's call ID and number, and counts it.
func (c *call) check(f msg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.CallID != c.id {
		return fmt.Errorf("%w: call %s on the stream of call %s", ErrForged, f.CallID, c.id)
	}
	if f.Seq != c.recvSeq+1 {
		return fmt.Errorf("%w: frame %d after frame %d", ErrOutOfOrder, f.Seq, c.recvSeq)
	}
	c.recvSeq = f.Seq
	return nil
}

// write sends one frame.
func (c *call) write(sig Signal) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(sig)
}

func (c *call) writeLocked(sig Signal) error {
	if c.st == nil {
		return fmt.Errorf("%w: no stream", ErrEnded)
	}
	c.sendSeq++
	f := msg{CallID: c.id, Seq: c.sendSeq, Signal: sig}
	c.st.SetWriteDeadline(time.Now().Add(ioTimeout))
	defer c.st.SetWriteDeadline(time.Time{})
	if err := frame.Write(c.st, f.toWire()); err != nil {
		return fmt.Errorf("call: send %s: %w", sig.Kind, err)
	}
	return nil
}

// readLoop reads the friend's frames until the call ends.
func (c *call) readLoop() {
	for {
		f, err := c.read()
		if err != nil {
			select {
			case <-c.done:
				return // this end ended it
			default:
			}
			if c.leaving.Load() {
				return // this end is hanging up: the friend closed on its frame
			}
			if errors.Is(err, ErrBadFrame) || errors.Is(err, ErrTooLarge) {
				c.fault(err)
			} else {
				c.end(ReasonLost, "remote", err)
			}
			return
		}
		if err := c.check(f); err != nil {
			c.fault(err)
			return
		}
		if err := c.receive(f.Signal); err != nil {
			c.fault(err)
			return
		}
		if c.isEnded() {
			return
		}
	}
}

// receive acts on a frame of the friend's, checked for its number.
func (c *call) receive(sig Signal) error {
	c.mu.Lock()
	state, outgoing := c.info.State, c.outgoing
	c.mu.Unlock()
	switch {
	case sig.Kind == KindHangup:
		reason := ReasonHangup
		if state != StateActive {
			reason = ReasonMissed
		}
		c.end(reason, "remote", nil)
	case sig.Kind == KindError:
		c.end(ReasonError, "remote", remoteError(sig.Reason))
	case outgoing && sig.Kind == KindAccept && state == StateRinging:
		c.mu.Lock()
		c.info.State, c.info.Accepted = StateActive, c.s.cfg.Now()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		c.s.cfg.Emit(EventAccepted, c.snapshot())
	case outgoing && sig.Kind == KindDecline && state == StateRinging:
		c.end(ReasonDeclined, "remote", nil)
	case sig.Kind == KindCandidate && (state == StateActive || !outgoing && state == StateRinging),
		(sig.Kind == KindOffer || sig.Kind == KindAnswer) && state == StateActive:
		c.deliver(sig)
	default:
		return fmt.Errorf("%w: %s while %s", ErrOutOfOrder, sig.Kind, state)
	}
	return nil
}

// deliver hands the friend's signal to the endpoint that holds the call,
// or keeps it for the one that will take it.
func (c *call) deliver(sig Signal) {
	c.mu.Lock()
	ep := c.ep
	if ep.ID == "" {
		c.info.Pending = append(c.info.Pending, sig)
	}
	c.mu.Unlock()
	if ep.Deliver != nil {
		ep.Deliver(sig)
	}
	c.s.cfg.Emit(EventSignal, SignalEvent{CallID: c.id, Endpoint: ep.ID, Signal: sig})
}

// fault ends the call on a protocol error of the friend's, telling it
// why.
func (c *call) fault(err error) {
	c.s.log.Info("call protocol error", "peer", c.peer, "call", c.id, "err", err)
	c.write(Signal{Kind: KindError, Reason: code(err)})
	c.end(ReasonError, "remote", err)
}

// refuse answers a stream that does not become a call with an ERROR
// frame and ends it.
func (c *call) refuse(err error) {
	c.s.log.Info("call refused", "peer", c.peer, "err", err)
	if c.id == "" {
		c.id = "00000000000000000000000000000000" // no call to name
	}
	if !errors.Is(err, io.EOF) {
		c.write(Signal{Kind: KindError, Reason: code(err)})
	}
	c.st.Close()
}

// accept takes the ringing call for ep.
func (c *call) accept(ep Endpoint, answer func([]Signal) (string, error)) (Info, error) {
	if ep.ID == "" {
		return Info{}, fmt.Errorf("%w: an endpoint needs an ID", ErrState)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	switch {
	case c.outgoing:
		c.mu.Unlock()
		return Info{}, fmt.Errorf("%w: %s is an outgoing call", ErrState, c.id)
	case c.info.State == StateActive:
		c.mu.Unlock()
		return Info{}, fmt.Errorf("%w (%s)", ErrTaken, c.info.Endpoint)
	case c.info.State != StateRinging:
		c.mu.Unlock()
		return Info{}, fmt.Errorf("%w: %s", ErrEnded, c.id)
	}
	sdp, err := answer(c.info.Pending)
	if err != nil {
		c.mu.Unlock()
		return Info{}, fmt.Errorf("call: answer: %w", err)
	}
	c.ep, c.info.Endpoint, c.info.State, c.info.Accepted, c.info.Pending = ep, ep.ID, StateActive, c.s.cfg.Now(), nil
	c.mu.Unlock()
	if err := c.writeLocked(Signal{Kind: KindAccept}); err == nil {
		err = c.writeLocked(Signal{Kind: KindAnswer, SDP: sdp})
	}
	if err != nil {
		go c.end(ReasonLost, "remote", err) // end takes wmu
		return Info{}, err
	}
	c.s.cfg.Emit(EventAccepted, c.snapshot())
	return c.snapshot(), nil
}

func (c *call) decline() error {
	c.mu.Lock()
	ok := !c.outgoing && c.info.State == StateRinging
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: only a ringing incoming call can be declined", ErrState)
	}
	c.write(Signal{Kind: KindDecline})
	c.end(ReasonDeclined, "local", nil)
	return nil
}

// signal sends the friend a signal of endpoint ep.
func (c *call) signal(ep string, sig Signal) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	state, holder := c.info.State, c.ep.ID
	c.mu.Unlock()
	switch {
	case ep != holder:
		return fmt.Errorf("%w: the call is held by endpoint %q", ErrTaken, holder)
	case sig.Kind == KindCandidate && sig.Candidate != nil && (state == StateActive || c.outgoing && state != StateEnded):
	case (sig.Kind == KindOffer || sig.Kind == KindAnswer) && sig.SDP != "" && state == StateActive:
		sig.Audio, sig.Video = false, false
	case state == StateEnded:
		return fmt.Errorf("%w: %s", ErrEnded, c.id)
	default:
		return fmt.Errorf("%w: %s while %s", ErrState, sig.Kind, state)
	}
	if len(sig.SDP) > MaxSDP || sig.Candidate != nil && len(sig.Candidate.Candidate) > MaxCandidate {
		return fmt.Errorf("%w: signal too large", ErrState)
	}
	return c.writeLocked(Signal{Kind: sig.Kind, SDP: sig.SDP, Candidate: sig.Candidate})
}

// timeout ends a ring nobody answered: the caller's after RingTimeout
// (it tells the callee), the callee's a little later.
func (c *call) timeout(caller bool) {
	c.mu.Lock()
	ringing := c.info.State == StateRinging
	c.mu.Unlock()
	if !ringing {
		return
	}
	if caller {
		c.hangupAs(ReasonMissed, "timeout", nil)
	} else {
		c.end(ReasonMissed, "remote", errors.New("the caller went silent"))
	}
}

// hangup tells the friend and ends the call; false if it had ended.
func (c *call) hangup(reason, wire string) bool { return c.hangupAs(reason, wire, nil) }

func (c *call) hangupAs(reason, wire string, why error) bool {
	if c.isEnded() {
		return false
	}
	c.mu.Lock()
	if reason == ReasonHangup && c.info.State != StateActive {
		reason = ReasonMissed
	}
	c.mu.Unlock()
	// From the hangup frame on, the friend may close the stream at once:
	// the read loop must leave the end to this hangup, not call it lost.
	c.leaving.Store(true)
	c.write(Signal{Kind: KindHangup, Reason: wire})
	if hangupWritten != nil {
		hangupWritten()
	}
	return c.end(reason, "local", why)
}

// hangupWritten, when set (tests), runs between a hangup's frame and the
// end of the call: the moment a fast friend closes the stream.
var hangupWritten func()

// end ends the call once: it closes the stream and emits EventEnded.
func (c *call) end(reason, by string, why error) bool {
	c.mu.Lock()
	if c.info.State == StateEnded {
		c.mu.Unlock()
		return false
	}
	c.info.State, c.info.Reason, c.info.EndedBy, c.info.Ended = StateEnded, reason, by, c.s.cfg.Now()
	c.info.Pending = nil
	if why != nil {
		c.info.Error = why.Error()
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	close(c.done)
	st := c.st
	c.mu.Unlock()
	if st != nil {
		st.Close()
		// The read loop ends on the close; a peer that never reads gets
		// a reset rather than a stream held open.
		time.AfterFunc(time.Second, func() { st.Reset() })
	}
	c.s.forget(c)
	c.s.cfg.Emit(EventEnded, c.snapshot())
	return true
}
