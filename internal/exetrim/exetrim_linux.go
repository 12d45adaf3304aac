// Package exetrim lets go of the pages of the running binary that the
// process does not use.
package exetrim

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Trim lets go of the pages of the binary that an idle node does not use.
// On kernels that cache files in large folios (ext4 since 6.16, among
// others), starting up leaves whole 2 MiB blocks of a 60 MB binary mapped
// as huge pages when only some pages of each were touched. Trim unmaps
// the binary's clean read-only segments (code, constants, tables: never
// written, so the file has their exact contents), asks for them to come
// back a page at a time (MADV_NOHUGEPAGE, MADV_RANDOM) and drops the
// binary's cached pages that nobody maps. What the node uses again faults
// back in on first touch (idle, about 8 MB of the 60). Segments with any
// written page (RELRO after relocation, data) are left alone. The node
// runs it once, after the ready line.
func Trim() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	type mapping struct {
		start, end uintptr
		dirty      bool
	}
	var cands []*mapping
	var cur *mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			cur = nil
			if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
				continue
			}
			lo, hi, _ := strings.Cut(fields[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil && end > start {
				cur = &mapping{start: uintptr(start), end: uintptr(end)}
				cands = append(cands, cur)
			}
			continue
		}
		if cur != nil && len(fields) >= 2 && (fields[0] == "Private_Dirty:" || fields[0] == "Anonymous:") && fields[1] != "0" {
			cur.dirty = true
		}
	}
	f.Close()
	for _, m := range cands {
		if m.dirty {
			continue
		}
		for _, advice := range []int{syscall.MADV_NOHUGEPAGE, syscall.MADV_RANDOM, syscall.MADV_DONTNEED} {
			syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, uintptr(advice))
		}
	}
	// The cached large folios would come back whole on the next touch:
	// drop the ones nobody maps (pages other processes map stay).
	if bin, err := os.Open(exe); err == nil {
		const fadvDontneed = 4 // POSIX_FADV_DONTNEED
		syscall.Syscall6(syscall.SYS_FADVISE64, bin.Fd(), 0, 0, fadvDontneed, 0, 0)
		bin.Close()
	}
}
