// Package frame reads and writes the frames every meshtalk protocol uses:
// a uvarint length, then that many bytes of protobuf. A reader bounds the
// length before it allocates, and allocates large frames as their bytes
// arrive rather than as their length claims.
package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// Errors of Read. A clean end of stream before a frame is io.EOF.
var (
	ErrTooLarge  = errors.New("frame too large")
	ErrMalformed = errors.New("malformed frame")
)

// Write writes m as one frame.
func Write(w io.Writer, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	buf := binary.AppendUvarint(make([]byte, 0, len(b)+binary.MaxVarintLen32), uint64(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// Read reads one frame of at most max bytes into m.
func Read(r *bufio.Reader, max int, m proto.Message) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fmt.Errorf("%w: length: %v", ErrMalformed, err)
	}
	if n > uint64(max) {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, n, max)
	}
	// A peer that announces a large frame and trickles it holds little
	// memory.
	var b []byte
	if n <= 64<<10 {
		b = make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	} else if b, err = io.ReadAll(io.LimitReader(r, int64(n))); err != nil || uint64(len(b)) != n {
		return fmt.Errorf("%w: truncated after %d of %d bytes", ErrMalformed, len(b), n)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}
