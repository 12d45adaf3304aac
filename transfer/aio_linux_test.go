package transfer

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// newTestWriter sets up a ring on f, or skips where the kernel refuses.
func newTestWriter(t *testing.T, f *os.File) *asyncWriter {
	t.Helper()
	w, err := newAsyncWriter(f)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("no io_uring here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// Writes at offsets, several at once and more than the ring holds, land
// where they were asked to, around the page cache and through it.
func TestAsyncWriter(t *testing.T) {
	const chunk, chunks = 64 << 10, 40
	want := make([]byte, chunk*chunks)
	rand.Read(want)
	for _, direct := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if direct {
			f.Close()
			f, err = openDirect(path)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w := newTestWriter(t, f)
		var wg sync.WaitGroup
		errs := make(chan error, chunks)
		for i := chunks - 1; i >= 0; i-- {
			wg.Go(func() {
				b := alignedBuffer(chunk)
				copy(b, want[i*chunk:])
				n, err := w.WriteAt(b, int64(i*chunk))
				if err == nil && n != chunk {
					err = errors.New("short write")
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("direct %v: %v", direct, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("direct %v: the file differs from what was written", direct)
		}
	}
}

// A write the kernel refuses fails with the file's name and the errno; a
// write after Close fails without reaching the kernel.
func TestAsyncWriterErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // read-only
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newTestWriter(t, f)
	_, err = w.WriteAt(alignedBuffer(4096), 0)
	var pe *os.PathError
	if !errors.Is(err, unix.EBADF) || !errors.As(err, &pe) || pe.Path != path {
		t.Fatalf("write to a read-only file: %v, want EBADF on %s", err, path)
	}
	if errors.Is(err, errRingFailed) {
		t.Fatalf("an I/O error taken for a failed ring: %v", err)
	}
	w.Close()
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.WriteAt(alignedBuffer(4096), 0); !errors.Is(err, errRingClosed) {
		t.Fatalf("write after Close: %v, want %v", err, errRingClosed)
	}
}

// A partial file writes its whole chunks through the ring where there is
// one.
func TestPartialFileUsesRing(t *testing.T) {
	p, err := openPartial(filepath.Join(t.TempDir(), "f.partial"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.direct == nil {
		t.Skip("no direct I/O here")
	}
	if p.async == nil {
		if _, err := newAsyncWriter(p.direct); errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			t.Skipf("no io_uring here: %v", err)
		} else {
			t.Fatalf("no ring: %v", err)
		}
	}
	if _, err := p.WriteAt(alignedBuffer(directAlign), 0); err != nil {
		t.Fatal(err)
	}
	if p.noAsync.Load() || p.refused.Load() {
		t.Fatalf("the write went around the ring (ring failed %v, direct refused %v)", p.noAsync.Load(), p.refused.Load())
	}
}
