package node

import (
	"errors"
	"testing"
)

// TestPick: a reference names an exact ID, else a whole name (any case),
// else a unique ID prefix (or tail) of minPrefix characters or more; two
// that fit equally are an AmbiguousError listing both.
func TestPick(t *testing.T) {
	entries := []entry{
		{id: "12D3KooWAAAAAAAAbob111", names: []string{"Bob", "bobby"}, label: "Bob"},
		{id: "12D3KooWBBBBBBBBbob222", names: []string{"bob", ""}, label: "bob"},
		{id: "12D3KooWCCCCCCCCcarol3", names: []string{"Carol", "carol"}, label: "Carol"},
	}
	for _, tc := range []struct {
		ref, want string
		ambiguous bool
	}{
		{ref: "12D3KooWCCCCCCCCcarol3", want: "12D3KooWCCCCCCCCcarol3"}, // exact ID
		{ref: "CAROL", want: "12D3KooWCCCCCCCCcarol3"},                  // a name, any case
		{ref: "bobby", want: "12D3KooWAAAAAAAAbob111"},                  // the username
		{ref: "12D3KooWA", want: "12D3KooWAAAAAAAAbob111"},              // a prefix
		{ref: "…bob222", want: "12D3KooWBBBBBBBBbob222"},                // a tail, as ShortID prints it
		{ref: "bob222", want: "12D3KooWBBBBBBBBbob222"},
		{ref: "bob", ambiguous: true},      // two nicknames
		{ref: "12D3KooW", ambiguous: true}, // a prefix of all
		{ref: "12D3K"},                     // too short to be a prefix: nothing
		{ref: "dave"},
	} {
		e, ok, err := pick(tc.ref, "peer", entries, true)
		var amb *AmbiguousError
		switch {
		case tc.ambiguous:
			if !errors.As(err, &amb) || !errors.Is(err, ErrAmbiguous) || len(amb.Candidates) < 2 {
				t.Errorf("%q: %v, want an AmbiguousError with the candidates", tc.ref, err)
			}
		case tc.want == "":
			if ok || err != nil {
				t.Errorf("%q: %v %v, want nothing", tc.ref, e.id, err)
			}
		case err != nil || !ok || e.id != tc.want:
			t.Errorf("%q: %q %v %v, want %q", tc.ref, e.id, ok, err, tc.want)
		}
	}
	// A whole name wins over a prefix that fits something else.
	entries = append(entries, entry{id: "carol1XXXXXXXX"}, entry{id: "12D3KooWDDDDDDDD", names: []string{"carol1"}})
	if e, ok, err := pick("carol1", "peer", entries, false); !ok || err != nil || e.id != "12D3KooWDDDDDDDD" {
		t.Errorf("name over prefix: %q %v %v", e.id, ok, err)
	}
	_, _, err := pick("bob", "peer", entries, true)
	if got := err.Error(); got != `node: "bob" names more than one peer: Bob (12D3KooWAAAAAAAAbob111), bob (12D3KooWBBBBBBBBbob222); use more of the ID` {
		t.Errorf("message: %s", got)
	}
}
