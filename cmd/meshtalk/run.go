package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
	"github.com/meshtalk/meshtalk/node"
)

// nodeFlags are the flags of the commands that start a node.
type nodeFlags struct {
	listen         []string
	noListen       bool
	announce       []string
	relays         []string
	bootstrap      []string
	noMDNS         bool
	noPortMap      bool
	apiAddr        string
	passphraseFile string
	logLevel       string
	logFormat      string
	metrics        string // relay only
}

// register adds the flags of a node of role: a relay keeps no
// reservation on another relay and asks no router for ports (it runs on
// a reachable host).
func (f *nodeFlags) register(cmd *cobra.Command, role node.Role) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.listen, "listen", nil, "libp2p listen multiaddr (repeatable; replaces config.toml's network.listen)")
	fl.BoolVar(&f.noListen, "no-listen", false, "listen on nothing: dial out only, reachable through relays")
	fl.StringArrayVar(&f.announce, "announce", nil, "multiaddr to announce instead of the detected ones (repeatable)")
	if role == node.RolePersonal {
		fl.StringArrayVar(&f.relays, "relay", nil, "keep a reservation on the relay at `MULTIADDR`, ending in /p2p/<peer ID> (repeatable; saved in config.toml: see 'meshtalk relay list')")
		fl.BoolVar(&f.noPortMap, "no-port-map", false, "do not ask the router to forward the listen ports (UPnP, NAT-PMP)")
	}
	fl.StringArrayVar(&f.bootstrap, "bootstrap", nil, "DHT bootstrap peer multiaddr ending in /p2p/<peer ID> (repeatable; adds to config.toml)")
	fl.BoolVar(&f.noMDNS, "no-mdns", false, "do not look for peers on the local network")
	fl.StringVar(&f.apiAddr, "api", "", "local API address HOST:PORT, loopback only; port 0 picks a free port (default from config.toml: "+node.DefaultConfig(role).API.Listen+")")
	fl.StringVar(&f.passphraseFile, "passphrase-file", "", "file holding the identity key's passphrase (or set MESHTALK_PASSPHRASE)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default from config.toml: info)")
	fl.StringVar(&f.logFormat, "log-format", "", "text or json (default from config.toml: text)")
}

// configure applies the flags over config.toml.
func (f *nodeFlags) configure(c *node.Config) {
	if len(f.listen) > 0 {
		c.Network.Listen = f.listen
	}
	if f.noListen {
		c.Network.Listen = []string{}
	}
	if len(f.announce) > 0 {
		c.Network.Announce = f.announce
	}
	if f.apiAddr != "" {
		c.API.Listen = f.apiAddr
	}
	for _, r := range f.relays {
		if !slices.Contains(c.Discovery.Relays, r) {
			c.Discovery.Relays = append(c.Discovery.Relays, r)
		}
	}
	c.Discovery.Bootstrap = append(c.Discovery.Bootstrap, f.bootstrap...)
	if f.noMDNS {
		c.Discovery.MDNS = false
	}
	if f.noPortMap {
		c.Network.PortMap = false
	}
}

func newRunCmd(g *globals) *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Start the personal node (creates the home and identity on first run)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runNode(cmd, g, &f, node.RolePersonal) },
	}
	f.register(cmd, node.RolePersonal)
	return cmd
}

func newRelayCmd(g *globals) *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Start a relay node: accounts, presence, offline mailbox and file drop, circuit relay and DHT server (default home: .../meshtalk-relay)",
		Long: "Start a relay node: accounts, presence, offline mailbox and file drop, circuit relay and DHT server.\n" +
			"Its subcommands users, stats and invite ask a running relay on the same home;\n" +
			"add, remove and list manage the relays saved for your personal node (its home).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNode(cmd, g, &f, node.RoleRelay) },
	}
	f.register(cmd, node.RoleRelay)
	cmd.Flags().StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9464)")
	addRelayOpsCmds(g, cmd)
	return cmd
}

// runNode starts a node and its API, prints the ready line, and stops both
// cleanly when the command's context ends (SIGINT or SIGTERM).
func runNode(cmd *cobra.Command, g *globals, f *nodeFlags, role node.Role) error {
	ctx := cmd.Context()
	home, err := g.homeDirFor(role)
	if err != nil {
		return err
	}
	// The log settings are needed before the node reads its config, so
	// read the config here first (a missing file is the default).
	cfg, err := node.LoadConfig(home.ConfigPath(), role)
	if err != nil {
		return err
	}
	logger, err := newLogger(g.stderr, pick(f.logLevel, cfg.Log.Level), pick(f.logFormat, cfg.Log.Format))
	if err != nil {
		return err
	}
	// Process-wide, so here in the binary's wiring and not in node.New
	// (tests run many nodes in one process).
	if err := node.TreatAsPublic(cfg.Discovery.PublicRanges); err != nil {
		return err
	}
	pass, err := readPassphrase(f.passphraseFile)
	if err != nil {
		return err
	}
	n, err := node.New(ctx, node.Options{Home: home, Role: role, Passphrase: pass, Configure: f.configure, Logger: logger})
	if err != nil {
		return err
	}
	defer n.Close()
	// --relay is saved: the next start, without it, keeps the relay.
	for _, r := range f.relays {
		if _, err := node.EditRelays(home.ConfigPath(), role, node.AddRelayTo(r)); err != nil {
			return fmt.Errorf("--relay: %w", err)
		}
	}
	srv, err := api.New(ctx, n, n.Config().API.Listen, logger)
	if err != nil {
		return err
	}
	defer srv.Close()

	metrics := ""
	if h := n.MetricsHandler(); f.metrics != "" && h != nil {
		url, stop, err := serveMetrics(f.metrics, h, logger)
		if err != nil {
			return err
		}
		defer stop()
		metrics = " metrics=" + url
	}

	addrs := make([]string, 0)
	for _, a := range n.Host().Addrs() {
		addrs = append(addrs, a.String())
	}
	fmt.Fprintf(g.stdout, "meshtalk ready role=%s peer_id=%s listen=%s api=%s%s\n", role, n.ID(), strings.Join(addrs, ","), srv.URL(), metrics)

	select {
	case <-ctx.Done():
	case <-n.StopRequested():
	}
	logger.Info("stopping")
	if role == node.RolePersonal {
		// Park what friends away are still owed, bounded by [chat]
		// park_on_stop (after `meshtalk stop`, done already).
		rep := n.ParkOnStop(context.Background())
		fmt.Fprintf(g.stdout, "meshtalk stopped: %s\n", rep)
	}
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

// serveMetrics serves the relay's Prometheus metrics on addr until stop.
func serveMetrics(addr string, h http.Handler, logger *slog.Logger) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("metrics server", "err", err)
		}
	}()
	url = "http://" + ln.Addr().String() + "/metrics"
	return url, func() {
		srv.Close()
		<-done
	}, nil
}
