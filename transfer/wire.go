package transfer

// The transfer protocol, /meshtalk/transfer/1.1.0 (and 1.0.0).
//
// A file travels as a manifest (name, size, type, chunk size, the BLAKE3
// hash of every chunk) and chunks. The manifest's root hash, BLAKE3 over
// its content, names the file. The sender offers a file to a peer by
// giving it the manifest (in a chat message); the receiver pulls chunks,
// on as many streams at once as it likes; on each stream, requests one
// after the other (a stream kept open keeps its flow-control window):
//
//	receiver                              sender
//	Request{root, first, count}  -->
//	                             <--  Reply{code}
//	                             <--  chunk first, first+1, ... (code 0 only)
//	Request{...}                 -->  (the next range, on the same stream)
//	...
//
// A reply other than 0 ends the stream.
//
// Since 1.1.0 a server may hold only some chunks (a group member that is
// downloading the file itself serves what it has verified), and a sender
// serves a file from where it lies on its disk, checking every chunk
// against the manifest as it reads it:
//
//	Request{root, count: 0}      -->
//	                             <--  Reply{code 0, have: bitmap}
//	Request{root, done: true}    -->  (no reply: the receiver has it all)
//
// A chunk that cannot be served after Reply{0} went out (the file changed
// since it was offered, or the chunk is not held) ends the range with a
// chunk header of length 0 (no chunk is empty) and a Reply frame that
// says why: CodeChanged or CodeMissing.
//
// A chunk on the stream is uvarint(index) uvarint(length) and the bytes.
// The receiver verifies every chunk against the manifest before it writes
// it, and drops a sender that keeps sending bad ones. A sender serves a
// blob only to the peers it offered it to (CodeNotOffered otherwise).
//
// Every length is checked against its limit before anything is allocated.
//
// A folder travels as one manifest (manifest version 2, folder.go): its
// entries list the folder's files and folders by relative path, and its
// chunks span the files' bytes, one file after the other; the protocol
// moves it as it moves a file, and the receiver lays the files out once
// every chunk is verified. Each path is checked on both sides: relative,
// no "." or "..", no empty part, no control or invisible format
// characters, no file that is also a folder, no path twice.
//
// Versions
//
//	1.0.0  requests with count > 0; a chunk that cannot be served resets
//	       the stream.
//	1.1.0  have bitmaps (count 0), done notices, the length-0 chunk
//	       header with its Reply, CodeChanged and CodeMissing.
//
// Manifest versions (the version field; the protocol is the same):
//
//	0  a file.
//	2  a folder: entries, and a name that ends in "/", which a meshtalk
//	   from before folders refuses ("not a plain file name"), so that
//	   the message that offers a folder fails at its sender with that
//	   reason instead of arriving as one broken file.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
	"lukechampine.com/blake3"

	"github.com/meshtalk/meshtalk/internal/frame"
	"github.com/meshtalk/meshtalk/transfer/pb"
)

// Protocol is the transfer protocol's ID; Protocol10 the version before,
// still served.
const (
	Protocol   = protocol.ID("/meshtalk/transfer/1.1.0")
	Protocol10 = protocol.ID("/meshtalk/transfer/1.0.0")
)

// Limits.
const (
	// DefaultChunkSize is the chunk size of new manifests.
	DefaultChunkSize = 1 << 20
	// MinChunkSize and MaxChunkSize bound a manifest's chunk size.
	MinChunkSize = 64 << 10
	MaxChunkSize = 4 << 20
	// MaxChunks bounds a manifest's chunk count (64 GiB at 1 MiB chunks).
	MaxChunks = 1 << 16
	// MaxNameBytes bounds a file name.
	MaxNameBytes = 255
	// MaxEntries bounds a folder's entries, MaxPathBytes a path in it.
	MaxEntries   = 1 << 14
	MaxPathBytes = 1024
	// maxManifestFrame bounds an encoded manifest.
	maxManifestFrame = MaxChunks*(blake3Size+2) + 4096
	// maxRequestFrame bounds a request.
	maxRequestFrame = 256
	// maxReplyFrame bounds a reply (a have bitmap of MaxChunks bits).
	maxReplyFrame = MaxChunks/8 + 1024
	blake3Size    = 32
)

// Reply codes, stable across versions.
const (
	CodeOK         = 0
	CodeNotOffered = 1
	CodeNotFound   = 2
	CodeBadRequest = 3
	// CodeChanged: the sender's file changed (or went) since the offer.
	CodeChanged = 4
	// CodeMissing: this server does not hold the chunk (yet).
	CodeMissing = 5
)

// Errors.
var (
	ErrBadManifest = errors.New("transfer: manifest is not valid")
	ErrBadFrame    = errors.New("transfer: malformed frame")
	ErrBadChunk    = errors.New("transfer: chunk does not match the manifest")
	// ErrChanged: the file changed on the sender's disk after it offered
	// it; only a new offer can send it.
	ErrChanged = errors.New("the sender's file changed; ask for it again")
)

// Hash is a BLAKE3-256 digest.
type Hash [blake3Size]byte

func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// Manifest describes a file. Build one with Import or decode one with
// DecodeManifest; its Root names the file.
type Manifest struct {
	Name      string
	Size      uint64
	MIME      string
	ChunkSize uint32
	Chunks    []Hash
	// Folder: the manifest is a folder's (manifest version 2), named Name,
	// holding Entries; Size is the sum of its files' sizes, and the chunks
	// span their bytes in the order of Entries.
	Folder  bool
	Entries []Entry
}

// Entry is a file or a folder inside a folder.
type Entry struct {
	// Path inside the folder, "/"-separated (checkPath).
	Path string
	// Size of a file; 0 for a folder.
	Size uint64
	Dir  bool
}

// manifestFolder is the manifest version of a folder.
const manifestFolder = 2

// Root is the BLAKE3 hash of the manifest's encoding: name, size, type,
// chunk size, chunk hashes and a folder's entries.
func (m *Manifest) Root() Hash {
	return Hash(blake3.Sum256(m.Encode()))
}

// ID is the root as hex: how users and the API name a file.
func (m *Manifest) ID() string { return m.Root().String() }

// chunkLen is the length of chunk i.
func (m *Manifest) chunkLen(i int) int {
	if i == len(m.Chunks)-1 {
		return int(m.Size - uint64(i)*uint64(m.ChunkSize))
	}
	return int(m.ChunkSize)
}

// Encode returns the manifest's wire form (deterministic).
func (m *Manifest) Encode() []byte {
	w := &pb.Manifest{Name: m.Name, Size: m.Size, Mime: m.MIME, ChunkSize: m.ChunkSize}
	for _, c := range m.Chunks {
		w.Chunks = append(w.Chunks, slices.Clone(c[:]))
	}
	if m.Folder {
		w.Name, w.Version = m.Name+"/", manifestFolder
		for _, e := range m.Entries {
			w.Entries = append(w.Entries, &pb.Entry{Path: e.Path, Size: e.Size, Dir: e.Dir})
		}
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(w)
	return b
}

// DecodeManifest parses and checks a manifest: limits, chunk count against
// size, the name (a bare file name), and the type.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) > maxManifestFrame {
		return nil, fmt.Errorf("%w: %d bytes is over the limit", ErrBadManifest, len(b))
	}
	var w pb.Manifest
	if err := proto.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	m := &Manifest{Name: w.GetName(), Size: w.GetSize(), MIME: w.GetMime(), ChunkSize: w.GetChunkSize()}
	switch w.GetVersion() {
	case 0:
		if len(w.GetEntries()) > 0 {
			return nil, fmt.Errorf("%w: a file with folder entries", ErrBadManifest)
		}
	case manifestFolder:
		name, ok := strings.CutSuffix(m.Name, "/")
		if !ok || len(w.GetEntries()) > MaxEntries {
			return nil, fmt.Errorf("%w: a folder's name must end in / and it may hold %d entries", ErrBadManifest, MaxEntries)
		}
		m.Name, m.Folder, m.Entries = name, true, make([]Entry, len(w.GetEntries()))
		for i, e := range w.GetEntries() {
			m.Entries[i] = Entry{Path: e.GetPath(), Size: e.GetSize(), Dir: e.GetDir()}
		}
	default:
		return nil, fmt.Errorf("%w: manifest version %d is newer than this meshtalk: update it", ErrBadManifest, w.GetVersion())
	}
	if err := m.checkShape(len(w.GetChunks())); err != nil {
		return nil, err
	}
	m.Chunks = make([]Hash, len(w.GetChunks()))
	for i, c := range w.GetChunks() {
		if len(c) != blake3Size {
			return nil, fmt.Errorf("%w: chunk hash %d has %d bytes", ErrBadManifest, i, len(c))
		}
		copy(m.Chunks[i][:], c)
	}
	return m, nil
}

// checkShape checks everything but the hashes, for a manifest of n chunks.
func (m *Manifest) checkShape(n int) error {
	if m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize {
		return fmt.Errorf("%w: chunk size %d is outside %d..%d", ErrBadManifest, m.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if n > MaxChunks {
		return fmt.Errorf("%w: %d chunks, the limit is %d", ErrBadManifest, n, MaxChunks)
	}
	want := (m.Size + uint64(m.ChunkSize) - 1) / uint64(m.ChunkSize)
	if uint64(n) != want || (m.Size == 0 && n != 0) {
		return fmt.Errorf("%w: %d chunks for %d bytes of %d-byte chunks", ErrBadManifest, n, m.Size, m.ChunkSize)
	}
	if m.Name == "" || len(m.Name) > MaxNameBytes || m.Name != path.Base(m.Name) || SafeName(m.Name) != m.Name {
		return fmt.Errorf("%w: name %q is not a plain file name", ErrBadManifest, m.Name)
	}
	if m.MIME != "" {
		if _, _, err := mime.ParseMediaType(m.MIME); err != nil {
			return fmt.Errorf("%w: type %q", ErrBadManifest, m.MIME)
		}
	}
	if m.Folder {
		return checkEntries(m.Entries, m.Size)
	}
	if m.Entries != nil {
		return fmt.Errorf("%w: a file with folder entries", ErrBadManifest)
	}
	return nil
}

func writeFrame(w io.Writer, m proto.Message) error { return frame.Write(w, m) }

// readFrame reads one frame of at most max bytes into m.
func readFrame(r *bufio.Reader, max int, m proto.Message) error {
	if err := frame.Read(r, max, m); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return nil
}

// chunkHeaderMax is the longest chunk header.
const chunkHeaderMax = 2 * binary.MaxVarintLen64

// appendChunkHeader appends the header of chunk index of length n.
func appendChunkHeader(b []byte, index, n int) []byte {
	b = binary.AppendUvarint(b, uint64(index))
	return binary.AppendUvarint(b, uint64(n))
}

// readChunk reads one chunk into buf, which must hold maxLen bytes; it
// checks the index and length it is told before reading the bytes. raw is
// what r reads from: the bytes r has not buffered are read from it
// directly.
func readChunk(r *bufio.Reader, raw io.Reader, wantIndex, wantLen int, buf []byte) ([]byte, error) {
	idx, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk index: %v", ErrBadFrame, err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk length: %v", ErrBadFrame, err)
	}
	if idx == uint64(wantIndex) && n == 0 && wantLen > 0 {
		// The server cannot serve this chunk: a Reply says why.
		var reply pb.Reply
		if err := readFrame(r, maxReplyFrame, &reply); err != nil {
			return nil, err
		}
		if reply.GetCode() == CodeOK {
			return nil, fmt.Errorf("%w: chunk %d of length 0", ErrBadFrame, idx)
		}
		return nil, replyError(&reply)
	}
	if idx != uint64(wantIndex) || n != uint64(wantLen) || n > uint64(len(buf)) {
		return nil, fmt.Errorf("%w: chunk %d of %d bytes where chunk %d of %d was due", ErrBadFrame, idx, n, wantIndex, wantLen)
	}
	// What r holds already, then the rest straight from the stream into
	// buf: through r, much of a chunk would be copied twice.
	k, _ := io.ReadFull(r, buf[:min(int(n), r.Buffered())])
	if _, err := io.ReadFull(raw, buf[k:n]); err != nil {
		return nil, fmt.Errorf("%w: chunk %d: %v", ErrBadFrame, idx, err)
	}
	return buf[:n], nil
}

// errMissing: the server does not hold the chunk asked for (yet).
var errMissing = errors.New("transfer: the source does not hold the chunk")

// replyError is what a Reply other than CodeOK means.
func replyError(r *pb.Reply) error {
	switch r.GetCode() {
	case CodeOK:
		return nil
	case CodeChanged:
		return ErrChanged
	case CodeMissing:
		return errMissing
	}
	return fmt.Errorf("transfer: refused: %s (code %d)", r.GetMessage(), r.GetCode())
}

// haveBits packs a have list into a bitmap; haveFromBits unpacks one for
// a file of n chunks (missing bytes read as zero, extra bits are ignored).
func haveBits(have []bool) []byte {
	b := make([]byte, (len(have)+7)/8)
	for i, h := range have {
		if h {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return b
}

func haveFromBits(b []byte, n int) []bool {
	have := make([]bool, n)
	for i := range have {
		have[i] = i/8 < len(b) && b[i/8]&(1<<(i%8)) != 0
	}
	return have
}
