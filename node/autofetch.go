package node

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/transfer"
)

// fetchBudgetKey holds the day's count of the fetchBudget.
var fetchBudgetKey = datastore.NewKey("/node/autofetch")

// fetchBudget bounds the bytes of pictures' originals a node fetches by
// itself in a day ([files] picture_auto_fetch_author_mib_per_day and
// picture_auto_fetch_mib_per_day): a peer that sends many large pictures
// costs this node a bounded amount of disk and bandwidth; what is past the
// budget waits for a tap (file get). The day's count is stored (synced)
// before a fetch starts, so a restart goes on counting.
type fetchBudget struct {
	mu    sync.Mutex
	count *fetchCount // nil: not loaded yet
}

// fetchCount is the stored count of one day.
type fetchCount struct {
	Day      string            `json:"day"` // YYYY-MM-DD
	All      uint64            `json:"all"`
	ByAuthor map[string]uint64 `json:"by_author"`
}

// take counts size bytes from author today in ds and reports whether they
// fit both budgets (perAuthor and total, in bytes); bytes that do not fit
// are not counted.
func (b *fetchBudget) take(ds datastore.Datastore, now time.Time, author peer.ID, size, perAuthor, total uint64) (bool, error) {
	ctx := context.Background()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count == nil {
		b.count = &fetchCount{}
		js, err := ds.Get(ctx, fetchBudgetKey)
		switch {
		case errors.Is(err, datastore.ErrNotFound):
		case err != nil:
			b.count = nil
			return false, err
		default:
			// A damaged count starts the day again.
			json.Unmarshal(js, b.count)
		}
	}
	c := b.count
	if day := now.Format(time.DateOnly); day != c.Day || c.ByAuthor == nil {
		*c = fetchCount{Day: day, ByAuthor: map[string]uint64{}}
	}
	a := author.String()
	if c.ByAuthor[a]+size > perAuthor || c.All+size > total {
		return false, nil
	}
	c.ByAuthor[a] += size
	c.All += size
	js, _ := json.Marshal(c)
	if err := ds.Put(ctx, fetchBudgetKey, js); err != nil {
		return false, err
	}
	return true, ds.Sync(ctx, fetchBudgetKey)
}

// autoFetch starts fetching a received picture's original when it is
// small enough ([files] picture_auto_fetch_mib), from a friend or a group
// member, within the day's budget; never one this node sent (its own group
// messages are events too). It is tried picture_auto_fetch_attempts times
// at most; the rest waits for a tap (GetFile).
func (n *Node) autoFetch(m *chat.Message) {
	f := n.cfg.Files
	limit := uint64(f.PictureAutoFetchMiB) << 20
	if m.Outgoing || m.From == n.ID() || m.Kind != chat.KindPicture || m.File == nil || m.File.Size > limit || n.xfer == nil {
		return
	}
	// A direct message's author is a friend (chat refuses others), a group
	// message's a member (group checks the signer); both again, cheaply,
	// in case that changed.
	if m.Group == "" && !n.chat.IsFriend(m.From) {
		return
	}
	manifest, err := transfer.DecodeManifest(m.Manifest)
	if err != nil {
		return
	}
	dir, err := n.cfg.Files.DownloadsDir()
	if err != nil {
		n.log.Warn("fetch picture", "from", m.From, "err", err)
		return
	}
	ok, err := n.fetched.take(n.ds, n.now(), m.From, m.File.Size, uint64(f.PictureAutoFetchAuthorMiBPerDay)<<20, uint64(f.PictureAutoFetchMiBPerDay)<<20)
	switch {
	case err != nil:
		n.log.Warn("fetch picture: count the day's budget", "from", m.From, "err", err)
		return
	case !ok:
		n.log.Info("picture past the day's budget: fetched on request", "from", m.From, "bytes", m.File.Size)
		return
	}
	if err := n.xfer.StartTries(manifest, []peer.ID{m.From}, dir, f.PictureAutoFetchAttempts); err != nil {
		n.log.Warn("fetch picture", "from", m.From, "err", err)
	}
}

// fillFileStates says, in each received message that offers a file or a
// picture's original, whether it is here (Message.FileState).
func (n *Node) fillFileStates(ctx context.Context, msgs []*Message) {
	var byID map[string]transfer.DownloadInfo
	for _, m := range msgs {
		if m == nil || m.Outgoing || m.File == nil || m.Deleted || n.xfer == nil {
			continue
		}
		if byID == nil {
			byID = map[string]transfer.DownloadInfo{}
			downloads, err := n.xfer.Downloads(ctx)
			if err != nil {
				return
			}
			for _, d := range downloads {
				byID[d.ID] = d
			}
		}
		d, ok := byID[m.File.ID]
		switch {
		case ok && d.Done:
			m.FileState = "done"
		case ok && d.Error != "":
			m.FileState = "failed"
		case ok:
			m.FileState = "downloading"
		default:
			m.FileState = "available"
			if dr, dropped := n.drop(ctx, m.File.ID, m.From); dropped && dr.Path != "" {
				m.FileState = "done"
			}
		}
	}
}
