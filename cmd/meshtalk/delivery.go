package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

func newMessageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "message", Short: "Look at one message"}
	var asJSON bool
	info := &cobra.Command{
		Use:   "info MSG",
		Short: "How a message travelled: queued, sent (over which path), parked (on which relay), fetched, delivered, read",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			t, err := c.MessageInfo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(t)
			}
			printTrace(g, t)
			return nil
		},
	}
	info.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(info)
	return cmd
}

// printTrace prints a message's hops, one a line, and a group message's
// per member.
func printTrace(g *globals, t *api.MessageTrace) {
	m := t.Message
	fmt.Fprintf(g.stdout, "%s %s %s\n", m.ID, m.Kind, stateOf(m))
	for _, h := range t.Hops {
		fmt.Fprintf(g.stdout, "  %s\n", hopLine(h))
	}
	members := make([]peer.ID, 0, len(t.Members))
	for p := range t.Members {
		members = append(members, p)
	}
	name := func(p peer.ID) string {
		if n := t.Names[p]; n != "" {
			return n
		}
		return p.String()
	}
	sort.Slice(members, func(i, j int) bool { return name(members[i]) < name(members[j]) })
	for _, p := range members {
		fmt.Fprintf(g.stdout, "  member %s (%s)\n", name(p), p)
		for _, h := range t.Members[p] {
			fmt.Fprintf(g.stdout, "    %s\n", hopLine(h))
		}
	}
}

// hopLine is one hop in words.
func hopLine(h api.Hop) string {
	at := "(time unknown)"
	if !h.At.IsZero() {
		at = h.At.Local().Format("2006-01-02 15:04:05.000")
	}
	s := at + " " + h.Event
	switch {
	case h.Path == "mailbox" && h.Relay != "":
		s += " through the relay's mailbox from relay " + h.Relay.String()
	case h.Path == "mailbox":
		s += " through the relay's mailbox"
	case h.Path == "relayed":
		s += " over a relayed connection through relay " + h.Relay.String()
	case h.Path != "":
		s += " over a " + h.Path + " connection"
	case h.Event == "parked" && h.Relay != "":
		s += " on relay " + h.Relay.String()
	}
	return s
}

func newStopCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the running node cleanly: it parks what is queued for friends away in their relay mailboxes, then exits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := c.Stop(cmd.Context())
			if err != nil {
				return err
			}
			// The node removes api.json when it is gone.
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, err := os.Stat(home.APIInfoPath()); errors.Is(err, os.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the node said it would stop (%s) but is still running after 30s", rep)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if asJSON {
				return g.printJSON(rep)
			}
			fmt.Fprintf(g.stdout, "stopped: %s\n", rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
