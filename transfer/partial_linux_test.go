package transfer

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A new partial file is allocated whole before anything is written, and a
// partial file opened again to resume keeps what it holds.
func TestPartialPreallocated(t *testing.T) {
	const size = 3<<20 + 5
	probe, err := os.Create(filepath.Join(t.TempDir(), "probe"))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if err := preallocate(probe, 4096); err != nil {
		t.Skipf("no preallocation here: %v", err)
	}
	path := filepath.Join(t.TempDir(), "f.partial")
	p, err := openPartial(path, size)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Size() != size || st.Blocks*512 < size {
		t.Fatalf("a new partial file of %d bytes: size %d, %d bytes allocated", size, fi.Size(), st.Blocks*512)
	}
	data := alignedBuffer(1 << 20)
	rand.Read(data)
	if _, err := p.WriteAt(data, 1<<20); err != nil {
		t.Fatal(err)
	}
	p.Close()
	p, err = openPartial(path, size)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size {
		t.Fatalf("the partial file has %d bytes, want %d", len(got), size)
	}
	if !bytes.Equal(got[1<<20:2<<20], data) {
		t.Fatal("opened again, the partial file lost what was written")
	}
}
