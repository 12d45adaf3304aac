// Package api is a node's local control API: HTTP and JSON under /api/v1,
// on a loopback address only, every request carrying the bearer token that
// the node writes with its address to api.json in its home (0600), and
// browser requests only from the API's own origin. docs/api.md documents
// every endpoint.
//
//   - server.go is the Server (New, Close), its routes and the checks of
//     token and origin.
//   - handlers.go, chat.go, files.go, groups.go and relay.go are the
//     handlers, by area: each decodes a request, calls one node method and
//     encodes its result; handlers.go also streams the node's events as
//     Server-Sent Events at /api/v1/events.
//   - errors.go maps node's errors to an HTTP status and a code, in one
//     function.
//   - types.go holds the error body and codes, api.json's content (Info),
//     and the answers, which are node's results encoded as they are.
//   - client.go and client_*.go are Client, the typed client the
//     command-line client commands use instead of building URLs.
package api
