package node

// Names and references: the one place that turns what a user typed into
// the peer, group, message or file it means, and a peer into the name
// the node shows for it. Every use case that takes a reference goes
// through here, so the API takes names wherever it takes IDs.
//
// A person is named by a peer ID, a unique prefix of it of minPrefix
// characters or more (or its tail, as ShortID prints it), a username a
// relay answered for it, a contact's nickname, a friend code or a /p2p/
// multiaddr; a group by its ID, a unique ID prefix or its name; a message
// or a file by its ID or a unique prefix. A whole name wins over a
// prefix; two things that fit equally are an *AmbiguousError that lists
// them.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshtalk/meshtalk/discovery"
	"github.com/meshtalk/meshtalk/history"
	"github.com/meshtalk/meshtalk/relay"
)

// minPrefix is the shortest ID prefix that names something.
const minPrefix = 6

// Candidate is one of the things an ambiguous reference could mean.
type Candidate struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// AmbiguousError is a reference that names more than one thing; errors.Is
// finds ErrAmbiguous.
type AmbiguousError struct {
	Ref string
	// What is "peer", "group", "peer or group", "message" or "file".
	What       string
	Candidates []Candidate
}

func (e *AmbiguousError) Error() string {
	parts := make([]string, len(e.Candidates))
	for i, c := range e.Candidates {
		parts[i] = c.ID
		if c.Name != "" && c.Name != c.ID {
			parts[i] = c.Name + " (" + c.ID + ")"
		}
	}
	return fmt.Sprintf("node: %q names more than one %s: %s; use more of the ID", e.Ref, e.What, strings.Join(parts, ", "))
}

// Is makes errors.Is(err, ErrAmbiguous) true.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

// ShortID is how a peer without a name is shown: the tail of its ID,
// which also names it (ResolvePeer takes it).
func ShortID(p peer.ID) string {
	// Every message event names its author, a friend or a member whose
	// name is not known, or this node: the cached form (p.String() was
	// 4.6% of BenchmarkDM pipelined's CPU).
	s := history.PeerString(p)
	if len(s) <= 12 {
		return s
	}
	return "…" + s[len(s)-8:]
}

// entry is one thing a reference may name.
type entry struct {
	id    string
	group bool     // a group's ID, not a peer's
	names []string // matched whole, any case
	label string   // how it is shown
}

// pick finds what ref names among entries: an exact ID; else a whole
// name (any case); else an ID that starts with ref (tails: or ends with
// it), ref of minPrefix characters or more. ok is false when nothing
// fits.
func pick(ref, what string, entries []entry, tails bool) (e entry, ok bool, err error) {
	for _, e := range entries {
		if e.id == ref {
			return e, true, nil
		}
	}
	var byName, byID []entry
	tail := strings.TrimPrefix(ref, "…")
	for _, e := range entries {
		if slices.ContainsFunc(e.names, func(n string) bool { return n != "" && strings.EqualFold(n, ref) }) {
			byName = append(byName, e)
		} else if len(tail) >= minPrefix && (strings.HasPrefix(e.id, ref) || tails && strings.HasSuffix(e.id, tail)) {
			byID = append(byID, e)
		}
	}
	for _, found := range [][]entry{byName, byID} {
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], true, nil
		}
		amb := &AmbiguousError{Ref: ref, What: what}
		for _, e := range found {
			amb.Candidates = append(amb.Candidates, Candidate{ID: e.id, Name: e.label})
		}
		slices.SortFunc(amb.Candidates, func(a, b Candidate) int { return strings.Compare(a.ID, b.ID) })
		return entry{}, false, amb
	}
	return entry{}, false, nil
}

// ResolvePeer finds the peer a user means (see the top of this file); a
// username no contact has is looked up on the node's relays.
func (n *Node) ResolvePeer(ctx context.Context, ref string) (peer.ID, error) {
	info, err := n.resolvePeerInfo(ctx, ref)
	return info.ID, err
}

// resolvePeerInfo is ResolvePeer with the addresses a friend code, a
// multiaddr or a relay's lookup gave.
func (n *Node) resolvePeerInfo(ctx context.Context, ref string) (peer.AddrInfo, error) {
	e, info, err := n.resolveRef(ctx, ref, false)
	if err == nil && e.id != "" {
		info.ID, err = peer.Decode(e.id)
	}
	return info, err
}

// resolveRef resolves a peer's reference or, withGroups, a group's; e.id
// is set when it named a known peer or group, info when it carried the
// peer itself (a peer ID, friend code, /p2p/ address, a relay's user).
func (n *Node) resolveRef(ctx context.Context, ref string, withGroups bool) (entry, peer.AddrInfo, error) {
	ref = strings.TrimSpace(ref)
	what := "peer"
	if withGroups {
		what = "peer or group"
	}
	if ref == "" {
		return entry{}, peer.AddrInfo{}, badRequest(fmt.Errorf("node: name a %s", what))
	}
	info, perr := discovery.ParsePeer(ref)
	if perr == nil {
		return entry{}, info, nil
	}
	if errors.Is(perr, ErrBadFriendCode) && discovery.LooksLikeFriendCode(ref) || strings.HasPrefix(ref, "/") {
		return entry{}, peer.AddrInfo{}, badRequest(perr)
	}
	entries, err := n.peerEntries(ctx)
	if err != nil {
		return entry{}, peer.AddrInfo{}, err
	}
	if withGroups && n.groups != nil {
		entries = append(entries, n.groupEntries(ctx)...)
	}
	e, ok, err := pick(ref, what, entries, true)
	if ok || err != nil {
		return e, peer.AddrInfo{}, err
	}
	info, err = n.lookupUser(ctx, ref)
	if err == nil {
		return entry{}, info, nil
	}
	if !errors.Is(err, discovery.ErrBadPeer) && !errors.Is(err, ErrNoSuchUser) && !errors.Is(err, ErrNoRelay) && !errors.Is(err, ErrBadName) {
		return entry{}, peer.AddrInfo{}, relayFailure(err)
	}
	if discovery.MaybeCutFriendCode(ref) {
		return entry{}, peer.AddrInfo{}, fmt.Errorf("%w: %q is no contact or username this node knows, and too short for a friend code: was the code cut short?", ErrNotContact, ref)
	}
	return entry{}, peer.AddrInfo{}, unknownRef(ref, err)
}

// unknownRef says why ref named no one, for a person to read in any
// client: lookupErr is what the relays' username lookup answered.
func unknownRef(ref string, lookupErr error) error {
	switch {
	case errors.Is(lookupErr, ErrNoSuchUser):
		return fmt.Errorf("%w: %q is no contact of yours, and no one has that username on your relays", ErrNotContact, ref)
	case errors.Is(lookupErr, ErrNoRelay):
		return fmt.Errorf("%w: %q is no contact of yours, nor a peer ID or friend code (to find people by username, add a relay)", ErrNotContact, ref)
	}
	return fmt.Errorf("%w: %q is no contact of yours, nor a peer ID, friend code or username", ErrNotContact, ref)
}

// lookupUser resolves a username through the node's relays into the peer
// and its addresses through the relay it is registered on.
func (n *Node) lookupUser(ctx context.Context, name string) (peer.AddrInfo, error) {
	if n.relayc == nil || strings.ContainsAny(name, "/") {
		return peer.AddrInfo{}, discovery.ErrBadPeer
	}
	if _, err := relay.FoldName(name); err != nil {
		return peer.AddrInfo{}, discovery.ErrBadPeer
	}
	u, err := n.relayc.Lookup(ctx, name, "")
	if err != nil {
		return peer.AddrInfo{}, err
	}
	info := peer.AddrInfo{ID: u.PeerID}
	for _, a := range u.Addrs {
		if m, err := ma.NewMultiaddr(a); err == nil {
			if _, last := ma.SplitLast(m); last != nil && last.Protocol().Code == ma.P_P2P {
				m, _ = ma.SplitLast(m)
			}
			info.Addrs = append(info.Addrs, m)
		}
	}
	return info, nil
}

// peerEntries are the peers this node can name: its contacts, the
// members of its groups and the users its relays answered for.
func (n *Node) peerEntries(ctx context.Context) ([]entry, error) {
	names, err := n.peerNames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(names.all))
	for _, p := range names.all {
		out = append(out, entry{id: p.String(), names: []string{names.nick[p], names.user[p]}, label: names.of(p)})
	}
	return out, nil
}

// groupEntries are this node's groups.
func (n *Node) groupEntries(ctx context.Context) []entry {
	gs, _ := n.groups.List(ctx)
	out := make([]entry, 0, len(gs))
	for _, g := range gs {
		out = append(out, entry{id: g.ID, group: true, names: []string{g.Name}, label: g.Name})
	}
	return out
}

// ResolveGroup finds the group a user means: its ID, a unique ID prefix
// or its name.
func (n *Node) ResolveGroup(ctx context.Context, ref string) (string, error) {
	if _, err := n.groupService(); err != nil {
		return "", err
	}
	e, ok, err := pick(strings.TrimSpace(ref), "group", n.groupEntries(ctx), false)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("%w: %q (see `meshtalk group list`)", ErrNoGroup, ref)
	}
	return e.id, nil
}

// ResolveMessage finds the message a user means: its ID or a unique
// prefix of it (any case). "" stays "".
func (n *Node) ResolveMessage(ctx context.Context, ref string) (string, error) {
	c, err := n.chatService()
	if err != nil || ref == "" {
		return "", err
	}
	ref = strings.ToUpper(strings.TrimSpace(ref))
	if history.ValidID(ref) {
		return ref, nil
	}
	if len(ref) < minPrefix {
		return "", badRequest(fmt.Errorf("node: %q is no message ID; give %d characters of it or more", ref, minPrefix))
	}
	ids, err := c.MessageIDs(ctx, ref, 10)
	if err != nil {
		return "", err
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("%w: no message ID starts with %q", ErrNoMessage, ref)
	case 1:
		return ids[0], nil
	}
	amb := &AmbiguousError{Ref: ref, What: "message"}
	for _, id := range ids {
		cand := Candidate{ID: id}
		if m, err := c.GetMessage(ctx, id); err == nil {
			cand.Name = snippet(m.Text)
		}
		amb.Candidates = append(amb.Candidates, cand)
	}
	return "", amb
}

// resolveFile finds the file offer a user means among those that keep
// fits: its ID, a unique ID prefix (any case) or its file name.
func (n *Node) resolveFile(ctx context.Context, ref string, keep func(File) bool) (File, error) {
	files, err := n.Files(ctx)
	if err != nil {
		return File{}, err
	}
	var entries []entry
	byID := map[string]File{}
	for _, f := range files {
		if keep(f) {
			entries = append(entries, entry{id: f.ID, names: []string{f.Name}, label: f.Name})
			byID[f.ID] = f
		}
	}
	e, ok, err := pick(strings.ToLower(strings.TrimSpace(ref)), "file", entries, false)
	if err != nil {
		return File{}, err
	}
	if !ok {
		if e, ok, err = pick(strings.TrimSpace(ref), "file", entries, false); err != nil || !ok {
			return File{}, cmpErr(err, ErrNoFile)
		}
	}
	return byID[e.id], nil
}

// ResolveFile finds the file offer a user means: its ID, a unique prefix
// of it, or its file name.
func (n *Node) ResolveFile(ctx context.Context, ref string) (string, error) {
	f, err := n.resolveFile(ctx, ref, func(File) bool { return true })
	return f.ID, err
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// snippet is the start of a text, for a line that lists it.
func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 40 {
		return string(r[:39]) + "…"
	}
	return s
}

// names is what this node calls the peers it knows.
type names struct {
	self peer.ID
	all  []peer.ID
	nick map[peer.ID]string // the nickname a contact's (or a member's) profile shows
	user map[peer.ID]string // the username a relay answered
}

// of is the name of p: its nickname, else its username, else ShortID.
func (ns *names) of(p peer.ID) string {
	if s := ns.nick[p]; s != "" {
		return s
	}
	if s := ns.user[p]; s != "" {
		return s
	}
	return ShortID(p)
}

// peerNames reads the names of every peer this node knows: contacts,
// group members, relays' users.
func (n *Node) peerNames(ctx context.Context) (*names, error) {
	ns := &names{self: n.host.ID(), nick: map[peer.ID]string{}, user: map[peer.ID]string{}}
	add := func(p peer.ID) {
		if p != ns.self && !slices.Contains(ns.all, p) {
			ns.all = append(ns.all, p)
		}
	}
	if n.chat != nil {
		contacts, err := n.chat.Contacts(ctx, false)
		if err != nil {
			return nil, err
		}
		for _, c := range contacts {
			add(c.PeerID)
			if c.Profile != nil {
				ns.nick[c.PeerID] = c.Profile.Name
			}
		}
	}
	if n.groups != nil {
		gs, _ := n.groups.List(ctx)
		for _, g := range gs {
			members, _ := n.groups.Members(ctx, g.ID)
			for _, m := range members {
				add(m.PeerID)
				if ns.nick[m.PeerID] == "" {
					ns.nick[m.PeerID] = m.Name
				}
			}
		}
	}
	if n.relayc != nil {
		users, err := n.relayc.UserNames(ctx)
		if err != nil {
			return nil, err
		}
		for p, u := range users {
			add(p)
			ns.user[p] = u
		}
	}
	return ns, nil
}

// NameOf is the name the node shows for p: the nickname p set, else the
// username a relay answered for p, else ShortID. For this node itself it
// is its own nickname, else its username, else ShortID.
func (n *Node) NameOf(ctx context.Context, p peer.ID) string {
	if p == "" {
		return ""
	}
	if n.chat != nil {
		if p == n.host.ID() {
			if prof, err := n.chat.Profile(ctx); err == nil && prof.Name != "" {
				return prof.Name
			}
		} else if s := n.chat.PeerName(ctx, p); s != "" {
			return s
		}
	}
	if n.relayc != nil {
		if p == n.host.ID() {
			for _, st := range n.relayc.Status() {
				if st.Name != "" {
					return st.Name
				}
			}
		} else if s := n.relayc.UserName(ctx, p); s != "" {
			return s
		}
	}
	return ShortID(p)
}
