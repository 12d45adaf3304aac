package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

func newPeersCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List connections with their path (direct, hole-punched, relayed), direction and latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			conns, err := c.Peers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(conns)
			}
			if len(conns) == 0 {
				fmt.Fprintln(g.stdout, "no connections")
				return nil
			}
			tw := newTable(g.stdout)
			fmt.Fprintln(tw, "NAME\tPEER\tPATH\tTRANSPORT\tDIRECTION\tLATENCY\tOPENED\tADDRESS")
			for _, p := range conns {
				path := p.Path
				if p.Path == api.PathRelayed {
					path = "relayed via " + p.Relay.String()
				}
				latency := "-"
				if p.LatencyMS > 0 {
					latency = fmt.Sprintf("%.2fms", p.LatencyMS)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orShort(p.Name, p.PeerID.String()), p.PeerID, path, p.Transport, p.Direction, latency, p.Opened.Format(time.TimeOnly), p.Addr)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPingCmd(g *globals) *cobra.Command {
	var asJSON bool
	var count int
	var interval, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "ping PEER",
		Short: "Measure round trips to a peer (name, username, peer ID or prefix, friend code or /p2p/ multiaddr) and the path they take",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.CheckPeer(args[0]); err != nil {
				return err
			}
			if count < 1 || count > 1000 {
				return fmt.Errorf("--count must be between 1 and 1000")
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			results := []api.PingResult{}
			failed := 0
			req := api.PingRequest{Peer: args[0], Count: count, Interval: interval, Timeout: timeout}
			err = c.Ping(cmd.Context(), req, func(r api.PingResult) error {
				if len(results) == 0 && !asJSON && r.PeerID != "" {
					fmt.Fprintf(g.stdout, "PING %s (%s)\n", orShort(r.Name, r.PeerID.String()), r.PeerID)
				}
				results = append(results, r)
				if r.Error != "" {
					failed++
				}
				switch {
				case asJSON:
				case r.Error != "":
					fmt.Fprintf(g.stdout, "seq=%d error: %s\n", r.Seq, r.Error)
				default:
					fmt.Fprintf(g.stdout, "seq=%d rtt=%.2fms path=%s\n", r.Seq, float64(r.RTT.Microseconds())/1000, r.Path)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if asJSON {
				if err := g.printJSON(results); err != nil {
					return err
				}
			}
			if failed == len(results) {
				return fmt.Errorf("ping: no answer from %s", args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (a list of round trips)")
	cmd.Flags().IntVar(&count, "count", 4, "number of round trips")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between round trips")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "give up reaching the peer after this long")
	return cmd
}
