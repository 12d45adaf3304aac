package nodetest

import (
	"context"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/node"
)

// Befriend makes a and b friends through the real request and accept.
func Befriend(t testing.TB, a, b *node.Node) {
	t.Helper()
	evA, cancelA := a.Events().Subscribe(1024)
	defer cancelA()
	evB, cancelB := b.Events().Subscribe(1024)
	defer cancelB()
	ctx := context.Background()
	if _, err := a.Chat().AddFriend(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}, "hi"); err != nil {
		t.Fatal(err)
	}
	WaitEvent(t, evB, chat.EventFriendRequest, func(ev node.Event) bool {
		return ev.Data.(chat.ContactEvent).PeerID == a.ID()
	})
	if _, err := b.Chat().Accept(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}
	WaitEvent(t, evA, chat.EventFriendUpdate, func(ev node.Event) bool {
		e := ev.Data.(chat.ContactEvent)
		return e.PeerID == b.ID() && e.State == chat.StateFriend
	})
}
