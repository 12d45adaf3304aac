package discovery

import (
	"fmt"
	"net"
	"slices"

	manet "github.com/multiformats/go-multiaddr/net"
)

// TreatAsPublic makes go-libp2p treat addresses in the given CIDR ranges as
// public although the internet reserves them (documentation, benchmarking,
// shared carrier-grade NAT space, private networks). go-libp2p announces
// relay addresses, shares addresses for hole punching and dials directly
// only for addresses it deems public; in a lab or on a private WAN where
// such ranges are routed, that leaves nodes unable to hole-punch.
//
// It changes process-wide tables of go-multiaddr, so it is for a process
// that runs one node (the meshtalk binary), called once before the node
// starts. A reserved range is lifted only when it lies inside a given one.
func TreatAsPublic(cidrs []string) error {
	var nets []*net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return fmt.Errorf("discovery: public range %q: %w", c, err)
		}
		nets = append(nets, n)
	}
	inside := func(r *net.IPNet) bool {
		rOnes, rBits := r.Mask.Size()
		for _, n := range nets {
			ones, bits := n.Mask.Size()
			if bits == rBits && ones <= rOnes && n.Contains(r.IP) {
				return true
			}
		}
		return false
	}
	manet.Private4 = slices.DeleteFunc(slices.Clone(manet.Private4), inside)
	manet.Private6 = slices.DeleteFunc(slices.Clone(manet.Private6), inside)
	manet.Unroutable4 = slices.DeleteFunc(slices.Clone(manet.Unroutable4), inside)
	manet.Unroutable6 = slices.DeleteFunc(slices.Clone(manet.Unroutable6), inside)
	return nil
}
