package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/node"
)

// addRelayOpsCmds adds the operator commands, which talk to a running
// relay (its home is the relay's: --home, else .../meshtalk-relay).
func addRelayOpsCmds(g *globals, cmd *cobra.Command) {
	cmd.AddCommand(newRelayUsersCmd(g), newRelayStatsCmd(g), newRelayInviteCmd(g))
	// Beside them, a personal node's saved relays.
	cmd.AddCommand(newRelayAddCmd(g), newRelayRemoveCmd(g), newRelayListCmd(g))
}

// relayClient connects to the relay running on its home.
func (g *globals) relayClient(cmd *cobra.Command) (*api.Client, error) {
	return g.clientFor(cmd.Context(), node.RoleRelay)
}

func newRelayUsersCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "users",
		Short: "List the relay's accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.relayClient(cmd)
			if err != nil {
				return err
			}
			us, err := c.RelayUsers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(us)
			}
			tw := newTable(g.stdout)
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
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newRelayStatsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "What the relay holds and carries now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.relayClient(cmd)
			if err != nil {
				return err
			}
			stats, err := c.RelayStats(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(stats)
			}
			fmt.Fprintf(g.stdout, "accounts:   %d\nlogged in:  %d\nmailbox:    %d items, %s\nfile drop:  %d files, %s\ncircuits:   %d\n",
				stats.Accounts, stats.LoggedIn, stats.MailboxItems, humanBytes(uint64(stats.MailboxBytes)), stats.DropFiles, humanBytes(uint64(stats.DropBytes)), stats.Circuits)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newRelayInviteCmd(g *globals) *cobra.Command {
	var uses int
	var expires string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Print a registration invite token (for registration = \"invite\")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.relayClient(cmd)
			if err != nil {
				return err
			}
			inv, err := c.NewRelayInvite(cmd.Context(), api.RelayInviteRequest{Uses: uses, Expires: expires})
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(inv)
			}
			fmt.Fprintln(g.stdout, inv.Token)
			return nil
		},
	}
	cmd.Flags().IntVar(&uses, "uses", 1, "how many registrations it is good for")
	cmd.Flags().StringVar(&expires, "expires", "168h", "how long it is good for")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
