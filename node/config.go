package node

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/pelletier/go-toml/v2"
)

// ErrConfig is wrapped by every error about config.toml.
var ErrConfig = errors.New("invalid config")

// DefaultPort is a personal node's fixed default libp2p port, for both QUIC
// (UDP) and TCP. A fixed port lets a user forward it once on their router.
const DefaultPort = 4747

// DefaultAPIAddr is the default address of the local API and web UI.
const DefaultAPIAddr = "127.0.0.1:4780"

// Config is the content of a node's config.toml. Its zero value is not
// useful; start from DefaultConfig.
type Config struct {
	Network     NetworkConfig     `toml:"network"`
	API         APIConfig         `toml:"api"`
	Connections ConnectionsConfig `toml:"connections"`
	Resources   ResourcesConfig   `toml:"resources"`
	Log         LogConfig         `toml:"log"`
}

// NetworkConfig is where the libp2p host listens and what it announces.
type NetworkConfig struct {
	// Listen holds the multiaddrs the host listens on.
	Listen []string `toml:"listen"`
	// Announce, when not empty, replaces the addresses the host tells
	// others about (for a node behind a port forward or a relay with a
	// public address).
	Announce []string `toml:"announce"`
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

// DefaultConfig returns the configuration of a node whose config.toml holds
// nothing but comments. It is exactly what defaultConfigText says.
func DefaultConfig() Config {
	p := DefaultPort
	return Config{
		Network: NetworkConfig{
			Listen: []string{
				fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", p),
				fmt.Sprintf("/ip6/::/udp/%d/quic-v1", p),
				fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", p),
				fmt.Sprintf("/ip6/::/tcp/%d", p),
			},
			Announce: []string{},
		},
		API:         APIConfig{Listen: DefaultAPIAddr},
		Connections: ConnectionsConfig{LowWater: 100, HighWater: 400, GracePeriod: Duration(time.Minute)},
		Resources:   ResourcesConfig{MaxMemoryMiB: 256, MaxFileDescriptors: 512},
		Log:         LogConfig{Level: "info", Format: "text"},
	}
}

// defaultConfigText is written to config.toml on first start. Every line is
// a default, so the file documents every setting; TestDefaultConfigText
// keeps it equal to DefaultConfig.
const defaultConfigText = `# meshtalk node configuration.
# Every value below is the default. Command-line flags override this file.

[network]
# Multiaddrs the libp2p host listens on: QUIC first, TCP as the fallback.
# --listen replaces this list.
listen = [
  "/ip4/0.0.0.0/udp/4747/quic-v1",
  "/ip6/::/udp/4747/quic-v1",
  "/ip4/0.0.0.0/tcp/4747",
  "/ip6/::/tcp/4747",
]
# Addresses to tell other peers instead of the detected ones (for a port
# forward or a relay's public address). Empty means: the detected ones.
announce = []

[api]
# The local control API and web UI. Loopback only; port 0 picks a free port.
# --api overrides it.
listen = "127.0.0.1:4780"

[connections]
# The connection manager trims connections down to low_water once there are
# more than high_water; connections younger than grace_period are kept.
low_water = 100
high_water = 400
grace_period = "1m0s"

[resources]
# libp2p's resource manager scales its limits (connections, streams, buffers)
# from the memory and file descriptors it may use.
max_memory_mib = 256
max_file_descriptors = 512

[log]
# level: debug, info, warn or error; format: text or json.
# --log-level and --log-format override them.
level = "info"
format = "text"
`

// LoadConfig reads config.toml at path. A missing file is the default
// configuration. Errors wrap ErrConfig and name the file, the line and the
// field.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return DefaultConfig(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, b)
}

// ParseConfig parses the text of a config file; name is used in errors.
// Settings the file does not mention keep their defaults.
func ParseConfig(name string, b []byte) (Config, error) {
	cfg := DefaultConfig()
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
