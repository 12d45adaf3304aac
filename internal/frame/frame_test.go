package frame

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestRoundTripAndLimits(t *testing.T) {
	var b bytes.Buffer
	big := wrapperspb.String(string(bytes.Repeat([]byte("x"), 100<<10)))
	if err := Write(&b, wrapperspb.String("hi")); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, big); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(bytes.NewReader(b.Bytes()))
	var got wrapperspb.StringValue
	if err := Read(r, 1<<20, &got); err != nil || got.Value != "hi" {
		t.Fatalf("first: %v %q", err, got.Value)
	}
	if err := Read(r, 1<<20, &got); err != nil || got.Value != big.Value {
		t.Fatalf("second: %v", err)
	}
	if err := Read(r, 1<<20, &got); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	claim := binary.AppendUvarint(nil, 1<<30)
	if err := Read(bufio.NewReader(bytes.NewReader(claim)), 1<<20, &got); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	trunc := append(binary.AppendUvarint(nil, 200<<10), 1, 2, 3)
	if err := Read(bufio.NewReader(bytes.NewReader(trunc)), 1<<20, &got); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestReadAs(t *testing.T) {
	errBig, errBad := errors.New("p: frame too large"), errors.New("p: malformed frame")
	read := func(b []byte) error {
		var got wrapperspb.StringValue
		return ReadAs(bufio.NewReader(bytes.NewReader(b)), 1<<10, &got, errBig, errBad)
	}
	var ok bytes.Buffer
	if err := Write(&ok, wrapperspb.String("hi")); err != nil {
		t.Fatal(err)
	}
	if err := read(ok.Bytes()); err != nil {
		t.Fatalf("a good frame: %v", err)
	}
	if err := read(nil); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	err := read(binary.AppendUvarint(nil, 1<<20))
	if !errors.Is(err, errBig) || errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if want := "p: frame too large: frame: too large: 1048576 bytes, the limit is 1024"; err.Error() != want {
		t.Fatalf("oversized: %q, want %q", err, want)
	}
	if err := read([]byte{3, 1}); !errors.Is(err, errBad) || errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
}

// failAfter is a stream that gives n bytes of b and then fails with err.
type failAfter struct {
	b   []byte
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := copy(p[:min(len(p), f.n)], f.b)
	f.b, f.n = f.b[k:], f.n-k
	return k, nil
}

// TestStreamFailureIsNotMalformed: a stream that fails (a reset, a
// deadline) in a frame's length or body is its own failure, not a
// malformed frame of the peer's: the error is the stream's, through
// Read and ReadAs alike, for a small frame and a large one.
func TestStreamFailureIsNotMalformed(t *testing.T) {
	errReset := errors.New("stream reset")
	errBad := errors.New("p: malformed frame")
	for _, size := range []int{100, 100 << 10} {
		var b bytes.Buffer
		if err := Write(&b, wrapperspb.String(string(bytes.Repeat([]byte("x"), size)))); err != nil {
			t.Fatal(err)
		}
		for _, cut := range []int{1, 4, b.Len() - 1} {
			var got wrapperspb.StringValue
			err := ReadAs(bufio.NewReader(&failAfter{b.Bytes(), cut, errReset}), 1<<20, &got, ErrTooLarge, errBad)
			if !errors.Is(err, errReset) || errors.Is(err, ErrMalformed) || errors.Is(err, errBad) {
				t.Errorf("%d-byte frame, reset after %d bytes: %v, want the reset, not malformed", size, cut, err)
			}
		}
	}
	var got wrapperspb.StringValue
	overflow := bytes.Repeat([]byte{0xff}, 11)
	if err := Read(bufio.NewReader(bytes.NewReader(overflow)), 1<<20, &got); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a length of over 64 bits: %v, want malformed", err)
	}
}

// limitScope is a resource scope with a memory limit.
type limitScope struct{ limit, held int }

func (s *limitScope) ReserveMemory(n int, _ uint8) error {
	if s.held+n > s.limit {
		return errors.New("over the limit")
	}
	s.held += n
	return nil
}

func (s *limitScope) ReleaseMemory(n int) { s.held -= n }

// FuzzReadReserved: whatever the input, a read returns a frame of at most
// the limit or an error, and releases every byte it reserved.
func FuzzReadReserved(f *testing.F) {
	for _, v := range []string{"hi", string(bytes.Repeat([]byte("x"), 100<<10))} {
		var b bytes.Buffer
		Write(&b, wrapperspb.String(v))
		f.Add(b.Bytes())
	}
	f.Add(binary.AppendUvarint(nil, 1<<30))
	f.Add(binary.AppendUvarint(nil, 300<<10))
	f.Fuzz(func(t *testing.T, in []byte) {
		scope := &limitScope{limit: 200 << 10}
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			var got wrapperspb.StringValue
			err := ReadReserved(r, 1<<20, &got, scope)
			if scope.held != 0 {
				t.Fatalf("%d bytes still reserved", scope.held)
			}
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if len(got.Value) > 1<<20 {
				t.Fatalf("a %d-byte value passed a 1 MiB limit", len(got.Value))
			}
		}
	})
}

// TestReadReservedRefusesWithoutRoom: a frame the scope has no room for
// is refused before it is read.
func TestReadReservedRefusesWithoutRoom(t *testing.T) {
	var b bytes.Buffer
	Write(&b, wrapperspb.String(string(bytes.Repeat([]byte("x"), 100<<10))))
	scope := &limitScope{limit: 64 << 10}
	var got wrapperspb.StringValue
	if err := ReadReserved(bufio.NewReader(&b), 1<<20, &got, scope); !errors.Is(err, ErrTooLarge) || scope.held != 0 {
		t.Fatalf("a frame over the scope's room: %v (held %d)", err, scope.held)
	}
}
