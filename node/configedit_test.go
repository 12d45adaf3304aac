package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEditRelays: the relays list is replaced where it is, whatever its
// shape, added when missing, and nothing else of the file changes.
func TestEditRelays(t *testing.T) {
	const r1 = "/ip4/192.0.2.1/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	for name, text := range map[string]string{
		"default":    DefaultConfigText(RolePersonal),
		"no section": "# just this\n[chat]\npark_after = \"1m\"\n",
		"no key":     "[discovery]\nmdns = false # off\n",
		"multi-line": "[discovery]\nrelays = [ # mine\n  \"/dns/x]y/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN\", # a ] in a string\n] # after\nmdns = false\n",
		"empty file": "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			os.WriteFile(path, []byte(text), 0o640)
			old, err := LoadConfig(path, RolePersonal)
			if err != nil {
				t.Fatal(err)
			}
			if name == "multi-line" {
				if _, err := EditRelays(path, RolePersonal, RemoveRelayFrom("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN")); err != nil {
					t.Fatal(err)
				}
			}
			got, err := EditRelays(path, RolePersonal, AddRelayTo(r1))
			if err != nil || len(got) != 1 || got[0] != r1 {
				t.Fatalf("EditRelays: %v %v", got, err)
			}
			b, _ := os.ReadFile(path)
			cfg, err := LoadConfig(path, RolePersonal)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			old.Discovery.Relays = []string{r1}
			if cfg.Chat != old.Chat || cfg.Discovery.MDNS != old.Discovery.MDNS || len(cfg.Discovery.Relays) != 1 {
				t.Fatalf("settings changed:\n%s", b)
			}
			for _, line := range strings.Split(text, "\n") {
				if strings.HasPrefix(line, "#") && !strings.Contains(string(b), line) {
					t.Errorf("comment %q lost:\n%s", line, b)
				}
			}
			if fi, _ := os.Stat(path); name != "empty file" && fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v", fi.Mode())
			}
		})
	}
}
