package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

func newGroupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Groups: create, invite, join, send, members"}
	cmd.AddCommand(newGroupCreateCmd(g), newGroupInviteCmd(g), newGroupJoinCmd(g),
		newGroupMemberCmd(g, "add GROUP FRIEND", "Add a friend to a group directly (admins); one who left or was removed is a full member again", (*api.Client).AddGroupMember,
			func(m string, gi *api.GroupInfo) string {
				return fmt.Sprintf("added %s to %q; they get the group when they are reachable", m, gi.Name)
			}),
		newGroupMemberCmd(g, "kick GROUP MEMBER", "Remove a member (admins); a new key leaves them unable to read what follows", (*api.Client).KickGroupMember,
			func(m string, gi *api.GroupInfo) string {
				return fmt.Sprintf("removed %s from %q (key epoch %d)", m, gi.Name, gi.Epoch)
			}),
		newGroupMemberCmd(g, "promote GROUP MEMBER", "Make a member an admin (admins)", (*api.Client).PromoteGroupMember,
			func(m string, gi *api.GroupInfo) string { return fmt.Sprintf("%s is now an admin of %q", m, gi.Name) }),
		newGroupLeaveCmd(g), newGroupMembersCmd(g), newGroupListCmd(g), newGroupRenameCmd(g), newGroupSendCmd(g))
	return cmd
}

func newGroupCreateCmd(g *globals) *cobra.Command {
	var avatar string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a group, with you as its admin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.CreateGroupRequest{Name: args[0]}
			var err error
			if req.Avatar, err = readAvatar(avatar); err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			gi, err := c.CreateGroup(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(gi)
			}
			fmt.Fprintf(g.stdout, "created group %q: %s\ninvite people with `meshtalk group invite %s`\n", gi.Name, gi.ID, gi.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&avatar, "avatar", "", "the group's picture (PNG, JPEG or GIF)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupInviteCmd(g *globals) *cobra.Command {
	var uses uint32
	var expires time.Duration
	var asJSON, noQR bool
	cmd := &cobra.Command{
		Use:   "invite GROUP",
		Short: "Make an invite code (signed by you, an admin) that any online member can honour",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if expires <= 0 {
				return fmt.Errorf("--expires must be positive, like 24h")
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.InviteToGroup(cmd.Context(), args[0], api.InviteRequest{Uses: &uses, ExpiresSeconds: int64(expires.Round(time.Second) / time.Second)})
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(res)
			}
			fmt.Fprintf(g.stdout, "%s\n(%s, valid until %s; join with `meshtalk group join CODE`; withdraw with `meshtalk group invite revoke GROUP %s`)\n",
				res.Code, usesText(res.Uses), res.Expires.Local().Format("2006-01-02 15:04"), res.ID)
			switch {
			case res.Short != "":
				fmt.Fprintf(g.stdout, "short code: %s (held by relay %s: `meshtalk group join %s`)\n", res.Short, res.Relay, res.Short)
				if !noQR {
					printQR(g, res.Short)
				}
			case res.ShortError != "":
				fmt.Fprintf(g.stdout, "no short code: %s\n", res.ShortError)
			}
			return nil
		},
	}
	cmd.AddCommand(newGroupInviteListCmd(g))
	cmd.AddCommand(newGroupMemberCmd(g, "revoke GROUP CODE|ID", "Withdraw an invite (admins): every member refuses it from then on", (*api.Client).RevokeGroupInvite,
		func(ref string, gi *api.GroupInfo) string { return fmt.Sprintf("revoked the invite to %q", gi.Name) }))
	cmd.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the short code as a QR code")
	cmd.Flags().Uint32Var(&uses, "uses", api.DefaultInviteUses, "how many people may join with it (0: any number)")
	cmd.Flags().DurationVar(&expires, "expires", api.DefaultInviteValidity, "how long it is valid")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupInviteListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list GROUP",
		Short: "List the invites you made to a group: how many joined with each, and which still admit anyone",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			invites, err := c.GroupInvites(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(invites)
			}
			if len(invites) == 0 {
				fmt.Fprintln(g.stdout, "you have made no invites to this group (`meshtalk group invite GROUP` makes one)")
				return nil
			}
			tw := newTable(g.stdout)
			fmt.Fprintln(tw, "ID\tSTATE\tJOINED\tVALID UNTIL\tMADE")
			for _, iv := range invites {
				joined := fmt.Sprintf("%d of %d", iv.Used, iv.Uses)
				if iv.Uses == 0 {
					joined = fmt.Sprintf("%d (no limit)", iv.Used)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", iv.ID, strings.ReplaceAll(iv.State, "_", " "), joined,
					iv.Expires.Local().Format("2006-01-02 15:04"), iv.Created.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newGroupJoinCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "join CODE",
		Short: "Join a group with an invite code, full or short (a short one is resolved through your relays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			gi, err := c.JoinGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if gi.AlreadyMember {
				return g.report(asJSON, gi, "you are a member of %q (%s) already, %d members", gi.Name, gi.ID, gi.Members)
			}
			return g.report(asJSON, gi, "joined %q (%s), %d members", gi.Name, gi.ID, gi.Members)
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

// newGroupMemberCmd is an admin's action on one member of a group (do),
// then a line that says what was done.
func newGroupMemberCmd(g *globals, use, short string, do func(*api.Client, context.Context, string, string) (*api.GroupInfo, error),
	done func(member string, gi *api.GroupInfo) string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			gi, err := do(c, cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return g.report(asJSON, gi, "%s", done(args[1], gi))
		}}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newGroupLeaveCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "leave GROUP",
		Short: "Leave a group (the history stays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			gi, err := c.LeaveGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.report(asJSON, gi, "left %q", gi.Name)
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newGroupMembersCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members GROUP",
		Short: "List a group's members with their presence",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			members, err := c.GroupMembers(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(members)
			}
			tw := newTable(g.stdout)
			fmt.Fprintln(tw, "NAME\tPEER\tROLE\tPRESENCE")
			for _, m := range members {
				name, presence := m.Name, "offline"
				if name == "" {
					name = "-"
				}
				if m.Self {
					name += " (you)"
				}
				if m.Online {
					presence = "online"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, m.PeerID, m.Role, presence)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List your groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			gs, err := c.Groups(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(gs)
			}
			if len(gs) == 0 {
				fmt.Fprintln(g.stdout, "no groups yet: `meshtalk group create NAME`, or `meshtalk group join CODE`")
				return nil
			}
			tw := newTable(g.stdout)
			fmt.Fprintln(tw, "NAME\tID\tMEMBERS\tROLE\tSTATUS")
			for _, gi := range gs {
				role := gi.Role
				if role == "" {
					role = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", gi.Name, gi.ID, gi.Members, role, gi.Status)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupRenameCmd(g *globals) *cobra.Command {
	var newName, newAvatar string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rename GROUP [NAME]",
		Short: "Change a group's name or picture (admins)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.UpdateGroupRequest
			if len(args) == 2 {
				newName = args[1]
				req.Name = &newName
			}
			var err error
			if req.Avatar, err = readAvatar(newAvatar); err != nil {
				return err
			}
			if req.Name == nil && req.Avatar == nil {
				return fmt.Errorf("nothing to change: give NAME or --avatar PATH")
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			gi, err := c.UpdateGroup(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return g.report(asJSON, gi, "group %s is now %q", gi.ID, gi.Name)
		},
	}
	cmd.Flags().StringVar(&newAvatar, "avatar", "", "a new picture (PNG, JPEG or GIF)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newGroupSendCmd(g *globals) *cobra.Command {
	var f messageFlags
	cmd := &cobra.Command{
		Use:   "send GROUP [TEXT]",
		Short: "Send a message to a group: stored at once, then published to the members",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, picture, err := f.content(args)
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			req := api.GroupSendRequest{Text: text, Face: f.face, Picture: picture, PictureName: f.pictureName(), ReplyTo: f.reply, ReactTo: f.react, Path: f.file}
			m, err := c.SendGroup(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return f.print(g, m)
		},
	}
	f.register(cmd, "offer the file at `PATH` to the members")
	return cmd
}

// usesText says how many may join with an invite.
func usesText(uses uint32) string {
	switch uses {
	case 0:
		return "any number of people"
	case 1:
		return "one person"
	}
	return fmt.Sprintf("%d people", uses)
}
