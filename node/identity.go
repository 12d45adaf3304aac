package node

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/libp2p/go-libp2p/core/crypto"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/meshtalk/meshtalk/internal/atomicfile"
)

// The identity key file is PEM, so that a truncated or damaged file is
// recognised as such and a glance tells whether it is encrypted:
//
//	-----BEGIN MESHTALK IDENTITY KEY-----
//	<libp2p-marshalled Ed25519 private key>
//	-----END MESHTALK IDENTITY KEY-----
//
// or, protected by a passphrase:
//
//	-----BEGIN MESHTALK ENCRYPTED IDENTITY KEY-----
//	KDF: argon2id
//	KDF-Params: t=3,m=65536,p=2
//	Salt: <base64, 16 bytes>
//
//	<24-byte XChaCha20-Poly1305 nonce || sealed marshalled key>
//	-----END MESHTALK ENCRYPTED IDENTITY KEY-----
//
// The PEM type is bound into the AEAD as additional data.
const (
	pemPlain     = "MESHTALK IDENTITY KEY"
	pemEncrypted = "MESHTALK ENCRYPTED IDENTITY KEY"
)

// Argon2id cost for new keys (RFC 9106's second recommended setting, with
// two lanes for small machines). Stored in the file, so it can change.
const (
	kdfTime    = 3
	kdfMemory  = 64 * 1024 // KiB
	kdfThreads = 2
)

// Identity errors. Each is wrapped with the key file's path.
var (
	ErrIdentityCorrupt      = errors.New("node: identity key file is damaged")
	ErrWrongPassphrase      = errors.New("node: wrong passphrase for the identity key")
	ErrPassphraseRequired   = errors.New("node: the identity key is passphrase-protected: give --passphrase-file FILE or set MESHTALK_PASSPHRASE")
	ErrPassphraseNotApplied = errors.New("node: a passphrase was given but the identity key is not encrypted")
)

// LoadOrCreateIdentity reads the identity key at path, or creates a new
// Ed25519 key there when no file exists. A non-empty passphrase encrypts a
// new key and is required to read an encrypted one. An existing file is
// never overwritten, whatever its state.
func LoadOrCreateIdentity(path string, passphrase []byte) (key crypto.PrivKey, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := decodeIdentity(b, passphrase)
		if err != nil {
			return nil, false, fmt.Errorf("node: %s: %w", path, err)
		}
		return key, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("node: read identity: %w", err)
	}
	key, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("node: generate identity: %w", err)
	}
	b, err = encodeIdentity(key, passphrase)
	if err != nil {
		return nil, false, err
	}
	if err := atomicfile.Write(path, b, 0o600, false); err != nil {
		return nil, false, fmt.Errorf("node: write identity: %w", err)
	}
	return key, true, nil
}

func encodeIdentity(key crypto.PrivKey, passphrase []byte) ([]byte, error) {
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("node: marshal identity: %w", err)
	}
	if len(passphrase) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: pemPlain, Bytes: raw}), nil
	}
	salt := make([]byte, 16)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, salt, kdfTime, kdfMemory, kdfThreads, chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{
		Type: pemEncrypted,
		Headers: map[string]string{
			"KDF":        "argon2id",
			"KDF-Params": fmt.Sprintf("t=%d,m=%d,p=%d", kdfTime, kdfMemory, kdfThreads),
			"Salt":       base64.StdEncoding.EncodeToString(salt),
		},
		Bytes: aead.Seal(nonce, nonce, raw, []byte(pemEncrypted)),
	}), nil
}

func decodeIdentity(b []byte, passphrase []byte) (crypto.PrivKey, error) {
	block, rest := pem.Decode(b)
	if block == nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, ErrIdentityCorrupt
	}
	raw := block.Bytes
	switch block.Type {
	case pemPlain:
		if len(passphrase) != 0 {
			return nil, ErrPassphraseNotApplied
		}
	case pemEncrypted:
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		// Bounded, so that a damaged file cannot make the start allocate
		// more than 1 GiB or spin for minutes.
		var t, m uint32
		var p uint8
		if block.Headers["KDF"] != "argon2id" {
			return nil, fmt.Errorf("%w: unknown KDF %q", ErrIdentityCorrupt, block.Headers["KDF"])
		}
		if _, err := fmt.Sscanf(block.Headers["KDF-Params"], "t=%d,m=%d,p=%d", &t, &m, &p); err != nil || t == 0 || t > 16 || m < 8 || m > 1<<20 || p == 0 || p > 16 {
			return nil, fmt.Errorf("%w: bad KDF-Params %s", ErrIdentityCorrupt, strconv.Quote(block.Headers["KDF-Params"]))
		}
		salt, err := base64.StdEncoding.DecodeString(block.Headers["Salt"])
		if err != nil || len(salt) < 8 {
			return nil, fmt.Errorf("%w: bad salt", ErrIdentityCorrupt)
		}
		if len(raw) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
			return nil, ErrIdentityCorrupt
		}
		aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, salt, t, m, p, chacha20poly1305.KeySize))
		if err != nil {
			return nil, err
		}
		nonce, sealed := raw[:chacha20poly1305.NonceSizeX], raw[chacha20poly1305.NonceSizeX:]
		if raw, err = aead.Open(nil, nonce, sealed, []byte(pemEncrypted)); err != nil {
			// AEAD cannot tell a wrong passphrase from a flipped bit; a
			// wrong passphrase is by far the likelier.
			return nil, ErrWrongPassphrase
		}
	default:
		return nil, fmt.Errorf("%w: unexpected PEM type %q", ErrIdentityCorrupt, block.Type)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentityCorrupt, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: key type %v is not Ed25519", ErrIdentityCorrupt, key.Type())
	}
	return key, nil
}
