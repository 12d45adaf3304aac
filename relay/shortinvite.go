package relay

// Short invite codes, on /meshtalk/relay/account/1.0.0 (an addition to
// its requests: an older relay answers them codeBadRequest, "empty or
// unknown request").
//
// A group invite code is about 360 case-sensitive characters: fine to
// paste, hard to read out or type. An inviter logged in to a relay asks
// it to hold the invite under a short code the relay picks; a joiner who
// has the short code asks its relays for the invite, then joins with it
// as with the full code.
//
//	inviter                              relay
//	AccountRequest{short_put: invite, expires_ms} -->   needs a session
//	                                     <--  AccountReply{short_code}
//	joiner
//	AccountRequest{short_get: code}      -->   needs no session
//	                                     <--  AccountReply{invite, expires_ms}
//
// A short code is ShortCodeLen symbols of Crockford's base 32 (digits and
// upper-case letters without I, L, O and U), the last a check symbol
// over the others (shortCheck), written in groups of five with dashes
// ("7KX2M-QD4RA-W"). Reading one folds case, drops dashes and spaces, and
// reads I and L as 1 and O as 0, so a code read out loud or typed in
// lower case still works, and the check symbol catches a mistyped symbol
// or two swapped ones before any relay is asked. It carries 50 random bits; the relay
// answers lookups at a bounded rate per peer (shortGetRate), so guessing
// one is hopeless.
//
// The relay holds a code until the invite expires (at most
// MaxShortInviteTTL), MaxShortInvitesPerUser per user at a time. The
// invite stays the inviter's signed group invite: a relay that answered
// another code's invite could only send the joiner to a group it was
// invited to anyway, and the joiner's node checks the invite as always.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/meshtalk/meshtalk/relay/pb"
)

// Limits of short invites.
const (
	// ShortCodeLen is the symbols of a short code, the check symbol
	// included.
	ShortCodeLen = 11
	// MaxShortInviteLen bounds an invite a relay holds.
	MaxShortInviteLen = 2048
	// MaxShortInvitesPerUser bounds the codes one user has at a time.
	MaxShortInvitesPerUser = 32
	// MaxShortInviteTTL bounds how long a relay holds one.
	MaxShortInviteTTL = 30 * 24 * time.Hour
	// shortGetRate and shortGetBurst bound each peer's short-code
	// requests (lookups and registrations) on a relay.
	shortGetRate  = rate.Limit(1)
	shortGetBurst = 10
	// maxShortLimiters bounds the peers whose rate the relay tracks; past
	// it, it starts over.
	maxShortLimiters = 4096
)

// ErrNoShortInvite: no relay holds that short code (never made, expired,
// or on a relay this node does not use).
var ErrNoShortInvite = fmt.Errorf("%w: no invite under that short code (expired, or held by a relay you do not use)", ErrNotFound)

// ErrBadShortCode: a text that is no short code, or one whose check
// symbol does not match (a typo).
var ErrBadShortCode = fmt.Errorf("%w: not a short invite code, or a typo in it", ErrBadRequest)

// shortAlphabet is Crockford's base 32.
const shortAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// shortCheck is the check symbol of a code's first ShortCodeLen-1
// symbols: their values as elements of GF(32), weighted by distinct
// powers of a generator (none of them 1, the check's own weight), and
// summed. Changing one symbol, or swapping two adjacent ones (the check
// symbol included), always changes the sum.
func shortCheck(body string) byte {
	var sum, w byte = 0, 1
	for i := 0; i < len(body); i++ {
		w = gf32Mul(w, 2)
		sum ^= gf32Mul(w, byte(strings.IndexByte(shortAlphabet, body[i])))
	}
	return shortAlphabet[sum]
}

// gf32Mul multiplies in GF(2^5) modulo x^5 + x^2 + 1.
func gf32Mul(a, b byte) byte {
	var p byte
	for ; b != 0; b >>= 1 {
		if b&1 != 0 {
			p ^= a
		}
		a <<= 1
		if a&0x20 != 0 {
			a ^= 0x25
		}
	}
	return p & 31
}

// newShortCode is a random code in canonical form (no dashes).
func newShortCode() string {
	b := make([]byte, ShortCodeLen-1)
	rand.Read(b)
	for i := range b {
		b[i] = shortAlphabet[b[i]&31]
	}
	return string(b) + string(shortCheck(string(b)))
}

// ParseShortCode reads a short code as a person may type it and answers
// its canonical form; ErrBadShortCode when it is none.
func ParseShortCode(s string) (string, error) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'I' || r == 'L':
			r = '1'
		case r == 'O':
			r = '0'
		}
		if r > 127 || !strings.ContainsRune(shortAlphabet, r) || b.Len() >= ShortCodeLen {
			return "", ErrBadShortCode
		}
		b.WriteRune(r)
	}
	code := b.String()
	if len(code) != ShortCodeLen || shortCheck(code[:ShortCodeLen-1]) != code[ShortCodeLen-1] {
		return "", ErrBadShortCode
	}
	return code, nil
}

// FormatShortCode writes a canonical code in groups of five.
func FormatShortCode(code string) string {
	var parts []string
	for len(code) > 5 {
		parts = append(parts, code[:5])
		code = code[5:]
	}
	return strings.Join(append(parts, code), "-")
}

// IsShortCode says whether s reads as a short code.
func IsShortCode(s string) bool {
	_, err := ParseShortCode(s)
	return err == nil
}

// shortInvite is what a relay holds under a short code.
type shortInvite struct {
	Invite  string    `json:"invite"`
	Owner   peer.ID   `json:"owner"`
	Expires time.Time `json:"expires"`
}

// shortPutFromWire checks a registration and answers its invite and
// expiry, capped at MaxShortInviteTTL from now.
func shortPutFromWire(w *pb.ShortInvitePut, now time.Time) (string, time.Time, error) {
	inv := w.GetInvite()
	if inv == "" || len(inv) > MaxShortInviteLen {
		return "", time.Time{}, fmt.Errorf("%w: an invite of 1 to %d bytes", ErrBadRequest, MaxShortInviteLen)
	}
	exp := time.UnixMilli(w.GetExpiresMs())
	if !exp.After(now) {
		return "", time.Time{}, fmt.Errorf("%w: the invite has expired", ErrBadRequest)
	}
	if limit := now.Add(MaxShortInviteTTL); exp.After(limit) {
		exp = limit
	}
	return inv, exp, nil
}

// shortAllow charges p one short-code request.
func (s *Server) shortAllow(p peer.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.shortLimits[p]
	if l == nil {
		if len(s.shortLimits) >= maxShortLimiters {
			clear(s.shortLimits)
		}
		l = rate.NewLimiter(shortGetRate, shortGetBurst)
		s.shortLimits[p] = l
	}
	if !l.AllowN(s.cfg.Now(), 1) {
		return fmt.Errorf("%w: too many short-code requests; try again in a minute", ErrQuota)
	}
	return nil
}

// shortPut holds an invite of p's under a new short code.
func (s *Server) shortPut(ctx context.Context, p peer.ID, w *pb.ShortInvitePut) (string, error) {
	if err := s.loggedIn(p); err != nil {
		return "", err
	}
	if err := s.shortAllow(p); err != nil {
		return "", err
	}
	now := s.cfg.Now()
	inv, exp, err := shortPutFromWire(w, now)
	if err != nil {
		return "", err
	}
	s.shortMu.Lock()
	defer s.shortMu.Unlock()
	live, err := s.liveShortCodes(ctx, p, now)
	if err != nil {
		return "", err
	}
	if live >= MaxShortInvitesPerUser {
		return "", fmt.Errorf("%w: %d short invites at a time; wait for one to expire", ErrQuota, MaxShortInvitesPerUser)
	}
	code := newShortCode()
	for taken, _ := s.ds.Has(ctx, shortKey(code)); taken; taken, _ = s.ds.Has(ctx, shortKey(code)) {
		code = newShortCode()
	}
	b, _ := json.Marshal(shortInvite{Invite: inv, Owner: p, Expires: exp})
	batch, err := s.ds.Batch(ctx)
	if err != nil {
		return "", err
	}
	batch.Put(ctx, shortKey(code), b)
	batch.Put(ctx, shortByKey(p, code), nil)
	if err := batch.Commit(ctx); err != nil {
		return "", err
	}
	// The inviter hands the code out once it has it: it must be on disk.
	return code, s.ds.Sync(ctx, datastore.NewKey("/"))
}

// liveShortCodes counts p's codes that have not expired and deletes
// those that have; shortMu held.
func (s *Server) liveShortCodes(ctx context.Context, p peer.ID, now time.Time) (int, error) {
	var codes []string
	err := scan(ctx, s.ds, shortByPrefix(p), func(key string, _ []byte) {
		codes = append(codes, datastore.RawKey(key).BaseNamespace())
	})
	if err != nil {
		return 0, err
	}
	live := 0
	for _, code := range codes {
		if _, err := s.shortGet(ctx, code, now); errors.Is(err, ErrNoShortInvite) {
			s.ds.Delete(ctx, shortKey(code))
			s.ds.Delete(ctx, shortByKey(p, code))
			continue
		}
		live++
	}
	return live, nil
}

// shortGet is the invite held under code, unexpired.
func (s *Server) shortGet(ctx context.Context, code string, now time.Time) (*shortInvite, error) {
	b, err := s.ds.Get(ctx, shortKey(code))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, ErrNoShortInvite
	}
	if err != nil {
		return nil, err
	}
	var si shortInvite
	if err := json.Unmarshal(b, &si); err != nil || !si.Expires.After(now) {
		return nil, ErrNoShortInvite
	}
	return &si, nil
}

// sweepShortInvites deletes the short codes whose invites expired.
func (s *Server) sweepShortInvites(now time.Time) error {
	var expired []shortInvite
	var codes []string
	err := scan(s.ctx, s.ds, "/short", func(key string, v []byte) {
		var si shortInvite
		if json.Unmarshal(v, &si) != nil || !si.Expires.After(now) {
			expired = append(expired, si)
			codes = append(codes, datastore.RawKey(key).BaseNamespace())
		}
	})
	if err != nil {
		return err
	}
	s.shortMu.Lock()
	defer s.shortMu.Unlock()
	for i, code := range codes {
		s.ds.Delete(s.ctx, shortKey(code))
		if expired[i].Owner != "" {
			s.ds.Delete(s.ctx, shortByKey(expired[i].Owner, code))
		}
	}
	return nil
}

// shortLookup answers a joiner's request for a short code's invite.
func (s *Server) shortLookup(ctx context.Context, p peer.ID, w *pb.ShortInviteGet) (*pb.AccountReply, error) {
	if err := s.shortAllow(p); err != nil {
		return nil, err
	}
	code, err := ParseShortCode(w.GetCode())
	if err != nil {
		return nil, err
	}
	si, err := s.shortGet(ctx, code, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	return &pb.AccountReply{Invite: si.Invite, ExpiresMs: si.Expires.UnixMilli()}, nil
}

// PutShortInvite asks the relays this node is logged in to, in order,
// to hold invite (a group invite code) under a short code until expires;
// it answers the code, formatted, and the relay that holds it.
func (c *Client) PutShortInvite(ctx context.Context, invite string, expires time.Time) (string, peer.ID, error) {
	relays := c.loggedInRelays()
	if len(relays) == 0 {
		return "", "", fmt.Errorf("%w: short invites need a relay you are logged in to", ErrNoRelay)
	}
	var errs []error
	for _, r := range relays {
		var code string
		err := c.call(ctx, r, func(s *accountStream) error {
			rep, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_ShortPut{ShortPut: &pb.ShortInvitePut{Invite: invite, ExpiresMs: expires.UnixMilli()}}})
			if err == nil {
				code, err = ParseShortCode(rep.GetShortCode())
			}
			return err
		})
		if err == nil {
			return FormatShortCode(code), r, nil
		}
		errs = append(errs, err)
	}
	return "", "", errors.Join(errs...)
}

// GetShortInvite asks this node's relays, in order, for the invite held
// under a short code.
func (c *Client) GetShortInvite(ctx context.Context, code string) (string, error) {
	canon, err := ParseShortCode(code)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	relays := append([]peer.ID(nil), c.order...)
	c.mu.Unlock()
	if len(relays) == 0 {
		return "", fmt.Errorf("%w: a short invite is held by a relay; add one with `meshtalk run --relay ADDR`, or join with the full code", ErrNoRelay)
	}
	var errs []error
	for _, r := range relays {
		var inv string
		err := c.call(ctx, r, func(s *accountStream) error {
			rep, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_ShortGet{ShortGet: &pb.ShortInviteGet{Code: canon}}})
			if err == nil {
				inv, err = shortInviteFromWire(rep)
			}
			return err
		})
		if err == nil {
			return inv, nil
		}
		if !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%w (and some relays did not answer: %w)", ErrNoShortInvite, errors.Join(errs...))
	}
	return "", ErrNoShortInvite
}

// shortInviteFromWire checks a relay's answer to short_get.
func shortInviteFromWire(rep *pb.AccountReply) (string, error) {
	inv := rep.GetInvite()
	if inv == "" || len(inv) > MaxShortInviteLen {
		return "", fmt.Errorf("%w: the relay answered an invite of %d bytes", ErrBadRequest, len(inv))
	}
	return inv, nil
}

func shortKey(code string) datastore.Key { return datastore.RawKey("/short/" + code) }
func shortByKey(p peer.ID, code string) datastore.Key {
	return datastore.RawKey("/shortby/" + p.String() + "/" + code)
}
func shortByPrefix(p peer.ID) string { return "/shortby/" + p.String() }
