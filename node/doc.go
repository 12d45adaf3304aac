// Package node is the meshtalk runtime: a home folder with its lock
// (home.go), the identity key (identity.go), config.toml (config.go), the
// embedded Pebble datastore (datastore.go) and the libp2p host (host.go).
// It is the one place that assembles the protocol services into a role (a
// personal node or a relay); everything else takes the pieces it needs
// (host.Host, datastore.Batching) as interfaces.
//
// New (node.go) starts the pieces in order and keeps an undo stack: every
// step that starts something pushes what stops it, so that on an error
// what was started is stopped in reverse order and nothing is left
// running. Close stops the services in the order their dependencies need
// (the relay client logs out while the host is up; groups close before
// chat, which they ask who is a friend).
//
// events.go is the node's one application event bus: Events fans events
// out to the local API's event stream. Every service publishes through
// the Emit of its config, which node sets to its emit; emit puts the
// event on Events and hands the few events the node acts on to its
// reactions goroutine (runReactions: fetch a received picture's original,
// tell the relays the friend list), so that no service waits for the
// node. The libp2p host's own bus carries only libp2p's events, of which
// the node forwards connectedness and reachability to Events.
//
// relay.go plugs the relay package in: on a relay, the relay server; on
// a personal node, the relay client as chat's and group's Mailbox and a
// sink for what the relays push.
//
// It is also where the use cases live that the local API serves, one
// method each with one typed result, by area: status.go (identity,
// status, peers, ping), friends.go (friends, profile, avatars),
// messages.go (send, history, search, read), files.go (send a file: a
// relay's file drop or a direct offer; list, get, cancel), groups.go,
// accounts.go (names on relays) and relayops.go (a relay's operator).
// Their errors are in errors.go, for callers to tell apart with errors.Is.
//
// Datastore keys are namespaced by the package that owns them:
//
//	/node/peerstore/...   libp2p's persistent peerstore (pstoreds layout),
//	                      which fails its writes once the node shuts it
//	                      (peerstore.go)
//	/node/drops/...       files that went through a relay's file drop:
//	                      <file ID> sent, <file ID>/<sender> received
//	                      (drops.go)
//	/node/autofetch       the day's bytes of pictures fetched by themselves
//	                      (autofetch.go)
//	/chat/...             contacts, profile, outbox (chat/store.go), the history
//	                      of every conversation (history/store.go), groups
//	                      (group/service.go)
//	/transfer/...         manifests, offers, downloads (transfer/service.go)
//	/relay/...            on a relay, its accounts, mailboxes, invites and
//	                      drops; on a personal node, the relay client's
//	                      accounts, contacts' sealing keys and dropped files
//	                      (relay/store.go)
package node
