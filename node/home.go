package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gofrs/flock"
)

// ErrAlreadyRunning is returned when another process holds a home's lock.
var ErrAlreadyRunning = errors.New("node: already running")

// Home is a node's home folder:
//
//	identity.key   Ed25519 private key (0600, optionally passphrase-encrypted)
//	config.toml    settings, written with every default on first start
//	datastore/     the embedded key-value store (Pebble)
//	blobs/         file chunks by hash
//	pictures/      originals of received pictures, fetched by themselves
//	api.json       address and token of the running node's local API (0600)
//	node.lock      held (flock) by the running node; holds its pid
type Home string

// Paths inside a home.
func (h Home) IdentityPath() string  { return filepath.Join(string(h), "identity.key") }
func (h Home) ConfigPath() string    { return filepath.Join(string(h), "config.toml") }
func (h Home) DatastorePath() string { return filepath.Join(string(h), "datastore") }
func (h Home) BlobsPath() string     { return filepath.Join(string(h), "blobs") }
func (h Home) APIInfoPath() string   { return filepath.Join(string(h), "api.json") }
func (h Home) LockPath() string      { return filepath.Join(string(h), "node.lock") }

// DownloadsPath is a downloads folder inside the home, for tests and for
// a [files] dir that wants one (the default is the user's, see
// FilesConfig.DownloadsDir).
func (h Home) DownloadsPath() string { return filepath.Join(string(h), "downloads") }

// DropsPath holds sealed files on their way through a relay's file drop
// (on a relay: the files it is fetching).
func (h Home) DropsPath() string { return filepath.Join(string(h), "drops") }

// homeLock is the exclusive claim of one process on a home. The kernel
// releases a flock when its process exits, however it exits, so a crashed
// node never leaves a stale lock behind.
type homeLock struct{ fl *flock.Flock }

// lockHome creates the home folder if needed and takes its lock. When
// another process holds it, the error wraps ErrAlreadyRunning and names the
// holder's pid.
func lockHome(h Home) (*homeLock, error) {
	if err := os.MkdirAll(string(h), 0o700); err != nil {
		return nil, fmt.Errorf("node: create home: %w", err)
	}
	fl := flock.New(h.LockPath())
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("node: lock home %s: %w", h, err)
	}
	if !ok {
		pid := "unknown"
		if b, err := os.ReadFile(h.LockPath()); err == nil && len(bytes.TrimSpace(b)) > 0 {
			pid = string(bytes.TrimSpace(b))
		}
		return nil, fmt.Errorf("%w: another meshtalk node (pid %s) is using %s; stop it first or use another --home", ErrAlreadyRunning, pid, h)
	}
	// The lock is held: write our pid for the next one who asks.
	f, err := os.OpenFile(h.LockPath(), os.O_WRONLY|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fl.Unlock()
		return nil, fmt.Errorf("node: lock home %s: %w", h, err)
	}
	return &homeLock{fl: fl}, nil
}

func (l *homeLock) release() error { return l.fl.Unlock() }
