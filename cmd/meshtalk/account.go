package main

import (
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/node"
	"github.com/meshtalk/meshtalk/relay"
)

// newAccountCmd is `meshtalk account`: a username on a relay.
func newAccountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Your username on relays: register, look up, unregister"}

	var relayAddr, invite string
	var asJSON bool
	register := &cobra.Command{
		Use:   "register NAME --relay MULTIADDR",
		Short: "Take NAME on a relay; your node logs in there from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if relayAddr == "" {
				return fmt.Errorf("give the relay: --relay /ip4/.../p2p/<relay peer ID>")
			}
			var u relay.User
			if err := g.call(cmd, "POST", "/api/v1/account/register", api.RegisterRequest{Relay: relayAddr, Name: args[0], Invite: invite}, &u); err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(u)
			}
			fmt.Fprintf(g.stdout, "registered %s on %s\n", u.Name, relayIDOf(relayAddr))
			return nil
		},
	}
	register.Flags().StringVar(&relayAddr, "relay", "", "the relay's multiaddr, ending in /p2p/<peer ID>")
	register.Flags().StringVar(&invite, "invite", "", "an invite token, for a relay that registers by invitation")
	register.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var lookupRelay string
	var lookupJSON bool
	lookup := &cobra.Command{
		Use:   "lookup NAME",
		Short: "Find a user by name on your relays: peer ID, profile, addresses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"name": {args[0]}}
			if lookupRelay != "" {
				q.Set("relay", lookupRelay)
			}
			var u relay.User
			if err := g.call(cmd, "GET", "/api/v1/account/lookup?"+q.Encode(), nil, &u); err != nil {
				return err
			}
			if lookupJSON {
				return g.printJSON(u)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
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
	lookup.Flags().StringVar(&lookupRelay, "relay", "", "ask this relay only (peer ID or multiaddr)")
	lookup.Flags().BoolVar(&lookupJSON, "json", false, "print JSON")

	var unregRelay string
	unregister := &cobra.Command{
		Use:   "unregister --relay RELAY",
		Short: "Give up your name on a relay",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if unregRelay == "" {
				return fmt.Errorf("give the relay: --relay <peer ID or multiaddr>")
			}
			if err := g.call(cmd, "POST", "/api/v1/account/unregister", api.UnregisterRequest{Relay: unregRelay}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "unregistered from %s\n", relayIDOf(unregRelay))
			return nil
		},
	}
	unregister.Flags().StringVar(&unregRelay, "relay", "", "the relay (peer ID or multiaddr)")
	cmd.AddCommand(register, lookup, unregister)
	return cmd
}

// relayIDOf is the peer ID at the end of a multiaddr, or s itself.
func relayIDOf(s string) string {
	if i := strings.LastIndex(s, "/p2p/"); i >= 0 {
		return s[i+len("/p2p/"):]
	}
	return s
}

// addRelayOpsCmds adds the operator commands, which talk to a running
// relay (its home is the relay's: --home, else .../meshtalk-relay).
func addRelayOpsCmds(g *globals, cmd *cobra.Command) {
	var asJSON bool
	users := &cobra.Command{
		Use:   "users",
		Short: "List the relay's accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var us []relay.UserInfo
			if err := g.callRole(cmd, node.RoleRelay, "GET", "/api/v1/relay/users", nil, &us); err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(us)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPEER ID\tSTATE\tMAILBOX")
			for _, u := range us {
				state := "offline"
				if u.LoggedIn {
					state = "logged in"
				} else if !u.LastSeen.IsZero() {
					state = "last seen " + u.LastSeen.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d (%s)\n", u.Name, u.PeerID, state, u.MailboxItems, humanBytes(uint64(u.MailboxBytes)))
			}
			return tw.Flush()
		},
	}
	users.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var statsJSON bool
	stats := &cobra.Command{
		Use:   "stats",
		Short: "What the relay holds and carries now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st relay.Stats
			if err := g.callRole(cmd, node.RoleRelay, "GET", "/api/v1/relay/stats", nil, &st); err != nil {
				return err
			}
			if statsJSON {
				return g.printJSON(st)
			}
			fmt.Fprintf(g.stdout, "accounts:   %d\nlogged in:  %d\nmailbox:    %d items, %s\nfile drop:  %d files, %s\ncircuits:   %d\n",
				st.Accounts, st.LoggedIn, st.MailboxItems, humanBytes(uint64(st.MailboxBytes)), st.DropFiles, humanBytes(uint64(st.DropBytes)), st.Circuits)
			return nil
		},
	}
	stats.Flags().BoolVar(&statsJSON, "json", false, "print JSON")

	var uses int
	var expires string
	var invJSON bool
	invite := &cobra.Command{
		Use:   "invite",
		Short: "Print a registration invite token (for registration = \"invite\")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var inv api.RelayInvite
			if err := g.callRole(cmd, node.RoleRelay, "POST", "/api/v1/relay/invites", api.RelayInviteRequest{Uses: uses, Expires: expires}, &inv); err != nil {
				return err
			}
			if invJSON {
				return g.printJSON(inv)
			}
			fmt.Fprintln(g.stdout, inv.Token)
			return nil
		},
	}
	invite.Flags().IntVar(&uses, "uses", 1, "how many registrations it is good for")
	invite.Flags().StringVar(&expires, "expires", "168h", "how long it is good for")
	invite.Flags().BoolVar(&invJSON, "json", false, "print JSON")
	cmd.AddCommand(users, stats, invite)
}
