package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/node"
)

// nodeFlags are the flags of the commands that start a node.
type nodeFlags struct {
	listen         []string
	apiAddr        string
	passphraseFile string
	logLevel       string
	logFormat      string
}

func (f *nodeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.listen, "listen", nil, "libp2p listen multiaddr (repeatable; replaces config.toml's network.listen)")
	fl.StringVar(&f.apiAddr, "api", "", "local API address HOST:PORT, loopback only; port 0 picks a free port (default from config.toml: "+node.DefaultAPIAddr+")")
	fl.StringVar(&f.passphraseFile, "passphrase-file", "", "file holding the identity key's passphrase (or set MESHTALK_PASSPHRASE)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default from config.toml: info)")
	fl.StringVar(&f.logFormat, "log-format", "", "text or json (default from config.toml: text)")
}

func newRunCmd(g *globals) *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Start the personal node (creates the home and identity on first run)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runNode(cmd, g, &f) },
	}
	f.register(cmd)
	return cmd
}

// runNode starts a node and its API, prints the ready line, and stops both
// cleanly when the command's context ends (SIGINT or SIGTERM).
func runNode(cmd *cobra.Command, g *globals, f *nodeFlags) error {
	ctx := cmd.Context()
	home, err := g.homeDir()
	if err != nil {
		return err
	}
	// The log settings are needed before the node reads its config, so
	// read the config here first (a missing file is the default).
	cfg, err := node.LoadConfig(home.ConfigPath())
	if err != nil {
		return err
	}
	logger, err := newLogger(g.stderr, pick(f.logLevel, cfg.Log.Level), pick(f.logFormat, cfg.Log.Format))
	if err != nil {
		return err
	}
	pass, err := readPassphrase(f.passphraseFile)
	if err != nil {
		return err
	}
	n, err := node.New(ctx, node.Options{Home: home, Passphrase: pass, Listen: f.listen, Logger: logger})
	if err != nil {
		return err
	}
	defer n.Close()
	srv, err := api.New(ctx, n, pick(f.apiAddr, n.Config().API.Listen), logger)
	if err != nil {
		return err
	}
	defer srv.Close()

	addrs := make([]string, 0)
	for _, a := range n.Host().Addrs() {
		addrs = append(addrs, a.String())
	}
	fmt.Fprintf(g.stdout, "meshtalk ready peer_id=%s listen=%s api=%s\n", n.ID(), strings.Join(addrs, ","), srv.URL())

	<-ctx.Done()
	logger.Info("stopping")
	err = srv.Close()
	return errors.Join(err, n.Close())
}

func pick(flag, config string) string {
	if flag != "" {
		return flag
	}
	return config
}

// readPassphrase reads the passphrase from a file (its trailing newline is
// not part of it) or from $MESHTALK_PASSPHRASE. Neither means none.
func readPassphrase(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("passphrase file %s is empty", file)
		}
		return b, nil
	}
	return []byte(os.Getenv("MESHTALK_PASSPHRASE")), nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	l, err := node.ParseLogLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", format)
}
