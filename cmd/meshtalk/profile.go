package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

func newProfileCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Show your profile: name, status, avatar, peer ID, usernames on relays (set: change it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			p, err := c.Profile(cmd.Context())
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(profileView{Profile: p, PeerID: st.PeerID, Usernames: usernamesOf(st)})
			}
			tw := newTable(g.stdout)
			name := p.Name
			if name == "" {
				name = "(none: meshtalk profile set --name NAME)"
			}
			fmt.Fprintf(tw, "name:\t%s\n", name)
			fmt.Fprintf(tw, "status:\t%s\n", p.Status)
			avatar := "none"
			if p.AvatarID != "" {
				avatar = p.AvatarID[:16]
			}
			fmt.Fprintf(tw, "avatar:\t%s\n", avatar)
			fmt.Fprintf(tw, "peer ID:\t%s\n", st.PeerID)
			for _, u := range usernamesOf(st) {
				fmt.Fprintf(tw, "username:\t%s (on relay %s)\n", u.Name, u.Relay)
			}
			fmt.Fprintf(tw, "version:\t%d\n", p.Version)
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the profile)")
	cmd.AddCommand(newProfileSetCmd(g))
	return cmd
}

// profileView is what `profile --json` prints: the profile, with the
// peer ID and the usernames that the text shows beside it.
type profileView struct {
	*api.Profile
	PeerID    string     `json:"peer_id"`
	Usernames []username `json:"usernames"`
}

// username is this node's name on one relay.
type username struct {
	Name  string `json:"name"`
	Relay string `json:"relay"`
}

// usernamesOf lists the names this node holds on its relays.
func usernamesOf(st *api.Status) []username {
	names := []username{}
	for _, r := range st.Relays {
		if r.Name != "" {
			names = append(names, username{Name: r.Name, Relay: r.PeerID})
		}
	}
	return names
}

func newProfileSetCmd(g *globals) *cobra.Command {
	var name, avatar, status string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Change your profile; friends get it now or when they reconnect",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req api.ProfileRequest
			if cmd.Flags().Changed("name") {
				req.Name = &name
			}
			if cmd.Flags().Changed("status") {
				req.Status = &status
			}
			var err error
			if req.Avatar, err = readAvatar(avatar); err != nil {
				return err
			}
			if req.Name == nil && req.Status == nil && req.Avatar == nil {
				return fmt.Errorf("nothing to change: give --name, --status or --avatar PATH")
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			p, err := c.SetProfile(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(p)
			}
			avatar := "none"
			if p.AvatarID != "" {
				avatar = p.AvatarID[:16]
			}
			fmt.Fprintf(g.stdout, "profile version %d: name %q, status %q, avatar %s\n", p.Version, p.Name, p.Status, avatar)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "your nickname")
	cmd.Flags().StringVar(&status, "status", "", "your status text")
	cmd.Flags().StringVar(&avatar, "avatar", "", "an image (PNG, JPEG or GIF up to 5 MiB), cropped square and scaled to 256 px")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
