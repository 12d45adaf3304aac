package node

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDefaultConfigText(t *testing.T) {
	for _, role := range []Role{RolePersonal, RoleRelay} {
		// Parsed with the other role's defaults, so every value must come
		// from the text itself.
		other := RoleRelay - role
		cfg, err := ParseConfig("config.toml", []byte(DefaultConfigText(role)), other)
		if err != nil {
			t.Fatal(err)
		}
		if want := DefaultConfig(role); !reflect.DeepEqual(cfg, want) {
			t.Fatalf("the default %s config.toml says\n%+v\nbut DefaultConfig is\n%+v", role, cfg, want)
		}
	}
}

func TestConfigPartialKeepsDefaults(t *testing.T) {
	cfg, err := ParseConfig("c", []byte("[connections]\nhigh_water = 900\n"), RolePersonal)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Connections.HighWater != 900 || cfg.Connections.LowWater != 100 || cfg.API.Listen != DefaultAPIAddr {
		t.Fatalf("got %+v", cfg)
	}
}

func TestConfigErrorsNameLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"syntax", "[network]\nlisten = [\"/ip4/0.0.0.0/tcp/1\"\n\n[api]\n", []string{"cfg.toml:"}},
		{"unknown field", "[api]\nlisten = \"127.0.0.1:0\"\nlistne = 3\n", []string{"cfg.toml:3:", `"api.listne"`}},
		{"wrong type", "\n[connections]\nlow_water = \"many\"\n", []string{"cfg.toml:3:", `"connections.low_water"`}},
		{"bad multiaddr", "[network]\n\nlisten = [\"not an address\"]\n", []string{"cfg.toml:3:", `"network.listen"`, "not a multiaddr"}},
		{"api not loopback", "[api]\nlisten = \"0.0.0.0:4780\"\n", []string{"cfg.toml:2:", `"api.listen"`, "loopback"}},
		{"bad duration", "[connections]\ngrace_period = \"soon\"\n", []string{"cfg.toml:2:", "grace_period"}},
		{"bad relay", "[discovery]\nrelays = [\"/ip4/192.0.2.1/tcp/4001\"]\n", []string{"cfg.toml:2:", `"discovery.relays"`, "/p2p/"}},
		{"bad level", "[log]\nformat = \"json\"\nlevel = \"loud\"\n", []string{"cfg.toml:3:", `"log.level"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("cfg.toml", []byte(tc.text), RolePersonal)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want ErrConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// FuzzParseConfig: no config.toml makes the parser panic, and an error is
// always ErrConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(DefaultConfigText(RolePersonal)))
	f.Add([]byte(DefaultConfigText(RoleRelay)))
	f.Add([]byte("[network]\nlisten = [\"/ip4/0.0.0.0/tcp/1\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseConfig("config.toml", b, RolePersonal); err != nil && !errors.Is(err, ErrConfig) {
			t.Fatalf("error without ErrConfig: %v", err)
		}
	})
}

// TestPortMapDefaults: a personal node asks its router for a port
// mapping unless told not to; a relay never does; a node on loopback
// only has nothing to map (and must not look for a router).
func TestPortMapDefaults(t *testing.T) {
	if !DefaultConfig(RolePersonal).Network.PortMap || DefaultConfig(RoleRelay).Network.PortMap {
		t.Fatal("port_map: want on for a personal node, off for a relay")
	}
	cfg, err := ParseConfig("c", []byte("[network]\nport_map = false\n"), RolePersonal)
	if err != nil || cfg.Network.PortMap {
		t.Fatalf("port_map = false: %v, %+v", err, cfg.Network)
	}
	for _, tc := range []struct {
		listen []string
		want   bool
	}{
		{[]string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip6/::1/tcp/0"}, false},
		{nil, false},
		{[]string{"/ip4/127.0.0.1/tcp/0", "/ip4/0.0.0.0/udp/4747/quic-v1"}, true},
		{[]string{"/ip4/192.0.2.2/tcp/4747"}, true},
	} {
		if got := listensBeyondLoopback(tc.listen); got != tc.want {
			t.Errorf("listensBeyondLoopback(%v) = %t, want %t", tc.listen, got, tc.want)
		}
	}
}
