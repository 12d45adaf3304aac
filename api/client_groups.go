package api

import (
	"context"
	"net/http"
	"net/url"
)

func groupPath(group, rest string) string { return "/api/v1/groups/" + url.PathEscape(group) + rest }

// Groups lists the node's groups.
func (c *Client) Groups(ctx context.Context) ([]GroupInfo, error) {
	return call[[]GroupInfo](ctx, c, http.MethodGet, "/api/v1/groups", nil)
}

// CreateGroup creates a group.
func (c *Client) CreateGroup(ctx context.Context, req CreateGroupRequest) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodPost, "/api/v1/groups", req)
}

// JoinGroup joins a group with an invite code.
func (c *Client) JoinGroup(ctx context.Context, code string) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodPost, "/api/v1/groups/join", JoinRequest{Code: code})
}

// Group is one group.
func (c *Client) Group(ctx context.Context, group string) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodGet, groupPath(group, ""), nil)
}

// UpdateGroup changes a group's name or picture.
func (c *Client) UpdateGroup(ctx context.Context, group string, req UpdateGroupRequest) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodPut, groupPath(group, ""), req)
}

// InviteToGroup makes an invite code.
func (c *Client) InviteToGroup(ctx context.Context, group string, req InviteRequest) (*InviteResult, error) {
	return call[*InviteResult](ctx, c, http.MethodPost, groupPath(group, "/invites"), req)
}

// GroupInvites lists the invites this node made to a group, newest first.
func (c *Client) GroupInvites(ctx context.Context, group string) ([]MadeInvite, error) {
	return call[[]MadeInvite](ctx, c, http.MethodGet, groupPath(group, "/invites"), nil)
}

// RevokeGroupInvite withdraws an invite (its code or its ID).
func (c *Client) RevokeGroupInvite(ctx context.Context, group, invite string) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodPost, groupPath(group, "/invites/revoke"), RevokeInviteRequest{Invite: invite})
}

// GroupMembers lists a group's members.
func (c *Client) GroupMembers(ctx context.Context, group string) ([]GroupMember, error) {
	return call[[]GroupMember](ctx, c, http.MethodGet, groupPath(group, "/members"), nil)
}

// AddGroupMember adds a friend to a group.
func (c *Client) AddGroupMember(ctx context.Context, group, friend string) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodPost, groupPath(group, "/members"), AddMemberRequest{Peer: friend})
}

// KickGroupMember removes a member from a group.
func (c *Client) KickGroupMember(ctx context.Context, group, member string) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodDelete, groupPath(group, "/members/"+url.PathEscape(member)), nil)
}

// PromoteGroupMember makes a member an admin.
func (c *Client) PromoteGroupMember(ctx context.Context, group, member string) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodPost, groupPath(group, "/admins"), AddMemberRequest{Peer: member})
}

// LeaveGroup leaves a group.
func (c *Client) LeaveGroup(ctx context.Context, group string) (*GroupInfo, error) {
	return call[*GroupInfo](ctx, c, http.MethodPost, groupPath(group, "/leave"), nil)
}

// SendGroup sends a message to a group.
func (c *Client) SendGroup(ctx context.Context, group string, req GroupSendRequest) (*Message, error) {
	return call[*Message](ctx, c, http.MethodPost, groupPath(group, "/messages"), req)
}
