package chat

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// hlc is a hybrid logical clock: 48 bits of wall-clock milliseconds and 16
// bits of counter. Every message carries the sender's reading; a receiver
// moves its clock past every reading it sees. Ordering a conversation by
// HLC keeps each sender's order and puts a reply after what it answers,
// however far apart the two machines' clocks are.
type hlc struct {
	mu   sync.Mutex
	now  func() time.Time
	last uint64
}

const hlcLogicalBits = 16

func hlcPhysical(t time.Time) uint64 { return uint64(t.UnixMilli()) << hlcLogicalBits }

// Now returns a reading greater than every reading before it.
func (c *hlc) Now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(c.last+1, hlcPhysical(c.now()))
	return c.last
}

// maxSkew bounds how far ahead of this node's clock a received reading
// may move it: a peer's clock may be off by minutes, not by years, and a
// reading near the top of the range would make the clock wrap.
const maxSkew = time.Hour

// Observe moves the clock past a reading seen in a received message, up
// to maxSkew ahead of the wall clock.
func (c *hlc) Observe(remote uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(c.last, min(remote, hlcPhysical(c.now().Add(maxSkew))))
}

// ids makes message IDs: ULIDs, sortable by creation time and unique
// across nodes.
type ids struct {
	mu      sync.Mutex
	now     func() time.Time
	entropy *ulid.MonotonicEntropy
}

func newIDs(now func() time.Time) *ids {
	return &ids{now: now, entropy: ulid.Monotonic(rand.Reader, 0)}
}

func (g *ids) New() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return ulid.MustNew(ulid.Timestamp(g.now()), g.entropy).String()
}

// validID reports whether s is a ULID in canonical form.
func validID(s string) bool {
	id, err := ulid.ParseStrict(s)
	return err == nil && id.String() == s
}
