package transfer

// An asyncWriter writes to a file through an io_uring, so that no
// goroutine waits for the disk inside a system call. A goroutine blocked
// in write(2) keeps its P (one of GOMAXPROCS) until the scheduler takes it
// back; with two cores that is half the process, and the streams that
// read the next chunks stall meanwhile. Here the write is queued in the
// kernel (which runs what would block on a worker of its own), and the
// writer waits on a channel; one goroutine per ring reads an eventfd that
// the kernel signals at each completion. The eventfd is non-blocking, so
// Go's network poller watches it and that goroutine is parked, not
// blocked in a thread.
//
// The ring's layout is the kernel's ABI (include/uapi/linux/io_uring.h):
// a submission ring of indexes into an array of 64-byte entries, and a
// completion ring of 16-byte entries, all in memory mapped from the
// ring's file descriptor. We own the submission tail and the completion
// head; the kernel owns the other two ends.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// io_uring ABI numbers.
const (
	uringOffSQRing       = 0
	uringOffCQRing       = 0x8000000
	uringOffSQEs         = 0x10000000
	uringFeatSingleMmap  = 1 << 0
	uringFeatRWCurPos    = 1 << 3 // came with IORING_OP_WRITE (Linux 5.6)
	uringOpWrite         = 23
	uringRegisterEventfd = 4
	uringSQESize         = 64
	uringCQESize         = 16
	uringEntries         = 8 // writes in flight at most; Streams stores at once in a download
	uringMaxRetries      = 1000
)

// errRingFailed means a write never reached the kernel because the ring
// itself failed; the caller may write some other way.
var errRingFailed = errors.New("io_uring failed")

// errRingClosed means the writer was closed.
var errRingClosed = errors.New("io_uring writer closed")

type uringSQRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQRingOffsets
	cqOff                                                                  uringCQRingOffsets
}

type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	pad         uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// Checked at compile time: a wrong layout would corrupt the rings.
var (
	_ [unsafe.Sizeof(uringParams{}) - 120]struct{}
	_ [120 - unsafe.Sizeof(uringParams{})]struct{}
	_ [unsafe.Sizeof(uringSQE{}) - uringSQESize]struct{}
	_ [uringSQESize - unsafe.Sizeof(uringSQE{})]struct{}
	_ [unsafe.Sizeof(uringCQE{}) - uringCQESize]struct{}
	_ [uringCQESize - unsafe.Sizeof(uringCQE{})]struct{}
)

// uringWrite is a write the kernel has: buf stays referenced here (which
// also keeps it on the heap, where nothing moves) until its completion.
type uringWrite struct {
	buf  []byte
	done chan int32
}

// asyncWriter writes to one file through its own io_uring.
type asyncWriter struct {
	f      *os.File // the file written; kept open by its owner until Close
	fd     int
	ring   int
	efd    *os.File // signalled by the kernel at each completion
	reaped chan struct{}
	slots  chan struct{} // one per write in flight

	sqMem, cqMem, sqeMem []byte
	sqHead, sqTail       *uint32
	sqMask               uint32
	sqes                 []uringSQE
	cqHead, cqTail       *uint32
	cqMask               uint32
	cqes                 []uringCQE

	mu       sync.Mutex // submissions, inflight, closed
	inflight map[uint64]*uringWrite
	next     uint64
	closed   bool
	once     sync.Once
}

// newAsyncWriter sets up a ring that writes to f; it fails where the
// kernel has no io_uring or refuses it (ENOSYS, EPERM: a sandbox, or
// kernel.io_uring_disabled).
func newAsyncWriter(f *os.File) (*asyncWriter, error) {
	var p uringParams
	r, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uringEntries, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	w := &asyncWriter{f: f, fd: int(f.Fd()), ring: int(r), inflight: map[uint64]*uringWrite{}}
	if p.features&uringFeatRWCurPos == 0 {
		// Older than IORING_OP_WRITE: it would fail every write with
		// EINVAL, which reads as direct I/O refused.
		unix.Close(w.ring)
		return nil, os.NewSyscallError("io_uring_setup", unix.ENOSYS)
	}
	if err := w.setup(&p); err != nil {
		w.release()
		return nil, err
	}
	w.slots = make(chan struct{}, len(w.sqes))
	w.reaped = make(chan struct{})
	go w.reap()
	return w, nil
}

func (w *asyncWriter) setup(p *uringParams) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uringCQESize)
	single := p.features&uringFeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_POPULATE
	var err error
	if w.sqMem, err = unix.Mmap(w.ring, uringOffSQRing, sqSize, prot, flags); err != nil {
		return os.NewSyscallError("mmap", err)
	}
	w.cqMem = w.sqMem
	if !single {
		if w.cqMem, err = unix.Mmap(w.ring, uringOffCQRing, cqSize, prot, flags); err != nil {
			w.cqMem = nil
			return os.NewSyscallError("mmap", err)
		}
	}
	if w.sqeMem, err = unix.Mmap(w.ring, uringOffSQEs, int(p.sqEntries)*uringSQESize, prot, flags); err != nil {
		return os.NewSyscallError("mmap", err)
	}
	w.sqHead = (*uint32)(unsafe.Pointer(&w.sqMem[p.sqOff.head]))
	w.sqTail = (*uint32)(unsafe.Pointer(&w.sqMem[p.sqOff.tail]))
	w.sqMask = *(*uint32)(unsafe.Pointer(&w.sqMem[p.sqOff.ringMask]))
	w.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&w.sqeMem[0])), p.sqEntries)
	// The submission ring holds indexes into sqes: slot i always names
	// entry i.
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&w.sqMem[p.sqOff.array])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	w.cqHead = (*uint32)(unsafe.Pointer(&w.cqMem[p.cqOff.head]))
	w.cqTail = (*uint32)(unsafe.Pointer(&w.cqMem[p.cqOff.tail]))
	w.cqMask = *(*uint32)(unsafe.Pointer(&w.cqMem[p.cqOff.ringMask]))
	w.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&w.cqMem[p.cqOff.cqes])), p.cqEntries)

	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	// Non-blocking, so os.NewFile hands it to the network poller.
	w.efd = os.NewFile(uintptr(efd), "io_uring-eventfd")
	fd := int32(efd)
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(w.ring), uringRegisterEventfd,
		uintptr(unsafe.Pointer(&fd)), 1, 0, 0); errno != 0 {
		return os.NewSyscallError("io_uring_register", errno)
	}
	return nil
}

// release frees the ring; nothing may be in flight.
func (w *asyncWriter) release() {
	if w.efd != nil {
		w.efd.Close()
	}
	if w.sqeMem != nil {
		unix.Munmap(w.sqeMem)
	}
	if w.cqMem != nil && &w.cqMem[0] != &w.sqMem[0] {
		unix.Munmap(w.cqMem)
	}
	if w.sqMem != nil {
		unix.Munmap(w.sqMem)
	}
	unix.Close(w.ring)
}

// WriteAt writes b at off and returns when the kernel has done so. Like
// pwrite(2), a write may take less than it was given; the rest is
// written again.
func (w *asyncWriter) WriteAt(b []byte, off int64) (int, error) {
	done, stalls := 0, 0
	for done < len(b) {
		n, err := w.write(b[done:], off+int64(done))
		done += n
		switch {
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) || (err == nil && n == 0):
			if stalls++; stalls > uringMaxRetries {
				if err == nil {
					err = &os.PathError{Op: "write", Path: w.f.Name(), Err: io.ErrShortWrite}
				}
				return done, err
			}
		case err != nil:
			return done, err
		}
	}
	return done, nil
}

// write submits one write and waits for its completion.
func (w *asyncWriter) write(b []byte, off int64) (int, error) {
	// At most len(sqes) writes in flight: neither ring can overflow.
	w.slots <- struct{}{}
	defer func() { <-w.slots }()
	req := &uringWrite{buf: b, done: make(chan int32, 1)}
	if err := w.submit(req, off); err != nil {
		return 0, err
	}
	res := <-req.done
	runtime.KeepAlive(req)
	if res < 0 {
		return 0, &os.PathError{Op: "write", Path: w.f.Name(), Err: unix.Errno(-res)}
	}
	return int(res), nil
}

// submit hands req to the kernel.
func (w *asyncWriter) submit(req *uringWrite, off int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errRingClosed
	}
	tail := *w.sqTail
	if tail-atomic.LoadUint32(w.sqHead) >= uint32(len(w.sqes)) {
		return fmt.Errorf("%w: submission ring full", errRingFailed)
	}
	id := w.next
	w.next++
	w.sqes[tail&w.sqMask] = uringSQE{
		opcode:   uringOpWrite,
		fd:       int32(w.fd),
		off:      uint64(off),
		addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(req.buf)))),
		len:      uint32(len(req.buf)),
		userData: id,
	}
	w.inflight[id] = req
	// The kernel reads the entry once it sees the new tail.
	atomic.StoreUint32(w.sqTail, tail+1)
	for try := 0; ; try++ {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(w.ring), 1, 0, 0, 0, 0)
		if errno == 0 && n == 1 {
			return nil
		}
		if (errno == unix.EINTR || errno == unix.EAGAIN || errno == unix.EBUSY) && try < uringMaxRetries {
			runtime.Gosched()
			continue
		}
		// Not taken: the kernel reads the tail only in io_uring_enter,
		// which we hold the lock around, so the entry can be withdrawn.
		atomic.StoreUint32(w.sqTail, tail)
		delete(w.inflight, id)
		if errno == 0 {
			errno = unix.EAGAIN
		}
		return fmt.Errorf("%w: io_uring_enter: %w", errRingFailed, errno)
	}
}

// reap delivers completions until the eventfd is closed.
func (w *asyncWriter) reap() {
	defer close(w.reaped)
	var buf [8]byte
	for {
		w.drain()
		// Parks in the network poller until the kernel signals.
		// Only Close makes the read fail.
		if _, err := w.efd.Read(buf[:]); err != nil {
			return
		}
	}
}

// drain delivers every completion in the ring. The kernel signals the
// eventfd after it posts a completion, so one posted during a drain
// wakes the next.
func (w *asyncWriter) drain() {
	head := *w.cqHead
	for tail := atomic.LoadUint32(w.cqTail); head != tail; head++ {
		c := w.cqes[head&w.cqMask]
		// The entry is copied: the kernel may reuse its slot now.
		atomic.StoreUint32(w.cqHead, head+1)
		w.mu.Lock()
		req := w.inflight[c.userData]
		delete(w.inflight, c.userData)
		w.mu.Unlock()
		if req != nil {
			req.done <- c.res
		}
	}
}

// Close waits for the writes in flight and frees the ring. f stays open.
func (w *asyncWriter) Close() error {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		// The kernel may still write from the buffers of writes in
		// flight: wait for every one to complete.
		for range cap(w.slots) {
			w.slots <- struct{}{}
		}
		// Later writes take a slot and find the writer closed.
		for range cap(w.slots) {
			<-w.slots
		}
		w.efd.Close()
		<-w.reaped
		w.efd = nil
		w.release()
	})
	return nil
}
