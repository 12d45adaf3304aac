package chat_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// fakeTimers is the couriers' timer in a test: each timer asked for is
// handed to the test, which fires it.
type fakeTimers struct{ asked chan fakeTimer }

type fakeTimer struct {
	d time.Duration
	c chan time.Time
}

func newFakeTimers() *fakeTimers { return &fakeTimers{asked: make(chan fakeTimer, 1024)} }

func (f *fakeTimers) After(d time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	f.asked <- fakeTimer{d: d, c: c}
	return c
}

// await returns the next timer asked for that match accepts.
func (f *fakeTimers) await(t *testing.T, what string, match func(time.Duration) bool) fakeTimer {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case ft := <-f.asked:
			if match(ft.d) {
				return ft
			}
		case <-deadline:
			t.Fatalf("no %s timer asked for within 60s", what)
		}
	}
}

func newMailbox() *memMailbox {
	return &memMailbox{held: map[peer.ID][][]byte{}, parked: make(chan struct{}, 1)}
}

func heldCount(mb *memMailbox, p peer.ID) int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.held[p])
}

// TestParkTimerNotBackoff: with nothing known of the friend, the courier
// parks when the park timer (park_after, from the first failed attempt)
// fires, not at a backoff tick; and once it has, what comes next is parked
// at once.
func TestParkTimerNotBackoff(t *testing.T) {
	// Long enough that a first attempt slow to fail (a QUIC dial to a
	// closed port waits out its 5 s timeout; more on a loaded machine)
	// leaves the park timer well apart from the backoff ticks.
	const parkAfter = time.Minute
	timers := newFakeTimers()
	a := nodetest.Start(t, nodetest.Options{After: timers.After})
	b := nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	mb := newMailbox()
	a.Chat().SetMailbox(mb, parkAfter)
	b.Close()
	// What the courier asked for before the send is not this test's.
	for len(timers.asked) > 0 {
		<-timers.asked
	}
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "wait for it"}); err != nil {
		t.Fatal(err)
	}
	park := timers.await(t, "park", func(d time.Duration) bool { return d > parkAfter/2 && d <= parkAfter })
	// The backoff ticks come and go: nothing is parked at them.
	for range 2 {
		backoff := timers.await(t, "backoff", func(d time.Duration) bool { return d != park.d })
		backoff.c <- time.Now()
	}
	timers.await(t, "third backoff", func(d time.Duration) bool { return d >= 8*time.Second })
	if n := heldCount(mb, b.ID()); n != 0 {
		t.Fatalf("%d messages parked at a backoff tick", n)
	}
	park.c <- time.Now()
	mb.waitHeld(t, b.ID(), 1)
	// From now on a new message is parked as soon as it is stored.
	start := time.Now()
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "and this one"}); err != nil {
		t.Fatal(err)
	}
	mb.waitHeld(t, b.ID(), 2)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the second message was parked %v after the send", d)
	}
}

// TestParkAtOnceOnLAN: a friend whose relay says "logged out" gets a
// message parked at once, and still directly (it is on the LAN); the
// mailbox copy that arrives later is not a second message.
func TestParkAtOnceOnLAN(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	mb := newMailbox()
	mb.relay = a.ID() // any peer ID names the relay
	a.Chat().SetMailbox(mb, time.Hour)
	a.Chat().SetRelayPresence(b.ID(), false, time.Now())
	evB := nodetest.Events(t, b)
	start := time.Now()
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "on the LAN"})
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	mb.waitHeld(t, b.ID(), 1)
	if d := time.Since(sent); d > 2*time.Second {
		t.Fatalf("parked %v after send returned (send took %v)", d, sent.Sub(start))
	}
	nodetest.WaitEventData(t, evB, chat.EventMessage, func(d any) bool { return d.(*chat.Message).ID == m.ID })
	waitState(t, a, m.ID, chat.MsgDelivered)

	// The mailbox copy comes too: nothing new.
	if err := b.Chat().ReceiveParked(bg, a.ID(), mb.take(b.ID())); err != nil {
		t.Fatal(err)
	}
	assertHistory(t, b, a.ID(), []string{m.ID})
	select {
	case ev := <-evB:
		if ev.Type == chat.EventMessage {
			t.Fatalf("the mailbox copy was announced again: %+v", ev.Data)
		}
	default:
	}
	// The trace says how it went: parked on the relay, sent directly,
	// delivered; B says it came directly.
	tr, err := a.Chat().Trace(bg, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{history.HopQueued: false, history.HopParked: false, history.HopSent: false, history.HopDelivered: false}
	for _, h := range tr.Hops {
		want[h.Event] = true
		if h.Event == history.HopParked && h.Relay != a.ID() {
			t.Errorf("parked on %s, not the mailbox's relay", h.Relay)
		}
		if h.Event == history.HopSent && h.Path != "direct" {
			t.Errorf("sent over %q, not direct", h.Path)
		}
	}
	for ev, ok := range want {
		if !ok {
			t.Errorf("the trace lacks %s: %+v", ev, tr.Hops)
		}
	}
	if tr.Message.DeliveryMS < 0 || tr.Message.State != chat.MsgDelivered {
		t.Errorf("delivered message: %+v", tr.Message)
	}
	trB, err := b.Chat().Trace(bg, m.ID)
	if err != nil || len(trB.Hops) == 0 || trB.Hops[0].Event != history.HopReceived || trB.Hops[0].Path != "direct" {
		t.Fatalf("B's trace: %+v, %v", trB, err)
	}
}

// TestParkAtOnceDeliveredFirst: a message stored while the relay says
// the friend is away is parked even when the direct path had it acked
// before the parker came to it (the friend is on the LAN, and a direct
// ack on loopback often comes first): "parked at once" does not depend
// on which path is quicker.
func TestParkAtOnceDeliveredFirst(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	mb := newMailbox()
	mb.hold = make(chan struct{})
	release := sync.OnceFunc(func() { close(mb.hold) })
	t.Cleanup(release) // a failure below leaves no parker waiting in Ready
	a.Chat().SetMailbox(mb, time.Hour)
	a.Chat().SetRelayPresence(b.ID(), false, time.Now())
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "quicker directly"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, a, m.ID, chat.MsgDelivered)
	release() // the parker gets to it only now
	mb.waitHeld(t, b.ID(), 1)
	if err := b.Chat().ReceiveParked(bg, a.ID(), mb.take(b.ID())); err != nil {
		t.Fatal(err)
	}
	assertHistory(t, b, a.ID(), []string{m.ID})
}

// TestReadReceiptParkedConverges: a read receipt for a sender who is
// away is parked at once, and the sender's message becomes read when it
// takes the receipt from its mailbox: the two are never online together.
func TestReadReceiptParkedConverges(t *testing.T) {
	aHome := node.Home(t.TempDir())
	a, b := nodetest.Start(t, nodetest.Options{Home: aHome}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "read me"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, a, m.ID, chat.MsgDelivered)
	a.Close()

	mbB := newMailbox()
	b.Chat().SetMailbox(mbB, time.Hour)
	b.Chat().SetRelayPresence(a.ID(), false, time.Now())
	if n, err := b.Chat().MarkRead(bg, a.ID()); err != nil || n != 1 {
		t.Fatalf("mark read: %d, %v", n, err)
	}
	mbB.waitHeld(t, a.ID(), 1)
	b.Close()

	a = nodetest.Start(t, nodetest.Options{Home: aHome})
	if err := a.Chat().ReceiveParked(bg, b.ID(), mbB.take(a.ID())); err != nil {
		t.Fatal(err)
	}
	got, err := a.Chat().GetMessage(bg, m.ID)
	if err != nil || got.State != chat.MsgRead {
		t.Fatalf("after the parked receipt: %+v, %v", got, err)
	}
	tr, _ := a.Chat().Trace(bg, m.ID)
	if last := tr.Hops[len(tr.Hops)-1]; last.Event != history.HopRead || last.At.IsZero() {
		t.Fatalf("the trace's last hop: %+v", tr.Hops)
	}
}

// TestDeliveredThroughMailboxConverges: a message parked for a friend
// away, fetched by the friend from its mailbox while the sender is away,
// becomes delivered on the sender's side through the delivery receipt
// the friend parks back; the two are never online together.
func TestDeliveredThroughMailboxConverges(t *testing.T) {
	aHome, bHome := node.Home(t.TempDir()), node.Home(t.TempDir())
	a, b := nodetest.Start(t, nodetest.Options{Home: aHome}), nodetest.Start(t, nodetest.Options{Home: bHome})
	nodetest.Befriend(t, a, b)
	b.Close()
	mbA := newMailbox()
	mbA.relay = a.ID() // a stand-in: the test has no relay
	a.Chat().SetMailbox(mbA, time.Hour)
	a.Chat().SetRelayPresence(b.ID(), false, time.Now())
	evA := nodetest.Events(t, a)
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "through the relay"})
	if err != nil {
		t.Fatal(err)
	}
	mbA.waitHeld(t, b.ID(), 1)
	// A page learns it at once (message.state queued, parked_on), and
	// A's history says where while it waits there.
	nodetest.WaitEventData(t, evA, chat.EventMessageState, func(d any) bool {
		st := d.(chat.StateEvent)
		return st.ID == m.ID && st.State == chat.MsgQueued && st.ParkedOn == a.ID()
	})
	nodetest.Eventually(t, 10*time.Second, "the history to say parked", func() bool {
		got, err := a.Chat().GetMessage(bg, m.ID)
		return err == nil && got.State == chat.MsgQueued && got.ParkedOn == a.ID()
	})
	a.Close()

	b = nodetest.Start(t, nodetest.Options{Home: bHome})
	mbB := newMailbox()
	b.Chat().SetMailbox(mbB, time.Hour)
	b.Chat().SetRelayPresence(a.ID(), false, time.Now())
	if err := b.Chat().ReceiveLetter(bg, a.ID(), a.ID(), mbA.take(b.ID())); err != nil {
		t.Fatal(err)
	}
	trB, err := b.Chat().Trace(bg, m.ID)
	if err != nil || trB.Hops[0].Path != history.PathMailbox || trB.Hops[0].Relay != a.ID() {
		t.Fatalf("B's trace: %+v, %v", trB, err)
	}
	mbB.waitHeld(t, a.ID(), 1) // the delivery receipt
	b.Close()

	a = nodetest.Start(t, nodetest.Options{Home: aHome})
	if err := a.Chat().ReceiveParked(bg, b.ID(), mbB.take(a.ID())); err != nil {
		t.Fatal(err)
	}
	got, err := a.Chat().GetMessage(bg, m.ID)
	if err != nil || got.State != chat.MsgDelivered || got.ParkedOn != "" {
		t.Fatalf("after the delivery receipt: %+v, %v", got, err)
	}
	tr, _ := a.Chat().Trace(bg, m.ID)
	var events []string
	for _, h := range tr.Hops {
		events = append(events, h.Event)
	}
	for _, want := range []string{history.HopQueued, history.HopParked, history.HopFetched, history.HopDelivered} {
		found := false
		for _, e := range events {
			found = found || e == want
		}
		if !found {
			t.Errorf("A's trace lacks %s: %v", want, events)
		}
	}
}

// TestFetchedAfterDirectAck: a message that the friend took out of a
// mailbox, but whose resend was acked directly before the friend's
// delivery receipt came (a sender back online while the friend is),
// keeps in its trace that it was fetched through the mailbox, and its
// delivery time is the fetch's. The friend's trace of a message it read
// says when.
func TestFetchedAfterDirectAck(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "taken twice"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, a, m.ID, chat.MsgDelivered)
	// b's receipt says it fetched the message when it was sent.
	if err := a.Chat().ReceiveParked(bg, b.ID(), [][]byte{chat.ParkedDelivered(b.ID(), a.ID(), 7, m.Time, m.ID)}); err != nil {
		t.Fatal(err)
	}
	tr, err := a.Chat().Trace(bg, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]history.Hop{}
	for _, h := range tr.Hops {
		got[h.Event] = h
	}
	if f, ok := got[history.HopFetched]; !ok || f.Path != history.PathMailbox || !f.At.Equal(m.Time) {
		t.Fatalf("the trace's fetched hop: %+v", tr.Hops)
	}
	if _, ok := got[history.HopDelivered]; !ok || got[history.HopSent].Path != "direct" {
		t.Fatalf("the direct path's hops are gone: %+v", tr.Hops)
	}
	if tr.Message.DeliveryMS != 0 {
		t.Errorf("delivered %d ms after sending, not when fetched", tr.Message.DeliveryMS)
	}

	before := time.Now().Truncate(time.Millisecond)
	if n, err := b.Chat().MarkRead(bg, a.ID()); err != nil || n != 1 {
		t.Fatalf("mark read: %d, %v", n, err)
	}
	trB, err := b.Chat().Trace(bg, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := trB.Hops[len(trB.Hops)-1]; last.Event != history.HopRead || last.At.Before(before) || last.At.After(time.Now()) {
		t.Fatalf("b's trace after reading: %+v", trB.Hops)
	}
}

// TestParkAllBoundedWhileAParkHangs: a clean stop's ParkAll keeps to its
// bound (park_on_stop) when the courier's own park waits on a relay that
// does not answer: it gives up its turn and reports the message queued.
// It used to wait for the park's lock, as long as the relay took (a
// stop that hung past the test's 15 s).
func TestParkAllBoundedWhileAParkHangs(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	b.Close()
	mb := newMailbox()
	mb.stall, mb.stalled = make(chan struct{}), make(chan struct{}, 1)
	t.Cleanup(func() { close(mb.stall) })
	a.Chat().SetMailbox(mb, time.Hour)
	a.Chat().SetRelayPresence(b.ID(), false, time.Now())
	if _, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "stuck at the relay"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mb.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the courier did not park within 30s")
	}
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	done := make(chan chat.ParkReport, 1)
	go func() { done <- a.Chat().ParkAll(ctx) }()
	select {
	case rep := <-done:
		if rep.Parked != 0 || rep.Queued[b.ID()] != 1 {
			t.Fatalf("ParkAll: %+v, want nothing parked and the message queued", rep)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ParkAll waited for the park that hangs, past its 300ms")
	}
}
