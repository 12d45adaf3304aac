package api

import (
	"testing"
	"time"
)

func TestLoginCodeExpires(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newSessions(func() time.Time { return now })
	code, exp := s.newCode()
	if exp.Sub(now) != loginCodeTTL {
		t.Fatalf("code lasts %v, want %v", exp.Sub(now), loginCodeTTL)
	}
	now = now.Add(loginCodeTTL)
	if _, _, ok := s.login(code); ok {
		t.Fatal("an expired code logged in")
	}
	code, _ = s.newCode()
	now = now.Add(loginCodeTTL - time.Second)
	if _, _, ok := s.login(code); !ok {
		t.Fatal("a fresh code did not log in")
	}
}

func TestSessionsBounded(t *testing.T) {
	s := newSessions(time.Now)
	for range 3 * maxLoginCodes {
		s.newCode()
	}
	if len(s.codes) > maxLoginCodes {
		t.Fatalf("%d codes kept, want at most %d", len(s.codes), maxLoginCodes)
	}
	for range 2 * maxSessions {
		code, _ := s.newCode()
		if _, _, ok := s.login(code); !ok {
			t.Fatal("login failed")
		}
	}
	if len(s.live) > maxSessions {
		t.Fatalf("%d sessions kept, want at most %d", len(s.live), maxSessions)
	}
}
