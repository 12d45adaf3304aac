// Package node is the meshtalk runtime: a home folder with its lock, the
// identity key, config.toml, the embedded datastore and the libp2p host.
// It is the one place that assembles the protocol services into a role (a
// personal node or a relay); everything else takes the pieces it needs
// (host.Host, datastore.Batching) as interfaces.
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
