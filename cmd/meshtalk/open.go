package main

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"time"

	"github.com/spf13/cobra"
)

func newOpenCmd(g *globals) *cobra.Command {
	var printOnly, asJSON bool
	cmd := &cobra.Command{
		Use:   "open",
		Short: "Open the web UI in the browser, logged in by a one-time link",
		Long: "Open the running node's web UI in the default browser. The link carries a login code that works\n" +
			"once, within 60 seconds; the page trades it for a session. Where no browser can be started (or\n" +
			"with --print) the link is printed instead.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			lc, err := c.LoginCode(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(lc)
			}
			if !printOnly {
				if err := openBrowser(cmd.Context(), lc.URL); err == nil {
					fmt.Fprintf(g.stdout, "opened the web UI in the browser (%s)\n", lc.URL)
					return nil
				}
			}
			fmt.Fprintf(g.stdout, "open this link in a browser on this machine (it works once, within 60 s):\n%s\n", lc.URL)
			return nil
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print the link instead of starting a browser")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the link, its code and expiry as JSON")
	return cmd
}

// openBrowser hands url to the desktop's opener.
func openBrowser(ctx context.Context, url string) error {
	var name string
	var args []string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default:
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, path, append(args, url)...).Run()
}
