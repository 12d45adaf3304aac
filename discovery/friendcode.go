package discovery

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A friend code is what one person gives another so that the other's node
// can find and reach theirs: a peer ID and the addresses it was reachable
// at, in one copy-pasteable word.
//
//	code    = "mt1" base32(payload || check)   lower case, no padding
//	payload = version(1 byte, 0x01)
//	          uvarint(len(peer ID)) peer ID bytes
//	          uvarint(address count) { uvarint(len(addr)) addr bytes }
//	check   = first 4 bytes of SHA-256(payload)
//
// Base32 survives being read aloud, typed into a phone or pasted through a
// chat that changes letter case; the check catches typos. The decoder
// bounds every count and length before it allocates.
const (
	friendCodePrefix  = "mt1"
	friendCodeVersion = 1
	// MaxFriendCodeAddrs is the most addresses a friend code may carry.
	MaxFriendCodeAddrs = 16
	// maxFriendCodeAddrLen bounds one binary multiaddr.
	maxFriendCodeAddrLen = 256
	// MaxFriendCodeLen bounds a whole code, in characters.
	MaxFriendCodeLen = 4096
)

// ErrBadFriendCode is wrapped by every friend-code decoding error.
var ErrBadFriendCode = errors.New("discovery: not a valid friend code")

// errFriendCodeTypo is the error of a code that fails its base32 or its
// checksum: what a mistyped, cut or pasted-wrong code does.
var errFriendCodeTypo = fmt.Errorf("%w (a character is wrong or missing)", ErrBadFriendCode)

// minFriendCodeLen is shorter than any friend code (prefix, version, the
// shortest peer ID, no address, check) and longer than any username, so
// that a word of the prefix and this length is meant as a friend code.
const minFriendCodeLen = 40

// LooksLikeFriendCode says whether s is meant as a friend code, valid or
// not: a word that does and fails to decode is a mistyped code, not a
// username. Such a word has a friend code's prefix and length, or is
// longer than any peer ID and written in a friend code's alphabet (its
// first characters lost).
func LooksLikeFriendCode(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < minFriendCodeLen {
		return false
	}
	if strings.HasPrefix(s, friendCodePrefix) {
		return true
	}
	// What is left of the prefix ("t1", "1") and then base32.
	rest := strings.TrimPrefix(strings.TrimPrefix(s, "t"), "1")
	return len(s) > maxPeerIDLen && strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567") == ""
}

// maxPeerIDLen is longer than the text of an Ed25519 or secp256k1 peer
// ID, in base58 (52) or as a base32 CID (65), and shorter than a friend
// code without addresses (75) that lost its prefix.
const maxPeerIDLen = 68

// MaybeCutFriendCode says whether s could be a friend code cut short: a
// word with its prefix, too short to be one.
func MaybeCutFriendCode(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.HasPrefix(s, friendCodePrefix) && len(s) < minFriendCodeLen
}

var friendCodeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// EncodeFriendCode returns the friend code of a peer and addresses. It
// keeps at most MaxFriendCodeAddrs addresses, and leaves loopback
// addresses out unless there is nothing else to give.
func EncodeFriendCode(info peer.AddrInfo) (string, error) {
	if err := info.ID.Validate(); err != nil {
		return "", fmt.Errorf("discovery: friend code: %w", err)
	}
	addrs := shareableAddrs(info.Addrs)
	id := []byte(info.ID)
	buf := []byte{friendCodeVersion}
	buf = binary.AppendUvarint(buf, uint64(len(id)))
	buf = append(buf, id...)
	buf = binary.AppendUvarint(buf, uint64(len(addrs)))
	for _, a := range addrs {
		buf = binary.AppendUvarint(buf, uint64(len(a.Bytes())))
		buf = append(buf, a.Bytes()...)
	}
	sum := sha256.Sum256(buf)
	buf = append(buf, sum[:4]...)
	return friendCodePrefix + strings.ToLower(friendCodeEncoding.EncodeToString(buf)), nil
}

// shareableAddrs drops addresses that are no use to another machine
// (loopback) unless nothing else is left, and bounds the count.
func shareableAddrs(all []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range all {
		if len(a.Bytes()) <= maxFriendCodeAddrLen && !manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		for _, a := range all {
			if len(a.Bytes()) <= maxFriendCodeAddrLen {
				out = append(out, a)
			}
		}
	}
	if len(out) > MaxFriendCodeAddrs {
		out = out[:MaxFriendCodeAddrs]
	}
	return out
}

// DecodeFriendCode parses a friend code. Surrounding white space and
// letter case do not matter.
func DecodeFriendCode(code string) (peer.AddrInfo, error) {
	code = strings.TrimSpace(code)
	if len(code) > MaxFriendCodeLen {
		return peer.AddrInfo{}, fmt.Errorf("%w: longer than %d characters", ErrBadFriendCode, MaxFriendCodeLen)
	}
	if !strings.HasPrefix(strings.ToLower(code), friendCodePrefix) {
		return peer.AddrInfo{}, fmt.Errorf("%w: it does not start with %q", ErrBadFriendCode, friendCodePrefix)
	}
	b, err := friendCodeEncoding.DecodeString(strings.ToUpper(code[len(friendCodePrefix):]))
	if err != nil || len(b) < 1+4 {
		return peer.AddrInfo{}, errFriendCodeTypo
	}
	payload, check := b[:len(b)-4], b[len(b)-4:]
	if sum := sha256.Sum256(payload); string(sum[:4]) != string(check) {
		return peer.AddrInfo{}, errFriendCodeTypo
	}
	if payload[0] != friendCodeVersion {
		return peer.AddrInfo{}, fmt.Errorf("%w: version %d is not supported; update meshtalk", ErrBadFriendCode, payload[0])
	}
	r := reader{b: payload[1:]}
	idb := r.bytes(128)
	n := r.uvarint(MaxFriendCodeAddrs)
	var info peer.AddrInfo
	for i := uint64(0); r.err == nil && i < n; i++ {
		ab := r.bytes(maxFriendCodeAddrLen)
		if r.err != nil {
			break
		}
		a, err := ma.NewMultiaddrBytes(ab)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("%w: address %d: %v", ErrBadFriendCode, i, err)
		}
		info.Addrs = append(info.Addrs, a)
	}
	if r.err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: %v", ErrBadFriendCode, r.err)
	}
	if len(r.b) != 0 {
		return peer.AddrInfo{}, fmt.Errorf("%w: %d trailing bytes", ErrBadFriendCode, len(r.b))
	}
	if info.ID, err = peer.IDFromBytes(idb); err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: peer ID: %v", ErrBadFriendCode, err)
	}
	return info, nil
}

// reader reads bounded uvarint-prefixed fields; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint(max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("truncated")
		return 0
	}
	if v > max {
		r.err = fmt.Errorf("field of %d over the limit of %d", v, max)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(max uint64) []byte {
	n := r.uvarint(max)
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)) < n {
		r.err = errors.New("truncated")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}
