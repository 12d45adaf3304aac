package transfer

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// A partial file holds what was written at each offset, whether a write
// went around the page cache (aligned whole chunks) or through it (the
// short last chunk, an unaligned buffer), on a disk folder and on tmpfs.
func TestPartialFileWrites(t *testing.T) {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "meshtalk-partial-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			dirs = append(dirs, shm)
		}
	}
	const chunk = 64 << 10
	for _, dir := range dirs {
		path := filepath.Join(dir, "f.partial")
		want := make([]byte, 3*chunk+1000)
		p, err := openPartial(path, int64(len(want)))
		if err != nil {
			t.Fatal(err)
		}
		rand.Read(want)
		buf := alignedBuffer(chunk)
		// Out of order, as parallel streams write; the last chunk is short.
		for _, i := range []int{2, 0, 3, 1} {
			part := want[i*chunk : min((i+1)*chunk, len(want))]
			b := buf[:len(part)]
			copy(b, part)
			if i == 1 {
				// An unaligned buffer goes through the page cache.
				b = append(make([]byte, 1, len(part)+1), part...)[1:]
			}
			if _, err := p.WriteAt(b, int64(i*chunk)); err != nil {
				t.Fatalf("%s: chunk %d: %v", dir, i, err)
			}
		}
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS == "linux" && dir == dirs[0] && (p.direct == nil || p.refused.Load()) {
			t.Errorf("%s: the whole chunks went through the page cache", dir)
		}
		t.Logf("%s: direct I/O %v", dir, p.direct != nil && !p.refused.Load())
		p.Close()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the file differs from what was written (%d bytes, want %d)", dir, len(got), len(want))
		}
	}
}

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{4096, 8192, 1 << 20} {
		b := alignedBuffer(n)
		if len(b) != n || cap(b) != n || !aligned(b, 0) {
			t.Fatalf("alignedBuffer(%d): len %d, cap %d, aligned %v", n, len(b), cap(b), aligned(b, 0))
		}
	}
}
