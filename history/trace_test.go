package history

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/history/pb"
)

// TestTraceMembersJSON: a trace's per member maps are keyed by the
// members' peer IDs in text, and read back.
func TestTraceMembersJSON(t *testing.T) {
	p := peerFrom(t, 7)
	tr := Trace{Members: ByPeer[[]Hop]{p: {{Event: HopRead, Peer: p}}}, Names: ByPeer[string]{p: "Bob"}}
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"`+p.String()+`":"Bob"`) {
		t.Fatalf("json: %s", b)
	}
	var back Trace
	if err := json.Unmarshal(b, &back); err != nil || back.Names[p] != "Bob" || back.Members[p][0].Event != HopRead {
		t.Fatalf("back: %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"names":{"nope":"x"}}`), &back); err == nil {
		t.Fatal("a key that is no peer ID is accepted")
	}
}

// TestDeliveredHopUnfolds: a delivered hop stored with the step before
// it (one record per acked message) reads back as both hops, the path
// and relay on the step before.
func TestDeliveredHopUnfolds(t *testing.T) {
	relay := peer.ID("\x00\x05relay")
	sent := Hop{Event: HopSent, At: time.UnixMilli(1_700_000_000_000), Path: "relayed", Relay: relay}
	h := Delivered(sent, time.UnixMilli(1_700_000_000_250))
	got := hopFromWire(wireOf(h)).unfold()
	want := []Hop{sent, {Event: HopDelivered, At: time.UnixMilli(1_700_000_000_250)}}
	if len(got) != 2 || got[0] != want[0] || got[1].Event != want[1].Event || !got[1].At.Equal(want[1].At) || got[1].Path != "" || got[1].Prev != nil {
		t.Fatalf("unfolded %+v, want %+v", got, want)
	}
	plain := Hop{Event: HopParked, At: sent.At, Relay: relay}
	if got := hopFromWire(wireOf(plain)).unfold(); len(got) != 1 || got[0] != plain {
		t.Fatalf("a hop without a step before unfolded to %+v", got)
	}
}

// wireOf is h as stored.
func wireOf(h Hop) *pb.Hop {
	w := new(pb.Hop)
	h.fill(w)
	return w
}
