package history

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/oklog/ulid/v2"
)

// Clock is a hybrid logical clock: 48 bits of wall-clock milliseconds and 16
// bits of counter. Every message carries the sender's reading; a receiver
// moves its clock past every reading it sees. Ordering a conversation by
// HLC keeps each sender's order and puts a reply after what it answers,
// however far apart the two machines' clocks are.
type Clock struct {
	mu   sync.Mutex
	now  func() time.Time
	last uint64
}

// NewClock returns a clock that reads now (nil: time.Now).
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

const hlcLogicalBits = 16

// Physical is the reading of wall-clock time t with a zero counter.
func Physical(t time.Time) uint64 { return uint64(t.UnixMilli()) << hlcLogicalBits }

// Resume moves the clock past a reading this node made itself before a
// restart (stored): unlike a peer's (Observe), it is trusted however far
// ahead of the wall clock it is, so that a clock set back while the node
// was down cannot make new readings repeat or sort before old ones.
func (c *Clock) Resume(own uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(c.last, own)
}

// Now returns a reading greater than every reading before it.
func (c *Clock) Now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(c.last+1, Physical(c.now()))
	return c.last
}

// maxSkew bounds how far ahead of this node's clock a received reading
// may move it: a peer's clock may be off by minutes, not by years, and a
// reading near the top of the range would make the clock wrap.
const maxSkew = time.Hour

// Observe moves the clock past a reading seen in a received message, up
// to maxSkew ahead of the wall clock.
func (c *Clock) Observe(remote uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(c.last, min(remote, Physical(c.now().Add(maxSkew))))
}

// Message IDs are derived, not chosen: a ULID whose 48-bit time is the
// message's sent-at time (ms) and whose other 80 bits are the first 10
// bytes of a SHA-256 over what names the message on its protocol (see
// DMID and GroupMessageID, specified in chat/wire.go and group/wire.go). Only
// the author can make the fields hash to an ID (the secure channel or the
// author's signature binds them to it), every receiver recomputes it, and
// two different messages cannot share one: no peer can take another's ID
// in the one /msgid/ index. IDs stay sortable by time, like the random
// ULIDs before them.

// Hashing domains of message IDs.
const (
	domainDMID    = "meshtalk dm id v1"
	domainGroupID = "meshtalk group message id v1"
)

// MessageID is the ID with time part ms whose other 80 bits are the first
// 10 bytes of SHA-256(parts), each part preceded by its length as a
// uvarint. A time ULID cannot hold (before 1970, after 10889) gives "",
// which is no valid ID.
func MessageID(ms int64, parts ...[]byte) string {
	var id ulid.ULID
	if ms < 0 || id.SetTime(uint64(ms)) != nil {
		return ""
	}
	// Room for the fields IDs name (a domain, peer IDs, a group ID, a
	// number) without growing: on the stack.
	b := make([]byte, 0, 192)
	for _, p := range parts {
		b = appendField(b, p)
	}
	sum := sha256.Sum256(b)
	copy(id[6:], sum[:10])
	return id.String()
}

// CheckID is the error of a received message whose ID is not want, the
// one derived from the fields that what names; the caller wraps it in its
// protocol's error.
func CheckID(id, want string, sentAtMS int64, what string) error {
	switch {
	case want == "":
		return fmt.Errorf("sent_at_ms %d is outside what a message ID can hold", sentAtMS)
	case id != want:
		return fmt.Errorf("message ID %s is not the one %s make (%s)", id, what, want)
	}
	return nil
}

// DMID is the ID of a direct message (a receipt too) that from sends to
// to, stamped sentAtMS and hlc: one node's clock readings never repeat, so
// neither do its IDs, and a resend keeps its ID.
func DMID(from, to peer.ID, sentAtMS int64, hlc uint64) string {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], hlc)
	return MessageID(sentAtMS, []byte(domainDMID), []byte(from), []byte(to), n[:])
}

// GroupMessageID is the ID of the group message that author numbered seq
// in group gid, stamped sentAtMS.
func GroupMessageID(gid []byte, author peer.ID, seq uint64, sentAtMS int64) string {
	return MessageID(sentAtMS, []byte(domainGroupID), gid, []byte(author), binary.BigEndian.AppendUint64(nil, seq))
}

// IDTime is the time a message ID carries (its sender's sent-at time);
// false: s is no ID.
func IDTime(s string) (time.Time, bool) {
	id, err := ulid.ParseStrict(s)
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(id.Time()), true
}

// ValidID reports whether s is a ULID in canonical form.
func ValidID(s string) bool {
	id, err := ulid.ParseStrict(s)
	return err == nil && id.String() == s
}

// appendField appends f to b, preceded by its length as a uvarint.
func appendField(b, f []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}
