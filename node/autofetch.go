package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// fetchBudget bounds the bytes of pictures' originals a node fetches by
// itself in a day ([files] picture_auto_fetch_author_mib_per_day and
// picture_auto_fetch_mib_per_day): a peer that sends many large pictures
// costs this node a bounded amount of disk and bandwidth; what is past the
// budget waits for a tap (file get). The budget is in memory: a restart
// starts the day's count again.
type fetchBudget struct {
	mu       sync.Mutex
	day      string // the day counted, YYYY-MM-DD
	all      uint64
	byAuthor map[peer.ID]uint64
}

// take counts size bytes from author today and reports whether they fit
// both budgets (perAuthor and total, in bytes); bytes that do not fit are
// not counted.
func (b *fetchBudget) take(now time.Time, author peer.ID, size, perAuthor, total uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if day := now.Format(time.DateOnly); day != b.day || b.byAuthor == nil {
		b.day, b.all, b.byAuthor = day, 0, map[peer.ID]uint64{}
	}
	if b.byAuthor[author]+size > perAuthor || b.all+size > total {
		return false
	}
	b.byAuthor[author] += size
	b.all += size
	return true
}
