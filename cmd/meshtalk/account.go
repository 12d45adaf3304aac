package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

// newAccountCmd is `meshtalk account`: a username on a relay.
func newAccountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Your username on relays: register, look up, unregister"}
	cmd.AddCommand(newAccountRegisterCmd(g), newAccountLookupCmd(g), newAccountUnregisterCmd(g))
	return cmd
}

func newAccountRegisterCmd(g *globals) *cobra.Command {
	var relayAddr, invite string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "register NAME --relay MULTIADDR",
		Short: "Take NAME on a relay; your node logs in there from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if relayAddr == "" {
				return fmt.Errorf("give the relay: --relay /ip4/.../p2p/<relay peer ID>")
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			u, err := c.Register(cmd.Context(), api.RegisterRequest{Relay: relayAddr, Name: args[0], Invite: invite})
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(u)
			}
			fmt.Fprintf(g.stdout, "registered %s on %s\n", u.Name, relayIDOf(relayAddr))
			return nil
		},
	}
	cmd.Flags().StringVar(&relayAddr, "relay", "", "the relay's multiaddr, ending in /p2p/<peer ID>")
	cmd.Flags().StringVar(&invite, "invite", "", "an invite token, for a relay that registers by invitation")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAccountLookupCmd(g *globals) *cobra.Command {
	var relay string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "lookup NAME",
		Short: "Find a user by name on your relays: peer ID, profile, addresses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			u, err := c.Lookup(cmd.Context(), args[0], relay)
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(u)
			}
			tw := newTable(g.stdout)
			fmt.Fprintf(tw, "name:\t%s\n", u.Name)
			fmt.Fprintf(tw, "peer ID:\t%s\n", u.PeerID)
			if u.Profile.Nickname != "" || u.Profile.Status != "" {
				fmt.Fprintf(tw, "profile:\t%s %s\n", u.Profile.Nickname, u.Profile.Status)
			}
			fmt.Fprintf(tw, "since:\t%s\n", u.Registered.Local().Format(time.DateTime))
			for _, a := range u.Addrs {
				fmt.Fprintf(tw, "address:\t%s\n", a)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&relay, "relay", "", "ask this relay only (peer ID or multiaddr)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAccountUnregisterCmd(g *globals) *cobra.Command {
	var relay string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "unregister --relay RELAY",
		Short: "Give up your name on a relay",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if relay == "" {
				return fmt.Errorf("give the relay: --relay <peer ID or multiaddr>")
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			u, err := c.Unregister(cmd.Context(), relay)
			if err != nil {
				return err
			}
			return g.report(asJSON, u, "unregistered from %s", relayIDOf(relay))
		},
	}
	cmd.Flags().StringVar(&relay, "relay", "", "the relay (peer ID or multiaddr)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// relayIDOf is the peer ID at the end of a multiaddr, or s itself.
func relayIDOf(s string) string {
	if i := strings.LastIndex(s, "/p2p/"); i >= 0 {
		return s[i+len("/p2p/"):]
	}
	return s
}
