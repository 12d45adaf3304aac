// Package group is this node's groups: the classic IM's CreateGroup,
// AddGroup, GetMyGroups and SendGroupMsg, on gossipsub.
//
//   - wire.go specifies the protocols: the gossipsub topic
//     /meshtalk/group/<id> (encrypted, author-signed messages and signed
//     membership operations), invites, and /meshtalk/groupsync/1.1.0
//     (catch-up, joining, new keys), with their limits, codes and native
//     types; pb/ holds their schema.
//   - state.go is the membership log's rules.
//   - service.go is the service (New, Close), the topic validator, paced
//     publishing and storage, and documents the group datastore keys.
//   - api.go is the group actions (create, invite, add, kick, promote,
//     leave, rename, send, history, search, read marks).
//   - sync.go is both sides of groupsync and the relay mailbox seam.
//   - score.go is gossipsub's peer scoring on the group topics.
//   - filter.go admits only members to a group's topic (gossipsub's
//     peer and subscription filters).
//
// A group is a signed log of membership operations that every member
// checks (only admins add, remove and promote; any member admits the
// holder of an admin's invite). Messages are sealed with the key of the
// current epoch (XChaCha20-Poly1305) and signed by their author (Ed25519,
// the node's identity); gossipsub's own signing is off, and the topic
// validator verifies each message once and rejects what a non-member
// signed or what does not decrypt; peer scoring graylists a peer that
// keeps sending such messages. Removing a member starts a new epoch
// whose key goes to each remaining member over groupsync, on libp2p's
// authenticated, encrypted channel; so does adding one, so that a
// newcomer reads nothing sent before it came. A removed or departed
// member's remove or leave op freezes its head: nothing it numbers later
// counts, whatever key it kept. Invites can be revoked (a signed op), and
// a removed member comes back only by an admin's explicit add. Each member numbers its messages, so
// that a member that was away, or that gossip dropped messages for, pulls
// exactly what it lacks by author and number; publishing is paced, and
// dedup by (author, number) makes delivery exactly-once whichever path
// delivers. Mailbox is the seam for the relay's offline mailbox.
//
// A group message's ID is derived (history.GroupMessageID) from its
// group, author, number and sent-at time; every member recomputes it.
// The messages themselves are history's (history.Message), stored under
// /msgs/g:<group ID>/ beside the direct conversations, in the same /chat
// datastore namespace as chat.
//
// What groups need of contacts (who is a friend, who is online, the name
// a member's profile shows) comes through the Friends interface; node
// gives the chat service. Events (group.update, and message.received for
// group messages, with a *history.Message) go out through Config.Emit.
// The service runs its goroutines and stream handler in an
// internal/lifecycle Group that Close stops.
package group
