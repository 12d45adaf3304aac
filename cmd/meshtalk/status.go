package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print version, listen addresses, connected peers and uptime of the running node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(st)
			}
			fmt.Fprintf(g.stdout, "version:  %s\n", st.Version)
			fmt.Fprintf(g.stdout, "peer ID:  %s\n", st.PeerID)
			listen := strings.Join(st.ListenAddrs, "\n          ")
			if listen == "" {
				listen = "nothing (reached through its relays, and by the connections it makes)"
			}
			fmt.Fprintf(g.stdout, "listen:   %s\n", listen)
			fmt.Fprintf(g.stdout, "role:     %s\n", st.Role)
			fmt.Fprintf(g.stdout, "uptime:   %s\n", (time.Duration(st.UptimeSeconds) * time.Second).String())
			punch := "waiting for a public address"
			if st.HolePunchReady {
				punch = "ready"
			}
			fmt.Fprintf(g.stdout, "reach:    %s (hole punching: %s)\n", st.Reachability, punch)
			fmt.Fprintf(g.stdout, "port map: %s\n", portMapLine(st.PortMap))
			for _, r := range st.Relays {
				state := "not connected"
				switch {
				case r.Reserved:
					state = "reservation held"
				case r.Connected:
					state = "connected, no reservation"
				}
				login := "no account"
				switch {
				case r.LoggedIn:
					login = "logged in as " + r.Name
				case r.Name != "":
					login = "registered as " + r.Name + ", not logged in"
				}
				if r.Error != "" && !r.LoggedIn {
					login += " (" + r.Error + ")"
				}
				fmt.Fprintf(g.stdout, "relay:    %s  %s; %s\n", r.PeerID, state, login)
			}
			fmt.Fprintf(g.stdout, "peers:    %d connected\n", len(st.Peers))
			for _, p := range st.Peers {
				fmt.Fprintf(g.stdout, "          %s  %s  %s  %s  %s\n", orShort(p.Name, p.PeerID.String()), p.PeerID, p.Path, p.Transport, p.Addr)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// portMapLine says in one line what the router forwards to the node.
func portMapLine(pm api.PortMapStatus) string {
	router := "router " + pm.Router
	if pm.Router == "" {
		router = "no default route"
	}
	switch {
	case !pm.Enabled:
		return "off"
	case len(pm.Mapped) > 0:
		ext := make([]string, len(pm.Mapped))
		for i, m := range pm.Mapped {
			ext[i] = m.External
		}
		return router + ", port mapped: " + strings.Join(ext, ", ")
	case pm.RouterFound:
		return router + " answered, no port mapped (yet)"
	}
	return router + ", no port mapping (no UPnP or NAT-PMP answer yet)"
}
