package relay

import (
	"fmt"
	"net"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/time/rate"
)

// maxTrackedIPs bounds the per-address registration limiters kept.
const maxTrackedIPs = 65536

// allowRegistration rate-limits new accounts: at most
// RegistrationsPerIPPerHour from one IP address (an IPv6 /64 counts as one
// address) and RegistrationsPerMinute from everyone. A registration that
// is refused here costs nothing else.
func (s *Server) allowRegistration(from ma.Multiaddr) error {
	key := "?"
	if ip, err := manet.ToIP(from); err == nil {
		if ip.To4() == nil {
			ip = ip.Mask(net.CIDRMask(64, 128))
		}
		key = ip.String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.regByIP[key]
	if !ok {
		if len(s.regByIP) >= maxTrackedIPs {
			// Many addresses: start over rather than grow without bound;
			// the limit for everyone still holds.
			clear(s.regByIP)
		}
		n := s.cfg.RegistrationsPerIPPerHour
		l = rate.NewLimiter(rate.Every(time.Hour/time.Duration(n)), n)
		s.regByIP[key] = l
	}
	if !l.Allow() {
		return fmt.Errorf("%w: too many new accounts from your address; try again in an hour", ErrQuota)
	}
	if !s.registrations.Allow() {
		return fmt.Errorf("%w: this relay takes too many new accounts right now; try again in a minute", ErrQuota)
	}
	return nil
}
