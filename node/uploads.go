package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MaxUpload is the largest file a browser may hand the node to send.
const MaxUpload = 4 << 30

// UploadsPath is where files that the web UI hands the node wait to be
// sent (the browser has the file, not its path on this machine).
func (h Home) UploadsPath() string { return filepath.Join(string(h), "uploads") }

// Upload is a file a browser handed the node: Path is where it is now,
// to send with SendFile or SendGroup.
type Upload struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// SaveUpload writes body, a file named name, into the home's uploads
// folder (a fresh folder each, so names never clash) and answers its path.
// A body over MaxUpload, or an empty or odd name, is a bad request; a
// partial file is removed.
func (n *Node) SaveUpload(ctx context.Context, name string, body io.Reader) (*Upload, error) {
	name = filepath.Base(strings.TrimSpace(name))
	if name == "" || name == "." || name == ".." || name == string(filepath.Separator) || len(name) > 255 {
		return nil, badRequest(errors.New("node: an upload needs a file name"))
	}
	n.pruneUploads()
	rnd := make([]byte, 8)
	rand.Read(rnd)
	dir := filepath.Join(n.home.UploadsPath(), hex.EncodeToString(rnd))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	size, err := io.Copy(f, io.LimitReader(body, MaxUpload+1))
	if err == nil && size > MaxUpload {
		err = badRequest(fmt.Errorf("node: an upload is at most %d GiB", MaxUpload>>30))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Upload{Path: path, Size: size}, nil
}

// uploadsKept is how long an upload stays: long enough to be sent (its
// chunks are in the blob store once SendFile returned, and a file drop
// reads it while SendFile runs), then it only takes room.
const uploadsKept = 24 * time.Hour

// pruneUploads removes the uploads older than uploadsKept.
func (n *Node) pruneUploads() {
	entries, err := os.ReadDir(n.home.UploadsPath())
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && n.now().Sub(info.ModTime()) > uploadsKept {
			os.RemoveAll(filepath.Join(n.home.UploadsPath(), e.Name()))
		}
	}
}

// DownloadedFile answers a file offered to this node that is complete on
// disk (state done, with its path): what the web UI lets a person save.
func (n *Node) DownloadedFile(ctx context.Context, id string) (*File, error) {
	f, err := n.resolveFile(ctx, id, func(f File) bool { return !f.Outgoing })
	if err != nil {
		return nil, err
	}
	if f.State != "done" || f.Path == "" {
		return nil, fmt.Errorf("%w: %s is %s, not downloaded yet", ErrNoFile, f.Name, f.State)
	}
	if fi, err := os.Stat(f.Path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is a folder, received at %s: it cannot be saved as one file", ErrNoFile, f.Name, f.Path)
	}
	return &f, nil
}
