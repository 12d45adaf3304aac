package chat_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// TestDMWritesPerMessage: a message sent one at a time costs the sender
// its record and ID index, the acked mark and its trace's delivered hop
// (the clock's lease about once a second); the receiver the record and
// ID index. (Before the acked mark: an outbox entry put and deleted and
// the clock on the sender, a received mark on the receiver.)
func TestDMWritesPerMessage(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	send := func(i int) {
		m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: fmt.Sprintf("message %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, a, m.ID, chat.MsgDelivered)
	}
	send(0) // the conversation's first: the mark's first write
	const n = 30
	a0, b0 := a.ChatWrites(), b.ChatWrites()
	for i := range n {
		send(i + 1)
	}
	aw, bw := a.ChatWrites().Sub(a0), b.ChatWrites().Sub(b0)
	// A few writes of other kinds (a contact's last seen) may fall in.
	if aw.Writes() > 4*n+3 || bw.Writes() > 2*n+3 {
		t.Fatalf("%d messages: the sender wrote %d keys (%+v), the receiver %d (%+v); want at most 4 and 2 a message",
			n, aw.Writes(), aw, bw.Writes(), bw)
	}
}

// TestAckedOutOfOrderAcrossRestart: a message acked while one sent before
// it waits is delivered, and stays so across a restart, while the one
// before it stays queued and is delivered once the friend is back.
func TestAckedOutOfOrderAcrossRestart(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	// b's DM handler, for now: acks the third message only.
	got := make(chan []string, 1)
	b.Host().SetStreamHandler(chat.DMProtocol, func(s network.Stream) {
		r := bufio.NewReader(s)
		ids, err := chat.ReadMessageIDs(r, 3)
		if err != nil {
			s.Reset()
			return
		}
		s.Write(chat.AckFrame(ids[2]))
		got <- ids
		r.ReadByte() // until a resets it
		s.Reset()
	})
	var ids []string
	for i := range 3 {
		m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: fmt.Sprintf("message %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	waitState(t, a, ids[2], chat.MsgDelivered)
	if sent := <-got; fmt.Sprint(sent) != fmt.Sprint(ids) {
		t.Fatalf("b got %v, want %v", sent, ids)
	}
	states := func(n *node.Node, want ...string) {
		t.Helper()
		for i, id := range ids {
			m, err := n.Chat().GetMessage(bg, id)
			if err != nil || m.State != want[i] {
				t.Fatalf("message %d: %v %v, want %s", i, m, err, want[i])
			}
		}
	}
	states(a, chat.MsgQueued, chat.MsgQueued, chat.MsgDelivered)

	aHome, bHome, bListen := a.Home(), b.Home(), nodetest.ListenAddrs(b)
	a.Close()
	b.Close()
	a = nodetest.Start(t, nodetest.Options{Home: aHome})
	states(a, chat.MsgQueued, chat.MsgQueued, chat.MsgDelivered)
	// b back, with its own handler: the first two come, once each.
	b = nodetest.Start(t, nodetest.Options{Home: bHome, Configure: func(c *node.Config) { c.Network.Listen = bListen }})
	waitState(t, a, ids[1], chat.MsgDelivered)
	states(a, chat.MsgDelivered, chat.MsgDelivered, chat.MsgDelivered)
	assertHistory(t, b, a.ID(), ids[:2])
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "after"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, a, m.ID, chat.MsgDelivered)
	assertHistory(t, b, a.ID(), append(ids[:2:2], m.ID))
}

// TestSchema1Outbox: a store of schema 1, whose outbox has an entry for
// each message in the history not yet delivered, is moved to schema 2 on
// open, and its queued messages are delivered, as are new ones.
func TestSchema1Outbox(t *testing.T) {
	a, b := nodetest.Start(t, nodetest.Options{}), nodetest.Start(t, nodetest.Options{})
	nodetest.Befriend(t, a, b)
	aHome, bHome, bListen := a.Home(), b.Home(), nodetest.ListenAddrs(b)
	b.Close()
	var msgs []*chat.Message
	for i := range 3 {
		m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: fmt.Sprintf("queued %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	a.Close()
	// What schema 1 wrote for them: an empty /outbox/ entry each, no mark.
	ds, err := pebbleds.NewDatastore(aHome.DatastorePath())
	if err != nil {
		t.Fatal(err)
	}
	pstr := b.ID().String()
	put := func(k string, v []byte) {
		if err := ds.Put(bg, datastore.RawKey("/chat"+k), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := ds.Delete(bg, datastore.RawKey("/chat/acked/"+pstr)); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		put(history.ConvKey("/outbox/", pstr, m.HLC, m.ID), nil)
	}
	put("/schema", []byte("1"))
	put("/received/"+pstr, binary.BigEndian.AppendUint64(nil, 1))
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}

	a = nodetest.Start(t, nodetest.Options{Home: aHome})
	for _, m := range msgs {
		if got, err := a.Chat().GetMessage(bg, m.ID); err != nil || got.State != chat.MsgQueued {
			t.Fatalf("after the move to schema 2: %v %v, want queued", got, err)
		}
	}
	m, err := a.Chat().Send(bg, b.ID(), chat.Draft{Text: "new"})
	if err != nil {
		t.Fatal(err)
	}
	b = nodetest.Start(t, nodetest.Options{Home: bHome, Configure: func(c *node.Config) { c.Network.Listen = bListen }})
	waitState(t, a, m.ID, chat.MsgDelivered)
	for _, old := range msgs {
		waitState(t, a, old.ID, chat.MsgDelivered)
	}
	assertHistory(t, b, a.ID(), []string{msgs[0].ID, msgs[1].ID, msgs[2].ID, m.ID})
}
