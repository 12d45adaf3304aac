package main

import (
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/group"
)

func newGroupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Groups: create, invite, join, send, members"}
	groupPath := func(group string, rest string) string { return "/api/v1/groups/" + url.PathEscape(group) + rest }

	var avatar string
	var createJSON bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a group, with you as its admin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.CreateGroupRequest{Name: args[0]}
			if avatar != "" {
				b, err := readLimited(avatar, chat.MaxImageInput)
				if err != nil {
					return err
				}
				req.Avatar = b
			}
			var gi group.Info
			if err := g.call(cmd, "POST", "/api/v1/groups", req, &gi); err != nil {
				return err
			}
			if createJSON {
				return g.printJSON(gi)
			}
			fmt.Fprintf(g.stdout, "created group %q: %s\ninvite people with `meshtalk group invite %s`\n", gi.Name, gi.ID, gi.ID)
			return nil
		},
	}
	create.Flags().StringVar(&avatar, "avatar", "", "the group's picture (PNG, JPEG or GIF)")
	create.Flags().BoolVar(&createJSON, "json", false, "print JSON")

	var uses uint32
	var expires time.Duration
	var inviteJSON bool
	inv := &cobra.Command{
		Use:   "invite GROUP",
		Short: "Make an invite code (signed by you, an admin) that any online member can honour",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if expires <= 0 {
				return fmt.Errorf("--expires must be positive, like 24h")
			}
			var res api.InviteResult
			req := api.InviteRequest{Uses: uses, ExpiresSeconds: int64(expires.Round(time.Second) / time.Second)}
			if err := g.call(cmd, "POST", groupPath(args[0], "/invites"), req, &res); err != nil {
				return err
			}
			if inviteJSON {
				return g.printJSON(res)
			}
			fmt.Fprintf(g.stdout, "%s\n(valid until %s; join with `meshtalk group join CODE`)\n", res.Code, res.Expires.Local().Format("2006-01-02 15:04"))
			return nil
		},
	}
	inv.Flags().Uint32Var(&uses, "uses", 0, "how many people may join with it (0: any number)")
	inv.Flags().DurationVar(&expires, "expires", api.DefaultInviteValidity, "how long it is valid")
	inv.Flags().BoolVar(&inviteJSON, "json", false, "print JSON")

	var joinJSON bool
	join := &cobra.Command{
		Use:   "join CODE",
		Short: "Join a group with an invite code",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var gi group.Info
			if err := g.call(cmd, "POST", "/api/v1/groups/join", api.JoinRequest{Code: args[0]}, &gi); err != nil {
				return err
			}
			if joinJSON {
				return g.printJSON(gi)
			}
			fmt.Fprintf(g.stdout, "joined %q (%s), %d members\n", gi.Name, gi.ID, gi.Members)
			return nil
		},
	}
	join.Flags().BoolVar(&joinJSON, "json", false, "print JSON")

	// memberCmd is an admin's action on one member of a group: method on
	// the group's path, then a line that says what was done.
	memberCmd := func(use, short, method string, path func(member string) string, body func(member string) any,
		done func(member string, gi group.Info) string) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				var gi group.Info
				if err := g.call(cmd, method, groupPath(args[0], path(args[1])), body(args[1]), &gi); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, done(args[1], gi))
				return nil
			}}
	}
	byPeer := func(member string) any { return api.AddMemberRequest{Peer: member} }
	add := memberCmd("add GROUP FRIEND", "Add a friend to a group directly (admins)", "POST",
		func(string) string { return "/members" }, byPeer,
		func(m string, gi group.Info) string {
			return fmt.Sprintf("added %s to %q; they get the group when they are reachable", m, gi.Name)
		})
	kick := memberCmd("kick GROUP MEMBER", "Remove a member (admins); a new key leaves them unable to read what follows", "DELETE",
		func(m string) string { return "/members/" + url.PathEscape(m) }, func(string) any { return nil },
		func(m string, gi group.Info) string {
			return fmt.Sprintf("removed %s from %q (key epoch %d)", m, gi.Name, gi.Epoch)
		})
	promote := memberCmd("promote GROUP MEMBER", "Make a member an admin (admins)", "POST",
		func(string) string { return "/admins" }, byPeer,
		func(m string, gi group.Info) string { return fmt.Sprintf("%s is now an admin of %q", m, gi.Name) })
	leave := &cobra.Command{
		Use:   "leave GROUP",
		Short: "Leave a group (the history stays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var gi group.Info
			if err := g.call(cmd, "POST", groupPath(args[0], "/leave"), nil, &gi); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "left %q\n", gi.Name)
			return nil
		},
	}
	var membersJSON bool
	members := &cobra.Command{
		Use:   "members GROUP",
		Short: "List a group's members with their presence",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ms []group.Member
			if err := g.call(cmd, "GET", groupPath(args[0], "/members"), nil, &ms); err != nil {
				return err
			}
			if membersJSON {
				return g.printJSON(ms)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPEER\tROLE\tPRESENCE")
			for _, m := range ms {
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
	members.Flags().BoolVar(&membersJSON, "json", false, "print JSON")
	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List your groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var gs []group.Info
			if err := g.call(cmd, "GET", "/api/v1/groups", nil, &gs); err != nil {
				return err
			}
			if listJSON {
				return g.printJSON(gs)
			}
			if len(gs) == 0 {
				fmt.Fprintln(g.stdout, "no groups yet: `meshtalk group create NAME`, or `meshtalk group join CODE`")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
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
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")

	var newName, newAvatar string
	rename := &cobra.Command{
		Use:   "rename GROUP [NAME]",
		Short: "Change a group's name or picture (admins)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.UpdateGroupRequest
			if len(args) == 2 {
				newName = args[1]
				req.Name = &newName
			}
			if newAvatar != "" {
				b, err := readLimited(newAvatar, chat.MaxImageInput)
				if err != nil {
					return err
				}
				req.Avatar = b
			}
			if req.Name == nil && req.Avatar == nil {
				return fmt.Errorf("nothing to change: give NAME or --avatar PATH")
			}
			var gi group.Info
			if err := g.call(cmd, "PUT", groupPath(args[0], ""), req, &gi); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "group %s is now %q\n", gi.ID, gi.Name)
			return nil
		},
	}
	rename.Flags().StringVar(&newAvatar, "avatar", "", "a new picture (PNG, JPEG or GIF)")

	cmd.AddCommand(create, inv, join, add, kick, promote, leave, members, list, rename, newGroupSendCmd(g, groupPath))
	return cmd
}

func newGroupSendCmd(g *globals, groupPath func(string, string) string) *cobra.Command {
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
			req := api.GroupSendRequest{Text: text, Face: f.face, Picture: picture, ReplyTo: f.reply, ReactTo: f.react, Path: f.file}
			var m chat.Message
			if err := g.call(cmd, "POST", groupPath(args[0], "/messages"), req, &m); err != nil {
				return err
			}
			return f.print(g, m)
		},
	}
	f.register(cmd, "offer a file to the members")
	return cmd
}
