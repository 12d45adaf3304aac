package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/node"
)

// The saved relays of a personal node (config.toml's discovery.relays):
// through the running node's API, which starts or stops using them at
// once, or, with no node running, by editing config.toml in place.

func newRelayAddCmd(g *globals) *cobra.Command {
	return savedRelaysCmd(g, "add ADDR", "Save a relay (multiaddr ending in /p2p/<peer ID>) for your node: a reservation and login there, now and on every start",
		cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *api.Client, args []string) ([]api.SavedRelay, error) {
			return c.AddRelay(cmd.Context(), args[0])
		},
		func(path string, args []string) ([]string, error) {
			return node.EditRelays(path, node.RolePersonal, node.AddRelayTo(args[0]))
		})
}

func newRelayRemoveCmd(g *globals) *cobra.Command {
	return savedRelaysCmd(g, "remove RELAY", "Remove a saved relay (its peer ID or address) from your node",
		cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *api.Client, args []string) ([]api.SavedRelay, error) {
			return c.RemoveRelay(cmd.Context(), args[0])
		},
		func(path string, args []string) ([]string, error) {
			return node.EditRelays(path, node.RolePersonal, node.RemoveRelayFrom(args[0]))
		})
}

func newRelayListCmd(g *globals) *cobra.Command {
	return savedRelaysCmd(g, "list", "List the relays saved for your node (config.toml)",
		cobra.NoArgs,
		func(cmd *cobra.Command, c *api.Client, _ []string) ([]api.SavedRelay, error) {
			return c.SavedRelays(cmd.Context())
		},
		nil)
}

// savedRelaysCmd is a command on the personal node's saved relays: online
// asks the running node; offline edits config.toml (nil: only reads it).
func savedRelaysCmd(g *globals, use, short string, args cobra.PositionalArgs,
	online func(*cobra.Command, *api.Client, []string) ([]api.SavedRelay, error),
	offline func(path string, args []string) ([]string, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  short + ".\nThe home is your personal node's (not a relay's): --home, $MESHTALK_HOME, else the default. Works whether the node runs or not.",
		Args:  args,
		RunE: func(cmd *cobra.Command, a []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			var relays []api.SavedRelay
			c, err := api.Dial(cmd.Context(), home)
			switch {
			case err == nil:
				relays, err = online(cmd, c, a)
			case errors.Is(err, api.ErrNotRunning) && offline != nil:
				if _, err = offline(home.ConfigPath(), a); err == nil {
					relays, err = node.SavedRelays(home.ConfigPath(), node.RolePersonal)
				}
			case errors.Is(err, api.ErrNotRunning):
				relays, err = node.SavedRelays(home.ConfigPath(), node.RolePersonal)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(relays)
			}
			if len(relays) == 0 {
				fmt.Fprintln(g.stdout, "no relays saved")
			}
			for _, r := range relays {
				fmt.Fprintln(g.stdout, r.Addr)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
