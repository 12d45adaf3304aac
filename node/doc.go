// Package node is the meshtalk runtime: a home folder with its lock, the
// identity key, config.toml, the embedded datastore and the libp2p host.
// It is the one place that assembles the protocol services into a role (a
// personal node or a relay); everything else takes the pieces it needs
// (host.Host, datastore.Batching) as interfaces.
//
// It is also where the use cases live that the local API serves, one
// method each with one typed result, by area: status.go (identity,
// status, peers, ping), friends.go (friends, profile, avatars),
// messages.go (send, history, search, read), files.go (send a file: a
// relay's file drop or a direct offer; list, get, cancel), groups.go,
// accounts.go (names on relays) and relayops.go (a relay's operator).
// Their errors are in errors.go, for callers to tell apart with errors.Is.
//
// Datastore keys are namespaced by the package that owns them. The node's
// own namespace:
//
//	/node/peerstore/...   libp2p's persistent peerstore (pstoreds layout)
//	/chat/...             contacts, profile, outbox (chat/store.go), the history
//	                      of every conversation (history/store.go), groups
//	                      (group/service.go)
//	/transfer/...         manifests, offers, downloads (transfer/service.go)
package node
