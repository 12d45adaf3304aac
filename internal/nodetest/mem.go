package nodetest

import (
	"os"
	"strconv"
	"strings"
)

// RssAnonKiB is this process's private resident memory (RssAnon in
// /proc/self/status: heap and stacks, not file pages the kernel can
// drop), in KiB; ok is false where the system does not say (not Linux).
func RssAnonKiB() (kib int64, ok bool) {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(st), "\n") {
		if v, found := strings.CutPrefix(line, "RssAnon:"); found {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib, err == nil
		}
	}
	return 0, false
}
