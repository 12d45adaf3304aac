package history

import (
	"encoding/json"
	"strings"
	"testing"
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
