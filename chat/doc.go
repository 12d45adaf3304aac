// Package chat is a person's contacts, profile, direct messages and
// groups: the classic IM's AddFriend, GetMyFriends, UserOnLine,
// UpdateHeadPic, SendMsg, SendPicture and SendFace between two nodes, and
// CreateGroup, AddGroup, GetMyGroups and SendGroupMsg among many.
//
//   - wire.go specifies the two protocols, /meshtalk/contact/1.0.0 (friend
//     requests, answers, unfriending, profiles) and /meshtalk/dm/1.0.0
//     (messages, acked per message), and holds their limits and native types.
//   - contacts.go keeps the contact records and the profile.
//   - dm.go is the durable outbox and its couriers, the receiver, history,
//     search and read receipts.
//   - store.go documents the datastore keys (group.go those of groups).
//   - groupwire.go specifies the group protocols: the gossipsub topic
//     /meshtalk/group/<id> (encrypted, author-signed messages and signed
//     membership operations), invites, and /meshtalk/groupsync/1.0.0
//     (catch-up, joining, new keys); groupstate.go is the membership log's
//     rules; group.go the group service (topic validator, paced
//     publishing, storage); groupapi.go the group actions (create, invite,
//     add, kick, leave, send); groupsync.go both sides of groupsync;
//     groupscore.go gossipsub's peer scoring on the group topics.
//
// Delivery is exactly-once per message ID: a message is stored in the
// sender's outbox (synced) before Send returns; one courier per contact
// sends the outbox in order whenever the contact is reachable, across
// restarts; the receiver stores (synced) before it acks and acks a
// duplicate without storing it again. Conversations are ordered by a
// hybrid logical clock (clock.go), so clock skew between two machines
// does not reorder a reply before its question.
//
// Message IDs are derived, not chosen (clock.go): a ULID whose time is the
// message's sent-at time and whose rest hashes what names the message
// (sender, recipient and clock reading; group, author and number). Every
// receiver recomputes it and refuses a message whose ID differs, so that
// no peer can take the ID of another's message in the one index of IDs.
//
// The sender of a stream is its authenticated remote peer, never a field
// of a frame; only friends' messages are accepted, and a blocked peer's
// streams are reset.
//
// The relay mailbox plugs in through the Mailbox interface (dm.go): the
// courier parks the outbox there for a friend who stays unreachable, the
// mailbox hands what it holds to ReceiveParked, and the receiver's dedup by
// message ID keeps delivery exactly-once whichever path delivers. The relay
// issue provides the implementation (sealing, the relay protocol).
//
// # Groups
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
// authenticated, encrypted channel. Each member numbers its messages, so
// that a member that was away, or that gossip dropped messages for, pulls
// exactly what it lacks by author and number; publishing is paced, and
// dedup by (author, number) makes delivery exactly-once whichever path
// delivers. GroupMailbox is the seam for the relay's offline mailbox.
package chat
