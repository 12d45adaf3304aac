package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/node"
)

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "meshtalk: %v\n", err)
		return 1
	}
	return 0
}

// globals are the flags every command takes.
type globals struct {
	home   string
	stdout io.Writer
	stderr io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "meshtalk",
		Short:         "meshtalk is a peer-to-peer mesh messenger",
		Long:          "meshtalk is a peer-to-peer mesh messenger. Start your node with `meshtalk run`;\nthe other commands talk to the running node.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       node.Version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.home, "home", "", "home folder (default $MESHTALK_HOME, else $XDG_DATA_HOME/meshtalk, else ~/.local/share/meshtalk)")
	root.AddCommand(newRunCmd(g), newRelayCmd(g), newIDCmd(g), newStatusCmd(g), newPeersCmd(g), newPingCmd(g),
		newFriendCmd(g), newSendCmd(g), newHistoryCmd(g), newSearchCmd(g), newReadCmd(g), newEditCmd(g), newDeleteCmd(g), newProfileCmd(g), newWatchCmd(g),
		newFileCmd(g), newAccountCmd(g), newGroupCmd(g), newMessageCmd(g), newCallCmd(g), newStopCmd(g), newOpenCmd(g))
	g.addCompletions(root)
	return root
}

// homeDir resolves a personal node's home folder: --home, then
// $MESHTALK_HOME, then $XDG_DATA_HOME/meshtalk, then
// ~/.local/share/meshtalk.
func (g *globals) homeDir() (node.Home, error) { return g.homeDirFor(node.RolePersonal) }

// homeDirFor resolves the home of a role. A relay's default home is
// meshtalk-relay beside a personal node's, so both can run on one machine;
// $MESHTALK_HOME is for the personal node only.
func (g *globals) homeDirFor(role node.Role) (node.Home, error) {
	name := "meshtalk"
	if role == node.RoleRelay {
		name = "meshtalk-relay"
	}
	switch {
	case g.home != "":
		return node.Home(g.home), nil
	case os.Getenv("MESHTALK_HOME") != "" && role == node.RolePersonal:
		return node.Home(os.Getenv("MESHTALK_HOME")), nil
	case os.Getenv("XDG_DATA_HOME") != "":
		return node.Home(filepath.Join(os.Getenv("XDG_DATA_HOME"), name)), nil
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home folder: give --home DIR (%w)", err)
	}
	return node.Home(filepath.Join(dir, ".local", "share", name)), nil
}

// client connects to the personal node running on the home.
func (g *globals) client(ctx context.Context) (*api.Client, error) {
	return g.clientFor(ctx, node.RolePersonal)
}

// clientFor connects to the node of role running on its home.
func (g *globals) clientFor(ctx context.Context, role node.Role) (*api.Client, error) {
	home, err := g.homeDirFor(role)
	if err != nil {
		return nil, err
	}
	return api.Dial(ctx, home)
}

// jsonFlag gives cmd the --json flag every command that prints data
// takes (TestEveryCommandTakesJSON).
func jsonFlag(cmd *cobra.Command, asJSON *bool) {
	cmd.Flags().BoolVar(asJSON, "json", false, "print JSON (the node's answer)")
}

// report says what a command did: the node's answer v as JSON with
// --json, else the line made of format and args.
func (g *globals) report(asJSON bool, v any, format string, args ...any) error {
	if asJSON {
		return g.printJSON(v)
	}
	_, err := fmt.Fprintf(g.stdout, format+"\n", args...)
	return err
}

// printJSONLine writes v as one line of JSON.
func (g *globals) printJSONLine(v any) error { return json.NewEncoder(g.stdout).Encode(v) }

// printJSON writes v as indented JSON.
func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
