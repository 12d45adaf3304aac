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
