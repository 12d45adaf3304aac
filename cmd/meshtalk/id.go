package main

import (
	"fmt"
	"strings"

	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"
	"rsc.io/qr"
)

func newIDCmd(g *globals) *cobra.Command {
	var asJSON, noQR bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print the peer ID, addresses and friend code of the running node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			id, err := c.ID(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(id)
			}
			fmt.Fprintf(g.stdout, "peer ID:      %s\n", id.PeerID)
			fmt.Fprintf(g.stdout, "addresses:    %s\n", strings.Join(id.Addrs, "\n              "))
			fmt.Fprintf(g.stdout, "friend code:  %s\n", id.FriendCode)
			if !noQR {
				// Upper case fits QR's compact alphanumeric mode; the code
				// is case-insensitive.
				printQR(g, strings.ToUpper(id.FriendCode))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the friend code as a QR code")
	return cmd
}

// printQR draws text as a QR code in the terminal, after a blank line.
// Upper-case letters, digits and dashes fit its compact alphanumeric mode.
func printQR(g *globals, text string) {
	fmt.Fprintln(g.stdout)
	qrterminal.GenerateHalfBlock(text, qr.L, g.stdout)
}
