package discovery

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func testPeer(t testing.TB) peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestFriendCodeRoundTrip(t *testing.T) {
	id := testPeer(t)
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip4/127.0.0.1/udp/4747/quic-v1"),
		ma.StringCast("/ip4/192.0.2.7/udp/4747/quic-v1"),
		ma.StringCast("/ip6/2001:db8::1/tcp/4747"),
	}
	code, err := EncodeFriendCode(peer.AddrInfo{ID: id, Addrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(code, "mt1") || strings.ToLower(code) != code {
		t.Fatalf("code %q: want lower case with prefix mt1", code)
	}
	// Case and surrounding space do not matter.
	info, err := DecodeFriendCode("  " + strings.ToUpper(code) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != id {
		t.Fatalf("peer ID: got %s want %s", info.ID, id)
	}
	// Loopback is left out when other addresses exist.
	if len(info.Addrs) != 2 || !info.Addrs[0].Equal(addrs[1]) || !info.Addrs[1].Equal(addrs[2]) {
		t.Fatalf("addrs: got %v", info.Addrs)
	}
}

func TestFriendCodeLoopbackOnly(t *testing.T) {
	id := testPeer(t)
	a := ma.StringCast("/ip4/127.0.0.1/tcp/1234")
	code, err := EncodeFriendCode(peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{a}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := DecodeFriendCode(code)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Addrs) != 1 || !info.Addrs[0].Equal(a) {
		t.Fatalf("addrs: got %v, want the loopback address", info.Addrs)
	}
}

func TestFriendCodeBad(t *testing.T) {
	code, err := EncodeFriendCode(peer.AddrInfo{ID: testPeer(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Change one character in the middle: the checksum must catch it.
	mid := len(code) / 2
	c := byte('a')
	if code[mid] == 'a' {
		c = 'b'
	}
	typo := code[:mid] + string(c) + code[mid+1:]
	for name, bad := range map[string]string{
		"empty":     "",
		"prefix":    "xx1abc",
		"typo":      typo,
		"truncated": code[:len(code)-3],
		"alphabet":  "mt1!!!!",
		"huge":      "mt1" + strings.Repeat("a", MaxFriendCodeLen),
	} {
		if _, err := DecodeFriendCode(bad); !errors.Is(err, ErrBadFriendCode) {
			t.Errorf("%s: got %v, want ErrBadFriendCode", name, err)
		}
	}
}

// FuzzDecodeFriendCode checks that no input panics, and that whatever
// decodes encodes back to a code that decodes to the same thing.
func FuzzDecodeFriendCode(f *testing.F) {
	code, _ := EncodeFriendCode(peer.AddrInfo{ID: testPeer(f), Addrs: []ma.Multiaddr{
		ma.StringCast("/ip4/192.0.2.7/udp/4747/quic-v1"), ma.StringCast("/ip4/192.0.2.7/tcp/4747")}})
	f.Add(code)
	f.Add("mt1")
	f.Add("mt1aaaaaaaa")
	f.Fuzz(func(t *testing.T, s string) {
		info, err := DecodeFriendCode(s)
		if err != nil {
			return
		}
		again, err := EncodeFriendCode(info)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", s, err)
		}
		back, err := DecodeFriendCode(again)
		if err != nil || back.ID != info.ID || len(back.Addrs) > len(info.Addrs) {
			t.Fatalf("round trip of %q: %v %v", s, back, err)
		}
	})
}

// FuzzParsePeer: whatever a user types, ParsePeer answers with a peer or
// an ErrBadPeer/ErrBadFriendCode error, never a panic.
func FuzzParsePeer(f *testing.F) {
	id := testPeer(f)
	code, _ := EncodeFriendCode(peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/192.0.2.7/udp/4747/quic-v1")}})
	f.Add(id.String())
	f.Add(code)
	f.Add("/ip4/192.0.2.7/udp/4747/quic-v1/p2p/" + id.String())
	f.Add("/ip4/203.0.113.1/udp/4001/quic-v1/p2p/" + id.String() + "/p2p-circuit/p2p/" + id.String())
	f.Fuzz(func(t *testing.T, s string) {
		info, err := ParsePeer(s)
		if err != nil {
			if !errors.Is(err, ErrBadPeer) && !errors.Is(err, ErrBadFriendCode) {
				t.Fatalf("ParsePeer(%q): unexpected error kind: %v", s, err)
			}
			return
		}
		if info.ID.Validate() != nil {
			t.Fatalf("ParsePeer(%q) returned an invalid peer ID", s)
		}
	})
}

// TestLooksLikeFriendCode: a code that lost its first characters is still
// taken for a (mistyped) code, a cut one is maybe one, and a peer ID, in
// either of its forms, or a username is neither.
func TestLooksLikeFriendCode(t *testing.T) {
	id := testPeer(t)
	code, err := EncodeFriendCode(peer.AddrInfo{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{code, code[1:], code[2:], code[3:], strings.ToUpper(code[1:])} {
		if !LooksLikeFriendCode(s) {
			t.Errorf("%q is not taken for a friend code", s)
		}
		if _, err := ParsePeer(s); s != code && !errors.Is(err, ErrBadFriendCode) {
			t.Errorf("ParsePeer(%q): %v, want ErrBadFriendCode", s, err)
		}
	}
	for _, s := range []string{id.String(), peer.ToCid(id).String(), "alice", "mt1short"} {
		if LooksLikeFriendCode(s) {
			t.Errorf("%q is taken for a friend code", s)
		}
	}
	if !MaybeCutFriendCode(code[:30]) || MaybeCutFriendCode("alice") {
		t.Error("MaybeCutFriendCode")
	}
}
