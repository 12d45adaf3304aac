package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newWatchCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print events as they happen: messages, receipts, presence, friend requests, profiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			stream, err := c.Events(cmd.Context())
			if err != nil {
				return err
			}
			defer stream.Close()
			for {
				ev, err := stream.Next()
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return fmt.Errorf("event stream ended: %w", err)
				}
				if asJSON {
					if err := g.printJSONLine(ev); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(g.stdout, "%s %-18s %s\n", ev.Time.Local().Format(time.TimeOnly), ev.Type, summarize(ev.Data))
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as a JSON line")
	return cmd
}

// summarize prints an event's data compactly: its fields as key=value,
// thumbnails and avatars left out.
func summarize(data any) string {
	m, ok := data.(map[string]any)
	if !ok {
		return fmt.Sprint(data)
	}
	var parts []string
	for _, k := range []string{"name", "peer_id", "from", "id", "kind", "text", "quote", "face", "state", "reason", "online", "message", "path", "reachability", "version"} {
		if v, ok := m[k]; ok && v != "" {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " ")
}
