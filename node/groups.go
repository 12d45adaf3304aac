package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/relay"
)

// The group use cases. Each takes the group as a user names it: its ID, a
// unique prefix of the ID (6 characters or more), or its name when exactly
// one group has it.

// GroupInfo is a group as this node sees it.
type GroupInfo = group.Info

// GroupMember is one member of a group.
type GroupMember = group.Member

// MadeInvite is an invite this node made to a group, with how many joined
// with it and whether it still admits anyone.
type MadeInvite = group.MadeInvite

// GroupInvite is an invite code to a group and when it expires; where
// the inviter is logged in to a relay, also a short code that the relay
// resolves to the full one (Short, held by Relay; ShortError says why
// there is none when a relay was there to ask).
type GroupInvite struct {
	Code string `json:"code"`
	// ID names the invite to revoke it (RevokeGroupInvite).
	ID string `json:"id"`
	// Uses is how many may join with it (0: any number).
	Uses       uint32    `json:"uses"`
	Expires    time.Time `json:"expires"`
	Short      string    `json:"short,omitempty"`
	Relay      string    `json:"relay,omitempty"`
	ShortError string    `json:"short_error,omitempty"`
}

// Defaults of a group invite: one person may join with it, within a
// day, unless asked otherwise.
const (
	DefaultInviteValidity = 24 * time.Hour
	DefaultInviteUses     = 1
)

// groupService is the groups service, or ErrNoChat on a relay.
func (n *Node) groupService() (*group.Service, error) {
	if n.groups == nil {
		return nil, ErrNoChat
	}
	return n.groups, nil
}

// group resolves a group's name into the groups service and its ID.
func (n *Node) group(ctx context.Context, name string) (*group.Service, string, error) {
	g, err := n.groupService()
	if err != nil {
		return nil, "", err
	}
	id, err := n.ResolveGroup(ctx, name)
	return g, id, err
}

// Groups lists this node's groups.
func (n *Node) Groups(ctx context.Context) ([]*GroupInfo, error) {
	c, err := n.groupService()
	if err != nil {
		return nil, err
	}
	gs, err := c.List(ctx)
	if gs == nil && err == nil {
		gs = []*GroupInfo{}
	}
	return gs, err
}

// CreateGroup creates a group with this node as its admin.
func (n *Node) CreateGroup(ctx context.Context, name string, avatar []byte) (*GroupInfo, error) {
	c, err := n.groupService()
	if err != nil {
		return nil, err
	}
	return c.Create(ctx, name, avatar)
}

// JoinGroup joins a group with an invite code, once a member admitted
// this node. A short code is first resolved to the full one through the
// node's relays.
func (n *Node) JoinGroup(ctx context.Context, code string) (*GroupInfo, error) {
	c, err := n.groupService()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(code)), "mtg1") {
		if _, err := relay.ParseShortCode(code); err != nil {
			return nil, badRequest(fmt.Errorf("node: %q is neither an invite code (mtg1...) nor a short one, or it has a typo", code))
		}
		if n.relayc == nil {
			return nil, relayFailure(relay.ErrNoRelay)
		}
		if code, err = n.relayc.GetShortInvite(ctx, code); err != nil {
			return nil, relayFailure(err)
		}
	}
	return c.Join(ctx, code)
}

// Group is one group.
func (n *Node) Group(ctx context.Context, group string) (*GroupInfo, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	return c.Get(ctx, id)
}

// UpdateGroup changes a group's name (nil: stays) or picture (nil:
// stays); admins only.
func (n *Node) UpdateGroup(ctx context.Context, group string, name *string, avatar []byte) (*GroupInfo, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	return c.Rename(ctx, id, name, avatar)
}

// InviteToGroup makes an invite code good for uses joins (nil:
// DefaultInviteUses; 0: any number) until ttl passes (0:
// DefaultInviteValidity); admins only.
func (n *Node) InviteToGroup(ctx context.Context, group string, uses *uint32, ttl time.Duration) (*GroupInvite, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	if ttl < 0 {
		return nil, badRequest(errors.New("node: expires_seconds must be positive"))
	}
	if ttl == 0 {
		ttl = DefaultInviteValidity
	}
	u := uint32(DefaultInviteUses)
	if uses != nil {
		u = *uses
	}
	code, err := c.Invite(ctx, id, u, ttl)
	if err != nil {
		return nil, err
	}
	ivID, err := groupInviteID(code)
	if err != nil {
		return nil, err
	}
	inv := &GroupInvite{Code: code, ID: ivID, Uses: u, Expires: time.Now().Add(ttl).UTC()}
	if n.relayc != nil && n.relayc.Ready() {
		short, held, err := n.relayc.PutShortInvite(ctx, code, inv.Expires)
		if err != nil {
			// The full code works without it.
			inv.ShortError = err.Error()
		} else {
			inv.Short, inv.Relay = short, held.String()
		}
	}
	return inv, nil
}

// RevokeGroupInvite withdraws an invite (its code or its ID) of a
// group: every member refuses it from then on; admins only.
func (n *Node) RevokeGroupInvite(ctx context.Context, group, invite string) (*GroupInfo, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := c.RevokeInvite(ctx, id, invite); err != nil {
		return nil, err
	}
	return c.Get(ctx, id)
}

// GroupInvites lists the invites this node made to a group, newest
// first: an admin sees what is still open, and can revoke it by its ID.
func (n *Node) GroupInvites(ctx context.Context, group string) ([]*MadeInvite, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	return c.Invites(ctx, id)
}

// GroupMembers lists a group's members with their presence.
func (n *Node) GroupMembers(ctx context.Context, group string) ([]*GroupMember, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	members, err := c.Members(ctx, id)
	for _, m := range members {
		if name := n.NameOf(ctx, m.PeerID); m.Name == "" || name != ShortID(m.PeerID) {
			m.Name = name
		}
	}
	return members, err
}

// AddGroupMember adds a friend (see ResolvePeer) to a group; admins
// only. The friend gets the group when reachable.
func (n *Node) AddGroupMember(ctx context.Context, group, friend string) (*GroupInfo, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	p, err := n.ResolvePeer(ctx, friend)
	if err != nil {
		return nil, err
	}
	return c.Add(ctx, id, p)
}

// KickGroupMember removes a member (see ResolvePeer) from a group, which
// goes to a new key epoch; admins only.
func (n *Node) KickGroupMember(ctx context.Context, group, member string) (*GroupInfo, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	p, err := n.ResolvePeer(ctx, member)
	if err != nil {
		return nil, err
	}
	if err := c.Kick(ctx, id, p); err != nil {
		return nil, err
	}
	return c.Get(ctx, id)
}

// PromoteGroupMember makes a member an admin; admins only.
func (n *Node) PromoteGroupMember(ctx context.Context, group, member string) (*GroupInfo, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	p, err := n.ResolvePeer(ctx, member)
	if err != nil {
		return nil, err
	}
	return c.Promote(ctx, id, p)
}

// LeaveGroup leaves a group (its history stays) and answers it.
func (n *Node) LeaveGroup(ctx context.Context, group string) (*GroupInfo, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := c.Leave(ctx, id); err != nil {
		return nil, err
	}
	return c.Get(ctx, id)
}

// SendGroup sends a message to a group: stored, then published to the
// members. A picture's original or a file (d.Path) goes into the blob
// store, offered to every other member.
func (n *Node) SendGroup(ctx context.Context, group string, d Draft) (*Message, error) {
	c, id, err := n.group(ctx, group)
	if err != nil {
		return nil, err
	}
	draft, err := n.draft(ctx, d)
	if err != nil {
		return nil, err
	}
	if d.Picture != nil || d.Path != "" {
		if draft.File, err = n.offerToMembers(ctx, c, id, d); err != nil {
			return nil, err
		}
	}
	m, err := c.Send(ctx, id, draft)
	return n.present(ctx, m), err
}

// offerToMembers puts a group message's picture or file into the blob
// store and offers it to every member but this node; it answers the
// encoded manifest.
func (n *Node) offerToMembers(ctx context.Context, c *group.Service, id string, d Draft) ([]byte, error) {
	m, err := n.importFile(ctx, d)
	if err != nil {
		return nil, err
	}
	members, err := c.Members(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, mem := range members {
		if !mem.Self {
			if err := n.xfer.Offer(ctx, m, mem.PeerID); err != nil {
				return nil, err
			}
		}
	}
	return m.Encode(), nil
}

// groupInviteID is the ID of an invite code this node made.
func groupInviteID(code string) (string, error) { return group.InviteID(code) }
