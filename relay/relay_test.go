package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/goleak"

	"github.com/meshtalk/meshtalk/internal/frame"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
	"github.com/meshtalk/meshtalk/relay"
	"github.com/meshtalk/meshtalk/relay/pb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, nodetest.IgnoredGoroutines()...)
}

var bg = context.Background()

// clock is a wall clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// startRelay starts a relay node; configure adjusts its [relay] section.
func startRelay(t testing.TB, home node.Home, clk *clock, configure func(*node.RelayConfig)) *node.Node {
	t.Helper()
	opts := nodetest.Options{Home: home, Role: node.RoleRelay, Configure: func(c *node.Config) {
		if configure != nil {
			configure(&c.Relay)
		}
	}}
	if clk != nil {
		opts.Clock = clk.now
	}
	return nodetest.Start(t, opts)
}

// startUser starts a personal node that uses relay r.
func startUser(t testing.TB, r *node.Node, home node.Home) *node.Node {
	t.Helper()
	addr := nodetest.Addr(t, r)
	return nodetest.Start(t, nodetest.Options{Home: home, Configure: func(c *node.Config) {
		c.Discovery.Relays = []string{addr}
		c.Chat.ParkAfter = node.Duration(100 * time.Millisecond)
	}})
}

// friendsOnRelay starts a relay and two friends registered on it, alice
// (a) and bob (b), on the homes given ("" for fresh ones).
func friendsOnRelay(t *testing.T, homeA, homeB node.Home) (r, a, b *node.Node) {
	t.Helper()
	r = startRelay(t, "", nil, nil)
	a, b = startUser(t, r, homeA), startUser(t, r, homeB)
	register(t, a, r, "alice")
	register(t, b, r, "bob")
	nodetest.Befriend(t, a, b)
	waitAllowed(t, r, a, b)
	waitAllowed(t, r, b, a)
	return r, a, b
}

// usersOnRelay starts a user of relay r for each name, registered on r
// under it.
func usersOnRelay(t *testing.T, r *node.Node, names ...string) []*node.Node {
	t.Helper()
	users := make([]*node.Node, len(names))
	for i, name := range names {
		users[i] = startUser(t, r, "")
		register(t, users[i], r, name)
	}
	return users
}

// waitAllowed waits until relay r takes deposits from sender for rcpt
// (rcpt's allow-list reached it).
func waitAllowed(t testing.TB, r, sender, rcpt *node.Node) {
	t.Helper()
	nodetest.Eventually(t, 20*time.Second, "the relay takes deposits for a friend", func() bool {
		return r.RelayServer().MayDeposit(rcpt.ID(), sender.ID())
	})
}

func relayInfo(r *node.Node) peer.AddrInfo { return peer.AddrInfo{ID: r.ID(), Addrs: r.Host().Addrs()} }

// register registers name for u on r and waits until u is logged in.
func register(t testing.TB, u, r *node.Node, name string) {
	t.Helper()
	if _, err := u.RelayClient().Register(bg, relayInfo(r), name, ""); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	waitLoggedIn(t, u, r)
}

func waitLoggedIn(t testing.TB, u, r *node.Node) {
	t.Helper()
	nodetest.Eventually(t, 20*time.Second, "logged in", func() bool {
		for _, status := range u.RelayClient().Status() {
			if status.PeerID == r.ID() && status.LoggedIn {
				return true
			}
		}
		return false
	})
}

// TestRegisterLookupNames: a name is bound to its peer ID, folded; a
// taken name, a bad name and a reserved name are clear errors.
func TestRegisterLookupNames(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	a, b, c := startUser(t, r, ""), startUser(t, r, ""), startUser(t, r, "")
	register(t, a, r, "Alice")
	register(t, b, r, "bob")

	u, err := b.RelayClient().Lookup(bg, "ALICE", "")
	if err != nil {
		t.Fatal(err)
	}
	if u.PeerID != a.ID() || u.Name != "alice" {
		t.Fatalf("lookup alice: %+v", u)
	}
	if len(u.Addrs) == 0 || !strings.Contains(u.Addrs[0], "/p2p-circuit/p2p/"+a.ID().String()) {
		t.Fatalf("lookup gives no address through the relay: %v", u.Addrs)
	}
	if _, err := b.RelayClient().Lookup(bg, "carol", ""); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("lookup of an unknown name: %v", err)
	}

	if _, err := c.RelayClient().Register(bg, relayInfo(r), "alice", ""); !errors.Is(err, relay.ErrNameTaken) {
		t.Fatalf("a taken name: %v", err)
	}
	for _, bad := range []string{"al", "1alice", "al ice", "alice-", "admin", strings.Repeat("a", 33), "élise"} {
		if _, err := c.RelayClient().Register(bg, relayInfo(r), bad, ""); !errors.Is(err, relay.ErrBadName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	// Not logged in: lookup says what to do.
	if _, err := c.RelayClient().Lookup(bg, "alice", ""); !errors.Is(err, relay.ErrNoRelay) {
		t.Fatalf("lookup while logged in nowhere: %v", err)
	}
	if got := r.RelayServer().Stats(); got.Accounts != 2 || got.LoggedIn != 2 {
		t.Fatalf("stats: %+v", got)
	}

	// Unregister frees the name.
	if err := a.RelayClient().Unregister(bg, r.ID()); err != nil {
		t.Fatal(err)
	}
	register(t, c, r, "alice")
	if u, err := b.RelayClient().Lookup(bg, "alice", ""); err != nil || u.PeerID != c.ID() {
		t.Fatalf("alice after unregister: %+v, %v", u, err)
	}
}

// TestInviteOnly: a relay that registers by invitation wants a token,
// takes it for as many uses as it has, and refuses it once expired.
func TestInviteOnly(t *testing.T) {
	clk := &clock{}
	r := startRelay(t, "", clk, func(c *node.RelayConfig) { c.Registration = "invite" })
	a, b, c := startUser(t, r, ""), startUser(t, r, ""), startUser(t, r, "")
	if _, err := a.RelayClient().Register(bg, relayInfo(r), "alice", ""); !errors.Is(err, relay.ErrBadInvite) {
		t.Fatalf("no invite: %v", err)
	}
	tok, err := r.RelayServer().NewInvite(bg, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RelayClient().Register(bg, relayInfo(r), "alice", tok); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RelayClient().Register(bg, relayInfo(r), "bob", tok); !errors.Is(err, relay.ErrBadInvite) {
		t.Fatalf("a used-up invite: %v", err)
	}
	tok, _ = r.RelayServer().NewInvite(bg, 5, time.Hour)
	clk.advance(2 * time.Hour)
	if _, err := c.RelayClient().Register(bg, relayInfo(r), "carol", tok); !errors.Is(err, relay.ErrBadInvite) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired invite: %v", err)
	}
}

// TestClosedRegistration: a closed relay takes no accounts.
func TestClosedRegistration(t *testing.T) {
	r := startRelay(t, "", nil, func(c *node.RelayConfig) { c.Registration = "closed" })
	a := startUser(t, r, "")
	if _, err := a.RelayClient().Register(bg, relayInfo(r), "alice", ""); !errors.Is(err, relay.ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

// TestReplayedLoginRefused: a login answer is good for its own challenge
// only; sent again after a new challenge it is refused.
func TestReplayedLoginRefused(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	a := startUser(t, r, "")
	register(t, a, r, "alice")
	key := a.Host().Peerstore().PrivKey(a.ID())

	call := func(st *rawStream, req *pb.AccountRequest) *pb.AccountReply {
		t.Helper()
		if err := frame.Write(st.s, req); err != nil {
			t.Fatal(err)
		}
		var rep pb.AccountReply
		if err := frame.Read(st.r, 1<<20, &rep); err != nil {
			t.Fatal(err)
		}
		return &rep
	}
	st := openRaw(t, a, r.ID(), relay.AccountProtocol)
	nonce := call(st, &pb.AccountRequest{Body: &pb.AccountRequest_Challenge{Challenge: &pb.ChallengeRequest{}}}).Nonce
	sig, err := key.Sign(relay.ProofPayload("login", r.ID(), a.ID(), nonce, ""))
	if err != nil {
		t.Fatal(err)
	}
	login := &pb.AccountRequest{Body: &pb.AccountRequest_Login{Login: &pb.Login{Proof: sig}}}
	if rep := call(st, login); rep.Code != 0 {
		t.Fatalf("the first answer is refused: %d %s", rep.Code, rep.Message)
	}
	// The same answer again, on the same stream with no new challenge,
	// and after a new challenge on another stream: both refused.
	if rep := call(st, login); rep.Code == 0 {
		t.Fatal("an answer used twice is taken")
	}
	st2 := openRaw(t, a, r.ID(), relay.AccountProtocol)
	call(st2, &pb.AccountRequest{Body: &pb.AccountRequest_Challenge{Challenge: &pb.ChallengeRequest{}}})
	if rep := call(st2, login); rep.Code == 0 || !strings.Contains(rep.Message, "challenge") {
		t.Fatalf("a replayed answer: %d %q", rep.Code, rep.Message)
	}
	// A stranger's deposit before any login is refused.
	c := startUser(t, r, "")
	errs := relay.DepositSealed(bg, c.Host(), r.ID(), a.ID(), [][]byte{[]byte("x")})
	if !errors.Is(errs[0], relay.ErrNotLoggedIn) {
		t.Fatalf("deposit without login: %v", errs[0])
	}
}

type rawStream struct {
	s interface {
		Write([]byte) (int, error)
		Close() error
	}
	r *bufio.Reader
}

func openRaw(t *testing.T, from *node.Node, to peer.ID, p protocol.ID) *rawStream {
	t.Helper()
	s, err := from.Host().NewStream(bg, to, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return &rawStream{s: s, r: bufio.NewReader(s)}
}

// TestOfflineFriendGetsMailOnce: A writes to B while B is away; A parks
// the messages on the relay and stops; B comes back and gets each
// message exactly once, and again exactly once after A comes back and
// delivers directly too.
func TestOfflineFriendGetsMailOnce(t *testing.T) {
	homeA, homeB := node.Home(t.TempDir()), node.Home(t.TempDir())
	r, a, b := friendsOnRelay(t, homeA, homeB)
	b.Close()

	var ids []string
	for i := range 5 {
		m, err := a.SendMessage(bg, b.ID().String(), node.Draft{Text: "while you were away " + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	nodetest.Eventually(t, 20*time.Second, "the relay holds A's messages", func() bool {
		return r.RelayServer().Stats().MailboxItems > 0
	})
	// A clean stop: what is not parked yet (each is parked as soon as it
	// is stored, B being logged out) is parked first.
	if rep := a.ParkOnStop(bg); len(rep.Queued) != 0 {
		t.Fatalf("A's stop left messages queued: %+v", rep)
	}
	a.Close()

	b = startUser(t, r, homeB)
	assertHistory(t, b, a.ID(), ids)
	mailbox := func(p peer.ID) int {
		for _, u := range r.RelayServer().Users() {
			if u.PeerID == p {
				return u.MailboxItems
			}
		}
		return -1
	}
	nodetest.Eventually(t, 20*time.Second, "the relay empties B's mailbox", func() bool { return mailbox(b.ID()) == 0 })
	// B parked a delivery receipt for A, who is away.
	nodetest.Eventually(t, 20*time.Second, "a delivery receipt waits for A", func() bool { return mailbox(a.ID()) > 0 })
	// A's node comes back: the receipt says delivered; nothing twice.
	a = startUser(t, r, homeA)
	for _, id := range ids {
		waitState(t, a, b.ID(), id, "delivered")
	}
	nodetest.Connect(t, a, b)
	assertHistory(t, b, a.ID(), ids)
}

func assertHistory(t *testing.T, n *node.Node, with peer.ID, ids []string) {
	t.Helper()
	nodetest.Eventually(t, 20*time.Second, "history complete", func() bool {
		h, err := n.Chat().History(bg, with, "", 100)
		return err == nil && len(h.Messages) >= len(ids)
	})
	h, err := n.Chat().History(bg, with, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range h.Messages {
		seen[m.ID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("message %s is in the history %d times", id, seen[id])
		}
	}
	if len(h.Messages) != len(ids) {
		t.Fatalf("history has %d messages, want %d", len(h.Messages), len(ids))
	}
}

func waitState(t *testing.T, n *node.Node, with peer.ID, id, state string) {
	t.Helper()
	nodetest.Eventually(t, 20*time.Second, "message "+id+" "+state, func() bool {
		h, err := n.Chat().History(bg, with, "", 100)
		if err != nil {
			return false
		}
		for _, m := range h.Messages {
			if m.ID == id {
				return m.State == state || m.State == "read"
			}
		}
		return false
	})
}

// TestOnlyTheOwnerGetsItsMail: an envelope for B goes to B and nobody
// else, and nobody else can open it.
func TestOnlyTheOwnerGetsItsMail(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	homeB := node.Home(t.TempDir())
	a, b, c := startUser(t, r, ""), startUser(t, r, homeB), startUser(t, r, "")
	register(t, a, r, "alice")
	register(t, b, r, "bob")
	register(t, c, r, "carol")
	nodetest.Befriend(t, a, b)
	waitAllowed(t, r, a, b)
	bk, _ := relay.DeriveSealingKeys(b.Host().Peerstore().PrivKey(b.ID()))
	b.Close()
	if err := a.RelayClient().Deposit(bg, b.ID(), relay.KindGroup, [][]byte{[]byte("for bob only")}); err != nil {
		t.Fatal(err)
	}
	if got := r.RelayServer().Stats().MailboxItems; got != 1 {
		t.Fatalf("mailbox items: %d", got)
	}
	// C is logged in the whole time and is pushed nothing of B's.
	if got := r.RelayServer().Users(); len(got) != 3 || got[1].Name != "bob" || got[1].MailboxItems != 1 {
		t.Fatalf("users: %+v", got)
	}
	// Sealed to B: C's keys do not open it.
	sealed, err := relay.SealLetter(a.Host().Peerstore().PrivKey(a.ID()), b.ID(), bk.Public(), relay.KindDM, [][]byte{[]byte("x")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ck, _ := relay.DeriveSealingKeys(c.Host().Peerstore().PrivKey(c.ID()))
	if _, err := ck.OpenLetter(sealed); !errors.Is(err, relay.ErrBadSeal) {
		t.Fatalf("C opens B's letter: %v", err)
	}
	b = startUser(t, r, homeB)
	nodetest.Eventually(t, 20*time.Second, "B takes its mail", func() bool {
		return r.RelayServer().Stats().MailboxItems == 0
	})
}

// TestForgedLetterDropped: a letter whose signature is not its sender's
// opens to nothing.
func TestForgedLetterDropped(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	a, b, c := startUser(t, r, ""), startUser(t, r, ""), startUser(t, r, "")
	bk, _ := relay.DeriveSealingKeys(b.Host().Peerstore().PrivKey(b.ID()))
	sealed, err := relay.SealLetter(c.Host().Peerstore().PrivKey(c.ID()), b.ID(), bk.Public(), relay.KindDM, [][]byte{[]byte("hi")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, err := bk.OpenLetter(sealed)
	if err != nil || l.From != c.ID() {
		t.Fatalf("open: %v, %v", l, err)
	}
	// Sealed to someone else: B refuses it even though it opens for A.
	ak, _ := relay.DeriveSealingKeys(a.Host().Peerstore().PrivKey(a.ID()))
	other, _ := relay.SealLetter(c.Host().Peerstore().PrivKey(c.ID()), b.ID(), ak.Public(), relay.KindDM, nil, time.Now())
	if _, err := ak.OpenLetter(other); !errors.Is(err, relay.ErrBadSeal) {
		t.Fatalf("a letter addressed to B opened by A: %v", err)
	}
	if got := r.RelayServer().Stats().MailboxItems; got != 0 {
		t.Fatalf("mailbox items: %d", got)
	}
}

// TestQuotaIsAClearError: a sender over the recipient's quota is told,
// and nothing is lost silently.
func TestQuotaIsAClearError(t *testing.T) {
	r := startRelay(t, "", nil, func(c *node.RelayConfig) { c.MailboxMaxItems = 2 })
	a, b := startUser(t, r, ""), startUser(t, r, "")
	register(t, a, r, "alice")
	register(t, b, r, "bob")
	nodetest.Befriend(t, a, b)
	waitAllowed(t, r, a, b)
	b.Close()
	for i := range 2 {
		if err := a.RelayClient().Deposit(bg, b.ID(), relay.KindGroup, [][]byte{{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	err := a.RelayClient().Deposit(bg, b.ID(), relay.KindGroup, [][]byte{{2}})
	if !errors.Is(err, relay.ErrQuota) || !strings.Contains(err.Error(), "full") {
		t.Fatalf("over quota: %v", err)
	}
	if got := r.RelayServer().Stats().MailboxItems; got != 2 {
		t.Fatalf("mailbox items: %d", got)
	}
}

// TestExpiredMailRemoved: envelopes older than the TTL go.
func TestExpiredMailRemoved(t *testing.T) {
	clk := &clock{}
	r := startRelay(t, "", clk, func(c *node.RelayConfig) { c.MailboxTTL = node.Duration(time.Hour) })
	a, b := startUser(t, r, ""), startUser(t, r, "")
	register(t, a, r, "alice")
	register(t, b, r, "bob")
	nodetest.Befriend(t, a, b)
	waitAllowed(t, r, a, b)
	b.Close()
	if err := a.RelayClient().Deposit(bg, b.ID(), relay.KindGroup, [][]byte{{1}}); err != nil {
		t.Fatal(err)
	}
	r.RelayServer().SweepNow()
	if got := r.RelayServer().Stats().MailboxItems; got != 1 {
		t.Fatalf("swept before its time: %d left", got)
	}
	clk.advance(2 * time.Hour)
	r.RelayServer().SweepNow()
	if got := r.RelayServer().Stats(); got.MailboxItems != 0 || got.MailboxBytes != 0 {
		t.Fatalf("expired mail kept: %+v", got)
	}
}

// TestPresenceOnlyForFriends: friends see each other's presence on the
// relay; a stranger sees nothing.
func TestPresenceOnlyForFriends(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	u := usersOnRelay(t, r, "alice", "bob", "carol")
	a, b, c := u[0], u[1], u[2]
	nodetest.Befriend(t, a, b)
	nodetest.Eventually(t, 20*time.Second, "B sees A online through the relay", func() bool {
		prs, err := b.RelayClient().Presence(bg, r.ID(), []peer.ID{a.ID()})
		return err == nil && len(prs) == 1 && prs[0].Online
	})
	prs, err := c.RelayClient().Presence(bg, r.ID(), []peer.ID{a.ID(), b.ID()})
	if err != nil || len(prs) != 0 {
		t.Fatalf("a stranger sees %v, %v", prs, err)
	}
	a.Close()
	nodetest.Eventually(t, 20*time.Second, "B sees A offline with a last-seen time", func() bool {
		prs, err := b.RelayClient().Presence(bg, r.ID(), []peer.ID{a.ID()})
		return err == nil && len(prs) == 1 && !prs[0].Online && !prs[0].LastSeen.IsZero()
	})
	// B's allow-list follows its friend list: C, a friend, sees B; once
	// unfriended, not any more.
	nodetest.Befriend(t, b, c)
	nodetest.Eventually(t, 20*time.Second, "C, now a friend, sees B", func() bool {
		prs, err := c.RelayClient().Presence(bg, r.ID(), []peer.ID{b.ID()})
		return err == nil && len(prs) == 1 && prs[0].Online
	})
	if _, err := b.Chat().Remove(bg, c.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 20*time.Second, "C, unfriended, sees B no more", func() bool {
		prs, err := c.RelayClient().Presence(bg, r.ID(), []peer.ID{b.ID()})
		return err == nil && len(prs) == 0
	})
}

// TestFileDrop: a file for an offline friend waits on the relay, sealed,
// and arrives byte-identical when the friend is back; the relay then
// deletes it. A stranger's drop is refused by the relay.
func TestFileDrop(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	homeB := node.Home(t.TempDir())
	a, b, c := startUser(t, r, ""), startUser(t, r, homeB), startUser(t, r, "")
	register(t, a, r, "alice")
	register(t, b, r, "bob")
	register(t, c, r, "carol")
	nodetest.Befriend(t, a, b)
	waitAllowed(t, r, a, b)
	b.Close()

	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "holiday.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RelayClient().DropFile(bg, b.ID(), src, ""); err != nil {
		t.Fatal(err)
	}
	if stats := r.RelayServer().Stats(); stats.DropFiles != 1 || stats.DropBytes < int64(len(data)) || stats.MailboxItems != 1 {
		t.Fatalf("relay after the drop: %+v", stats)
	}
	spam := filepath.Join(t.TempDir(), "spam.bin")
	os.WriteFile(spam, []byte("buy now"), 0o600)
	if _, err := c.RelayClient().DropFile(bg, b.ID(), spam, ""); !errors.Is(err, relay.ErrNotAllowed) {
		t.Fatalf("a stranger's drop: %v, want ErrNotAllowed", err)
	}

	b = startUser(t, r, homeB)
	ev, cancel := b.Events().Subscribe(64)
	defer cancel()
	got := nodetest.WaitEvent(t, ev, node.EventFileDropped, nil).Data.(node.FileDroppedData)
	if got.From != a.ID() || got.Name != "holiday.bin" {
		t.Fatalf("dropped: %+v", got)
	}
	out, err := os.ReadFile(got.Path)
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("the file differs (%d bytes, %v)", len(out), err)
	}
	// A's drop goes from the relay.
	nodetest.Eventually(t, 20*time.Second, "the relay deletes the drop", func() bool {
		stats := r.RelayServer().Stats()
		return stats.DropFiles == 0 && stats.MailboxItems == 0
	})
	files, _ := os.ReadDir(b.Home().DownloadsPath())
	if len(files) != 1 {
		t.Fatalf("downloads: %v", files)
	}
}

// TestDroppedFileFetchedWhileSenderAway: the sender of a dropped file,
// away when the friend fetches it, learns when it was fetched from its
// mailbox when it is back (issue 21, bug 4: until then it is dropped,
// not delivered).
func TestDroppedFileFetchedWhileSenderAway(t *testing.T) {
	homeA, homeB := node.Home(t.TempDir()), node.Home(t.TempDir())
	r, a, b := friendsOnRelay(t, homeA, homeB)
	b.Close()
	src := filepath.Join(t.TempDir(), "minutes.txt")
	os.WriteFile(src, []byte("the minutes"), 0o600)
	sent, err := a.SendFile(bg, node.FileSend{To: b.ID().String(), Path: src, Drop: true})
	if err != nil || !sent.Dropped {
		t.Fatalf("send: %+v %v", sent, err)
	}
	a.ParkOnStop(bg)
	a.Close()
	b = startUser(t, r, homeB)
	nodetest.Eventually(t, 30*time.Second, "b has the file", func() bool {
		fs, _ := b.Files(bg)
		return len(fs) == 1 && fs[0].State == "done"
	})
	nodetest.Eventually(t, 30*time.Second, "b's fetched receipt parked for a", func() bool {
		return r.RelayServer().Stats().MailboxItems > 0
	})
	a = startUser(t, r, homeA)
	nodetest.Eventually(t, 30*time.Second, "a sees it fetched", func() bool {
		fs, _ := a.Files(bg)
		return len(fs) == 1 && fs[0].State == "delivered" && fs[0].Fetched != nil
	})
}

// TestParkedOutboxSplitsIntoLetters: an outbox bigger than one sealed
// envelope goes in several, and every message arrives once.
func TestParkedOutboxSplitsIntoLetters(t *testing.T) {
	homeB := node.Home(t.TempDir())
	r, a, b := friendsOnRelay(t, "", homeB)
	b.Close()
	var ids []string
	for i := range 24 {
		m, err := a.SendMessage(bg, b.ID().String(), node.Draft{Text: strings.Repeat(string(rune('a'+i)), node.MaxTextBytes)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	nodetest.Eventually(t, 30*time.Second, "the relay holds all of it", func() bool {
		return r.RelayServer().Stats().MailboxItems >= 2 && r.RelayServer().Stats().MailboxBytes > int64(24*node.MaxTextBytes)
	})
	a.Close()
	b = startUser(t, r, homeB)
	assertHistory(t, b, a.ID(), ids)
}

// TestGroupMessageThroughMailbox: a group message for a member who is
// away is parked on the relay; the member gets it, once, when it comes
// back and nobody else of the group is online.
func TestGroupMessageThroughMailbox(t *testing.T) {
	r := startRelay(t, "", nil, nil)
	homeB := node.Home(t.TempDir())
	a, b := startUser(t, r, ""), startUser(t, r, homeB)
	register(t, a, r, "alice")
	register(t, b, r, "bob")
	gid := nodetest.JoinGroup(t, []*node.Node{a, b}, "crew")
	nodetest.Eventually(t, 30*time.Second, "A sees B in the group", func() bool {
		ms, err := a.GroupService().Members(bg, gid)
		return err == nil && len(ms) == 2
	})
	// Not friends: B's relay takes A's deposits as a group member's.
	waitAllowed(t, r, a, b)
	b.Close()
	nodetest.Eventually(t, 20*time.Second, "A sees B offline", func() bool { return !a.Chat().Online(b.ID()) })
	m, err := a.SendGroup(bg, gid, node.Draft{Text: "while you were away"})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 20*time.Second, "the relay holds the group message", func() bool {
		return r.RelayServer().Stats().MailboxItems > 0
	})
	a.Close()
	b = startUser(t, r, homeB)
	nodetest.Eventually(t, 30*time.Second, "B gets the group message", func() bool {
		h, err := b.GroupService().History(bg, gid, "", 100)
		if err != nil {
			return false
		}
		n := 0
		for _, x := range h.Messages {
			if x.ID == m.ID {
				n++
			}
		}
		return n == 1
	})
	nodetest.Eventually(t, 20*time.Second, "the relay empties B's mailbox", func() bool {
		return r.RelayServer().Stats().MailboxItems == 0
	})
}
