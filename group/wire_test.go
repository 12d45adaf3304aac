package group

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history"
	historypb "github.com/meshtalk/meshtalk/history/pb"
)

// TestEnvelopeIDChecked: a member opens a group message only under the ID
// derived from its envelope; the author's own signature does not help.
func TestEnvelopeIDChecked(t *testing.T) {
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(priv)
	gid, key := make([]byte, groupIDLen), newKey()
	const ms = 1_700_000_000_000
	for _, tc := range []struct {
		name string
		id   string
		ok   bool
	}{
		{"derived", history.GroupMessageID(gid, self, 3, ms), true},
		{"another seq's", history.GroupMessageID(gid, self, 2, ms), false},
		{"another time's", history.GroupMessageID(gid, self, 3, ms+1), false},
		{"a DM's", history.DMID(self, self, ms, 3), false},
	} {
		env, err := sealEnvelope(priv, self, gid, 3, 0, key, &historypb.Message{Id: tc.id, Kind: history.KindText, Text: "hi", Hlc: 1, SentAtMs: ms})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.open(key); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadFrame)) {
			t.Fatalf("%s ID: open: %v", tc.name, err)
		}
	}
}
