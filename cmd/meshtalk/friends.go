package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

func newFriendCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "friend", Short: "Friend requests and the friend list"}
	cmd.AddCommand(newFriendAddCmd(g))
	for _, action := range []friendAction{
		{"accept", "Accept a friend request", "you and %s are friends", (*api.Client).AcceptFriend},
		{"decline", "Decline a friend request", "declined %s", (*api.Client).DeclineFriend},
		{"remove", "Remove a friend (on both sides)", "removed %s", (*api.Client).RemoveFriend},
		{"block", "Block a peer: remove on both sides and refuse everything it sends", "blocked %s", (*api.Client).BlockFriend},
	} {
		cmd.AddCommand(newFriendActionCmd(g, action))
	}
	cmd.AddCommand(newFriendListCmd(g), newFriendShowCmd(g))
	return cmd
}

func newFriendAddCmd(g *globals) *cobra.Command {
	var message string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add CODE|USERNAME|PEER_ID",
		Short: "Send a friend request (a friend code from `meshtalk id` carries the addresses)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			f, err := c.AddFriend(cmd.Context(), args[0], message)
			if err != nil {
				return err
			}
			if f.State == api.StateFriend {
				return g.report(asJSON, f, "%s asked you first: you are friends now", named(f))
			}
			return g.report(asJSON, f, "friend request to %s stored; it is delivered when they are reachable", named(f))
		},
	}
	cmd.Flags().StringVar(&message, "message", "", "a message with the request")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// friendAction is one answer to a friend request (or a friend): its
// command, help, what it prints and the client's method.
type friendAction struct {
	name, short, done string
	do                func(*api.Client, context.Context, string) (*api.Friend, error)
}

func newFriendActionCmd(g *globals, action friendAction) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   action.name + " FRIEND",
		Short: action.short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			f, err := action.do(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.report(asJSON, f, action.done, named(f))
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newFriendListCmd(g *globals) *cobra.Command {
	var pending, asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List friends and requests, with presence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			friends, err := c.Friends(cmd.Context(), pending)
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(friends)
			}
			switch {
			case len(friends) == 0 && pending:
				fmt.Fprintln(g.stdout, "no friend requests waiting")
				return nil
			case len(friends) == 0:
				fmt.Fprintln(g.stdout, "no friends yet: share `meshtalk id`'s friend code, or `meshtalk friend add CODE`")
				return nil
			}
			return printFriends(g, friends)
		},
	}
	cmd.Flags().BoolVar(&pending, "pending", false, "only requests waiting for your answer")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printFriends(g *globals, friends []api.Friend) error {
	tw := newTable(g.stdout)
	fmt.Fprintln(tw, "NAME\tPEER\tSTATE\tPRESENCE\tSTATUS")
	for _, f := range friends {
		name, status := orShort(f.Name, f.PeerID.String()), ""
		if f.Profile != nil {
			status = f.Profile.Status
			if f.Profile.AvatarID != "" {
				name += " 🖼"
			}
		}
		presence := "offline"
		switch {
		case f.Online:
			presence = "online"
		case !f.LastSeen.IsZero():
			presence = "last seen " + f.LastSeen.Local().Format("2006-01-02 15:04")
		}
		if f.State == api.StatePendingIn && f.Message != "" {
			status = "asks: " + f.Message
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, f.PeerID, f.State, presence, status)
	}
	return tw.Flush()
}

// named is a friend as a line shows it: its name and its peer ID.
func named(f *api.Friend) string {
	name := orShort(f.Name, f.PeerID.String())
	if name == f.PeerID.String() {
		return name
	}
	return name + " (" + f.PeerID.String() + ")"
}

func newFriendShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show FRIEND",
		Short: "Show a friend's profile, state, path (direct, hole-punched, relayed) and last seen",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			f, err := c.Friend(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(f)
			}
			tw := newTable(g.stdout)
			fmt.Fprintf(tw, "name:\t%s\n", orShort(f.Name, f.PeerID.String()))
			fmt.Fprintf(tw, "peer ID:\t%s\n", f.PeerID)
			if f.Username != "" {
				fmt.Fprintf(tw, "username:\t%s\n", f.Username)
			}
			if f.Profile != nil {
				fmt.Fprintf(tw, "nickname:\t%s\n", f.Profile.Name)
				fmt.Fprintf(tw, "status:\t%s\n", f.Profile.Status)
			}
			fmt.Fprintf(tw, "state:\t%s\n", f.State)
			path := "not connected"
			switch {
			case f.Path == api.PathRelayed && f.Relay != "":
				path = "relayed via " + f.Relay.String()
			case f.Path != "":
				path = f.Path
			}
			fmt.Fprintf(tw, "path:\t%s\n", path)
			seen := "never"
			switch {
			case f.Online:
				seen = "online now"
			case !f.LastSeen.IsZero():
				seen = f.LastSeen.Local().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "last seen:\t%s\n", seen)
			fmt.Fprintf(tw, "friends since:\t%s\n", f.Since.Local().Format("2006-01-02 15:04"))
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
