package node

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/pelletier/go-toml/v2"
)

// ErrConfig is wrapped by every error about config.toml.
var ErrConfig = errors.New("node: invalid config")

// Role is what a node is for: a person's own node or a relay.
type Role int

const (
	// RolePersonal is `meshtalk run`: one person's node.
	RolePersonal Role = iota
	// RoleRelay is `meshtalk relay`: a circuit relay and DHT server for
	// others, and the relay service (package relay) for its users: their
	// accounts and login, presence, the sealed mailbox and the file drop.
	RoleRelay
)

func (r Role) String() string {
	if r == RoleRelay {
		return "relay"
	}
	return "personal"
}

// Default ports. A personal node and a relay have different defaults so
// that both can run on one machine. Fixed ports let a user forward them
// once on their router.
const (
	DefaultPort         = 4747 // a personal node's libp2p port, QUIC (UDP) and TCP
	DefaultAPIAddr      = "127.0.0.1:4780"
	DefaultRelayPort    = 4001
	DefaultRelayAPIAddr = "127.0.0.1:4781"
)

// Config is the content of a node's config.toml. Its zero value is not
// useful; start from DefaultConfig.
type Config struct {
	Network     NetworkConfig     `toml:"network"`
	API         APIConfig         `toml:"api"`
	Connections ConnectionsConfig `toml:"connections"`
	Resources   ResourcesConfig   `toml:"resources"`
	Discovery   DiscoveryConfig   `toml:"discovery"`
	Relay       RelayConfig       `toml:"relay"`
	Chat        ChatConfig        `toml:"chat"`
	Files       FilesConfig       `toml:"files"`
	Calls       CallsConfig       `toml:"calls"`
	TURN        TURNConfig        `toml:"turn"`
	Log         LogConfig         `toml:"log"`
}

// DiscoveryConfig is how the node finds and reaches peers.
type DiscoveryConfig struct {
	// MDNS finds peers on the local network.
	MDNS bool `toml:"mdns"`
	// DHT is the Kademlia mode: "auto" (a server once AutoNAT finds the
	// node publicly reachable, a client until then), "client" or "server".
	DHT string `toml:"dht"`
	// Bootstrap peers (multiaddrs ending in /p2p/<peer ID>) join the DHT.
	Bootstrap []string `toml:"bootstrap"`
	// Relays (multiaddrs ending in /p2p/<peer ID>) are kept connected, give
	// the node /p2p-circuit addresses when it is not reachable, and serve as
	// bootstrap peers too.
	Relays []string `toml:"relays"`
	// Reachability is "auto" (AutoNAT decides), "public" or "private".
	Reachability string `toml:"reachability"`
	// PublicRanges are reserved address ranges (CIDR) to treat as public:
	// for a lab or a private WAN where they are routed. Empty on the
	// internet. Only the meshtalk binary applies it (it is process-wide).
	PublicRanges []string `toml:"public_ranges"`
}

// ChatConfig is about messaging.
type ChatConfig struct {
	// ReadReceipts tells friends when their messages were read here.
	ReadReceipts bool `toml:"read_receipts"`
	// ParkAfter is how long a friend stays unreachable (from the first
	// failed attempt) before messages for it are parked in its relay
	// mailbox as well. A friend its relay says is logged out gets them
	// parked at once.
	ParkAfter Duration `toml:"park_after"`
	// ParkOnStop bounds how long a clean stop spends parking what is
	// still queued for friends and group members away.
	ParkOnStop Duration `toml:"park_on_stop"`
}

// FilesConfig is about files and pictures.
type FilesConfig struct {
	// PictureAutoFetchMiB: a received picture's original is fetched by
	// itself (into the home's pictures/ folder) when it is at most this
	// large; 0 never fetches by itself.
	PictureAutoFetchMiB int `toml:"picture_auto_fetch_mib"`
	// Pictures' originals fetched by themselves in a day, in MiB: from one
	// author, and from all of them; the rest wait for a tap.
	PictureAutoFetchAuthorMiBPerDay int `toml:"picture_auto_fetch_author_mib_per_day"`
	PictureAutoFetchMiBPerDay       int `toml:"picture_auto_fetch_mib_per_day"`
	// PictureAutoFetchAttempts: a picture's original fetched by itself is
	// tried this many times at most (across restarts), then shown failed.
	PictureAutoFetchAttempts int `toml:"picture_auto_fetch_attempts"`
	// Dir is the one downloads folder: received files, dropped files and
	// pictures' originals. Empty: $XDG_DOWNLOAD_DIR/meshtalk, else
	// ~/Downloads/meshtalk. A leading ~/ is the user's home.
	Dir string `toml:"dir"`
	// UploadKiBPerSecond caps what this node serves of files, to all
	// peers together; 0: no cap.
	UploadKiBPerSecond int `toml:"upload_kib_per_second"`
}

// DownloadsDir is the folder that Dir names.
func (f FilesConfig) DownloadsDir() (string, error) {
	dir := f.Dir
	if dir == "" {
		if xdg := os.Getenv("XDG_DOWNLOAD_DIR"); xdg != "" {
			return filepath.Join(xdg, "meshtalk"), nil
		}
		dir = "~/Downloads/meshtalk"
	}
	if rest, ok := strings.CutPrefix(dir, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("node: [files] dir %q: %w", f.Dir, err)
		}
		dir = filepath.Join(home, rest)
	}
	return filepath.Abs(dir)
}

// RelayConfig sizes the circuit relay service of a relay node. A relayed
// connection is cut after circuit_duration or circuit_data_mib in either
// direction, whichever comes first; 0 for both means no limit.
type RelayConfig struct {
	MaxReservations      int      `toml:"max_reservations"`
	MaxReservationsPerIP int      `toml:"max_reservations_per_ip"`
	MaxCircuitsPerPeer   int      `toml:"max_circuits_per_peer"`
	ReservationTTL       Duration `toml:"reservation_ttl"`
	CircuitDuration      Duration `toml:"circuit_duration"`
	CircuitDataMiB       int64    `toml:"circuit_data_mib"`
	BufferKiB            int      `toml:"buffer_kib"`

	// Registration is "open", "invite" (a token from `meshtalk relay
	// invite`) or "closed".
	Registration string `toml:"registration"`
	// MailboxTTL is how long an envelope waits for its recipient.
	MailboxTTL Duration `toml:"mailbox_ttl"`
	// Per recipient: envelopes and MiB waiting; per sender: envelopes and
	// MiB it has waiting in all mailboxes.
	MailboxMaxItems int   `toml:"mailbox_max_items"`
	MailboxMaxMiB   int64 `toml:"mailbox_max_mib"`
	SenderMaxItems  int   `toml:"sender_max_items"`
	SenderMaxMiB    int64 `toml:"sender_max_mib"`
	// DropTTL is how long a dropped file waits; DropMaxMiB bounds the
	// dropped files waiting for one recipient.
	DropTTL    Duration `toml:"drop_ttl"`
	DropMaxMiB int64    `toml:"drop_max_mib"`
	// Registrations the relay takes from one IP address in an hour, and
	// from everyone in a minute.
	RegistrationsPerIPPerHour int `toml:"registrations_per_ip_per_hour"`
	RegistrationsPerMinute    int `toml:"registrations_per_minute"`
}

// NetworkConfig is where the libp2p host listens and what it announces.
type NetworkConfig struct {
	// Listen holds the multiaddrs the host listens on.
	Listen []string `toml:"listen"`
	// Announce, when not empty, replaces the addresses the host tells
	// others about (for a node behind a port forward or a relay with a
	// public address).
	Announce []string `toml:"announce"`
	// PortMap asks the router for a mapping of the listen ports (UPnP IGD,
	// NAT-PMP) and announces the mapped addresses: on for a personal node,
	// off for a relay (it runs on a reachable host).
	PortMap bool `toml:"port_map"`
}

// APIConfig is the local control API.
type APIConfig struct {
	// Listen is a loopback HOST:PORT; port 0 picks a free port.
	Listen string `toml:"listen"`
}

// ConnectionsConfig sizes libp2p's connection manager.
type ConnectionsConfig struct {
	LowWater    int      `toml:"low_water"`
	HighWater   int      `toml:"high_water"`
	GracePeriod Duration `toml:"grace_period"`
}

// ResourcesConfig sizes libp2p's resource manager: the limits on memory,
// connections and streams are scaled from these two numbers.
type ResourcesConfig struct {
	MaxMemoryMiB       int64 `toml:"max_memory_mib"`
	MaxFileDescriptors int   `toml:"max_file_descriptors"`
}

// LogConfig is the default of the --log-level and --log-format flags.
type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Duration is a time.Duration written as a Go duration string ("90s").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration such as \"90s\" or \"2m\": %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// DefaultConfig returns the configuration of a node of role whose
// config.toml holds nothing but comments. It is exactly what
// DefaultConfigText says (TestDefaultConfigText).
func DefaultConfig(role Role) Config {
	p, api, dht, mdns, reach, portMap := DefaultPort, DefaultAPIAddr, "auto", true, "auto", true
	conns := ConnectionsConfig{LowWater: 100, HighWater: 400, GracePeriod: Duration(time.Minute)}
	res := ResourcesConfig{MaxMemoryMiB: 256, MaxFileDescriptors: 512}
	if role == RoleRelay {
		// A relay holds a connection to each logged-in user (and the
		// circuits it relays): thousands, not hundreds.
		conns = ConnectionsConfig{LowWater: 3000, HighWater: 4000, GracePeriod: Duration(time.Minute)}
		res = ResourcesConfig{MaxMemoryMiB: 1024, MaxFileDescriptors: 8192}
		// A relay is run on a reachable host: it serves the DHT and its
		// relay service from the start (go-libp2p starts the relay service
		// only on a node it deems public).
		p, api, dht, mdns, reach, portMap = DefaultRelayPort, DefaultRelayAPIAddr, "server", false, "public", false
	}
	return Config{
		Network: NetworkConfig{
			Listen: []string{
				fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", p),
				fmt.Sprintf("/ip6/::/udp/%d/quic-v1", p),
				fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", p),
				fmt.Sprintf("/ip6/::/tcp/%d", p),
			},
			Announce: []string{},
			PortMap:  portMap,
		},
		API:         APIConfig{Listen: api},
		Connections: conns,
		Resources:   res,
		Discovery:   DiscoveryConfig{MDNS: mdns, DHT: dht, Bootstrap: []string{}, Relays: []string{}, Reachability: reach, PublicRanges: []string{}},
		Relay: RelayConfig{
			MaxReservations:      1024,
			MaxReservationsPerIP: 8,
			MaxCircuitsPerPeer:   16,
			ReservationTTL:       Duration(time.Hour),
			CircuitDuration:      Duration(time.Hour),
			CircuitDataMiB:       4096,
			BufferKiB:            64,
			Registration:         "open",
			MailboxTTL:           Duration(30 * 24 * time.Hour),
			MailboxMaxItems:      10000,
			MailboxMaxMiB:        256,
			SenderMaxItems:       10000,
			SenderMaxMiB:         256,
			DropTTL:              Duration(7 * 24 * time.Hour),
			DropMaxMiB:           2048,

			RegistrationsPerIPPerHour: 10,
			RegistrationsPerMinute:    60,
		},
		Chat:  ChatConfig{ReadReceipts: true, ParkAfter: Duration(10 * time.Second), ParkOnStop: Duration(5 * time.Second)},
		Files: FilesConfig{PictureAutoFetchMiB: 16, PictureAutoFetchAuthorMiBPerDay: 64, PictureAutoFetchMiBPerDay: 256, PictureAutoFetchAttempts: 5},
		Calls: CallsConfig{RingTimeout: Duration(45 * time.Second), RingEvery: Duration(10 * time.Second), RingBurst: 3, ICEPolicy: "all", MDNS: true, Interfaces: []string{}, STUN: []string{}},
		TURN:  TURNConfig{CredentialTTL: Duration(12 * time.Hour), MaxAllocationsPerUser: 4, BandwidthKbps: 4000},
		Log:   LogConfig{Level: "info", Format: "text"},
	}
}

// DefaultConfigText is what a node of role writes to config.toml on its
// first start: every setting with its default and what it means.
func DefaultConfigText(role Role) string {
	d := DefaultConfig(role)
	return fmt.Sprintf(configTemplate, role, quoteList(d.Network.Listen), d.Network.PortMap, d.API.Listen,
		d.Connections.LowWater, d.Connections.HighWater, d.Resources.MaxMemoryMiB, d.Resources.MaxFileDescriptors,
		d.Discovery.MDNS, d.Discovery.DHT, d.Discovery.Reachability)
}

func quoteList(l []string) string {
	var b strings.Builder
	for _, s := range l {
		fmt.Fprintf(&b, "  %q,\n", s)
	}
	return b.String()
}

const configTemplate = `# meshtalk configuration of a %s node.
# Every value below is the default. Command-line flags override this file.

[network]
# Multiaddrs the libp2p host listens on: QUIC first, TCP as the fallback.
# --listen replaces this list; --no-listen empties it (dial out only).
listen = [
%s]
# Addresses to tell other peers instead of the detected ones (for a port
# forward or a relay's public address). Empty means: the detected ones.
# --announce replaces this list.
announce = []
# Ask the router to forward the listen ports here (UPnP IGD or NAT-PMP),
# renewed while the node runs, and announce the mapped address: peers
# behind any NAT then reach this node directly. A relay needs none.
# --no-port-map turns it off.
port_map = %t

[api]
# The local control API and web UI. Loopback only; port 0 picks a free port.
# --api overrides it.
listen = %q

[connections]
# The connection manager trims connections down to low_water once there are
# more than high_water; connections younger than grace_period are kept.
low_water = %d
high_water = %d
grace_period = "1m0s"

[resources]
# libp2p's resource manager scales its limits (connections, streams, buffers)
# from the memory and file descriptors it may use.
max_memory_mib = %d
max_file_descriptors = %d

[discovery]
# Find peers on the local network with mDNS. --no-mdns turns it off.
mdns = %t
# Kademlia DHT mode: "auto" (server once AutoNAT finds this node publicly
# reachable), "client" or "server".
dht = %q
# Peers to join the DHT through: multiaddrs ending in /p2p/<peer ID>.
# --bootstrap adds to this list. No public bootstrap peers are ever used.
bootstrap = []
# Relays to keep a reservation on, so that peers reach this node through
# them when it is behind NAT; they are bootstrap peers too. --relay adds.
relays = []
# "auto" lets AutoNAT find out whether this node is reachable; "private"
# or "public" says so. A node behind NAT with a relay may say "private" to
# announce its relayed address at once; a relay must be "public" to relay.
reachability = %q
# Reserved address ranges (CIDR) to treat as public, for a lab or a private
# WAN where they are routed: go-libp2p hole-punches and announces relay
# addresses only for addresses it deems public. Leave empty on the internet.
public_ranges = []

[relay]
# Used by "meshtalk relay" only: the circuit relay service's limits.
# Reservations in all, per IP address, and relayed connections per peer:
max_reservations = 1024
max_reservations_per_ip = 8
max_circuits_per_peer = 16
reservation_ttl = "1h0m0s"
# A relayed connection is cut after this time or this much data in either
# direction. Sized for chat and files; calls never go through the relay
# (their media takes WebRTC's own path). 0 and 0 mean no limit.
circuit_duration = "1h0m0s"
circuit_data_mib = 4096
# Per-connection copy buffer.
buffer_kib = 64
# Accounts: "open" to anyone, "invite" (tokens from "meshtalk relay invite")
# or "closed".
registration = "open"
# The offline mailbox holds sealed envelopes it cannot read until their
# recipient logs in, at most this long, and this much per recipient and
# per sender (a sender over quota is told so):
mailbox_ttl = "720h0m0s"
mailbox_max_items = 10000
mailbox_max_mib = 256
sender_max_items = 10000
sender_max_mib = 256
# Files dropped for offline recipients (sealed to them): how long they wait,
# and how many MiB may wait for one recipient.
drop_ttl = "168h0m0s"
drop_max_mib = 2048
# New accounts the relay takes from one IP address in an hour, and from
# everyone in a minute (more are refused, to be tried later).
registrations_per_ip_per_hour = 10
registrations_per_minute = 60

[chat]
# Tell friends when their messages were read here.
read_receipts = true
# A friend unreachable this long (from the first failed attempt) gets what
# is waiting for it through its relay's mailbox too (sealed to it; the
# relays are discovery.relays and those you registered on). A friend the
# relay says is logged out gets it there at once. Direct delivery goes on
# trying.
park_after = "10s"
# A clean stop (SIGINT, SIGTERM, "meshtalk stop") parks what is still
# queued for friends and group members away, for at most this long.
park_on_stop = "5s"

[files]
# A received picture's original is fetched by itself, into the downloads
# folder, when it is at most this many MiB; 0: only on request.
picture_auto_fetch_mib = 16
# Only friends' and group members' pictures are fetched by themselves, and
# at most this many MiB a day from one author, and from all of them; the
# rest wait for a tap (file get).
picture_auto_fetch_author_mib_per_day = 64
picture_auto_fetch_mib_per_day = 256
# A picture's original fetched by itself is tried this many times at most
# (a restart goes on counting), then shown as failed; "file get" tries again.
picture_auto_fetch_attempts = 5
# The downloads folder: received files, dropped files and pictures'
# originals, under their own names ("name (1).ext" rather than over
# another). Empty: $XDG_DOWNLOAD_DIR/meshtalk, else ~/Downloads/meshtalk.
# "meshtalk file get --out DIR" puts one file elsewhere.
dir = ""
# What this node serves of files, in KiB a second, to all peers together
# (a slow uplink stays usable for messages and calls); 0: no cap.
upload_kib_per_second = 0

[calls]
# A call rings this long before it is a missed call.
ring_timeout = "45s"
# A friend may ring this node 3 times in a row, then once every 10 s.
ring_every = "10s"
ring_burst = 3
# ICE of the node's own endpoint (meshtalk call --audio/--video): "all"
# tries direct paths first, then STUN and TURN of the relays the node is
# logged in to; "relay" sends the media through a relay's TURN only.
ice_policy = "all"
# Offer 127.0.0.1 candidates (two nodes on one machine).
loopback_candidates = false
# Only these network interfaces' addresses are offered (empty: all).
interfaces = []
# Resolve the .local candidates of browsers on the local network.
mdns = true
# STUN servers beside the relays' ("stun:host:port").
stun = []

[turn]
# A relay's TURN server (pion/turn) for the media of its users' calls
# that find no direct path, on its own port, UDP and TCP (TCP: users on
# networks that drop UDP); relayed addresses take UDP ports of the
# kernel's ephemeral range. Open all three (docs/relay.md).
# listen = "0.0.0.0:3478" turns it on; "" (the default) leaves it off.
listen = ""
# The IP address users reach it at (needed when listen is 0.0.0.0).
public_ip = ""
# Logged-in users get credentials valid this long (TURN REST, HMAC).
credential_ttl = "12h0m0s"
# Allocations one user may hold, and each one's bandwidth (kbit/s, both
# directions together).
max_allocations_per_user = 4
bandwidth_kbps = 4000

[log]
# level: debug, info, warn or error; format: text or json.
# --log-level and --log-format override them.
level = "info"
format = "text"
`

// LoadConfig reads config.toml at path. A missing file is the default
// configuration. Errors wrap ErrConfig and name the file, the line and the
// field.
func LoadConfig(path string, role Role) (Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return DefaultConfig(role), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("node: read config: %w", err)
	}
	return ParseConfig(path, b, role)
}

// ParseConfig parses the text of a config file; name is used in errors.
// Settings the file does not mention keep the defaults of role.
func ParseConfig(name string, b []byte, role Role) (Config, error) {
	cfg := DefaultConfig(role)
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var derr *toml.DecodeError
		var serr *toml.StrictMissingError
		switch {
		case errors.As(err, &serr) && len(serr.Errors) > 0:
			e := serr.Errors[0]
			row, _ := e.Position()
			return Config{}, fmt.Errorf("%w: %s:%d: unknown field %q", ErrConfig, name, row, strings.Join(e.Key(), "."))
		case errors.As(err, &derr):
			row, _ := derr.Position()
			field := strings.Join(derr.Key(), ".")
			if field == "" {
				return Config{}, fmt.Errorf("%w: %s:%d: %s", ErrConfig, name, row, derr.Error())
			}
			return Config{}, fmt.Errorf("%w: %s:%d: field %q: %s", ErrConfig, name, row, field, derr.Error())
		default:
			return Config{}, fmt.Errorf("%w: %s: %v", ErrConfig, name, err)
		}
	}
	if field, err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %s:%d: field %q: %v", ErrConfig, name, lineOf(b, field), field, err)
	}
	return cfg, nil
}

// validate checks the values that TOML's types cannot. It returns the
// dotted name of the first bad field.
func (c *Config) validate() (string, error) {
	for _, s := range c.Network.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return "network.listen", fmt.Errorf("%q is not a multiaddr: %v", s, err)
		}
	}
	for _, s := range c.Network.Announce {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return "network.announce", fmt.Errorf("%q is not a multiaddr: %v", s, err)
		}
	}
	if err := CheckLoopback(c.API.Listen); err != nil {
		return "api.listen", err
	}
	if c.Connections.LowWater < 0 || c.Connections.HighWater < c.Connections.LowWater {
		return "connections.high_water", fmt.Errorf("need 0 <= low_water <= high_water, have %d and %d", c.Connections.LowWater, c.Connections.HighWater)
	}
	if c.Connections.GracePeriod < 0 {
		return "connections.grace_period", errors.New("must not be negative")
	}
	if c.Resources.MaxMemoryMiB < 16 {
		return "resources.max_memory_mib", fmt.Errorf("%d is below the minimum of 16", c.Resources.MaxMemoryMiB)
	}
	if c.Resources.MaxFileDescriptors < 16 {
		return "resources.max_file_descriptors", fmt.Errorf("%d is below the minimum of 16", c.Resources.MaxFileDescriptors)
	}
	switch c.Discovery.DHT {
	case "auto", "client", "server":
	default:
		return "discovery.dht", fmt.Errorf("%q is not auto, client or server", c.Discovery.DHT)
	}
	switch c.Discovery.Reachability {
	case "auto", "public", "private":
	default:
		return "discovery.reachability", fmt.Errorf("%q is not auto, public or private", c.Discovery.Reachability)
	}
	for _, s := range c.Discovery.Bootstrap {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return "discovery.bootstrap", fmt.Errorf("%q is not a multiaddr ending in /p2p/<peer ID>: %v", s, err)
		}
	}
	for _, s := range c.Discovery.Relays {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return "discovery.relays", fmt.Errorf("%q is not a multiaddr ending in /p2p/<peer ID>: %v", s, err)
		}
	}
	for _, s := range c.Discovery.PublicRanges {
		if _, _, err := net.ParseCIDR(s); err != nil {
			return "discovery.public_ranges", fmt.Errorf("%q is not a CIDR range such as 203.0.113.0/24", s)
		}
	}
	r := c.Relay
	if r.MaxReservations < 1 || r.MaxReservationsPerIP < 1 || r.MaxCircuitsPerPeer < 1 {
		return "relay.max_reservations", errors.New("max_reservations, max_reservations_per_ip and max_circuits_per_peer must be at least 1")
	}
	if r.ReservationTTL < Duration(time.Minute) {
		return "relay.reservation_ttl", errors.New("must be at least 1m")
	}
	if r.CircuitDuration < 0 || r.CircuitDataMiB < 0 || (r.CircuitDuration == 0) != (r.CircuitDataMiB == 0) {
		return "relay.circuit_duration", errors.New("circuit_duration and circuit_data_mib must both be positive, or both 0 for no limit")
	}
	if r.BufferKiB < 1 || r.BufferKiB > 1024 {
		return "relay.buffer_kib", fmt.Errorf("%d is not between 1 and 1024", r.BufferKiB)
	}
	switch r.Registration {
	case "open", "invite", "closed":
	default:
		return "relay.registration", fmt.Errorf("%q is none of open, invite, closed", r.Registration)
	}
	if r.MailboxTTL < Duration(time.Minute) || r.DropTTL < Duration(time.Minute) {
		return "relay.mailbox_ttl", errors.New("mailbox_ttl and drop_ttl must be at least 1m")
	}
	if r.RegistrationsPerIPPerHour < 1 || r.RegistrationsPerMinute < 1 {
		return "relay.registrations_per_ip_per_hour", errors.New("registrations_per_ip_per_hour and registrations_per_minute must be at least 1")
	}
	if r.MailboxMaxItems < 1 || r.MailboxMaxMiB < 1 || r.SenderMaxItems < 1 || r.SenderMaxMiB < 1 || r.DropMaxMiB < 1 {
		return "relay.mailbox_max_items", errors.New("the mailbox and drop quotas must be at least 1")
	}
	if c.Chat.ParkAfter < 0 {
		return "chat.park_after", errors.New("must not be negative")
	}
	if c.Chat.ParkOnStop < 0 {
		return "chat.park_on_stop", errors.New("must not be negative")
	}
	if c.Files.PictureAutoFetchAuthorMiBPerDay < 0 || c.Files.PictureAutoFetchMiBPerDay < 0 {
		return "files.picture_auto_fetch_mib_per_day", errors.New("must not be negative")
	}
	if field, err := c.Calls.validate(); err != nil {
		return field, err
	}
	if field, err := c.TURN.validate(); err != nil {
		return field, err
	}
	if c.Files.UploadKiBPerSecond < 0 {
		return "files.upload_kib_per_second", errors.New("must not be negative")
	}
	if c.Files.PictureAutoFetchAttempts < 1 {
		return "files.picture_auto_fetch_attempts", errors.New("must be at least 1")
	}
	if c.Files.PictureAutoFetchMiB < 0 {
		return "files.picture_auto_fetch_mib", errors.New("must not be negative")
	}
	if _, err := ParseLogLevel(c.Log.Level); err != nil {
		return "log.level", err
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return "log.format", fmt.Errorf("%q is neither text nor json", c.Log.Format)
	}
	return "", nil
}

// lineOf finds the line on which the dotted field ("section.key") is set,
// or 0 when the file does not set it (the default is at fault then).
func lineOf(b []byte, field string) int {
	section, key, _ := strings.Cut(field, ".")
	current := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			current = strings.Trim(line, "[] ")
			continue
		}
		if k, _, ok := strings.Cut(line, "="); ok && current == section && strings.TrimSpace(k) == key {
			return i + 1
		}
	}
	return 0
}

// CheckLoopback reports an error unless addr is HOST:PORT with a loopback
// host: the local API must never be reachable from another machine.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (use 127.0.0.1:PORT)", addr)
	}
	return nil
}

// ParseLogLevel turns a level name into a slog.Level.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not a log level (debug, info, warn, error)", s)
	}
	return l, nil
}
