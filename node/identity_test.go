package node

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityCreateAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	key, created, err := LoadOrCreateIdentity(path, nil)
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	again, created, err := LoadOrCreateIdentity(path, nil)
	if err != nil || created {
		t.Fatalf("reload: %v created=%v", err, created)
	}
	if !key.Equals(again) {
		t.Fatal("reloaded key differs")
	}
}

func TestIdentityPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	key, _, err := LoadOrCreateIdentity(path, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, []byte("ENCRYPTED")) || !bytes.Contains(b, []byte("argon2id")) {
		t.Fatalf("key file is not encrypted:\n%s", b)
	}
	again, _, err := LoadOrCreateIdentity(path, []byte("correct horse"))
	if err != nil || !key.Equals(again) {
		t.Fatalf("reload with passphrase: %v", err)
	}
	if _, _, err := LoadOrCreateIdentity(path, []byte("wrong horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: got %v", err)
	}
	if _, _, err := LoadOrCreateIdentity(path, nil); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("no passphrase: got %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(b, after) {
		t.Fatal("a failed load changed the key file")
	}
}

func TestIdentityPlainKeyWithPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if _, _, err := LoadOrCreateIdentity(path, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateIdentity(path, []byte("pw")); !errors.Is(err, ErrPassphraseNotApplied) {
		t.Fatalf("got %v", err)
	}
}

func TestIdentityCorruptIsNeverReplaced(t *testing.T) {
	good := filepath.Join(t.TempDir(), "identity.key")
	if _, _, err := LoadOrCreateIdentity(good, nil); err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(good)
	for name, content := range map[string][]byte{
		"truncated": whole[:len(whole)/2],
		"empty":     {},
		"garbage":   []byte("hello\n"),
		"bit flip":  flipBase64(whole),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.key")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateIdentity(path, nil)
			if !errors.Is(err, ErrIdentityCorrupt) {
				t.Fatalf("got %v, want ErrIdentityCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, content) {
				t.Fatal("the damaged key file was changed")
			}
		})
	}
}

// flipBase64 changes one character of the PEM body, inside the key type
// header of the marshalled key.
func flipBase64(pem []byte) []byte {
	out := bytes.Clone(pem)
	i := bytes.IndexByte(out, '\n') + 1
	if out[i] == 'A' {
		out[i] = 'B'
	} else {
		out[i] = 'A'
	}
	return out
}

func FuzzDecodeIdentity(f *testing.F) {
	dir := f.TempDir()
	for i, pass := range []string{"", "pw"} {
		path := filepath.Join(dir, string(rune('a'+i)))
		if _, _, err := LoadOrCreateIdentity(path, []byte(pass)); err != nil {
			f.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Must not panic; the cheap KDF keeps each run short.
		decodeIdentity(bytes.ReplaceAll(b, []byte("t=3,m=65536"), []byte("t=1,m=8")), []byte("pw"))
		decodeIdentity(b, nil)
	})
}
