// Command meshtalk is the one meshtalk binary: a personal node, a relay,
// and the client commands that drive a running node.
//
// main handles signals and calls run (root.go), which builds the command
// tree: one small constructor per subcommand, in a file per area (run.go
// starts a node or a relay; the others talk to the running node through
// api.Client). Errors are printed as "meshtalk: ...".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
