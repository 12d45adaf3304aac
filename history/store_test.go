package history

import (
	"fmt"
	"math"
	"testing"
)

// Keys sort in conversation order only if the clock reading is fixed-width
// hex: convKey must print what "%016x" prints.
func TestConvKey(t *testing.T) {
	for _, h := range []uint64{0, 1, 0xabc, 1 << 40, math.MaxUint64} {
		if got, want := ConvKey("/msgs/", "peer", h, "id"), fmt.Sprintf("/msgs/peer/%016x/id", h); got != want {
			t.Errorf("ConvKey(%#x) = %q, want %q", h, got, want)
		}
		if got, want := string(MsgLoc("peer", h)), fmt.Sprintf("peer/%016x", h); got != want {
			t.Errorf("MsgLoc(%#x) = %q, want %q", h, got, want)
		}
	}
}
