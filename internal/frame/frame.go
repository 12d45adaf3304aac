// Package frame reads and writes the frames every meshtalk protocol uses:
// a uvarint length, then that many bytes of protobuf. A reader bounds the
// length before it allocates, and allocates large frames as their bytes
// arrive rather than as their length claims.
package frame

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/proto"
)

// Errors of Read. A clean end of stream before a frame is io.EOF; a
// failure of the stream itself (a reset, a deadline, a closed
// connection) comes back as the stream said it, wrapped: it says
// nothing of what the peer sent.
var (
	ErrTooLarge  = errors.New("frame: too large")
	ErrMalformed = errors.New("frame: malformed")
)

// errOverflow is binary.ReadUvarint's error for a length of more than
// 64 bits (the package does not export it).
var errOverflow = func() error {
	_, err := binary.ReadUvarint(bytes.NewReader(bytes.Repeat([]byte{0xff}, binary.MaxVarintLen64+1)))
	return err
}()

// truncated is the error of a frame cut short: a clean end of stream
// inside it is the peer's fault, any other failure the stream's.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return fmt.Errorf("frame: %w", err)
}

// Write writes m as one frame.
func Write(w io.Writer, m proto.Message) error {
	buf := getBuf()
	defer putBuf(buf)
	// The message goes after room for the longest length; the length
	// goes right before it.
	b, err := proto.MarshalOptions{}.MarshalAppend((*buf)[:binary.MaxVarintLen64], m)
	if err != nil {
		return err
	}
	*buf = b
	var n [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(n[:], uint64(len(b)-binary.MaxVarintLen64))
	start := binary.MaxVarintLen64 - k
	copy(b[start:], n[:k])
	_, err = w.Write(b[start:])
	return err
}

// bufs hold frames being encoded, and frames being decoded up to 64 KiB:
// a writer does not keep what it is given, and decoding copies what it
// keeps, so each buffer serves the next frame.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

// putBuf keeps a buffer for the next frame, unless a large frame made it
// large.
func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		bufs.Put(b)
	}
}

// Scope is where a reader reserves the memory of a large frame: a
// libp2p stream's resource scope (network.Stream.Scope()), whose limits
// the resource manager enforces per peer and for the whole node.
type Scope interface {
	ReserveMemory(size int, prio uint8) error
	ReleaseMemory(size int)
}

// reservePriority is the priority of a frame's reservation: a frame may
// take the scope's memory up to 80% of its limit (libp2p's
// ReservationPriorityMedium).
const reservePriority = 152

// ReadReserved is Read that first reserves a frame of over 64 KiB in
// scope, and releases it once the frame is decoded: a frame the scope
// has no room for is refused (ErrTooLarge) before it is read.
func ReadReserved(r *bufio.Reader, max int, m proto.Message, scope Scope) error {
	if scope == nil {
		return Read(r, max, m)
	}
	return read(r, max, m, scope)
}

// Read reads one frame of at most max bytes into m.
func Read(r *bufio.Reader, max int, m proto.Message) error { return read(r, max, m, nil) }

func read(r *bufio.Reader, max int, m proto.Message, scope Scope) error {
	n, err := binary.ReadUvarint(r)
	switch {
	case err == io.EOF:
		return io.EOF
	case err == errOverflow:
		return fmt.Errorf("%w: length: %v", ErrMalformed, err)
	case err != nil:
		return truncated(err)
	}
	if n > uint64(max) {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, n, max)
	}
	if scope != nil && n > 64<<10 {
		if err := scope.ReserveMemory(int(n), reservePriority); err != nil {
			return fmt.Errorf("%w: no memory for a frame of %d bytes now: %v", ErrTooLarge, n, err)
		}
		defer scope.ReleaseMemory(int(n))
	}
	// A peer that announces a large frame and trickles it holds little
	// memory.
	var b []byte
	if n <= 64<<10 {
		buf := getBuf()
		defer putBuf(buf)
		if uint64(cap(*buf)) < n {
			*buf = make([]byte, n)
		}
		b = (*buf)[:n]
		if _, err := io.ReadFull(r, b); err != nil {
			return truncated(err)
		}
	} else if b, err = io.ReadAll(io.LimitReader(r, int64(n))); err != nil {
		return truncated(err)
	} else if uint64(len(b)) != n {
		return fmt.Errorf("%w: truncated after %d of %d bytes", ErrMalformed, len(b), n)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// ReadAs is Read with a protocol's own errors: a frame over max wraps
// tooLarge, a malformed one bad, each followed by what Read said. A
// clean end of stream before a frame stays io.EOF, and a failure of the
// stream itself is Read's.
func ReadAs(r *bufio.Reader, max int, m proto.Message, tooLarge, bad error) error {
	return ReadReservedAs(r, max, m, nil, tooLarge, bad)
}

// ReadReservedAs is ReadAs with ReadReserved's reservation in scope.
func ReadReservedAs(r *bufio.Reader, max int, m proto.Message, scope Scope, tooLarge, bad error) error {
	err := ReadReserved(r, max, m, scope)
	switch {
	case err == nil || err == io.EOF:
		return err
	case errors.Is(err, ErrTooLarge):
		return fmt.Errorf("%w: %v", tooLarge, err)
	case errors.Is(err, ErrMalformed):
		return fmt.Errorf("%w: %v", bad, err)
	}
	return err
}
