package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshtalk/meshtalk/internal/atomicfile"
)

// configMu serializes this process's edits of config.toml files.
var configMu sync.Mutex

// EditRelays changes the relays saved in config.toml at path
// (discovery.relays) with edit, which gets the saved list and returns
// the new one, and answers the new list. The file is edited in place:
// its comments and every other setting stay as they are, and the result
// is checked to read back as the old configuration with only the relays
// changed before it replaces the file (atomically). A missing file is
// first the default one.
func EditRelays(path string, role Role, edit func([]string) ([]string, error)) ([]string, error) {
	configMu.Lock()
	defer configMu.Unlock()
	b, err := os.ReadFile(path)
	mode := os.FileMode(0o600)
	switch {
	case errors.Is(err, os.ErrNotExist):
		b = []byte(DefaultConfigText(role))
	case err != nil:
		return nil, fmt.Errorf("node: read config: %w", err)
	default:
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
	}
	old, err := ParseConfig(path, b, role)
	if err != nil {
		return nil, err
	}
	relays, err := edit(slices.Clone(old.Discovery.Relays))
	if err != nil {
		return nil, err
	}
	if relays == nil {
		relays = []string{}
	}
	text, err := setTOMLList(string(b), "discovery", "relays", relays)
	if err != nil {
		return nil, fmt.Errorf("node: edit %s: %w", path, err)
	}
	got, err := ParseConfig(path, []byte(text), role)
	if err != nil {
		return nil, fmt.Errorf("node: edit %s: %w", path, err)
	}
	want := old
	want.Discovery.Relays = relays
	if !reflect.DeepEqual(got, want) {
		return nil, fmt.Errorf("node: edit %s: the edit would change other settings; edit discovery.relays by hand", path)
	}
	if err := atomicfile.Write(path, []byte(text), mode, true); err != nil {
		return nil, fmt.Errorf("node: write config: %w", err)
	}
	return relays, nil
}

// AddRelayTo is an EditRelays edit that adds addr (a multiaddr ending in
// /p2p/<peer ID>) unless a saved relay has its peer ID already.
func AddRelayTo(addr string) func([]string) ([]string, error) {
	return func(relays []string) ([]string, error) {
		info, err := peer.AddrInfoFromString(addr)
		if err != nil {
			return nil, badRequest(fmt.Errorf("node: %q is not a relay's multiaddr ending in /p2p/<peer ID>: %v", addr, err))
		}
		for _, r := range relays {
			if ri, err := peer.AddrInfoFromString(r); err == nil && ri.ID == info.ID {
				return relays, nil
			}
		}
		return append(relays, addr), nil
	}
}

// RemoveRelayFrom is an EditRelays edit that removes the relays that
// which names: a peer ID or a saved address. None is ErrNoSavedRelay.
func RemoveRelayFrom(which string) func([]string) ([]string, error) {
	return func(relays []string) ([]string, error) {
		var out []string
		for _, r := range relays {
			ri, err := peer.AddrInfoFromString(r)
			if r == which || err == nil && ri.ID.String() == which {
				continue
			}
			out = append(out, r)
		}
		if len(out) == len(relays) {
			return nil, fmt.Errorf("%w: %q", ErrNoSavedRelay, which)
		}
		return out, nil
	}
}

// setTOMLList sets key in [section] of a TOML text to a list of strings,
// keeping everything else (comments too) as it is: the key's value is
// replaced where it is, or the key is added at the section's start, or
// the section at the end.
func setTOMLList(text, section, key string, values []string) (string, error) {
	value := "[]"
	if len(values) > 0 {
		var b strings.Builder
		b.WriteString("[\n")
		for _, v := range values {
			fmt.Fprintf(&b, "  %q,\n", v)
		}
		b.WriteString("]")
		value = b.String()
	}
	lines := strings.SplitAfter(text, "\n")
	cur, header := "", -1
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") && !strings.HasPrefix(t, "[[") {
			name, _, _ := strings.Cut(strings.TrimPrefix(t, "["), "]")
			cur = strings.TrimSpace(name)
			if cur == section {
				header = i
			}
			continue
		}
		if cur != section {
			continue
		}
		name, _, ok := strings.Cut(t, "=")
		if !ok || strings.TrimSpace(name) != key {
			continue
		}
		// The value runs from '=' to its closing bracket, maybe lines on.
		start := strings.Index(line, "=") + 1
		joined := line[start:] + strings.Join(lines[i+1:], "")
		end, err := arrayEnd(joined)
		if err != nil {
			return "", fmt.Errorf("%s.%s: %w", section, key, err)
		}
		before := strings.Join(lines[:i], "") + line[:start]
		return before + " " + value + joined[end:], nil
	}
	entry := key + " = " + value + "\n"
	if header >= 0 {
		return strings.Join(lines[:header+1], "") + entry + strings.Join(lines[header+1:], ""), nil
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return text + "\n[" + section + "]\n" + entry, nil
}

// arrayEnd returns the offset just past the TOML array that s starts with
// (after white space), skipping strings and comments inside it.
func arrayEnd(s string) (int, error) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i == len(s) || s[i] != '[' {
		return 0, errors.New("not a list")
	}
	depth := 0
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '[':
			depth++
		case ']':
			if depth--; depth == 0 {
				return i + 1, nil
			}
		case '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case '"', '\'':
			for i++; i < len(s) && s[i] != c; i++ {
				if c == '"' && s[i] == '\\' {
					i++
				}
			}
		}
	}
	return 0, errors.New("the list does not end")
}

// SavedRelay is a relay saved in config.toml (discovery.relays).
type SavedRelay struct {
	Addr   string  `json:"addr"`
	PeerID peer.ID `json:"peer_id"`
}

// SavedRelays reads the relays saved in config.toml at path.
func SavedRelays(path string, role Role) ([]SavedRelay, error) {
	cfg, err := LoadConfig(path, role)
	if err != nil {
		return nil, err
	}
	return savedRelays(cfg.Discovery.Relays), nil
}

func savedRelays(addrs []string) []SavedRelay {
	out := make([]SavedRelay, 0, len(addrs))
	for _, a := range addrs {
		r := SavedRelay{Addr: a}
		if info, err := peer.AddrInfoFromString(a); err == nil {
			r.PeerID = info.ID
		}
		out = append(out, r)
	}
	return out
}

// Relays lists the relays saved in the node's config.toml.
func (n *Node) Relays() ([]SavedRelay, error) {
	return SavedRelays(n.home.ConfigPath(), n.role)
}

// AddRelay saves a relay (a multiaddr ending in /p2p/<peer ID>) in
// config.toml and, from now on, holds a reservation and logs in there.
func (n *Node) AddRelay(addr string) ([]SavedRelay, error) {
	relays, err := EditRelays(n.home.ConfigPath(), n.role, AddRelayTo(addr))
	if err != nil {
		return nil, err
	}
	info, _ := peer.AddrInfoFromString(addr)
	if n.disc != nil {
		n.disc.AddRelay(*info)
	}
	if n.relayc != nil {
		n.relayc.AddRelay(*info)
	}
	return savedRelays(relays), nil
}

// RemoveRelay removes a saved relay (its peer ID or address) from
// config.toml, stops holding a reservation there, and logs out of it at
// once: it is no longer this node's mailbox (the account stays on the
// relay; relay add logs in again).
func (n *Node) RemoveRelay(which string) ([]SavedRelay, error) {
	before, err := n.Relays()
	if err != nil {
		return nil, err
	}
	relays, err := EditRelays(n.home.ConfigPath(), n.role, RemoveRelayFrom(which))
	if err != nil {
		return nil, err
	}
	for _, r := range before {
		if slices.ContainsFunc(relays, func(a string) bool { return a == r.Addr }) || r.PeerID == "" {
			continue
		}
		if n.disc != nil {
			n.disc.RemoveRelay(r.PeerID)
		}
		if n.relayc != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := n.relayc.RemoveRelay(ctx, r.PeerID)
			cancel()
			if err != nil {
				// Removed all the same: the relay ends the session when
				// the connection goes.
				n.log.Info("relay remove: log out", "relay", r.PeerID, "err", err)
			}
		}
	}
	return savedRelays(relays), nil
}
