// Package api is a node's local control API: HTTP and JSON under /api/v1,
// on a loopback address only, every request carrying the bearer token that
// the node writes with its address to api.json in its home (0600), and
// browser requests only from the API's own origin. docs/api.md documents
// every endpoint. Client is what the command-line client commands use.
package api
