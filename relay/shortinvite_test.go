package relay_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshtalk/meshtalk/relay"
)

// TestShortInvite: a logged-in user's invite is held under a short code
// that a peer who is logged in nowhere resolves; the code reads in any
// case and with look-alikes, a typo fails its check before any relay is
// asked, it expires with the invite, and a user holds a bounded number.
func TestShortInvite(t *testing.T) {
	clk := &clock{}
	r := startRelay(t, "", clk, nil)
	a, b := startUser(t, r, ""), startUser(t, r, "")
	register(t, a, r, "alice")
	const invite = "mtg1-the-full-invite-code-of-about-360-Case-Sensitive-characters"
	code, held, err := a.RelayClient().PutShortInvite(bg, invite, clk.now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if held != r.ID() || len(code) > 16 || !relay.IsShortCode(code) {
		t.Fatalf("short code %q on %s", code, held)
	}
	// b has no account: asking needs none.
	typed := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(code, "1", "l"), "0", "o"))
	if got, err := b.RelayClient().GetShortInvite(bg, typed); err != nil || got != invite {
		t.Fatalf("get %q: %q, %v", typed, got, err)
	}
	typo := []byte(code)
	typo[0] = map[bool]byte{true: 'X', false: 'Y'}[typo[0] != 'X']
	if _, err := b.RelayClient().GetShortInvite(bg, string(typo)); !errors.Is(err, relay.ErrBadShortCode) {
		t.Fatalf("a typo: %v, want ErrBadShortCode", err)
	}
	if _, _, err := b.RelayClient().PutShortInvite(bg, invite, clk.now().Add(time.Hour)); !errors.Is(err, relay.ErrNoRelay) {
		t.Fatalf("put while logged in nowhere: %v, want ErrNoRelay", err)
	}
	clk.advance(2 * time.Hour)
	if _, err := b.RelayClient().GetShortInvite(bg, code); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("an expired code: %v, want ErrNotFound", err)
	}
	// The sweeper deletes it from the relay's disk.
	r.RelayServer().SweepNow()
	if n := relay.ShortInvitesHeld(r.RelayServer()); n != 0 {
		t.Fatalf("%d short invites held after the sweep, want 0", n)
	}
	// The cap counts live codes only (the expired one is gone).
	for made := 0; made < relay.MaxShortInvitesPerUser; {
		_, _, err := a.RelayClient().PutShortInvite(bg, invite, clk.now().Add(time.Hour))
		switch {
		case err == nil:
			made++
		case errors.Is(err, relay.ErrQuota) && strings.Contains(err.Error(), "too many short-code requests"):
			clk.advance(time.Minute) // the rate limit, not the cap
		default:
			t.Fatalf("put %d: %v", made, err)
		}
	}
	clk.advance(time.Minute)
	if _, _, err := a.RelayClient().PutShortInvite(bg, invite, clk.now().Add(time.Hour)); !errors.Is(err, relay.ErrQuota) || !strings.Contains(err.Error(), "at a time") {
		t.Fatalf("over the cap: %v, want ErrQuota", err)
	}
}

// TestShortCodeCheck: every change of one symbol and every swap of two
// adjacent ones fails the check.
func TestShortCodeCheck(t *testing.T) {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	for range 200 {
		code, err := relay.ParseShortCode(relay.NewShortCodeForTest())
		if err != nil {
			t.Fatal(err)
		}
		for i := range len(code) {
			for _, c := range []byte(alphabet) {
				if c == code[i] {
					continue
				}
				bad := []byte(code)
				bad[i] = c
				if relay.IsShortCode(string(bad)) {
					t.Fatalf("%s passes for %s", bad, code)
				}
			}
			if i+1 < len(code) && code[i] != code[i+1] {
				bad := []byte(code)
				bad[i], bad[i+1] = bad[i+1], bad[i]
				if relay.IsShortCode(string(bad)) {
					t.Fatalf("swapped %s passes for %s", bad, code)
				}
			}
		}
	}
}
