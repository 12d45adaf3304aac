package relay

// The relay's TURN server (pion/turn), for the media of calls between
// its users that no direct path carries.
//
// It listens on its own port, UDP and TCP (TURNConfig.Listen), apart from
// libp2p: call media is WebRTC, never a libp2p stream. Only logged-in
// users get credentials, over the account protocol (request turn, see
// wire.go): TURN REST style, username "<expiry unix>:<peer ID>" and
// password base64(HMAC-SHA1(secret, username)), so the TURN server checks
// them with no lookup. The secret is random per start: credentials die
// with the relay's process, or at their expiry (TURNConfig.CredentialTTL).
//
// Limits: a user holds at most MaxAllocationsPerUser allocations (counted
// by client address, live while it authenticates at least every
// allocationIdle: a client refreshes its allocation every few minutes),
// and each allocation relays at most BandwidthKbps, both directions
// together; what is over is dropped, as a congested link would, and
// congestion control slows the sender down. Prometheus metrics:
// meshtalk_relay_turn_allocations (now), _allocations_total,
// _relayed_bytes_total, _dropped_bytes_total, _refused_total.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/meshtalk/meshtalk/relay/pb"
)

// TURNConfig is the relay's TURN server.
type TURNConfig struct {
	// Listen is "host:port" for UDP and TCP; "" turns TURN off. Port 0
	// picks one (tests).
	Listen string
	// PublicIP is the address users and their peers reach the server and
	// its relayed addresses at; "" is Listen's host (which must not then
	// be unspecified).
	PublicIP string
	// CredentialTTL is how long credentials are valid (a call must start
	// within it; an allocation made stays until it ends).
	CredentialTTL time.Duration
	// MaxAllocationsPerUser and BandwidthKbps are the limits above.
	MaxAllocationsPerUser int
	BandwidthKbps         int
}

// Defaults of TURNConfig.
const (
	DefaultTURNCredentialTTL = 12 * time.Hour
	DefaultTURNAllocations   = 4
	DefaultTURNBandwidthKbps = 4000
	// allocationIdle: a client address that has not authenticated for
	// this long holds no allocation any more (pion's lifetime is 10 min,
	// refreshed halfway).
	allocationIdle = 11 * time.Minute
	turnRealm      = "meshtalk"
)

// TURN is what a relay tells its users of its TURN server.
type TURN struct {
	URLs     []string
	Username string
	Password string
	Expires  time.Time
}

// turnServer is a running TURN server.
type turnServer struct {
	cfg    TURNConfig
	srv    *turn.Server
	secret string
	urls   []string
	addr   string // host:port it listens on

	mu    sync.Mutex
	users map[string]map[string]time.Time // peer ID → client address → last authenticated

	allocs, relayed, dropped, refused prometheus.Counter
}

// startTURN starts the TURN server when the configuration asks for one.
func (s *Server) startTURN() error {
	cfg := s.cfg.TURN
	if cfg.Listen == "" {
		return nil
	}
	if cfg.CredentialTTL <= 0 {
		cfg.CredentialTTL = DefaultTURNCredentialTTL
	}
	if cfg.MaxAllocationsPerUser <= 0 {
		cfg.MaxAllocationsPerUser = DefaultTURNAllocations
	}
	if cfg.BandwidthKbps <= 0 {
		cfg.BandwidthKbps = DefaultTURNBandwidthKbps
	}
	t, err := newTURN(cfg)
	if err != nil {
		return fmt.Errorf("relay: turn: %w", err)
	}
	s.turn = t
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meshtalk_relay_turn_allocations", Help: "TURN allocations now."},
		func() float64 { return float64(t.srv.AllocationCount()) })
	s.met.reg.MustRegister(gauge, t.allocs, t.relayed, t.dropped, t.refused)
	s.log.Info("turn server", "listen", t.addr, "urls", t.urls)
	return nil
}

func newTURN(cfg TURNConfig) (*turnServer, error) {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, err
	}
	public := net.ParseIP(cfg.PublicIP)
	if public == nil {
		if public = net.ParseIP(host); public == nil || public.IsUnspecified() {
			return nil, fmt.Errorf("listening on %q needs a public IP (turn_public_ip)", cfg.Listen)
		}
	}
	udp, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	// TCP on the port UDP got (port 0 picks it).
	port := udp.LocalAddr().(*net.UDPAddr).Port
	tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		udp.Close()
		return nil, err
	}
	var secret [32]byte
	rand.Read(secret[:])
	t := &turnServer{cfg: cfg, secret: base64.StdEncoding.EncodeToString(secret[:]), users: map[string]map[string]time.Time{},
		allocs:  prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_turn_allocations_total", Help: "TURN allocations made."}),
		relayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_turn_relayed_bytes_total", Help: "Bytes relayed by TURN, both directions."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_turn_dropped_bytes_total", Help: "Bytes dropped over an allocation's bandwidth."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_turn_refused_total", Help: "TURN requests refused: a user over its allocations."}),
	}
	hp := net.JoinHostPort(public.String(), strconv.Itoa(port))
	t.addr = hp
	t.urls = []string{"stun:" + hp, "turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	gen := &limitedGenerator{t: t, inner: &turn.RelayAddressGeneratorStatic{RelayAddress: public, Address: host}}
	t.srv, err = turn.NewServer(turn.ServerConfig{
		Realm:             turnRealm,
		AuthHandler:       t.auth(turn.LongTermTURNRESTAuthHandler(t.secret, quiet.NewLogger("turn"))),
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: gen}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: gen}},
		LoggerFactory:     quiet,
	})
	if err != nil {
		udp.Close()
		tcp.Close()
		return nil, err
	}
	return t, nil
}

// auth checks TURN REST credentials, and a user's allocations.
func (t *turnServer) auth(rest turn.AuthHandler) turn.AuthHandler {
	return func(username, realm string, src net.Addr) ([]byte, bool) {
		key, ok := rest(username, realm, src)
		if !ok {
			return nil, false
		}
		_, user, _ := strings.Cut(username, ":")
		now := time.Now()
		t.mu.Lock()
		defer t.mu.Unlock()
		addrs := t.users[user]
		if addrs == nil {
			addrs = map[string]time.Time{}
			t.users[user] = addrs
		}
		for a, at := range addrs {
			if now.Sub(at) > allocationIdle {
				delete(addrs, a)
			}
		}
		if _, known := addrs[src.String()]; !known && len(addrs) >= t.cfg.MaxAllocationsPerUser {
			t.refused.Inc()
			return nil, false
		}
		addrs[src.String()] = now
		return key, true
	}
}

// credentials are p's, valid for the configured TTL.
func (t *turnServer) credentials(p peer.ID) (*pb.TurnCredentials, error) {
	user, pass, err := turn.GenerateLongTermTURNRESTCredentials(t.secret, p.String(), t.cfg.CredentialTTL)
	if err != nil {
		return nil, err
	}
	exp, _, _ := strings.Cut(user, ":")
	sec, _ := strconv.ParseInt(exp, 10, 64)
	return &pb.TurnCredentials{Urls: t.urls, Username: user, Password: pass, ExpiresMs: sec * 1000}, nil
}

func (t *turnServer) close() error {
	t.mu.Lock()
	t.users = map[string]map[string]time.Time{}
	t.mu.Unlock()
	return t.srv.Close()
}

// turnCredentials answers a logged-in user's turn request.
func (s *Server) turnCredentials(p peer.ID) (*pb.TurnCredentials, error) {
	if err := s.loggedIn(p); err != nil {
		return nil, err
	}
	if s.turn == nil {
		return nil, fmt.Errorf("%w: this relay runs no TURN server", ErrNotFound)
	}
	return s.turn.credentials(p)
}

// TURNAddr is where the TURN server listens (host:port, its public IP),
// "" when it is off.
func (s *Server) TURNAddr() string {
	if s.turn == nil {
		return ""
	}
	return s.turn.addr
}

// limitedGenerator makes relayed addresses whose traffic is counted and
// held to the allocation's bandwidth.
type limitedGenerator struct {
	t     *turnServer
	inner *turn.RelayAddressGeneratorStatic
}

func (g *limitedGenerator) Validate() error { return g.inner.Validate() }

func (g *limitedGenerator) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	conn, addr, err := g.inner.AllocatePacketConn(network, port)
	if err != nil {
		return nil, nil, err
	}
	g.t.allocs.Inc()
	bytesPerSec := g.t.cfg.BandwidthKbps * 1000 / 8
	return &limitedConn{PacketConn: conn, t: g.t, lim: rate.NewLimiter(rate.Limit(bytesPerSec), max(bytesPerSec/4, 64<<10))}, addr, nil
}

func (g *limitedGenerator) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("TCP allocations are not offered")
}

// limitedConn is one allocation's relayed socket.
type limitedConn struct {
	net.PacketConn
	t   *turnServer
	lim *rate.Limiter
}

// WriteTo sends to the peer; over the bandwidth the packet is dropped.
func (c *limitedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.lim.AllowN(time.Now(), len(p)) {
		c.t.dropped.Add(float64(len(p)))
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	c.t.relayed.Add(float64(n))
	return n, err
}

// ReadFrom takes what the peer sends; over the bandwidth it is dropped.
func (c *limitedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if c.lim.AllowN(time.Now(), n) {
			c.t.relayed.Add(float64(n))
			return n, addr, nil
		}
		c.t.dropped.Add(float64(n))
	}
}

// turnFromWire checks a relay's TURN credentials: a few stun:/turn:
// URLs of bounded length, a username and password.
func turnFromWire(t *pb.TurnCredentials) (TURN, error) {
	if t == nil || len(t.Urls) == 0 || len(t.Urls) > 8 || t.Username == "" || len(t.Username) > 256 || t.Password == "" || len(t.Password) > 256 {
		return TURN{}, fmt.Errorf("%w: no usable TURN credentials in the answer", ErrBadRequest)
	}
	for _, u := range t.Urls {
		ok := strings.HasPrefix(u, "stun:") || strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:")
		if !ok || len(u) > 256 || !utf8.ValidString(u) {
			return TURN{}, fmt.Errorf("%w: TURN URL %.40q", ErrBadRequest, u)
		}
	}
	return TURN{URLs: t.Urls, Username: t.Username, Password: t.Password, Expires: time.UnixMilli(t.ExpiresMs)}, nil
}

// TURN asks each relay this node is logged in to for TURN credentials;
// relays without TURN (or too old to know the request) are left out.
func (c *Client) TURN(ctx context.Context) map[peer.ID]TURN {
	out := map[peer.ID]TURN{}
	for _, r := range c.loggedInRelays() {
		err := c.call(ctx, r, func(s *accountStream) error {
			rep, err := s.do(&pb.AccountRequest{Body: &pb.AccountRequest_Turn{Turn: &pb.TurnRequest{}}})
			if err != nil {
				return err
			}
			t, err := turnFromWire(rep.GetTurn())
			if err == nil {
				out[r] = t
			}
			return err
		})
		if err != nil {
			c.log.Debug("turn credentials", "relay", r, "err", err)
		}
	}
	return out
}
