package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/internal/nodetest"
	"github.com/meshtalk/meshtalk/node"
)

// relayUser starts a personal node that uses relay r.
func relayUser(t *testing.T, r *node.Node) *node.Node {
	t.Helper()
	addr := nodetest.Addr(t, r)
	return nodetest.Start(t, nodetest.Options{Configure: func(c *node.Config) { c.Discovery.Relays = []string{addr} }})
}

// registerOn registers name for u on r and waits until u is logged in.
func registerOn(t *testing.T, u, r *node.Node, name string) {
	t.Helper()
	if _, err := u.RelayClient().Register(context.Background(), peer.AddrInfo{ID: r.ID(), Addrs: r.Host().Addrs()}, name, ""); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	nodetest.Eventually(t, 20*time.Second, "logged in", func() bool {
		for _, s := range u.RelayClient().Status() {
			if s.PeerID == r.ID() && s.LoggedIn {
				return true
			}
		}
		return false
	})
}

// TestDeclinedPeerSeesNoProfile: a peer whose friend request was declined
// gets neither the decliner's profile with the answer nor its status from
// the relay; a friend gets both.
func TestDeclinedPeerSeesNoProfile(t *testing.T) {
	r := nodetest.Start(t, nodetest.Options{Role: node.RoleRelay})
	a, b, c := relayUser(t, r), relayUser(t, r), relayUser(t, r)
	name, status := "Bob", "at the dentist"
	if _, err := b.Chat().SetProfile(context.Background(), chat.ProfileUpdate{Name: &name, Status: &status}); err != nil {
		t.Fatal(err)
	}
	registerOn(t, a, r, "alice")
	registerOn(t, b, r, "bob")
	registerOn(t, c, r, "carol")
	evB, evC := nodetest.Events(t, b), nodetest.Events(t, c)
	if _, err := c.Chat().AddFriend(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}, "hi"); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evB, chat.EventFriendRequest, func(d any) bool { return d.(chat.ContactEvent).PeerID == c.ID() })
	if _, err := b.Chat().Decline(context.Background(), c.ID()); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitEventData(t, evC, chat.EventFriendUpdate, func(d any) bool {
		e := d.(chat.ContactEvent)
		return e.PeerID == b.ID() && e.State == chat.StateDeclined
	})
	if got, _ := c.Chat().Contact(context.Background(), b.ID()); got.Profile != nil {
		t.Fatalf("the declined peer has the profile %+v", got.Profile)
	}
	nodetest.Befriend(t, a, b)
	nodetest.Eventually(t, 20*time.Second, "b's status reaches the relay", func() bool {
		u, err := a.RelayClient().Lookup(context.Background(), "bob", r.ID())
		return err == nil && u.Profile.Status == status
	})
	u, err := c.RelayClient().Lookup(context.Background(), "bob", r.ID())
	if err != nil {
		t.Fatal(err)
	}
	if u.Profile.Status != "" || u.Profile.Nickname != "" {
		t.Fatalf("the relay shows a stranger b's profile %+v", u.Profile)
	}
}
