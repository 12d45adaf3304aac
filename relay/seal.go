package relay

import (
	"bufio"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/meshtalk/meshtalk/relay/pb"
)

// Kind says what a sealed letter carries; only sender and recipient see it.
type Kind uint32

// Letter kinds.
const (
	// KindDM: encoded direct messages (chat/pb Message), one per item.
	KindDM Kind = 1
	// KindFileDrop: one item, an encoded FileDrop.
	KindFileDrop Kind = 2
	// KindGroup: encoded group messages, one per item.
	KindGroup Kind = 3
	// KindFolderDrop: one item, an encoded FileDrop with the folder's
	// manifest (its folder field). A kind of its own, so that a node from
	// before folders drops the letter rather than take the folder's
	// packed bytes for one file.
	KindFolderDrop Kind = 4
)

// The HPKE suite: a hybrid post-quantum KEM, so that mail stored today
// stays private against a future quantum attacker.
func sealKEM() hpke.KEM   { return hpke.MLKEM768X25519() }
func sealKDF() hpke.KDF   { return hpke.HKDFSHA256() }
func sealAEAD() hpke.AEAD { return hpke.ChaCha20Poly1305() }

const (
	sealingKeyDomain = "meshtalk-sealing-key/1\x00"
	letterDomain     = "meshtalk-letter/1\x00"
	letterInfo       = "meshtalk mailbox v1"
	fileInfo         = "meshtalk file drop v1"
	fileMagic        = "MTF1"
	// fileSegment is the plaintext size of one sealed file segment.
	fileSegment = 64 << 10
)

// SealingKeys is a user's HPKE key pair, derived from its identity key
// (so it needs no file of its own and shares the identity's passphrase),
// with the public half signed by the identity.
type SealingKeys struct {
	id   peer.ID
	priv hpke.PrivateKey
	wire *pb.SealingKey
}

// DeriveSealingKeys derives the sealing keys of identity key k.
func DeriveSealingKeys(k crypto.PrivKey) (*SealingKeys, error) {
	raw, err := k.Raw()
	if err != nil {
		return nil, fmt.Errorf("relay: sealing key: %w", err)
	}
	ikm, err := hkdf.Key(sha256.New, raw, nil, "meshtalk sealing key v1", 64)
	if err != nil {
		return nil, fmt.Errorf("relay: sealing key: %w", err)
	}
	priv, err := sealKEM().DeriveKeyPair(ikm)
	if err != nil {
		return nil, fmt.Errorf("relay: sealing key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("relay: sealing key: %w", err)
	}
	pub := priv.PublicKey().Bytes()
	sig, err := k.Sign(sealingKeySigned(sealKEM().ID(), pub))
	if err != nil {
		return nil, fmt.Errorf("relay: sealing key: %w", err)
	}
	return &SealingKeys{id: id, priv: priv, wire: &pb.SealingKey{Kem: uint32(sealKEM().ID()), PublicKey: pub, Signature: sig}}, nil
}

// Public is the signed public key to publish.
func (s *SealingKeys) Public() []byte { return s.wire.PublicKey }

func sealingKeySigned(kem uint16, pub []byte) []byte {
	b := binary.BigEndian.AppendUint16([]byte(sealingKeyDomain), kem)
	return append(b, pub...)
}

// verifySealingKey checks that id's identity signed w and returns the key.
func verifySealingKey(id peer.ID, w *pb.SealingKey) ([]byte, error) {
	if w.GetKem() != uint32(sealKEM().ID()) {
		return nil, fmt.Errorf("%w: sealing key of unknown KEM %d", ErrBadSeal, w.GetKem())
	}
	if _, err := sealKEM().NewPublicKey(w.GetPublicKey()); err != nil {
		return nil, fmt.Errorf("%w: sealing key: %v", ErrBadSeal, err)
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %s has no public key in its ID: %v", ErrBadSeal, id, err)
	}
	ok, err := pk.Verify(sealingKeySigned(uint16(w.GetKem()), w.GetPublicKey()), w.GetSignature())
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: sealing key of %s is not signed by it", ErrBadSeal, id)
	}
	return w.GetPublicKey(), nil
}

// Letter is an opened envelope.
type Letter struct {
	// Relay is the relay whose mailbox held the letter (set by the
	// client that fetched it; not part of the seal).
	Relay peer.ID
	From  peer.ID
	Sent  time.Time
	Kind  Kind
	Items [][]byte
}

// SealLetter seals items of kind from key's owner to recipient, whose
// sealing public key is pub.
func SealLetter(key crypto.PrivKey, recipient peer.ID, pub []byte, kind Kind, items [][]byte, now time.Time) ([]byte, error) {
	from, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	body, err := proto.Marshal(&pb.LetterBody{Sender: []byte(from), Recipient: []byte(recipient), SentMs: now.UnixMilli(), Kind: uint32(kind), Items: items})
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(letterDomain), body...))
	if err != nil {
		return nil, err
	}
	plain, err := proto.Marshal(&pb.Letter{Body: body, Signature: sig})
	if err != nil {
		return nil, err
	}
	pk, err := sealKEM().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSeal, err)
	}
	sealed, err := hpke.Seal(pk, sealKDF(), sealAEAD(), []byte(letterInfo), plain)
	if err != nil {
		return nil, err
	}
	if len(sealed) > MaxSealed {
		return nil, fmt.Errorf("%w: a sealed envelope of %d bytes, the limit is %d", ErrTooLarge, len(sealed), MaxSealed)
	}
	return sealed, nil
}

// OpenLetter opens an envelope sealed to s's owner and checks its
// author's signature.
func (s *SealingKeys) OpenLetter(sealed []byte) (*Letter, error) {
	plain, err := hpke.Open(s.priv, sealKDF(), sealAEAD(), []byte(letterInfo), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: does not open", ErrBadSeal)
	}
	var l pb.Letter
	if err := proto.Unmarshal(plain, &l); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSeal, err)
	}
	var body pb.LetterBody
	if err := proto.Unmarshal(l.GetBody(), &body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSeal, err)
	}
	from, err := peer.IDFromBytes(body.GetSender())
	if err != nil {
		return nil, fmt.Errorf("%w: sender: %v", ErrBadSeal, err)
	}
	if peer.ID(body.GetRecipient()) != s.id {
		return nil, fmt.Errorf("%w: addressed to someone else", ErrBadSeal)
	}
	pk, err := from.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: sender %s: %v", ErrBadSeal, from, err)
	}
	if ok, err := pk.Verify(append([]byte(letterDomain), l.GetBody()...), l.GetSignature()); err != nil || !ok {
		return nil, fmt.Errorf("%w: not signed by its sender %s", ErrBadSeal, from)
	}
	return &Letter{From: from, Sent: time.UnixMilli(body.GetSentMs()), Kind: Kind(body.GetKind()), Items: body.GetItems()}, nil
}

// SealFile encrypts r to the holder of sealing public key pub, writing
// to w: a header (magic, the HPKE encapsulated key), then segments of
// fileSegment plaintext bytes, each sealed with its index and whether it
// is the last, so that segments can be neither reordered nor cut off.
func SealFile(w io.Writer, r io.Reader, pub []byte) error {
	pk, err := sealKEM().NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSeal, err)
	}
	enc, sender, err := hpke.NewSender(pk, sealKDF(), sealAEAD(), []byte(fileInfo))
	if err != nil {
		return err
	}
	hdr := binary.BigEndian.AppendUint16([]byte(fileMagic), uint16(len(enc)))
	if _, err := w.Write(append(hdr, enc...)); err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, fileSegment)
	buf := make([]byte, fileSegment)
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(br, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return err
		}
		last := n < fileSegment
		if !last {
			_, perr := br.Peek(1)
			last = errors.Is(perr, io.EOF)
		}
		ct, serr := sender.Seal(segmentAAD(i, last), buf[:n])
		if serr != nil {
			return serr
		}
		if _, err := w.Write(ct); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// OpenFile decrypts what SealFile wrote, checking every segment; an
// error means the output is not to be used.
func (s *SealingKeys) OpenFile(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, fileSegment+64)
	hdr := make([]byte, len(fileMagic)+2)
	if _, err := io.ReadFull(br, hdr); err != nil || string(hdr[:4]) != fileMagic {
		return fmt.Errorf("%w: not a sealed file", ErrBadSeal)
	}
	enc := make([]byte, binary.BigEndian.Uint16(hdr[4:]))
	if _, err := io.ReadFull(br, enc); err != nil {
		return fmt.Errorf("%w: truncated header", ErrBadSeal)
	}
	rcpt, err := hpke.NewRecipient(enc, s.priv, sealKDF(), sealAEAD(), []byte(fileInfo))
	if err != nil {
		return fmt.Errorf("%w: does not open", ErrBadSeal)
	}
	buf := make([]byte, fileSegment+sealAEADOverhead)
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(br, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated", ErrBadSeal)
		}
		last := n < len(buf)
		if !last {
			_, perr := br.Peek(1)
			last = errors.Is(perr, io.EOF)
		}
		pt, err := rcpt.Open(segmentAAD(i, last), buf[:n])
		if err != nil {
			return fmt.Errorf("%w: segment %d does not open", ErrBadSeal, i)
		}
		if _, err := w.Write(pt); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// sealAEADOverhead is ChaCha20-Poly1305's tag.
const sealAEADOverhead = 16

func segmentAAD(i uint64, last bool) []byte {
	b := binary.BigEndian.AppendUint64(nil, i)
	if last {
		return append(b, 1)
	}
	return append(b, 0)
}
